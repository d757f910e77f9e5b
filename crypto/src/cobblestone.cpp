// Cobblestone-256 (c2sp.org/chunked-encryption with HKDF-Expand-SHA-512 and AES-256-GCM):
// key derivation, the 56-byte prefix, and the streaming entry points. The chunk loop itself is
// in cobblestone_engine.cpp.
#include "keyhold/crypto/cobblestone.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "internal/cobblestone_engine.h"
#include "keyhold/crypto/file_io.h"
#include "keyhold/crypto/hash.h"
#include "keyhold/crypto/random.h"

namespace keyhold::cobblestone {
namespace {

constexpr size_t kDerivedSize = kKeySize + kNonceSize + kCommitmentSize;  // 76

Status CheckEncryptKey(const SecretBytes& input_key) {
  if (input_key.size() != kKeySize) {
    return Error(ErrorCode::kInvalidArgument,
                 "cobblestone input key must be 32 bytes, got " + std::to_string(input_key.size()));
  }
  return {};
}

Status CheckRawParams(const SecretBytes& key, std::span<const uint8_t> base_nonce,
                      ErrorCode key_error) {
  if (key.size() != kKeySize) {
    return Error(key_error, "cobblestone key must be 32 bytes, got " + std::to_string(key.size()));
  }
  if (base_nonce.size() != kNonceSize) {
    return Error(ErrorCode::kInvalidArgument, "cobblestone base nonce must be 12 bytes, got " +
                                                  std::to_string(base_nonce.size()));
  }
  return {};
}

}  // namespace

namespace internal {

Result<StreamStats> EncryptWithSalt(const SecretBytes& input_key, std::span<const uint8_t> salt,
                                    std::span<const uint8_t> context, Source& in, Sink& out,
                                    const Options& options) {
  KH_RETURN_IF_ERROR(CheckEncryptKey(input_key));
  KH_ASSIGN_OR_RETURN(DerivedKeys keys, Derive(input_key, salt, context));
  std::array<uint8_t, kPrefixSize> prefix{};
  std::copy(salt.begin(), salt.end(), prefix.begin());
  std::copy(keys.commitment.begin(), keys.commitment.end(), prefix.begin() + kSaltSize);
  return EncryptChunks(keys.key.ExposeSecret(), keys.base_nonce, prefix, in, out, options);
}

}  // namespace internal

Result<size_t> FdSource::Read(std::span<uint8_t> out) {
  if (eof_ || out.empty()) return size_t{0};
  KH_ASSIGN_OR_RETURN(size_t n, ReadFull(fd_, out));
  eof_ = n < out.size();
  return n;
}

bool FdSource::StartPositional() {
  if (eof_) return false;
  struct stat st;
  if (fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) return false;
  const off_t at = lseek(fd_, 0, SEEK_CUR);
  // A file whose size does not reach past the offset is either at its end (the next read
  // says so) or a pseudo-file that reports size 0 and generates its content as it is read.
  if (at < 0 || st.st_size <= at) return false;
  base_ = static_cast<uint64_t>(at);
  furthest_.store(base_, std::memory_order_relaxed);
  positional_ = true;
  return true;
}

void FdSource::EndPositional() {
  if (!positional_) return;
  // Best effort: nothing in keyhold reads the fd afterwards, and a failure changes no byte.
  static_cast<void>(lseek(fd_, static_cast<off_t>(furthest_.load()), SEEK_SET));
  positional_ = false;
}

Result<size_t> FdSource::ReadAt(uint64_t offset, std::span<uint8_t> out) {
  if (!positional_) return Error(ErrorCode::kInternal, "FdSource::ReadAt before StartPositional");
  if (out.empty()) return size_t{0};
  // pread takes an off_t; an offset past it is past the end of any file.
  constexpr uint64_t kMaxOffset = static_cast<uint64_t>(std::numeric_limits<off_t>::max());
  if (offset > kMaxOffset - base_) return size_t{0};
  KH_ASSIGN_OR_RETURN(size_t n, PreadFull(fd_, out, base_ + offset));
  const uint64_t end = base_ + offset + n;
  uint64_t seen = furthest_.load(std::memory_order_relaxed);
  while (seen < end && !furthest_.compare_exchange_weak(seen, end, std::memory_order_relaxed)) {
  }
  return n;
}

Status FdSink::Write(std::span<const uint8_t> data) { return WriteAll(fd_, data); }

Result<DerivedKeys> Derive(const SecretBytes& input_key, std::span<const uint8_t> salt,
                           std::span<const uint8_t> context) {
  KH_RETURN_IF_ERROR(CheckEncryptKey(input_key));
  if (salt.size() != kSaltSize) {
    return Error(ErrorCode::kInvalidArgument,
                 "cobblestone salt must be 24 bytes, got " + std::to_string(salt.size()));
  }
  // info = "c2sp.org/chunked-encryption@v1+" || "AEAD_AES_256_GCM" || 0x00 || salt || context.
  // The 0x00 ends the AEAD name; the salt has a fixed size, so the context needs no length.
  std::vector<uint8_t> info;
  info.reserve(kInfoPrefix.size() + kAeadName.size() + 1 + salt.size() + context.size());
  info.insert(info.end(), kInfoPrefix.begin(), kInfoPrefix.end());
  info.insert(info.end(), kAeadName.begin(), kAeadName.end());
  info.push_back(0x00);
  info.insert(info.end(), salt.begin(), salt.end());
  info.insert(info.end(), context.begin(), context.end());
  KH_ASSIGN_OR_RETURN(SecretBytes okm,
                      HkdfExpand(HashAlg::kSha512, input_key.ExposeSecret(), info, kDerivedSize));
  std::span<const uint8_t> bytes = okm.ExposeSecret();
  DerivedKeys keys;
  keys.key = SecretBytes::CopyOf(bytes.first(kKeySize));
  std::copy_n(bytes.begin() + kKeySize, kNonceSize, keys.base_nonce.begin());
  std::copy_n(bytes.begin() + kKeySize + kNonceSize, kCommitmentSize, keys.commitment.begin());
  return keys;
}

Result<StreamStats> Encrypt(const SecretBytes& input_key, std::span<const uint8_t> context,
                            Source& in, Sink& out, const Options& options) {
  KH_RETURN_IF_ERROR(CheckEncryptKey(input_key));
  // A fresh 192-bit salt per message: the derived key and nonce never repeat for an input key.
  std::array<uint8_t, kSaltSize> salt{};
  RandomBytes(salt);
  return internal::EncryptWithSalt(input_key, salt, context, in, out, options);
}

Result<StreamStats> Decrypt(const SecretBytes& input_key, std::span<const uint8_t> context,
                            Source& in, Sink& out, const Options& options) {
  if (input_key.size() != kKeySize) {
    return Error(ErrorCode::kMalformed,
                 "cobblestone input key must be 32 bytes, got " + std::to_string(input_key.size()));
  }
  std::array<uint8_t, kPrefixSize> prefix{};
  KH_ASSIGN_OR_RETURN(size_t got, internal::FillFromSource(in, prefix));
  if (got < kPrefixSize) {
    return Error(ErrorCode::kAuthFailed, "authentication failed",
                 "the encrypted data is truncated");
  }
  const auto salt = std::span<const uint8_t>(prefix).first(kSaltSize);
  const auto commitment = std::span<const uint8_t>(prefix).subspan(kSaltSize);
  // The commitment is checked before any chunk is read: a wrong key or context is reported
  // as such and never reaches chunk decryption.
  KH_ASSIGN_OR_RETURN(DerivedKeys keys,
                      internal::DeriveAndCheck(input_key, salt, context, commitment));
  return internal::DecryptChunks(keys.key.ExposeSecret(), keys.base_nonce, in, out, options);
}

namespace testing {
Result<StreamStats> EncryptWithSaltForTesting(const SecretBytes& input_key,
                                              std::span<const uint8_t> salt,
                                              std::span<const uint8_t> context, Source& in,
                                              Sink& out, const Options& options) {
  return internal::EncryptWithSalt(input_key, salt, context, in, out, options);
}
}  // namespace testing

namespace hazmat {
Result<StreamStats> EncryptRaw(const SecretBytes& key, std::span<const uint8_t> base_nonce,
                               Source& in, Sink& out, const Options& options) {
  KH_RETURN_IF_ERROR(CheckRawParams(key, base_nonce, ErrorCode::kInvalidArgument));
  return internal::EncryptChunks(key.ExposeSecret(), base_nonce.first<kNonceSize>(), {}, in, out,
                                 options);
}

Result<StreamStats> DecryptRaw(const SecretBytes& key, std::span<const uint8_t> base_nonce,
                               Source& in, Sink& out, const Options& options) {
  KH_RETURN_IF_ERROR(CheckRawParams(key, base_nonce, ErrorCode::kMalformed));
  return internal::DecryptChunks(key.ExposeSecret(), base_nonce.first<kNonceSize>(), in, out,
                                 options);
}
}  // namespace hazmat

}  // namespace keyhold::cobblestone
