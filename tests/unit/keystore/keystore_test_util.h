// Shared helpers for the keystore tests: temporary directories, cheap keystores, file edits.
#ifndef KEYHOLD_TESTS_UNIT_KEYSTORE_KEYSTORE_TEST_UTIL_H_
#define KEYHOLD_TESTS_UNIT_KEYSTORE_KEYSTORE_TEST_UTIL_H_

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "keyhold/crypto/envelope.h"
#include "keyhold/crypto/x25519.h"
#include "keyhold/keystore/keystore.h"

namespace keyhold::keystore::testing {

// Cheap enough to run hundreds of times; the real defaults are tested once, in calibration.
inline constexpr Argon2idParams kCheapKdf{1, 8192, 1};
inline constexpr std::string_view kPassphrase = "correct horse battery staple";

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kh-ks-XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    REQUIRE(mkdtemp(buf.data()) != nullptr);
    path_ = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

inline SecretBytes Pass(std::string_view text = kPassphrase) {
  return SecretBytes::CopyOf(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

inline Unlocker WithPassphrase(std::string_view text = kPassphrase) {
  Unlocker u;
  u.passphrase = Pass(text);
  return u;
}

inline envelope::Identity NewIdentity() {
  X25519KeyPair kp = X25519Generate();
  envelope::Identity id;
  id.secret = std::move(kp.secret);
  id.public_key = kp.public_key;
  return id;
}

inline Unlocker WithIdentity(const envelope::Identity& id) {
  Unlocker u;
  envelope::Identity copy;
  copy.secret = id.secret.Clone();
  copy.public_key = id.public_key;
  u.identities.push_back(std::move(copy));
  return u;
}

inline void InitCheap(const std::string& dir) {
  InitOptions options;
  options.kdf = kCheapKdf;
  auto s = Keystore::Init(dir, Pass(), options);
  INFO((s.ok() ? std::string() : s.error().message));
  REQUIRE(s.ok());
}

inline Keystore OpenOrDie(const std::string& dir, const Unlocker& unlocker) {
  auto ks = Keystore::Open(dir, unlocker);
  INFO((ks.ok() ? std::string() : ks.error().message));
  REQUIRE(ks.ok());
  return std::move(ks).value();
}

inline std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void WriteText(const std::string& path, const std::string& text) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
  }
  REQUIRE(chmod(path.c_str(), 0600) == 0);
}

inline std::string MainFile(const std::string& dir) { return dir + "/keystore.json"; }
inline std::string BakFile(const std::string& dir) { return dir + "/keystore.json.bak"; }

// The parsed body of a keystore file (for tests that inspect or edit fields).
inline nlohmann::json ReadBody(const std::string& path) {
  auto outer = nlohmann::json::parse(ReadText(path));
  return nlohmann::json::parse(outer.at("body").get<std::string>());
}

// Replaces the body, keeping the old MAC (so the MAC no longer matches).
inline void WriteBodyKeepMac(const std::string& path, const nlohmann::json& body) {
  auto outer = nlohmann::json::parse(ReadText(path));
  outer["body"] = body.dump();
  WriteText(path, outer.dump() + "\n");
}

inline ErrorCode CodeOf(const Status& s) { return s.error().code; }

}  // namespace keyhold::keystore::testing

#endif  // KEYHOLD_TESTS_UNIT_KEYSTORE_KEYSTORE_TEST_UTIL_H_
