#include "keyhold/crypto/hash.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <cstdlib>
#include <cstring>

#include "internal/ssl_util.h"
#include "keyhold/crypto/constant_time.h"

namespace keyhold {
namespace {

const EVP_MD* Md(HashAlg alg) { return alg == HashAlg::kSha256 ? EVP_sha256() : EVP_sha512(); }
const char* MdName(HashAlg alg) { return alg == HashAlg::kSha256 ? "SHA256" : "SHA512"; }

// Fetched once: fetching is a locked table lookup we do not want per object.
EVP_KDF* HkdfAlgorithm() {
  static EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  return kdf;
}
EVP_MAC* HmacAlgorithm() {
  static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  return mac;
}

template <size_t N>
std::array<uint8_t, N> Digest(HashAlg alg, std::span<const uint8_t> data) {
  std::array<uint8_t, N> out{};
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, Md(alg), nullptr) != 1 || len != N) {
    std::abort();  // SHA-2 on memory cannot fail short of a broken library
  }
  return out;
}

Result<SecretBytes> RunHkdf(HashAlg alg, int mode, std::span<const uint8_t> key,
                            std::span<const uint8_t> salt, std::span<const uint8_t> info,
                            size_t length) {
  EVP_KDF* kdf = HkdfAlgorithm();
  if (kdf == nullptr) return internal::SslError("EVP_KDF_fetch(HKDF)");
  internal::EvpKdfCtxPtr ctx(EVP_KDF_CTX_new(kdf));
  if (!ctx) return internal::SslError("EVP_KDF_CTX_new");
  // OpenSSL rejects empty octet-string parameters in some versions; pass a zero-length
  // pointer that is never dereferenced.
  static const uint8_t kEmpty[1] = {0};
  auto ptr = [](std::span<const uint8_t> s) {
    return const_cast<uint8_t*>(s.empty() ? kEmpty : s.data());
  };
  char digest[8];
  std::strcpy(digest, MdName(alg));
  OSSL_PARAM params[6];
  size_t n = 0;
  params[n++] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
  params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, ptr(key), key.size());
  if (mode != EVP_KDF_HKDF_MODE_EXPAND_ONLY) {
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, ptr(salt), salt.size());
  }
  if (mode != EVP_KDF_HKDF_MODE_EXTRACT_ONLY) {
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, ptr(info), info.size());
  }
  params[n] = OSSL_PARAM_construct_end();
  SecretBytes out(length);
  if (EVP_KDF_derive(ctx.get(), out.ExposeSecret().data(), length, params) != 1) {
    return internal::SslError("hkdf");
  }
  return out;
}

}  // namespace

Sha256Digest Sha256(std::span<const uint8_t> data) { return Digest<32>(HashAlg::kSha256, data); }
Sha512Digest Sha512(std::span<const uint8_t> data) { return Digest<64>(HashAlg::kSha512, data); }

struct Hasher::Impl {
  internal::EvpMdCtxPtr ctx;
  HashAlg alg;
};

Hasher::Hasher(HashAlg alg) : impl_(std::make_unique<Impl>()) {
  impl_->alg = alg;
  impl_->ctx.reset(EVP_MD_CTX_new());
  if (!impl_->ctx || EVP_DigestInit_ex(impl_->ctx.get(), Md(alg), nullptr) != 1) std::abort();
}
Hasher::Hasher(Hasher&&) noexcept = default;
Hasher& Hasher::operator=(Hasher&&) noexcept = default;
Hasher::~Hasher() = default;

void Hasher::Update(std::span<const uint8_t> data) {
  if (!data.empty() && EVP_DigestUpdate(impl_->ctx.get(), data.data(), data.size()) != 1) {
    std::abort();
  }
}

std::vector<uint8_t> Hasher::Finish() {
  std::vector<uint8_t> out(HashSize(impl_->alg));
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(impl_->ctx.get(), out.data(), &len) != 1) std::abort();
  return out;
}

Result<SecretBytes> HkdfExtract(HashAlg alg, std::span<const uint8_t> salt,
                                std::span<const uint8_t> ikm) {
  return RunHkdf(alg, EVP_KDF_HKDF_MODE_EXTRACT_ONLY, ikm, salt, {}, HashSize(alg));
}

Result<SecretBytes> HkdfExpand(HashAlg alg, std::span<const uint8_t> prk,
                               std::span<const uint8_t> info, size_t length) {
  if (length == 0 || length > 255 * HashSize(alg)) {
    return Error(ErrorCode::kInvalidArgument,
                 "hkdf-expand output length must be 1.." + std::to_string(255 * HashSize(alg)));
  }
  // RFC 5869 asks for a PRK of at least HashLen bytes, but protocols legitimately use a
  // uniformly random key of another size as the PRK (c2sp.org/chunked-encryption expands a
  // 32-byte input key with SHA-512), so only an empty PRK is refused.
  if (prk.empty()) {
    return Error(ErrorCode::kInvalidArgument, "hkdf-expand prk must not be empty");
  }
  return RunHkdf(alg, EVP_KDF_HKDF_MODE_EXPAND_ONLY, prk, {}, info, length);
}

Result<SecretBytes> Hkdf(HashAlg alg, std::span<const uint8_t> ikm, std::span<const uint8_t> salt,
                         std::span<const uint8_t> info, size_t length) {
  if (length == 0 || length > 255 * HashSize(alg)) {
    return Error(ErrorCode::kInvalidArgument,
                 "hkdf output length must be 1.." + std::to_string(255 * HashSize(alg)));
  }
  KH_ASSIGN_OR_RETURN(SecretBytes prk, HkdfExtract(alg, salt, ikm));
  return HkdfExpand(alg, prk.ExposeSecret(), info, length);
}

struct Hmac::Impl {
  internal::EvpMacCtxPtr ctx;
  HashAlg alg;
};

Hmac::Hmac(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Hmac::Hmac(Hmac&&) noexcept = default;
Hmac& Hmac::operator=(Hmac&&) noexcept = default;
Hmac::~Hmac() = default;

Result<Hmac> Hmac::Create(HashAlg alg, std::span<const uint8_t> key) {
  if (key.empty()) return Error(ErrorCode::kInvalidArgument, "hmac key must not be empty");
  EVP_MAC* mac = HmacAlgorithm();
  if (mac == nullptr) return internal::SslError("EVP_MAC_fetch(HMAC)");
  auto impl = std::make_unique<Impl>();
  impl->alg = alg;
  impl->ctx.reset(EVP_MAC_CTX_new(mac));
  if (!impl->ctx) return internal::SslError("EVP_MAC_CTX_new");
  char digest[8];
  std::strcpy(digest, MdName(alg));
  OSSL_PARAM params[2] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                          OSSL_PARAM_construct_end()};
  if (EVP_MAC_init(impl->ctx.get(), key.data(), key.size(), params) != 1) {
    return internal::SslError("hmac init");
  }
  return Hmac(std::move(impl));
}

void Hmac::Update(std::span<const uint8_t> data) {
  if (!data.empty() && EVP_MAC_update(impl_->ctx.get(), data.data(), data.size()) != 1) {
    std::abort();
  }
}

std::vector<uint8_t> Hmac::Finish() {
  std::vector<uint8_t> out(HashSize(impl_->alg));
  size_t len = 0;
  if (EVP_MAC_final(impl_->ctx.get(), out.data(), &len, out.size()) != 1 || len != out.size()) {
    std::abort();
  }
  return out;
}

Status Hmac::Verify(std::span<const uint8_t> tag) {
  const size_t full = HashSize(impl_->alg);
  if (tag.size() < kMinHmacTagSize || tag.size() > full) {
    return Error(ErrorCode::kInvalidArgument, "hmac tag must be " +
                                                  std::to_string(kMinHmacTagSize) + ".." +
                                                  std::to_string(full) + " bytes");
  }
  std::vector<uint8_t> computed = Finish();
  if (!ConstantTimeEquals(std::span<const uint8_t>(computed).first(tag.size()), tag)) {
    return Error(ErrorCode::kAuthFailed, "authentication failed");
  }
  return {};
}

Result<std::vector<uint8_t>> HmacCompute(HashAlg alg, std::span<const uint8_t> key,
                                         std::span<const uint8_t> data) {
  KH_ASSIGN_OR_RETURN(Hmac h, Hmac::Create(alg, key));
  h.Update(data);
  return h.Finish();
}

Status HmacVerify(HashAlg alg, std::span<const uint8_t> key, std::span<const uint8_t> data,
                  std::span<const uint8_t> tag) {
  KH_ASSIGN_OR_RETURN(Hmac h, Hmac::Create(alg, key));
  h.Update(data);
  return h.Verify(tag);
}

}  // namespace keyhold
