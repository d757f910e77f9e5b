// Argon2id (RFC 9106) password hashing, libsodium's crypto_pwhash (version 0x13, p = 1).
#ifndef KEYHOLD_CRYPTO_ARGON2ID_H_
#define KEYHOLD_CRYPTO_ARGON2ID_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "keyhold/crypto/result.h"
#include "keyhold/crypto/secret_bytes.h"

namespace keyhold {

struct Argon2idParams {
  uint32_t iterations = 3;      // t
  uint32_t memory_kib = 65536;  // m, in KiB
  uint32_t parallelism = 1;     // p; libsodium implements p = 1 only
};

// Hard bounds, checked before any work or allocation. Anything outside is refused with
// kUnsupported (a file asking for 64 GiB of memory is refused at once, not attempted).
constexpr uint32_t kArgon2idMinIterations = 1;
constexpr uint32_t kArgon2idMaxIterations = 64;
constexpr uint32_t kArgon2idMinMemoryKib = 8 * 1024;         // 8 MiB
constexpr uint32_t kArgon2idMaxMemoryKib = 4 * 1024 * 1024;  // 4 GiB
constexpr size_t kArgon2idSaltSize = 16;
// RFC 9106 section 4, second recommended option: t=3, m=64 MiB, p=1.
constexpr Argon2idParams kArgon2idRecommended{3, 65536, 1};

Status ValidateArgon2idParams(const Argon2idParams& params);

// Derives `out_size` bytes (16..64) from `password` and a 16-byte `salt`.
// kUnsupported for out-of-bounds parameters, kInvalidArgument for wrong sizes,
// kInternal if libsodium fails (out of memory).
Result<SecretBytes> Argon2id(std::span<const uint8_t> password, std::span<const uint8_t> salt,
                             const Argon2idParams& params, size_t out_size);

}  // namespace keyhold

#endif  // KEYHOLD_CRYPTO_ARGON2ID_H_
