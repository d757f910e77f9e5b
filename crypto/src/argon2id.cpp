#include "keyhold/crypto/argon2id.h"

#include <sodium.h>

namespace keyhold {

Status ValidateArgon2idParams(const Argon2idParams& p) {
  if (p.parallelism != 1) {
    return Error(ErrorCode::kUnsupported, "argon2id parallelism " + std::to_string(p.parallelism) +
                                              " is not supported (only 1)");
  }
  if (p.iterations < kArgon2idMinIterations || p.iterations > kArgon2idMaxIterations) {
    return Error(ErrorCode::kUnsupported, "argon2id iterations " + std::to_string(p.iterations) +
                                              " outside " + std::to_string(kArgon2idMinIterations) +
                                              ".." + std::to_string(kArgon2idMaxIterations));
  }
  if (p.memory_kib < kArgon2idMinMemoryKib || p.memory_kib > kArgon2idMaxMemoryKib) {
    return Error(ErrorCode::kUnsupported, "argon2id memory " + std::to_string(p.memory_kib) +
                                              " KiB outside " +
                                              std::to_string(kArgon2idMinMemoryKib) + ".." +
                                              std::to_string(kArgon2idMaxMemoryKib) + " KiB");
  }
  return {};
}

Result<SecretBytes> Argon2id(std::span<const uint8_t> password, std::span<const uint8_t> salt,
                             const Argon2idParams& params, size_t out_size) {
  KH_RETURN_IF_ERROR(ValidateArgon2idParams(params));
  if (salt.size() != kArgon2idSaltSize) {
    return Error(ErrorCode::kInvalidArgument, "argon2id salt must be 16 bytes");
  }
  if (out_size < 16 || out_size > 64) {
    return Error(ErrorCode::kInvalidArgument, "argon2id output must be 16..64 bytes");
  }
  if (password.size() > crypto_pwhash_PASSWD_MAX) {
    return Error(ErrorCode::kInvalidArgument, "passphrase too long");
  }
  EnsureCryptoInitialized();
  SecretBytes out(out_size);
  static const char kEmpty[1] = {0};
  const char* pw = password.empty() ? kEmpty : reinterpret_cast<const char*>(password.data());
  if (crypto_pwhash(out.ExposeSecret().data(), out_size, pw, password.size(), salt.data(),
                    params.iterations, static_cast<size_t>(params.memory_kib) * 1024u,
                    crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return Error(ErrorCode::kInternal, "argon2id failed (out of memory?)");
  }
  return out;
}

}  // namespace keyhold
