// Cobblestone-256: c2sp.org/chunked-encryption instantiated with HKDF-Expand-SHA-512 and
// AES-256-GCM, 16 KiB chunks. The payload format of every keyhold object.
//
//   key || base_nonce || commitment = HKDF-Expand-SHA-512(prk = input key,
//       info = "c2sp.org/chunked-encryption@v1+" || "AEAD_AES_256_GCM" || 0x00 || salt || context)
//   payload = salt (24) || commitment (32) || chunk_0 || ... || chunk_n
//   chunk_i = AES-256-GCM(key, base_nonce XOR be96(i), aad = empty, plaintext_i)
//   every chunk but the last holds exactly 16384 bytes; the last holds 0..16383.
#ifndef KEYHOLD_CRYPTO_COBBLESTONE_H_
#define KEYHOLD_CRYPTO_COBBLESTONE_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "keyhold/crypto/result.h"
#include "keyhold/crypto/secret_bytes.h"

namespace keyhold::cobblestone {

constexpr std::string_view kInfoPrefix = "c2sp.org/chunked-encryption@v1+";
constexpr std::string_view kAeadName = "AEAD_AES_256_GCM";
constexpr size_t kKeySize = 32;
constexpr size_t kNonceSize = 12;
constexpr size_t kTagSize = 16;
constexpr size_t kSaltSize = 24;
constexpr size_t kCommitmentSize = 32;
constexpr size_t kPrefixSize = kSaltSize + kCommitmentSize;  // 56
constexpr size_t kChunkSize = 16384;
constexpr size_t kEncryptedChunkSize = kChunkSize + kTagSize;  // 16400
constexpr uint64_t kMaxChunks = uint64_t{1} << 38;

// Where output goes. Write is called in order, with authenticated plaintext only (when
// decrypting). A failing Write stops the operation with that error.
//
// With Options::threads other than 1, Source::Read, Source::ReadAt and Sink::Write are called
// from the engine's worker threads as well as the caller's. Reads never overlap one another,
// and each is ordered after the one before it; the same holds for Writes. ReadAt calls (from
// a Source that accepted StartPositional) may overlap one another. A read may run at the
// same time as a Write: a Source and a Sink that share state (a counter, a hasher, one duplex
// object) must lock it, or run with threads = 1. Neither may depend on thread-local state.
// An exception thrown by either stops the operation and is rethrown to the caller (one thrown
// by a Read only after every stripe before it was written or failed).
class Sink {
 public:
  virtual ~Sink() = default;
  virtual Status Write(std::span<const uint8_t> data) = 0;
};

// Where input comes from: fills `out` as far as possible, returns fewer bytes only at end of
// input. (An fd-backed FdSource is provided.)
class Source {
 public:
  virtual ~Source() = default;
  virtual Result<size_t> Read(std::span<uint8_t> out) = 0;

  // Optional, for a Source that can be read at any offset (a regular file). When the engine
  // starts more threads for a long message, it asks StartPositional once, after some Reads.
  // If that returns true, the engine makes no further Read: it reads with ReadAt instead, at
  // offsets counted from where the Reads stopped, from several threads at once and in any
  // order, so that no thread waits for another's copy. ReadAt fills `out` as far as possible
  // and returns fewer bytes only at end of input; it may be called past the end. After the
  // last ReadAt the engine calls EndPositional once.
  virtual bool StartPositional() { return false; }
  virtual void EndPositional() {}
  virtual Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> out) {
    static_cast<void>(offset);
    static_cast<void>(out);
    return Error(ErrorCode::kInternal, "this input cannot be read at an offset");
  }
};

// Reads until `out` is full or end of file. End of file is final: once a read came back
// short, later calls return 0 without asking the kernel again.
// A regular file with data past the file offset is read positionally (pread) once the
// engine asks (StartPositional), from that offset; a pipe, a FIFO, a terminal or a file
// that reports no size (procfs, sysfs) never is. EndPositional sets the file offset to the
// furthest byte read, which after a complete read is the end of the file, where serial
// reads would have left it (the fd may be a shell's standard input).
class FdSource final : public Source {
 public:
  explicit FdSource(int fd) : fd_(fd) {}
  Result<size_t> Read(std::span<uint8_t> out) override;
  bool StartPositional() override;
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> out) override;
  void EndPositional() override;

 private:
  int fd_;
  bool eof_ = false;
  bool positional_ = false;
  uint64_t base_ = 0;                  // the file offset where positional reads start
  std::atomic<uint64_t> furthest_{0};  // the furthest file offset ReadAt reached
};

class FdSink final : public Sink {
 public:
  explicit FdSink(int fd) : fd_(fd) {}
  Status Write(std::span<const uint8_t> data) override;

 private:
  int fd_;
};

struct Options {
  // Worker threads for chunk encryption/decryption. 0 = one per online CPU (at most 8);
  // 1 = serial, in the calling thread. Output and error reporting are identical either way.
  // The count includes the calling thread, which works too; values above 64 are clamped.
  // Each thread reads (in order) and seals or opens stripes of 32 chunks (512 KiB); the
  // first stripe is one chunk. The stripes are written in order, each by the thread that
  // completed it or by one that completed an earlier stripe. Memory use is constant whatever
  // the message size: about 1 MiB of buffers per thread.
  unsigned threads = 0;
};

struct StreamStats {
  uint64_t plaintext_bytes = 0;
  uint64_t chunks = 0;
  // Chunks sealed or opened by a thread that was waiting for a free lane, on behalf of the
  // thread that read their stripe (the engine's load sharing: 0 with one thread, and it
  // varies from run to run). It may count chunks that were then dropped (a chunk after a
  // failed one, a stripe read past the end), so it is not a part of `chunks`. The output
  // never depends on it.
  uint64_t shared_chunks = 0;
};

// The per-message values derived from the input key (exposed for tests and FORMAT.md).
struct DerivedKeys {
  SecretBytes key;  // 32 bytes
  std::array<uint8_t, kNonceSize> base_nonce{};
  std::array<uint8_t, kCommitmentSize> commitment{};
};
Result<DerivedKeys> Derive(const SecretBytes& input_key, std::span<const uint8_t> salt,
                           std::span<const uint8_t> context);

// Encrypts everything `in` yields into `out`: the 56-byte prefix, then the chunks.
// kInvalidArgument unless input_key is 32 bytes. Stops at 2^38 chunks (kInvalidArgument).
// Errors from `in` or `out` are returned as they are. On any error, what `out` received is
// not a valid payload and must be discarded.
Result<StreamStats> Encrypt(const SecretBytes& input_key, std::span<const uint8_t> context,
                            Source& in, Sink& out, const Options& options = {});

// Decrypts a payload. The commitment is checked before any chunk is decrypted; only
// authenticated plaintext ever reaches `out`, chunk by chunk in order. Errors:
//   kMalformed        input key not 32 bytes
//   kAuthFailed       prefix truncated or commitment mismatch (wrong key, wrong context,
//                     modified salt or commitment): nothing was written
//   kPayloadAuthFailed a chunk failed to authenticate, or the payload was truncated
//                     (including at a chunk boundary) or has trailing data; `out` has
//                     received exactly the chunks before the bad one.
// Errors from `in` or `out` are returned as they are.
// One-shot: a call consumes `in` and reports the outcome once. After an error, the bytes
// `out` received are an authenticated prefix, never the message: the caller must discard
// them (write through an AtomicFile) and must not resume on the same Source, which is
// positioned mid-payload (a second call would see chunk bytes where the prefix belongs and
// fail with kAuthFailed).
Result<StreamStats> Decrypt(const SecretBytes& input_key, std::span<const uint8_t> context,
                            Source& in, Sink& out, const Options& options = {});

namespace testing {
// Encrypt with a caller-chosen salt, to reproduce test vectors byte for byte. Never use a
// fixed salt outside tests: the salt must not repeat for an input key.
Result<StreamStats> EncryptWithSaltForTesting(const SecretBytes& input_key,
                                              std::span<const uint8_t> salt,
                                              std::span<const uint8_t> context, Source& in,
                                              Sink& out, const Options& options = {});
}  // namespace testing

namespace hazmat {
// Raw mode (spec appendix): key and base nonce supplied directly, no salt, no commitment.
// Only for reproducing test vectors; keyhold never writes raw-mode payloads.
Result<StreamStats> EncryptRaw(const SecretBytes& key, std::span<const uint8_t> base_nonce,
                               Source& in, Sink& out, const Options& options = {});
Result<StreamStats> DecryptRaw(const SecretBytes& key, std::span<const uint8_t> base_nonce,
                               Source& in, Sink& out, const Options& options = {});
}  // namespace hazmat

// Random access to a payload stored at [payload_offset, payload_offset + payload_size) of a
// file, read with pread. Open() reads the prefix and checks the commitment (kAuthFailed);
// it does not touch any chunk. ReadAt authenticates only the chunks the range touches.
// Each chunk is authenticated on its own, so a bad chunk fails only the reads that touch it;
// the message length is authenticated only by the final chunk, so a read that would report
// the end of the message (a short count or 0) first authenticates the final chunk.
// The fd is not owned and must stay open while the reader is used. Not thread-safe.
// kMalformed for an input key that is not 32 bytes; kInvalidArgument if the payload range
// does not fit in a file offset.
class RandomAccessReader {
 public:
  static Result<RandomAccessReader> Open(const SecretBytes& input_key,
                                         std::span<const uint8_t> context, int fd,
                                         uint64_t payload_offset, uint64_t payload_size);
  RandomAccessReader(RandomAccessReader&&) noexcept;
  RandomAccessReader& operator=(RandomAccessReader&&) noexcept;
  ~RandomAccessReader();

  // The plaintext size implied by the payload size (kPayloadAuthFailed if no valid message
  // has that ciphertext length). Not yet authenticated: see AuthenticatedSize().
  Result<uint64_t> ClaimedSize() const;
  // Decrypts the final chunk to authenticate the message length (required before any seek
  // relative to the end).
  Result<uint64_t> AuthenticatedSize();
  // Reads plaintext bytes [offset, offset + out.size()) clipped to the message end; returns
  // how many were read (0 at or past the end). kPayloadAuthFailed if a touched chunk fails
  // (out is wiped). A range that includes the final chunk authenticates it.
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> out);

 private:
  struct Impl;
  explicit RandomAccessReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace keyhold::cobblestone

#endif  // KEYHOLD_CRYPTO_COBBLESTONE_H_
