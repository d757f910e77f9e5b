// Helpers shared by the crypto known-answer tests: loading vector files and hex fields.
#ifndef KEYHOLD_TESTS_UNIT_CRYPTO_KAT_UTIL_H_
#define KEYHOLD_TESTS_UNIT_CRYPTO_KAT_UTIL_H_

#include <catch2/catch.hpp>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "keyhold/crypto/encoding.h"

namespace keyhold::kat {

// Loads a JSON vector file relative to the source tree. A missing or unparsable file fails the
// test (a KAT that silently runs zero vectors proves nothing).
inline nlohmann::json LoadVectors(const std::string& relative_path) {
  const std::string path = std::string(KEYHOLD_SOURCE_DIR) + "/" + relative_path;
  std::ifstream in(path);
  INFO("vector file " << path);
  REQUIRE(in.good());
  nlohmann::json doc = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  REQUIRE_FALSE(doc.is_discarded());
  return doc;
}

inline nlohmann::json LoadWycheproof(const std::string& file) {
  return LoadVectors("tests/vectors/wycheproof/" + file);
}

// Hex field of a vector; a malformed field is a broken vector file, so it fails the test.
inline std::vector<uint8_t> Hex(const nlohmann::json& field) {
  auto decoded = HexDecode(field.get<std::string>());
  REQUIRE(decoded.ok());
  return std::move(decoded).value();
}

// Hex literal in a test; a typo fails the test rather than comparing against garbage.
inline std::vector<uint8_t> Unhex(std::string_view hex) {
  auto decoded = HexDecode(hex);
  REQUIRE(decoded.ok());
  return std::move(decoded).value();
}

inline bool HasFlag(const nlohmann::json& test, const std::string& flag) {
  if (!test.contains("flags")) return false;
  for (const auto& f : test["flags"]) {
    if (f.get<std::string>() == flag) return true;
  }
  return false;
}

inline bool AllZero(const std::vector<uint8_t>& v) {
  for (uint8_t b : v) {
    if (b != 0) return false;
  }
  return true;
}

}  // namespace keyhold::kat

#endif  // KEYHOLD_TESTS_UNIT_CRYPTO_KAT_UTIL_H_
