#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "keyhold/crypto/version.h"

int main(int argc, char** argv) {
  CLI::App app{"keyhold: client-side encryption with customer-held keys", "keyhold"};
  bool version = false;
  app.add_flag("--version", version, "print the version and the crypto libraries in use");
  CLI11_PARSE(app, argc, argv);
  if (version) {
    std::printf("keyhold %s\n%s\nlibsodium %s\n", KEYHOLD_VERSION,
                keyhold::OpenSslRuntimeVersion().c_str(), keyhold::SodiumRuntimeVersion().c_str());
  }
  return 0;
}
