// X25519 (RFC 7748) over libsodium.
#ifndef KEYHOLD_CRYPTO_X25519_H_
#define KEYHOLD_CRYPTO_X25519_H_

#include <array>
#include <cstdint>
#include <span>

#include "keyhold/crypto/result.h"
#include "keyhold/crypto/secret_bytes.h"

namespace keyhold {

constexpr size_t kX25519KeySize = 32;
using X25519PublicKey = std::array<uint8_t, kX25519KeySize>;

struct X25519KeyPair {
  SecretBytes secret;  // 32 bytes
  X25519PublicKey public_key;
};

// A fresh key pair from the CSPRNG.
X25519KeyPair X25519Generate();

// The public key for a 32-byte secret scalar. kInvalidArgument for a wrong size.
Result<X25519PublicKey> X25519PublicFromSecret(const SecretBytes& secret);

// The shared secret X25519(secret, peer_public). Fails with kInvalidArgument for wrong sizes
// and kAuthFailed if the result is all zeros (a low-order or otherwise degenerate peer key):
// such a shared secret would be known to anyone, so it is never used.
Result<SecretBytes> X25519SharedSecret(const SecretBytes& secret,
                                       std::span<const uint8_t> peer_public);

}  // namespace keyhold

#endif  // KEYHOLD_CRYPTO_X25519_H_
