// HKDF-SHA-256/512 against Project Wycheproof and RFC 5869.
#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kat_util.h"
#include "keyhold/crypto/hash.h"

using keyhold::ErrorCode;
using keyhold::HashAlg;
using keyhold::HashSize;
using keyhold::kat::Hex;

namespace {

std::vector<uint8_t> Bytes(const keyhold::SecretBytes& s) {
  auto e = s.ExposeSecret();
  return {e.begin(), e.end()};
}

void RunHkdfFile(const std::string& file, HashAlg alg, int expected_total) {
  const auto doc = keyhold::kat::LoadWycheproof(file);
  int valid = 0, invalid = 0;
  for (const auto& group : doc["testGroups"]) {
    for (const auto& t : group["tests"]) {
      INFO(file << " tcId " << t["tcId"].get<int>() << ": " << t["comment"].get<std::string>());
      const auto ikm = Hex(t["ikm"]), salt = Hex(t["salt"]), info = Hex(t["info"]);
      const size_t size = t["size"].get<size_t>();
      const std::string result = t["result"].get<std::string>();
      auto okm = keyhold::Hkdf(alg, ikm, salt, info, size);
      if (result == "valid") {
        ++valid;
        REQUIRE(okm.ok());
        CHECK(Bytes(*okm) == Hex(t["okm"]));
        // Extract then Expand must be exactly the one-call form.
        auto prk = keyhold::HkdfExtract(alg, salt, ikm);
        REQUIRE(prk.ok());
        CHECK(prk->size() == HashSize(alg));
        auto okm2 = keyhold::HkdfExpand(alg, prk->ExposeSecret(), info, size);
        REQUIRE(okm2.ok());
        CHECK(Bytes(*okm2) == Hex(t["okm"]));
      } else {
        // Wycheproof's invalid HKDF cases ask for more than 255 * HashLen bytes.
        REQUIRE(result == "invalid");
        ++invalid;
        REQUIRE_FALSE(okm.ok());
        CHECK(okm.error().code == ErrorCode::kInvalidArgument);
        auto prk = keyhold::HkdfExtract(alg, salt, ikm);
        REQUIRE(prk.ok());
        auto okm2 = keyhold::HkdfExpand(alg, prk->ExposeSecret(), info, size);
        REQUIRE_FALSE(okm2.ok());
        CHECK(okm2.error().code == ErrorCode::kInvalidArgument);
      }
    }
  }
  std::cout << "KAT " << file << ": " << valid + invalid << " run (" << valid << " valid, "
            << invalid << " invalid)\n";
  CHECK(valid + invalid == expected_total);
  CHECK(invalid == 3);
}

}  // namespace

TEST_CASE("hkdf-sha256 wycheproof vectors", "[crypto][wycheproof]") {
  RunHkdfFile("hkdf_sha256_test.json", HashAlg::kSha256, 86);
}

TEST_CASE("hkdf-sha512 wycheproof vectors", "[crypto][wycheproof]") {
  RunHkdfFile("hkdf_sha512_test.json", HashAlg::kSha512, 83);
}

TEST_CASE("hkdf rfc 5869 test case 1, extract and expand separately", "[crypto]") {
  const std::vector<uint8_t> ikm(22, 0x0b);
  auto salt = keyhold::HexDecode("000102030405060708090a0b0c");
  auto info = keyhold::HexDecode("f0f1f2f3f4f5f6f7f8f9");
  auto want_prk =
      keyhold::HexDecode("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5");
  auto want_okm = keyhold::HexDecode(
      "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
  REQUIRE((salt.ok() && info.ok() && want_prk.ok() && want_okm.ok()));

  auto prk = keyhold::HkdfExtract(HashAlg::kSha256, *salt, ikm);
  REQUIRE(prk.ok());
  CHECK(Bytes(*prk) == *want_prk);
  // Expand alone, from the RFC's PRK (not from our Extract).
  auto okm = keyhold::HkdfExpand(HashAlg::kSha256, *want_prk, *info, 42);
  REQUIRE(okm.ok());
  CHECK(Bytes(*okm) == *want_okm);
  // A prefix of a longer output is the shorter output (HKDF's T(1)||T(2)... structure).
  auto okm_short = keyhold::HkdfExpand(HashAlg::kSha256, *want_prk, *info, 10);
  REQUIRE(okm_short.ok());
  CHECK(Bytes(*okm_short) == std::vector<uint8_t>(want_okm->begin(), want_okm->begin() + 10));
}

TEST_CASE("hkdf rfc 5869 test case 3, empty salt and info", "[crypto]") {
  const std::vector<uint8_t> ikm(22, 0x0b);
  auto want_prk =
      keyhold::HexDecode("19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04");
  auto want_okm = keyhold::HexDecode(
      "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
  REQUIRE((want_prk.ok() && want_okm.ok()));
  auto prk = keyhold::HkdfExtract(HashAlg::kSha256, {}, ikm);
  REQUIRE(prk.ok());
  CHECK(Bytes(*prk) == *want_prk);
  auto okm = keyhold::HkdfExpand(HashAlg::kSha256, prk->ExposeSecret(), {}, 42);
  REQUIRE(okm.ok());
  CHECK(Bytes(*okm) == *want_okm);
}

TEST_CASE("hkdf length and prk bounds", "[crypto]") {
  const std::vector<uint8_t> prk(32, 1), ikm(16, 2);
  for (HashAlg alg : {HashAlg::kSha256, HashAlg::kSha512}) {
    const size_t max = 255 * HashSize(alg);
    CHECK(keyhold::HkdfExpand(alg, prk, {}, max).ok());
    CHECK(keyhold::HkdfExpand(alg, prk, {}, max + 1).error().code == ErrorCode::kInvalidArgument);
    CHECK(keyhold::HkdfExpand(alg, prk, {}, 0).error().code == ErrorCode::kInvalidArgument);
    CHECK(keyhold::HkdfExpand(alg, {}, {}, 32).error().code == ErrorCode::kInvalidArgument);
    CHECK(keyhold::Hkdf(alg, ikm, {}, {}, 0).error().code == ErrorCode::kInvalidArgument);
    CHECK(keyhold::Hkdf(alg, ikm, {}, {}, max + 1).error().code == ErrorCode::kInvalidArgument);
    auto full = keyhold::Hkdf(alg, ikm, {}, {}, max);
    REQUIRE(full.ok());
    CHECK(full->size() == max);
  }
}

namespace {

// OpenSSL's own HKDF (EVP_KDF "HKDF", extract-and-expand), the oracle for the differential
// test below: keyhold computes HKDF over OpenSSL's HMAC (crypto/src/hash.cpp).
std::vector<uint8_t> OpensslHkdf(HashAlg alg, const std::vector<uint8_t>& ikm,
                                 const std::vector<uint8_t>& salt, const std::vector<uint8_t>& info,
                                 size_t length) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  REQUIRE(kdf != nullptr);
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  EVP_KDF_free(kdf);
  REQUIRE(ctx != nullptr);
  char digest[8];
  std::strcpy(digest, alg == HashAlg::kSha256 ? "SHA256" : "SHA512");
  static uint8_t empty[1] = {0};
  auto ptr = [](const std::vector<uint8_t>& v) {
    return v.empty() ? empty : const_cast<uint8_t*>(v.data());
  };
  OSSL_PARAM params[5] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, ptr(ikm), ikm.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, ptr(salt), salt.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, ptr(info), info.size()),
      OSSL_PARAM_construct_end()};
  std::vector<uint8_t> out(length);
  const int rc = EVP_KDF_derive(ctx, out.data(), out.size(), params);
  EVP_KDF_CTX_free(ctx);
  REQUIRE(rc == 1);
  return out;
}

std::vector<uint8_t> RandomVector(std::mt19937& rng, size_t n) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

}  // namespace

TEST_CASE("hkdf equals openssl's EVP_KDF on random inputs and every length class", "[crypto]") {
  std::mt19937 rng(5869);
  for (HashAlg alg : {HashAlg::kSha256, HashAlg::kSha512}) {
    const size_t h = HashSize(alg);
    // Around each block boundary, the two ends of the range, and random lengths.
    std::vector<size_t> lengths = {1,     h - 1,     h,           h + 1,  2 * h - 1,
                                   2 * h, 2 * h + 1, 254 * h + 1, 255 * h};
    for (int k = 0; k < 40; ++k) lengths.push_back(1 + rng() % (255 * h));
    // Salts: none, short, exactly the hash's block size (64 / 128) and longer (HMAC hashes
    // a key longer than its block).
    const size_t block = alg == HashAlg::kSha256 ? 64 : 128;
    std::vector<size_t> salt_sizes = {0, 1, 16, h, block, block + 1, 200};
    size_t n = 0;
    for (size_t length : lengths) {
      const size_t salt_size = salt_sizes[n++ % salt_sizes.size()];
      const auto ikm = RandomVector(rng, rng() % 100);
      const auto salt = RandomVector(rng, salt_size);
      const auto info = RandomVector(rng, rng() % 3 == 0 ? 0 : rng() % 300);
      INFO("hash " << h << " length " << length << " ikm " << ikm.size() << " salt " << salt.size()
                   << " info " << info.size());
      auto okm = keyhold::Hkdf(alg, ikm, salt, info, length);
      REQUIRE(okm.ok());
      CHECK(Bytes(*okm) == OpensslHkdf(alg, ikm, salt, info, length));
    }
  }
}

TEST_CASE("hkdf and hmac give the same results from several threads at once", "[crypto]") {
  // Every HMAC context is a copy of one shared, keyless template per hash. Each thread has
  // its own inputs (so a key leaking from one thread's context into another's would show),
  // and every answer is computed beforehand on this thread alone.
  constexpr int kThreads = 4, kRounds = 300;
  struct Case {
    HashAlg alg;
    std::vector<uint8_t> ikm, salt, info, key, data;
    size_t length;
    std::vector<uint8_t> okm, tag;
  };
  std::mt19937 rng(2104);
  std::vector<Case> cases;
  for (int t = 0; t < kThreads; ++t) {
    Case c;
    c.alg = t % 2 == 0 ? HashAlg::kSha256 : HashAlg::kSha512;
    c.ikm = RandomVector(rng, 32);
    c.salt = RandomVector(rng, 16 + t);
    c.info = RandomVector(rng, 10);
    c.key = RandomVector(rng, 20 + t);
    c.data = RandomVector(rng, 100);
    c.length = 3 * HashSize(c.alg) + 5;  // several blocks, the last one partial
    auto okm = keyhold::Hkdf(c.alg, c.ikm, c.salt, c.info, c.length);
    auto tag = keyhold::HmacCompute(c.alg, c.key, c.data);
    REQUIRE((okm.ok() && tag.ok()));
    c.okm = Bytes(*okm);
    c.tag = *tag;
    CHECK(c.okm == OpensslHkdf(c.alg, c.ikm, c.salt, c.info, c.length));
    cases.push_back(std::move(c));
  }
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const Case& c = cases[static_cast<size_t>(t)];
      for (int i = 0; i < kRounds; ++i) {
        auto okm = keyhold::Hkdf(c.alg, c.ikm, c.salt, c.info, c.length);
        auto tag = keyhold::HmacCompute(c.alg, c.key, c.data);
        if (!okm.ok() || Bytes(*okm) != c.okm || !tag.ok() || *tag != c.tag) {
          ++mismatches[static_cast<size_t>(t)];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(mismatches == std::vector<int>(kThreads, 0));
}
