#include <catch2/catch.hpp>

#include "keyhold/crypto/aes_gcm.h"
#include "keyhold/crypto/secret_bytes.h"

TEST_CASE("aes-gcm seal then open round trip, tamper detected", "[crypto]") {
  auto key = keyhold::SecretBytes::Random(32);
  std::vector<uint8_t> nonce(12, 7), pt = {1, 2, 3}, ct(pt.size() + 16), out(pt.size());
  REQUIRE(keyhold::AesGcmSeal(key.ExposeSecret(), nonce, {}, pt, ct).ok());
  REQUIRE(keyhold::AesGcmOpen(key.ExposeSecret(), nonce, {}, ct, out).ok());
  CHECK(out == pt);
  ct[0] ^= 1;
  auto s = keyhold::AesGcmOpen(key.ExposeSecret(), nonce, {}, ct, out);
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code == keyhold::ErrorCode::kAuthFailed);
  CHECK(out == std::vector<uint8_t>(3, 0));
}
