#include "keyhold/crypto/aes_gcm.h"

#include <openssl/evp.h>

#include <climits>

#include "internal/ssl_util.h"
#include "keyhold/crypto/secret_bytes.h"

namespace keyhold {

// The key schedule lives inside two EVP_CIPHER_CTX (one per direction), initialised with the
// key once; each message only sets the IV. EVP_CIPHER_CTX_free cleanses the schedule.
struct AesGcm::Impl {
  internal::EvpCipherCtxPtr enc;
  internal::EvpCipherCtxPtr dec;
};

namespace {

bool FitsInt(size_t n) { return n <= static_cast<size_t>(INT_MAX); }

Status CheckNonce(std::span<const uint8_t> nonce) {
  if (nonce.size() != kAesGcmNonceSize) {
    return Error(ErrorCode::kInvalidArgument,
                 "aes-256-gcm nonce must be 12 bytes, got " + std::to_string(nonce.size()));
  }
  return {};
}

}  // namespace

AesGcm::AesGcm(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AesGcm::AesGcm(AesGcm&&) noexcept = default;
AesGcm& AesGcm::operator=(AesGcm&&) noexcept = default;
AesGcm::~AesGcm() = default;

Result<AesGcm> AesGcm::Create(std::span<const uint8_t> key) {
  if (key.size() != kAesGcmKeySize) {
    return Error(ErrorCode::kInvalidArgument,
                 "aes-256-gcm key must be 32 bytes, got " + std::to_string(key.size()));
  }
  // Fetched once, explicitly: EVP_aes_256_gcm() makes every key setup look the cipher up by
  // name in OpenSSL 3 (an object, and its AES-GCM contexts, per object in a tree).
  static EVP_CIPHER* const cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  if (cipher == nullptr) return internal::SslError("EVP_CIPHER_fetch(AES-256-GCM)");
  auto impl = std::make_unique<Impl>();
  impl->enc.reset(EVP_CIPHER_CTX_new());
  impl->dec.reset(EVP_CIPHER_CTX_new());
  if (!impl->enc || !impl->dec) return internal::SslError("EVP_CIPHER_CTX_new");
  // The IV length is left at GCM's default of 12 bytes, the only size we accept.
  if (EVP_EncryptInit_ex(impl->enc.get(), cipher, nullptr, key.data(), nullptr) != 1 ||
      EVP_DecryptInit_ex(impl->dec.get(), cipher, nullptr, key.data(), nullptr) != 1) {
    return internal::SslError("aes-256-gcm key setup");
  }
  return AesGcm(std::move(impl));
}

Status AesGcm::Seal(std::span<const uint8_t> nonce, std::span<const uint8_t> aad,
                    std::span<const uint8_t> plaintext, std::span<uint8_t> out) {
  KH_RETURN_IF_ERROR(CheckNonce(nonce));
  if (out.size() != plaintext.size() + kAesGcmTagSize || !FitsInt(plaintext.size()) ||
      !FitsInt(aad.size())) {
    return Error(ErrorCode::kInvalidArgument, "aes-256-gcm seal: bad buffer sizes");
  }
  EVP_CIPHER_CTX* ctx = impl_->enc.get();
  int len = 0;
  if (EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce.data()) != 1) {
    return internal::SslError("aes-256-gcm set nonce");
  }
  if (!aad.empty() &&
      EVP_EncryptUpdate(ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1) {
    return internal::SslError("aes-256-gcm aad");
  }
  if (!plaintext.empty() && EVP_EncryptUpdate(ctx, out.data(), &len, plaintext.data(),
                                              static_cast<int>(plaintext.size())) != 1) {
    return internal::SslError("aes-256-gcm encrypt");
  }
  if (EVP_EncryptFinal_ex(ctx, out.data() + plaintext.size(), &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, static_cast<int>(kAesGcmTagSize),
                          out.data() + plaintext.size()) != 1) {
    return internal::SslError("aes-256-gcm tag");
  }
  return {};
}

Status AesGcm::Open(std::span<const uint8_t> nonce, std::span<const uint8_t> aad,
                    std::span<const uint8_t> ciphertext, std::span<uint8_t> out) {
  KH_RETURN_IF_ERROR(CheckNonce(nonce));
  if (ciphertext.size() < kAesGcmTagSize || out.size() != ciphertext.size() - kAesGcmTagSize ||
      !FitsInt(ciphertext.size()) || !FitsInt(aad.size())) {
    return Error(ErrorCode::kInvalidArgument, "aes-256-gcm open: bad buffer sizes");
  }
  const size_t body = ciphertext.size() - kAesGcmTagSize;
  // Copy the tag first: `out` may alias `ciphertext`, and decryption overwrites the body only.
  uint8_t tag[kAesGcmTagSize];
  for (size_t i = 0; i < kAesGcmTagSize; ++i) tag[i] = ciphertext[body + i];
  EVP_CIPHER_CTX* ctx = impl_->dec.get();
  int len = 0;
  bool ok = EVP_DecryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce.data()) == 1;
  ok = ok && (aad.empty() ||
              EVP_DecryptUpdate(ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1);
  ok = ok && (body == 0 || EVP_DecryptUpdate(ctx, out.data(), &len, ciphertext.data(),
                                             static_cast<int>(body)) == 1);
  ok = ok &&
       EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, static_cast<int>(kAesGcmTagSize), tag) == 1;
  ok = ok && EVP_DecryptFinal_ex(ctx, out.data() + body, &len) == 1;
  if (!ok) {
    WipeMemory(out.data(), out.size());
    internal::DrainSslErrors();  // a forgery is not an internal error; keep it opaque
    return Error(ErrorCode::kAuthFailed, "authentication failed");
  }
  return {};
}

Status AesGcmSeal(std::span<const uint8_t> key, std::span<const uint8_t> nonce,
                  std::span<const uint8_t> aad, std::span<const uint8_t> plaintext,
                  std::span<uint8_t> out) {
  KH_ASSIGN_OR_RETURN(auto gcm, AesGcm::Create(key));
  return gcm.Seal(nonce, aad, plaintext, out);
}

Status AesGcmOpen(std::span<const uint8_t> key, std::span<const uint8_t> nonce,
                  std::span<const uint8_t> aad, std::span<const uint8_t> ciphertext,
                  std::span<uint8_t> out) {
  KH_ASSIGN_OR_RETURN(auto gcm, AesGcm::Create(key));
  return gcm.Open(nonce, aad, ciphertext, out);
}

}  // namespace keyhold
