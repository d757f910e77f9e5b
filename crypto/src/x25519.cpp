#include "keyhold/crypto/x25519.h"

#include <sodium.h>

#include "keyhold/crypto/constant_time.h"

namespace keyhold {

X25519KeyPair X25519Generate() {
  EnsureCryptoInitialized();
  X25519KeyPair kp{SecretBytes::Random(kX25519KeySize), {}};
  crypto_scalarmult_curve25519_base(kp.public_key.data(), kp.secret.ExposeSecret().data());
  return kp;
}

Result<X25519PublicKey> X25519PublicFromSecret(const SecretBytes& secret) {
  if (secret.size() != kX25519KeySize) {
    return Error(ErrorCode::kInvalidArgument, "x25519 secret key must be 32 bytes");
  }
  EnsureCryptoInitialized();
  X25519PublicKey pub{};
  if (crypto_scalarmult_curve25519_base(pub.data(), secret.ExposeSecret().data()) != 0) {
    return Error(ErrorCode::kInvalidArgument, "x25519 secret key is degenerate");
  }
  return pub;
}

Result<SecretBytes> X25519SharedSecret(const SecretBytes& secret,
                                       std::span<const uint8_t> peer_public) {
  if (secret.size() != kX25519KeySize || peer_public.size() != kX25519KeySize) {
    return Error(ErrorCode::kInvalidArgument, "x25519 keys must be 32 bytes");
  }
  EnsureCryptoInitialized();
  SecretBytes shared(kX25519KeySize);
  // libsodium returns -1 for an all-zero result (and, in 1.0.18, for known low-order points).
  // We also check the output ourselves so the rule does not depend on the library version.
  int rc = crypto_scalarmult_curve25519(shared.ExposeSecret().data(), secret.ExposeSecret().data(),
                                        peer_public.data());
  if (rc != 0 || ConstantTimeIsZero(shared.ExposeSecret())) {
    return Error(ErrorCode::kAuthFailed, "x25519 produced an all-zero shared secret");
  }
  return shared;
}

}  // namespace keyhold
