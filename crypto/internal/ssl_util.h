// OpenSSL ownership and error helpers, internal to keyhold_crypto.
#ifndef KEYHOLD_CRYPTO_INTERNAL_SSL_UTIL_H_
#define KEYHOLD_CRYPTO_INTERNAL_SSL_UTIL_H_

#include <openssl/err.h>
#include <openssl/evp.h>

#include <memory>
#include <string>

#include "keyhold/crypto/result.h"

namespace keyhold::internal {

template <typename T, void (*Free)(T*)>
struct SslDeleter {
  void operator()(T* p) const { Free(p); }
};

using EvpCipherCtxPtr =
    std::unique_ptr<EVP_CIPHER_CTX, SslDeleter<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>>;
using EvpMdCtxPtr = std::unique_ptr<EVP_MD_CTX, SslDeleter<EVP_MD_CTX, EVP_MD_CTX_free>>;
using EvpMacCtxPtr = std::unique_ptr<EVP_MAC_CTX, SslDeleter<EVP_MAC_CTX, EVP_MAC_CTX_free>>;

// Drains OpenSSL's thread-local error queue into one string (for internal errors only; never
// shown for authentication failures, which stay opaque).
inline std::string DrainSslErrors() {
  std::string out;
  unsigned long e;
  char buf[256];
  while ((e = ERR_get_error()) != 0) {
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

inline Error SslError(const char* what) {
  std::string detail = DrainSslErrors();
  return Error(ErrorCode::kInternal,
               std::string("openssl: ") + what + (detail.empty() ? "" : ": " + detail));
}

}  // namespace keyhold::internal

#endif  // KEYHOLD_CRYPTO_INTERNAL_SSL_UTIL_H_
