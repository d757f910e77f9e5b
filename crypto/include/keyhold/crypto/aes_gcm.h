// AES-256-GCM with 96-bit nonces and 128-bit tags (OpenSSL EVP, hardware AES where present).
#ifndef KEYHOLD_CRYPTO_AES_GCM_H_
#define KEYHOLD_CRYPTO_AES_GCM_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "keyhold/crypto/result.h"

namespace keyhold {

constexpr size_t kAesGcmKeySize = 32;
constexpr size_t kAesGcmNonceSize = 12;  // the only nonce size accepted
constexpr size_t kAesGcmTagSize = 16;

// An AES-256-GCM key schedule, set up once and reused for many messages (the incremental
// API: Cobblestone encrypts every chunk of an object with one AesGcm). Not thread-safe: use
// one per thread. Move-only; the key schedule is wiped when destroyed.
class AesGcm {
 public:
  // Fails with kInvalidArgument unless key is 32 bytes.
  static Result<AesGcm> Create(std::span<const uint8_t> key);

  AesGcm(AesGcm&&) noexcept;
  AesGcm& operator=(AesGcm&&) noexcept;
  ~AesGcm();

  // Encrypts `plaintext` into `out`, which must be exactly plaintext.size() + 16 bytes
  // (ciphertext followed by tag). `out` may alias `plaintext` exactly (in place).
  // kInvalidArgument for a nonce that is not 12 bytes or a wrongly sized `out`.
  Status Seal(std::span<const uint8_t> nonce, std::span<const uint8_t> aad,
              std::span<const uint8_t> plaintext, std::span<uint8_t> out);

  // Decrypts and authenticates `ciphertext` (ciphertext || 16-byte tag) into `out`, which must
  // be exactly ciphertext.size() - 16 bytes and may alias it. On any failure `out` is wiped
  // and kAuthFailed is returned (one opaque error for every kind of forgery).
  Status Open(std::span<const uint8_t> nonce, std::span<const uint8_t> aad,
              std::span<const uint8_t> ciphertext, std::span<uint8_t> out);

 private:
  struct Impl;
  explicit AesGcm(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One-shot forms of the above.
Status AesGcmSeal(std::span<const uint8_t> key, std::span<const uint8_t> nonce,
                  std::span<const uint8_t> aad, std::span<const uint8_t> plaintext,
                  std::span<uint8_t> out);
Status AesGcmOpen(std::span<const uint8_t> key, std::span<const uint8_t> nonce,
                  std::span<const uint8_t> aad, std::span<const uint8_t> ciphertext,
                  std::span<uint8_t> out);

}  // namespace keyhold

#endif  // KEYHOLD_CRYPTO_AES_GCM_H_
