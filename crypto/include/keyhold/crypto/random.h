// The CSPRNG (libsodium's randombytes_buf: getrandom(2) on Linux).
#ifndef KEYHOLD_CRYPTO_RANDOM_H_
#define KEYHOLD_CRYPTO_RANDOM_H_

#include <cstdint>
#include <span>

namespace keyhold {

// Fills `out` with cryptographically secure random bytes. Cannot fail (aborts if the
// system's randomness source is unavailable, as libsodium does).
void RandomBytes(std::span<uint8_t> out);

}  // namespace keyhold

#endif  // KEYHOLD_CRYPTO_RANDOM_H_
