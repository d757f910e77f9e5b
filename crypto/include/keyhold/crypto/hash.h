// SHA-2, HKDF (RFC 5869) and HMAC (RFC 2104) over OpenSSL.
#ifndef KEYHOLD_CRYPTO_HASH_H_
#define KEYHOLD_CRYPTO_HASH_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "keyhold/crypto/result.h"
#include "keyhold/crypto/secret_bytes.h"

namespace keyhold {

enum class HashAlg { kSha256, kSha512 };

constexpr size_t HashSize(HashAlg alg) { return alg == HashAlg::kSha256 ? 32 : 64; }

using Sha256Digest = std::array<uint8_t, 32>;
using Sha512Digest = std::array<uint8_t, 64>;

Sha256Digest Sha256(std::span<const uint8_t> data);
Sha512Digest Sha512(std::span<const uint8_t> data);

// Incremental SHA-256 / SHA-512 for data that arrives in pieces.
class Hasher {
 public:
  explicit Hasher(HashAlg alg);
  Hasher(Hasher&&) noexcept;
  Hasher& operator=(Hasher&&) noexcept;
  ~Hasher();
  void Update(std::span<const uint8_t> data);
  // Returns HashSize(alg) bytes; the Hasher cannot be used afterwards.
  std::vector<uint8_t> Finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// HKDF-Extract(salt, ikm) -> PRK of HashSize(alg) bytes. An empty salt means HashSize zeros.
Result<SecretBytes> HkdfExtract(HashAlg alg, std::span<const uint8_t> salt,
                                std::span<const uint8_t> ikm);

// HKDF-Expand(prk, info, length). kInvalidArgument if length is 0 or exceeds 255 * HashSize,
// or if prk is empty. A PRK shorter than HashSize is accepted (RFC 5869 recommends at least
// HashLen bytes, but c2sp.org/chunked-encryption uses a 32-byte key as a SHA-512 PRK); the
// caller is responsible for the PRK being a uniformly random key.
Result<SecretBytes> HkdfExpand(HashAlg alg, std::span<const uint8_t> prk,
                               std::span<const uint8_t> info, size_t length);

// Extract then Expand.
Result<SecretBytes> Hkdf(HashAlg alg, std::span<const uint8_t> ikm, std::span<const uint8_t> salt,
                         std::span<const uint8_t> info, size_t length);

// Incremental HMAC.
class Hmac {
 public:
  // kInvalidArgument for an empty key.
  static Result<Hmac> Create(HashAlg alg, std::span<const uint8_t> key);
  Hmac(Hmac&&) noexcept;
  Hmac& operator=(Hmac&&) noexcept;
  ~Hmac();
  void Update(std::span<const uint8_t> data);
  // The full HashSize(alg)-byte tag; the Hmac cannot be used afterwards.
  std::vector<uint8_t> Finish();
  // Compares the tag of the data so far with `tag` in constant time. A tag shorter than the
  // full size is compared as a truncated tag; tags shorter than kMinHmacTagSize or longer
  // than the full size fail with kInvalidArgument; a mismatch fails with kAuthFailed.
  Status Verify(std::span<const uint8_t> tag);

 private:
  struct Impl;
  explicit Hmac(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

constexpr size_t kMinHmacTagSize = 16;

Result<std::vector<uint8_t>> HmacCompute(HashAlg alg, std::span<const uint8_t> key,
                                         std::span<const uint8_t> data);
Status HmacVerify(HashAlg alg, std::span<const uint8_t> key, std::span<const uint8_t> data,
                  std::span<const uint8_t> tag);

}  // namespace keyhold

#endif  // KEYHOLD_CRYPTO_HASH_H_
