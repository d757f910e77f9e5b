// AES-256-GCM against Project Wycheproof, plus an exhaustive tag bit-flip test.
#include <catch2/catch.hpp>
#include <iostream>
#include <vector>

#include "kat_util.h"
#include "keyhold/crypto/aes_gcm.h"

using keyhold::AesGcm;
using keyhold::ErrorCode;
using keyhold::kat::AllZero;
using keyhold::kat::Hex;

namespace {

std::vector<uint8_t> Concat(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  std::vector<uint8_t> out = a;
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

}  // namespace

TEST_CASE("aes-256-gcm wycheproof vectors", "[crypto][wycheproof]") {
  const auto doc = keyhold::kat::LoadWycheproof("aes_gcm_test.json");
  int valid = 0, invalid = 0;
  int other_iv_rejected = 0;  // AES-256 vectors with a nonce size we do not accept
  int not_applicable = 0;     // AES-128/192: keyhold has no such cipher
  for (const auto& group : doc["testGroups"]) {
    const int key_bits = group["keySize"].get<int>();
    const int iv_bits = group["ivSize"].get<int>();
    const int tag_bits = group["tagSize"].get<int>();
    for (const auto& t : group["tests"]) {
      INFO("tcId " << t["tcId"].get<int>() << ": " << t["comment"].get<std::string>());
      if (key_bits != 256 || tag_bits != 128) {
        ++not_applicable;
        continue;
      }
      const auto key = Hex(t["key"]), iv = Hex(t["iv"]), aad = Hex(t["aad"]), msg = Hex(t["msg"]),
                 ct = Hex(t["ct"]), tag = Hex(t["tag"]);
      const std::string result = t["result"].get<std::string>();
      const std::vector<uint8_t> sealed = Concat(ct, tag);
      auto gcm = AesGcm::Create(key);
      REQUIRE(gcm.ok());

      if (iv_bits != 96) {
        // Only 96-bit nonces are accepted (other sizes go through GHASH, and none of our
        // formats produce them): both directions must refuse before touching the buffers.
        std::vector<uint8_t> out(msg.size(), 0xAA);
        auto open = gcm->Open(iv, aad, sealed, out);
        REQUIRE_FALSE(open.ok());
        CHECK(open.error().code == ErrorCode::kInvalidArgument);
        std::vector<uint8_t> sealed_out(msg.size() + 16);
        auto seal = gcm->Seal(iv, aad, msg, sealed_out);
        REQUIRE_FALSE(seal.ok());
        CHECK(seal.error().code == ErrorCode::kInvalidArgument);
        ++other_iv_rejected;
        continue;
      }

      std::vector<uint8_t> out(ct.size(), 0xAA);
      auto open = gcm->Open(iv, aad, sealed, out);
      if (result == "valid") {
        ++valid;
        REQUIRE(open.ok());
        CHECK(out == msg);
        std::vector<uint8_t> resealed(msg.size() + 16);
        REQUIRE(gcm->Seal(iv, aad, msg, resealed).ok());
        CHECK(resealed == sealed);
        // One-shot forms must agree with the incremental object.
        std::vector<uint8_t> out2(ct.size(), 0xAA);
        REQUIRE(keyhold::AesGcmOpen(key, iv, aad, sealed, out2).ok());
        CHECK(out2 == msg);
        // In place (out aliases the input exactly), as the header allows.
        std::vector<uint8_t> in_place = sealed;
        REQUIRE(gcm->Open(iv, aad, in_place, std::span<uint8_t>(in_place).first(ct.size())).ok());
        CHECK(std::vector<uint8_t>(in_place.begin(),
                                   in_place.begin() + static_cast<long>(ct.size())) == msg);
      } else {
        REQUIRE(result == "invalid");  // the file has no "acceptable" AES-GCM cases
        ++invalid;
        REQUIRE_FALSE(open.ok());
        CHECK(open.error().code == ErrorCode::kAuthFailed);
        CHECK(AllZero(out));
        // The one-shot form fails the same way and wipes too.
        std::vector<uint8_t> out2(ct.size(), 0xAA);
        auto open2 = keyhold::AesGcmOpen(key, iv, aad, sealed, out2);
        REQUIRE_FALSE(open2.ok());
        CHECK(open2.error().code == ErrorCode::kAuthFailed);
        CHECK(AllZero(out2));
        // In place, the decrypted-but-unauthenticated body is wiped from the input buffer.
        std::vector<uint8_t> in_place = sealed;
        auto body = std::span<uint8_t>(in_place).first(ct.size());
        auto open3 = gcm->Open(iv, aad, in_place, body);
        REQUIRE_FALSE(open3.ok());
        CHECK(open3.error().code == ErrorCode::kAuthFailed);
        CHECK(AllZero(std::vector<uint8_t>(body.begin(), body.end())));
      }
    }
  }
  std::cout << "KAT aes_gcm_test.json: " << valid + invalid << " run (" << valid << " valid, "
            << invalid << " invalid)\n"
            << "  aes_gcm_test.json: " << other_iv_rejected
            << " AES-256 vectors with non-96-bit IVs rejected with kInvalidArgument, "
            << not_applicable << " AES-128/192 vectors not applicable\n";
  // Wycheproof commit dac1dd47 has 66 AES-256 cases with 96-bit IVs and 128-bit tags and 39
  // with other IV sizes (2 of them zero-length); a different count means the file or the filter
  // changed.
  CHECK(valid + invalid == 66);
  CHECK(valid == 39);
  CHECK(invalid == 27);
  CHECK(other_iv_rejected == 39);
}

TEST_CASE("aes-256-gcm every tag bit flip fails and wipes the output", "[crypto]") {
  std::vector<uint8_t> key(32), nonce(12), aad = {'h', 'd', 'r'}, msg(37);
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(i * 7 + 1);
  for (size_t i = 0; i < nonce.size(); ++i) nonce[i] = static_cast<uint8_t>(0xF0 ^ i);
  for (size_t i = 0; i < msg.size(); ++i) msg[i] = static_cast<uint8_t>(i);
  auto gcm = AesGcm::Create(key);
  REQUIRE(gcm.ok());
  std::vector<uint8_t> sealed(msg.size() + 16);
  REQUIRE(gcm->Seal(nonce, aad, msg, sealed).ok());

  // Sanity: unmodified opens (so the failures below are due to the flip alone).
  std::vector<uint8_t> out(msg.size(), 0xAA);
  REQUIRE(gcm->Open(nonce, aad, sealed, out).ok());
  REQUIRE(out == msg);

  int flips = 0;
  for (size_t byte = msg.size(); byte < sealed.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<uint8_t> forged = sealed;
      forged[byte] = static_cast<uint8_t>(forged[byte] ^ (1u << bit));
      std::fill(out.begin(), out.end(), 0xAA);
      auto s = gcm->Open(nonce, aad, forged, out);
      INFO("tag byte " << byte - msg.size() << " bit " << bit);
      REQUIRE_FALSE(s.ok());
      CHECK(s.error().code == ErrorCode::kAuthFailed);
      CHECK(AllZero(out));
      ++flips;
    }
  }
  CHECK(flips == 128);
  // The object stays usable after failures (the context is reset per message).
  std::fill(out.begin(), out.end(), 0xAA);
  REQUIRE(gcm->Open(nonce, aad, sealed, out).ok());
  CHECK(out == msg);
}

TEST_CASE("aes-256-gcm argument checks", "[crypto]") {
  std::vector<uint8_t> key(32, 1), nonce(12, 2), msg(5, 3);
  CHECK(AesGcm::Create(std::vector<uint8_t>(16)).error().code == ErrorCode::kInvalidArgument);
  CHECK(AesGcm::Create(std::vector<uint8_t>(24)).error().code == ErrorCode::kInvalidArgument);
  CHECK(AesGcm::Create(std::vector<uint8_t>(33)).error().code == ErrorCode::kInvalidArgument);
  auto gcm = AesGcm::Create(key);
  REQUIRE(gcm.ok());
  std::vector<uint8_t> wrong(msg.size() + 15);
  CHECK(gcm->Seal(nonce, {}, msg, wrong).error().code == ErrorCode::kInvalidArgument);
  std::vector<uint8_t> sealed(msg.size() + 16);
  REQUIRE(gcm->Seal(nonce, {}, msg, sealed).ok());
  std::vector<uint8_t> out_big(msg.size() + 1);
  CHECK(gcm->Open(nonce, {}, sealed, out_big).error().code == ErrorCode::kInvalidArgument);
  // Shorter than a tag: nothing to authenticate.
  std::vector<uint8_t> empty_out;
  CHECK(gcm->Open(nonce, {}, std::span<const uint8_t>(sealed).first(15), empty_out).error().code ==
        ErrorCode::kInvalidArgument);
  // Wrong AAD is a forgery like any other.
  std::vector<uint8_t> out(msg.size(), 0xAA);
  std::vector<uint8_t> aad = {1};
  auto s = gcm->Open(nonce, aad, sealed, out);
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code == ErrorCode::kAuthFailed);
  CHECK(AllZero(out));
}
