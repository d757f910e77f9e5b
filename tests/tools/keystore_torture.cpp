// Test helper for the keystore crash and concurrency tests: opens a keystore with an X25519
// identity and rotates one key in a loop.
//
//   keystore_torture DIR IDENTITY_FILE KEY COUNT [slow]
//
// IDENTITY_FILE holds the 32 raw bytes of the identity's secret. COUNT 0 rotates until
// killed. With "slow", every step of a keystore write (written, fsynced, renamed; backup and
// main file) is followed by a short random sleep and its name is written to stderr, so a
// SIGKILL from the test lands between those steps and the test can tell where.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>
#include <thread>

#include "keyhold/crypto/file_io.h"
#include "keyhold/crypto/x25519.h"
#include "keyhold/keystore/keystore.h"

namespace {

std::minstd_rand g_rng;

void SlowStep(std::string_view step) {
  std::string line(step);
  line += '\n';
  // write(2) directly: unbuffered, so the line is out before a SIGKILL.
  if (write(2, line.data(), line.size()) < 0) std::_Exit(3);
  std::this_thread::sleep_for(std::chrono::microseconds(g_rng() % 3000));
}

}  // namespace

int main(int argc, char** argv) {
  using namespace keyhold;
  if (argc < 5) {
    std::fprintf(stderr, "usage: keystore_torture DIR IDENTITY_FILE KEY COUNT [slow]\n");
    return 2;
  }
  std::string dir = argv[1];
  std::string key = argv[3];
  long count = std::strtol(argv[4], nullptr, 10);
  bool slow = argc > 5 && std::string_view(argv[5]) == "slow";
  g_rng.seed(static_cast<unsigned>(getpid()));

  auto raw = ReadSmallFile(argv[2], kX25519KeySize);
  if (!raw.ok() || raw->size() != kX25519KeySize) {
    std::fprintf(stderr, "keystore_torture: cannot read the identity\n");
    return 2;
  }
  envelope::Identity id;
  id.secret = SecretBytes::CopyOf(*raw);
  auto pub = X25519PublicFromSecret(id.secret);
  if (!pub.ok()) return 2;
  id.public_key = *pub;
  keystore::Unlocker unlocker;
  unlocker.identities.push_back(std::move(id));

  if (slow) keystore::internal::SetPersistHookForTesting(&SlowStep);
  auto ks = keystore::Keystore::Open(dir, unlocker);
  if (!ks.ok()) {
    std::fprintf(stderr, "keystore_torture: open: %s\n", ks.error().message.c_str());
    return 1;
  }
  if (slow) SlowStep("opened");
  for (long i = 0; count == 0 || i < count; ++i) {
    auto v = ks->RotateKey(key);
    if (!v.ok()) {
      std::fprintf(stderr, "keystore_torture: rotate: %s\n", v.error().message.c_str());
      return 1;
    }
  }
  return 0;
}
