// HMAC-SHA-256/512 against Project Wycheproof, including truncated tags.
#include <catch2/catch.hpp>
#include <iostream>
#include <string>
#include <vector>

#include "kat_util.h"
#include "keyhold/crypto/hash.h"

using keyhold::ErrorCode;
using keyhold::HashAlg;
using keyhold::HashSize;
using keyhold::kat::Hex;

namespace {

void RunHmacFile(const std::string& file, HashAlg alg) {
  const auto doc = keyhold::kat::LoadWycheproof(file);
  int valid = 0, invalid = 0, truncated = 0;
  int rejected_by_policy = 0;  // tags shorter than kMinHmacTagSize: our API refuses them
  for (const auto& group : doc["testGroups"]) {
    const size_t tag_size = group["tagSize"].get<size_t>() / 8;
    for (const auto& t : group["tests"]) {
      INFO(file << " tcId " << t["tcId"].get<int>() << ": " << t["comment"].get<std::string>());
      const auto key = Hex(t["key"]), msg = Hex(t["msg"]), tag = Hex(t["tag"]);
      const std::string result = t["result"].get<std::string>();
      REQUIRE(tag.size() == tag_size);
      // Empty keys are refused by policy (see the test below); these files have none.
      REQUIRE_FALSE(key.empty());

      auto verify = keyhold::HmacVerify(alg, key, msg, tag);
      if (tag_size < keyhold::kMinHmacTagSize) {
        REQUIRE_FALSE(verify.ok());
        CHECK(verify.error().code == ErrorCode::kInvalidArgument);
        ++rejected_by_policy;
        continue;
      }
      if (tag_size < HashSize(alg)) ++truncated;

      auto full = keyhold::HmacCompute(alg, key, msg);
      REQUIRE(full.ok());
      REQUIRE(full->size() == HashSize(alg));
      const std::vector<uint8_t> computed(full->begin(),
                                          full->begin() + static_cast<long>(tag_size));
      if (result == "valid") {
        ++valid;
        CHECK(computed == tag);
        CHECK(verify.ok());
        // Incremental updates in two pieces give the same tag.
        auto h = keyhold::Hmac::Create(alg, key);
        REQUIRE(h.ok());
        const size_t half = msg.size() / 2;
        h->Update(std::span<const uint8_t>(msg).first(half));
        h->Update(std::span<const uint8_t>(msg).subspan(half));
        CHECK(h->Verify(tag).ok());
      } else {
        REQUIRE(result == "invalid");
        ++invalid;
        CHECK(computed != tag);
        REQUIRE_FALSE(verify.ok());
        CHECK(verify.error().code == ErrorCode::kAuthFailed);
      }
    }
  }
  std::cout << "KAT " << file << ": " << valid + invalid << " run (" << valid << " valid, "
            << invalid << " invalid)\n"
            << "  " << file << ": " << truncated << " with truncated tags (>= 16 bytes) verified, "
            << rejected_by_policy << " with tags < 16 bytes rejected by policy\n";
  CHECK(valid + invalid + rejected_by_policy == 174);
  CHECK(truncated > 0);  // the truncated-tag path was actually exercised
}

}  // namespace

TEST_CASE("hmac-sha256 wycheproof vectors", "[crypto][wycheproof]") {
  RunHmacFile("hmac_sha256_test.json", HashAlg::kSha256);
}

TEST_CASE("hmac-sha512 wycheproof vectors", "[crypto][wycheproof]") {
  RunHmacFile("hmac_sha512_test.json", HashAlg::kSha512);
}

// Decision: RFC 2104 allows an empty HMAC key, but keyhold never MACs with one; an empty key
// reaching Hmac::Create would mean a key was never set (a bug that would make the MAC
// forgeable by anyone). So an empty key is refused with kInvalidArgument, on every entry point.
TEST_CASE("hmac refuses an empty key by policy", "[crypto]") {
  const std::vector<uint8_t> msg = {'m'}, tag(32, 0);
  for (HashAlg alg : {HashAlg::kSha256, HashAlg::kSha512}) {
    auto h = keyhold::Hmac::Create(alg, {});
    REQUIRE_FALSE(h.ok());
    CHECK(h.error().code == ErrorCode::kInvalidArgument);
    CHECK(keyhold::HmacCompute(alg, {}, msg).error().code == ErrorCode::kInvalidArgument);
    CHECK(keyhold::HmacVerify(alg, {}, msg, tag).error().code == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("hmac tag length policy and rfc 4231 case 2", "[crypto]") {
  // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
  const std::string key_s = "Jefe", data_s = "what do ya want for nothing?";
  const std::vector<uint8_t> key(key_s.begin(), key_s.end()), data(data_s.begin(), data_s.end());
  auto want =
      keyhold::HexDecode("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  REQUIRE(want.ok());
  auto tag = keyhold::HmacCompute(HashAlg::kSha256, key, data);
  REQUIRE(tag.ok());
  CHECK(*tag == *want);

  const std::span<const uint8_t> full(*want);
  CHECK(keyhold::HmacVerify(HashAlg::kSha256, key, data, full).ok());
  CHECK(keyhold::HmacVerify(HashAlg::kSha256, key, data, full.first(16)).ok());
  CHECK(keyhold::HmacVerify(HashAlg::kSha256, key, data, full.first(15)).error().code ==
        ErrorCode::kInvalidArgument);
  CHECK(keyhold::HmacVerify(HashAlg::kSha256, key, data, {}).error().code ==
        ErrorCode::kInvalidArgument);
  std::vector<uint8_t> too_long(want->begin(), want->end());
  too_long.push_back(0);
  CHECK(keyhold::HmacVerify(HashAlg::kSha256, key, data, too_long).error().code ==
        ErrorCode::kInvalidArgument);
  // A flip in the last byte of a truncated tag is caught (the comparison covers every byte).
  std::vector<uint8_t> bad(want->begin(), want->begin() + 16);
  bad[15] ^= 0x80;
  CHECK(keyhold::HmacVerify(HashAlg::kSha256, key, data, bad).error().code ==
        ErrorCode::kAuthFailed);
}
