// Random access to a Cobblestone payload in a file: each chunk is authenticated on its own
// (its index is in its nonce), so a read decrypts only the chunks it touches. The length is
// authenticated only by the final chunk, so anything that reports the end of the message
// (a short read, a read at the end, AuthenticatedSize) first decrypts the final chunk.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "internal/cobblestone_engine.h"
#include "keyhold/crypto/aes_gcm.h"
#include "keyhold/crypto/cobblestone.h"
#include "keyhold/crypto/file_io.h"
#include "keyhold/crypto/secret_bytes.h"

namespace keyhold::cobblestone {
namespace {

// Chunks read with one pread by ReadAt (1 MiB of ciphertext at most).
constexpr size_t kReadBatchChunks = 64;

Error PayloadAuthError() {
  return Error(ErrorCode::kPayloadAuthFailed, "payload authentication failed",
               "the encrypted data was modified, truncated or extended");
}

// Where the chunks of a payload of a given size are, if a valid message has that size.
struct Layout {
  uint64_t full_chunks = 0;  // the final chunk's index
  size_t final_sealed = 0;   // 16..16399 bytes
  uint64_t plaintext_size = 0;
};

Result<Layout> ComputeLayout(uint64_t payload_size) {
  if (payload_size < kPrefixSize + kTagSize) return PayloadAuthError();
  const uint64_t body = payload_size - kPrefixSize;
  Layout layout;
  layout.full_chunks = body / kEncryptedChunkSize;
  layout.final_sealed = static_cast<size_t>(body % kEncryptedChunkSize);
  // A remainder under 16 bytes (zero included: the payload ends right after a full chunk)
  // cannot be a final chunk.
  if (layout.final_sealed < kTagSize) return PayloadAuthError();
  if (layout.full_chunks >= kMaxChunks) return PayloadAuthError();
  layout.plaintext_size = layout.full_chunks * kChunkSize + (layout.final_sealed - kTagSize);
  return layout;
}

}  // namespace

struct RandomAccessReader::Impl {
  Impl(AesGcm g, const std::array<uint8_t, kNonceSize>& nonce)
      : gcm(std::move(g)), base_nonce(nonce) {}

  int fd = -1;
  uint64_t payload_offset = 0;
  uint64_t payload_size = 0;
  AesGcm gcm;
  std::array<uint8_t, kNonceSize> base_nonce;
  bool final_authenticated = false;
  std::vector<uint8_t> sealed;  // ciphertext read by pread, reused
  WipingBuffer plain;           // one chunk of plaintext, for chunks only partly read

  uint64_t ChunkOffset(uint64_t index) const {
    // Bounded by payload_offset + payload_size, which Open checked fits in an off_t.
    return payload_offset + kPrefixSize + index * kEncryptedChunkSize;
  }

  // Reads chunks [first, first + count) of the payload into `sealed`; the last one may be
  // the final chunk. A file shorter than the payload it claims is a truncated payload.
  Result<size_t> ReadSealed(const Layout& layout, uint64_t first, size_t count) {
    const uint64_t end_index = first + count;
    size_t bytes = 0;
    if (end_index > layout.full_chunks) {
      bytes = static_cast<size_t>(layout.full_chunks - first) * kEncryptedChunkSize +
              layout.final_sealed;
    } else {
      bytes = count * kEncryptedChunkSize;
    }
    if (sealed.size() < bytes) sealed.resize(bytes);
    KH_ASSIGN_OR_RETURN(size_t got,
                        PreadFull(fd, std::span<uint8_t>(sealed).first(bytes), ChunkOffset(first)));
    if (got != bytes) return PayloadAuthError();
    return bytes;
  }

  Status OpenChunk(uint64_t index, std::span<const uint8_t> ciphertext, std::span<uint8_t> out) {
    const auto nonce = internal::ChunkNonce(base_nonce, index);
    Status s = gcm.Open(nonce, {}, ciphertext, out);
    if (!s.ok()) {
      if (s.error().code == ErrorCode::kAuthFailed) return PayloadAuthError();
      return s;
    }
    return {};
  }

  Status AuthenticateFinal(const Layout& layout) {
    if (final_authenticated) return {};
    KH_ASSIGN_OR_RETURN(size_t bytes, ReadSealed(layout, layout.full_chunks, 1));
    plain.resize(kChunkSize);
    Status s = OpenChunk(layout.full_chunks, std::span<const uint8_t>(sealed).first(bytes),
                         std::span<uint8_t>(plain).first(bytes - kTagSize));
    WipeMemory(plain.data(), plain.size());
    KH_RETURN_IF_ERROR(s);
    final_authenticated = true;
    return {};
  }

  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> out) {
    KH_ASSIGN_OR_RETURN(Layout layout, ComputeLayout(payload_size));
    const uint64_t size = layout.plaintext_size;
    if (out.empty()) return size_t{0};
    // A read that reaches past the end reports the end of the message (a short count or 0),
    // which only the final chunk can vouch for.
    if (offset >= size || out.size() > size - offset) {
      KH_RETURN_IF_ERROR(AuthenticateFinal(layout));
    }
    if (offset >= size) return size_t{0};
    const size_t want = static_cast<size_t>(std::min<uint64_t>(out.size(), size - offset));
    const uint64_t end = offset + want;
    const uint64_t first = offset / kChunkSize;
    const uint64_t last = (end - 1) / kChunkSize;  // inclusive
    plain.resize(kChunkSize);

    for (uint64_t batch = first; batch <= last; batch += kReadBatchChunks) {
      const size_t count =
          static_cast<size_t>(std::min<uint64_t>(kReadBatchChunks, last - batch + 1));
      KH_ASSIGN_OR_RETURN(size_t bytes, ReadSealed(layout, batch, count));
      for (size_t k = 0; k < count; ++k) {
        const uint64_t index = batch + k;
        const size_t sealed_begin = k * kEncryptedChunkSize;
        const size_t sealed_len = std::min(kEncryptedChunkSize, bytes - sealed_begin);
        const size_t chunk_len = sealed_len - kTagSize;
        const auto ciphertext = std::span<const uint8_t>(sealed).subspan(sealed_begin, sealed_len);
        // The part of this chunk the caller asked for, in chunk and in `out` coordinates.
        const uint64_t chunk_start = index * kChunkSize;
        const uint64_t from = std::max(offset, chunk_start);
        const uint64_t to = std::min(end, chunk_start + chunk_len);
        const size_t in_chunk = static_cast<size_t>(from - chunk_start);
        const size_t in_out = static_cast<size_t>(from - offset);
        const size_t len = static_cast<size_t>(to - from);
        if (in_chunk == 0 && len == chunk_len) {
          // The whole chunk is wanted: decrypt straight into the caller's buffer.
          KH_RETURN_IF_ERROR(OpenChunk(index, ciphertext, out.subspan(in_out, len)));
        } else {
          auto scratch = std::span<uint8_t>(plain).first(chunk_len);
          Status s = OpenChunk(index, ciphertext, scratch);
          if (s.ok())
            std::copy_n(scratch.begin() + static_cast<std::ptrdiff_t>(in_chunk), len,
                        out.begin() + static_cast<std::ptrdiff_t>(in_out));
          WipeMemory(scratch.data(), scratch.size());
          KH_RETURN_IF_ERROR(s);
        }
        if (index == layout.full_chunks) final_authenticated = true;
      }
    }
    return want;
  }
};

RandomAccessReader::RandomAccessReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RandomAccessReader::RandomAccessReader(RandomAccessReader&&) noexcept = default;
RandomAccessReader& RandomAccessReader::operator=(RandomAccessReader&&) noexcept = default;
RandomAccessReader::~RandomAccessReader() = default;

Result<RandomAccessReader> RandomAccessReader::Open(const SecretBytes& input_key,
                                                    std::span<const uint8_t> context, int fd,
                                                    uint64_t payload_offset,
                                                    uint64_t payload_size) {
  if (input_key.size() != kKeySize) {
    return Error(ErrorCode::kMalformed,
                 "cobblestone input key must be 32 bytes, got " + std::to_string(input_key.size()));
  }
  constexpr uint64_t kMaxOffset = static_cast<uint64_t>(std::numeric_limits<off_t>::max());
  if (payload_offset > kMaxOffset || payload_size > kMaxOffset - payload_offset) {
    return Error(ErrorCode::kInvalidArgument, "payload range does not fit in a file offset");
  }
  if (payload_size < kPrefixSize) {
    return Error(ErrorCode::kAuthFailed, "authentication failed",
                 "the encrypted data is truncated");
  }
  std::array<uint8_t, kPrefixSize> prefix{};
  KH_ASSIGN_OR_RETURN(size_t got, PreadFull(fd, prefix, payload_offset));
  if (got != kPrefixSize) {
    return Error(ErrorCode::kAuthFailed, "authentication failed",
                 "the encrypted data is truncated");
  }
  const auto salt = std::span<const uint8_t>(prefix).first(kSaltSize);
  const auto commitment = std::span<const uint8_t>(prefix).subspan(kSaltSize);
  KH_ASSIGN_OR_RETURN(DerivedKeys keys,
                      internal::DeriveAndCheck(input_key, salt, context, commitment));
  KH_ASSIGN_OR_RETURN(AesGcm gcm, AesGcm::Create(keys.key.ExposeSecret()));
  auto impl = std::make_unique<Impl>(std::move(gcm), keys.base_nonce);
  impl->fd = fd;
  impl->payload_offset = payload_offset;
  impl->payload_size = payload_size;
  return RandomAccessReader(std::move(impl));
}

Result<uint64_t> RandomAccessReader::ClaimedSize() const {
  KH_ASSIGN_OR_RETURN(Layout layout, ComputeLayout(impl_->payload_size));
  return layout.plaintext_size;
}

Result<uint64_t> RandomAccessReader::AuthenticatedSize() {
  KH_ASSIGN_OR_RETURN(Layout layout, ComputeLayout(impl_->payload_size));
  KH_RETURN_IF_ERROR(impl_->AuthenticateFinal(layout));
  return layout.plaintext_size;
}

Result<size_t> RandomAccessReader::ReadAt(uint64_t offset, std::span<uint8_t> out) {
  Result<size_t> r = impl_->ReadAt(offset, out);
  // Never leave part of a failed read in the caller's buffer.
  if (!r.ok()) WipeMemory(out.data(), out.size());
  return r;
}

}  // namespace keyhold::cobblestone
