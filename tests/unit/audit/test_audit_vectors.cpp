// Known-answer lines from tests/vectors/audit/entries.json, written by an independent Python
// implementation of docs/audit-log.md (generate_entries.py): valid lines must parse and
// re-encode, MAC included, to the same bytes; invalid ones must not.
#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "keyhold/crypto/encoding.h"
#include "keyhold/keystore/audit_log.h"

namespace keyhold::keystore {
namespace {

// Accepted = parses, and re-encoding with the vector's key gives back every byte.
bool Accepted(const std::string& line, std::span<const uint8_t> key) {
  auto parsed = internal::ParseAuditLine(line);
  if (!parsed.ok()) return false;
  auto again = internal::EncodeAuditLine(parsed->entry, parsed->prev, key);
  return again.ok() && *again == line;
}

TEST_CASE("audit entry vectors", "[audit]") {
  std::ifstream in(std::string(KEYHOLD_SOURCE_DIR) + "/tests/vectors/audit/entries.json");
  REQUIRE(in.good());
  auto doc = nlohmann::json::parse(in);
  auto key = HexDecode(doc.at("key").get<std::string>());
  REQUIRE(key.ok());
  size_t valid = 0, invalid = 0;
  for (const auto& c : doc.at("cases")) {
    const std::string line = c.at("line").get<std::string>();
    const bool expect = c.at("valid").get<bool>();
    INFO(c.at("comment").get<std::string>());
    CHECK(Accepted(line, *key) == expect);
    (expect ? valid : invalid)++;
  }
  CHECK(valid >= 5);
  CHECK(invalid >= 20);
  std::printf("KAT audit_entries: %zu run (%zu valid, %zu invalid)\n", valid + invalid, valid,
              invalid);
}

}  // namespace
}  // namespace keyhold::keystore
