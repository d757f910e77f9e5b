// The Cobblestone chunk engine: batches of chunks (BatchChunks), sealed or opened in parallel
// by a small set of threads that live for one message, written in order.
#include "internal/cobblestone_engine.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "keyhold/crypto/aes_gcm.h"
#include "keyhold/crypto/constant_time.h"
#include "keyhold/crypto/secret_bytes.h"

namespace keyhold::cobblestone::internal {
namespace {

static_assert(kKeySize == kAesGcmKeySize && kNonceSize == kAesGcmNonceSize &&
              kTagSize == kAesGcmTagSize);
static_assert(kEncryptedChunkSize == kChunkSize + kTagSize);

// What happened to one chunk of a batch. Kept per chunk so that the first failure in chunk
// order is reported, whichever thread saw it first.
enum class ChunkStatus : uint8_t { kOk, kAuthFailed, kInternal };

Error PayloadAuthError() {
  // One message for every payload failure (bad chunk, truncation, trailing data): the caller
  // can do nothing different about them, and distinguishing them helps nobody but a prober.
  return Error(ErrorCode::kPayloadAuthFailed, "payload authentication failed",
               "the encrypted data was modified, truncated or extended");
}

using ChunkFn = std::function<void(AesGcm& gcm, size_t chunk)>;

// How long a thread waiting for the other side spins before it sleeps on a condition
// variable: 2000 pauses, 10 to 100 microseconds depending on the CPU's pause latency, a few
// chunks' worth of AES-GCM.
constexpr int kSpins = 2000;

inline void Pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// The threads that seal or open the chunks of one message. Thread 0 is the caller; the others
// are started on the first batch with more than one chunk (a small message never pays for a
// thread) and stopped by the destructor. Each thread has its own AesGcm, because AesGcm is not
// thread-safe; all of them hold the same key schedule.
class ChunkWorkers {
 public:
  ChunkWorkers(std::span<const uint8_t> key, unsigned threads) : key_(key), wanted_(threads) {}
  ChunkWorkers(const ChunkWorkers&) = delete;
  ChunkWorkers& operator=(const ChunkWorkers&) = delete;

  ~ChunkWorkers() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    start_cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

  Status Init() {
    KH_ASSIGN_OR_RETURN(AesGcm gcm, AesGcm::Create(key_));
    gcms_.reserve(wanted_);
    gcms_.push_back(std::move(gcm));
    return {};
  }

  // Starts fn(gcm, i) for every i in [0, n) on the helper threads and returns at once, so
  // that the caller can read the next batch meanwhile; Finish() then lends the caller's hand
  // and returns when every call has returned. The calls must touch disjoint data, and `fn`
  // and everything it touches must stay valid until Finish() returns. Exactly one Finish()
  // follows every successful Start().
  Status Start(size_t n, ChunkFn fn) {
    if (n > 1 && !started_) KH_RETURN_IF_ERROR(StartThreads());
    current_ = std::move(fn);
    n_ = n;
    next_.store(0, std::memory_order_relaxed);
    if (!Helping()) return {};
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_.store(threads_.size(), std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
    start_cv_.notify_all();
    return {};
  }

  void Finish() {
    if (!Helping()) {
      for (size_t i = 0; i < n_; ++i) current_(gcms_[0], i);
      return;
    }
    Drain(gcms_[0]);
    // Every helper must report back, even one that found no work left, so that none can
    // still be reading current_ or next_ when the next batch is set up. It is usually finishing
    // its last chunk: spin briefly before sleeping.
    for (int i = 0; i < kSpins && pending_.load(std::memory_order_acquire) != 0; ++i) Pause();
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [this] { return pending_.load(std::memory_order_relaxed) == 0; });
  }

 private:
  // Whether the current batch goes to the helper threads too (a one-chunk batch never does).
  bool Helping() const { return n_ > 1 && !threads_.empty(); }

  Status StartThreads() {
    started_ = true;
    while (gcms_.size() < wanted_) {
      KH_ASSIGN_OR_RETURN(AesGcm gcm, AesGcm::Create(key_));
      gcms_.push_back(std::move(gcm));
    }
    for (size_t t = 1; t < wanted_; ++t) {
      try {
        threads_.emplace_back([this, t] { WorkerLoop(t); });
      } catch (const std::system_error&) {
        // Out of threads: carry on with those we have (at worst the caller alone). The
        // output does not depend on how many threads run.
        break;
      }
    }
    return {};
  }

  void Drain(AesGcm& gcm) {
    for (;;) {
      size_t i = next_.fetch_add(1, std::memory_order_relaxed);
      if (i >= n_) return;
      current_(gcm, i);
    }
  }

  void WorkerLoop(size_t t) {
    uint64_t seen = 0;
    for (;;) {
      // The next batch usually comes within microseconds (the caller only writes the
      // previous one out): spin briefly before sleeping, as a futex wake-up costs more.
      for (int i = 0; i < kSpins && generation_.load(std::memory_order_acquire) == seen; ++i) {
        Pause();
      }
      {
        std::unique_lock<std::mutex> lock(mu_);
        start_cv_.wait(lock, [&] { return stop_ || generation_.load() != seen; });
        if (stop_) return;
        seen = generation_.load();
      }
      Drain(gcms_[t]);
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) done_cv_.notify_one();
      }
    }
  }

  std::span<const uint8_t> key_;
  unsigned wanted_;
  bool started_ = false;
  std::vector<AesGcm> gcms_;  // never resized once threads run
  std::vector<std::thread> threads_;

  std::mutex mu_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  // Bumped for every batch handed to the helpers; changed under mu_, also read without it
  // by helpers spinning before they sleep.
  std::atomic<uint64_t> generation_{0};
  // Helpers that have not finished the current batch; changed under mu_, also read without
  // it by the caller spinning in Finish().
  std::atomic<size_t> pending_{0};
  bool stop_ = false;
  // The batch: set by Start() before generation_ is bumped under mu_, read by helpers after
  // they see the new generation, unchanged until Finish() has seen every helper report back.
  ChunkFn current_;
  size_t n_ = 0;
  std::atomic<size_t> next_{0};
};

// Finishes a started batch on every path out of a scope (an error return included), so no
// helper can touch a buffer after it is gone.
class FinishGuard {
 public:
  explicit FinishGuard(ChunkWorkers& w) : w_(&w) {}
  ~FinishGuard() { Finish(); }
  void Finish() {
    if (w_ != nullptr) w_->Finish();
    w_ = nullptr;
  }
  FinishGuard(const FinishGuard&) = delete;
  FinishGuard& operator=(const FinishGuard&) = delete;

 private:
  ChunkWorkers* w_;
};

Status CheckSizes(std::span<const uint8_t> key) {
  if (key.size() != kKeySize) {
    return Error(ErrorCode::kInvalidArgument,
                 "cobblestone key must be 32 bytes, got " + std::to_string(key.size()));
  }
  return {};
}

}  // namespace

unsigned ResolveThreads(unsigned requested) {
  if (requested != 0) return std::min(requested, kMaxThreads);
  // Read once: glibc parses /sys/devices/system/cpu/online on every call (three system calls
  // per message, which a tree of small files felt).
  static const long online = sysconf(_SC_NPROCESSORS_ONLN);
  if (online < 1) return 1;
  return static_cast<unsigned>(std::min<long>(online, kMaxDefaultThreads));
}

std::array<uint8_t, kNonceSize> ChunkNonce(std::span<const uint8_t, kNonceSize> base_nonce,
                                           uint64_t index) {
  std::array<uint8_t, kNonceSize> nonce;
  std::copy(base_nonce.begin(), base_nonce.end(), nonce.begin());
  // The index is XORed in as a 96-bit big-endian integer; its top 32 bits are always zero.
  for (size_t i = 0; i < 8; ++i) {
    nonce[kNonceSize - 1 - i] ^= static_cast<uint8_t>(index >> (8 * i));
  }
  return nonce;
}

Result<size_t> FillFromSource(Source& in, std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    KH_ASSIGN_OR_RETURN(size_t n, in.Read(out.subspan(done)));
    if (n > out.size() - done) {
      return Error(ErrorCode::kInternal, "source returned more bytes than requested");
    }
    if (n == 0) break;
    done += n;
  }
  return done;
}

Result<DerivedKeys> DeriveAndCheck(const SecretBytes& input_key, std::span<const uint8_t> salt,
                                   std::span<const uint8_t> context,
                                   std::span<const uint8_t> commitment) {
  if (input_key.size() != kKeySize) {
    return Error(ErrorCode::kMalformed,
                 "cobblestone input key must be 32 bytes, got " + std::to_string(input_key.size()));
  }
  KH_ASSIGN_OR_RETURN(DerivedKeys keys, Derive(input_key, salt, context));
  if (!ConstantTimeEquals(keys.commitment, commitment)) {
    return Error(ErrorCode::kAuthFailed, "authentication failed",
                 "wrong key or context, or the header was modified");
  }
  return keys;
}

// Reads batch `number` of a message into `buffer`, first sized for it: BatchChunks(number)
// units of `unit` bytes (a chunk of plaintext, or a sealed chunk).
template <typename Buffer>
Result<size_t> ReadBatch(Source& in, Buffer& buffer, uint64_t number, size_t unit) {
  const size_t size = BatchChunks(number) * unit;
  if (buffer.size() != size) buffer.resize(size);
  return FillFromSource(in, buffer);
}

Result<StreamStats> EncryptChunks(std::span<const uint8_t> key,
                                  std::span<const uint8_t, kNonceSize> base_nonce,
                                  std::span<const uint8_t> prefix, Source& in, Sink& out,
                                  const Options& options, uint64_t first_chunk) {
  KH_RETURN_IF_ERROR(CheckSizes(key));
  ChunkWorkers workers(key, ResolveThreads(options.threads));
  KH_RETURN_IF_ERROR(workers.Init());

  // Two plaintext buffers: batch N+1 is read into one while batch N in the other is sealed.
  // They grow with the message (BatchChunks): a small one costs 32 KiB of buffers, not 12 MiB.
  std::array<WipingBuffer, 2> plain;
  // The prefix goes in front of the first batch, so that it costs no write of its own.
  std::vector<uint8_t> sealed(prefix.size() + BatchChunks(0) * kEncryptedChunkSize);
  std::copy(prefix.begin(), prefix.end(), sealed.begin());
  size_t head = prefix.size();

  std::array<ChunkStatus, kBatchChunks> status{};
  StreamStats stats;
  uint64_t index = first_chunk;
  uint64_t batch_number = 0;
  size_t cur = 0;
  KH_ASSIGN_OR_RETURN(size_t n, ReadBatch(in, plain[cur], batch_number, kChunkSize));
  for (;;) {
    // A full batch holds only full chunks, and a full chunk is never the final one, so no
    // lookahead is needed: the final (possibly empty) chunk is in the first short batch.
    const bool last = n < plain[cur].size();
    const size_t chunks = last ? n / kChunkSize + 1 : plain[cur].size() / kChunkSize;
    if (index > kMaxChunks || chunks > kMaxChunks - index) {
      return Error(ErrorCode::kInvalidArgument, "message too long for one cobblestone payload");
    }
    const WipingBuffer& src = plain[cur];
    KH_RETURN_IF_ERROR(workers.Start(
        chunks, [&src, &sealed, &status, n, head, index, base_nonce](AesGcm& gcm, size_t c) {
          const size_t begin = c * kChunkSize;
          const size_t len = std::min(kChunkSize, n - begin);
          const auto nonce = ChunkNonce(base_nonce, index + c);
          Status s = gcm.Seal(
              nonce, {}, std::span<const uint8_t>(src).subspan(begin, len),
              std::span<uint8_t>(sealed).subspan(head + c * kEncryptedChunkSize, len + kTagSize));
          status[c] = s.ok() ? ChunkStatus::kOk : ChunkStatus::kInternal;
        }));
    FinishGuard batch(workers);
    // Meanwhile, read the next batch into the other buffer.
    Result<size_t> next = size_t{0};
    if (!last) next = ReadBatch(in, plain[cur ^ 1], batch_number + 1, kChunkSize);
    batch.Finish();
    for (size_t c = 0; c < chunks; ++c) {
      if (status[c] != ChunkStatus::kOk) {
        return Error(ErrorCode::kInternal, "aes-256-gcm seal failed");
      }
    }
    KH_RETURN_IF_ERROR(
        out.Write(std::span<const uint8_t>(sealed).first(head + n + chunks * kTagSize)));
    index += chunks;
    stats.chunks += chunks;
    stats.plaintext_bytes += n;
    if (last) return stats;
    if (!next.ok()) return std::move(next).error();  // after the batch before it, as before
    n = *next;
    cur ^= 1;
    ++batch_number;
    // Later batches start at the front of the buffer, which grows with them.
    head = 0;
    const size_t sealed_size = plain[cur].size() / kChunkSize * kEncryptedChunkSize;
    if (sealed.size() < sealed_size) sealed.resize(sealed_size);
  }
}

Result<StreamStats> DecryptChunks(std::span<const uint8_t> key,
                                  std::span<const uint8_t, kNonceSize> base_nonce, Source& in,
                                  Sink& out, const Options& options, uint64_t first_chunk) {
  KH_RETURN_IF_ERROR(CheckSizes(key));
  ChunkWorkers workers(key, ResolveThreads(options.threads));
  KH_RETURN_IF_ERROR(workers.Init());

  // As in EncryptChunks: two input buffers (batch N+1 is read while batch N is opened),
  // growing with the message (BatchChunks).
  std::array<std::vector<uint8_t>, 2> sealed;
  WipingBuffer plain;  // sized for each batch below

  std::array<ChunkStatus, kBatchChunks> status{};
  StreamStats stats;
  uint64_t index = first_chunk;
  uint64_t batch_number = 0;
  size_t cur = 0;
  KH_ASSIGN_OR_RETURN(size_t n, ReadBatch(in, sealed[cur], batch_number, kEncryptedChunkSize));
  for (;;) {
    // A full batch is a buffer of full chunks, none of them final (a final chunk is at most
    // 16399 bytes). A short batch is the end of the payload: its full chunks, then whatever
    // remains, which must be a final chunk of 16..16399 bytes. A payload that ends right
    // after a full chunk has lost its final chunk and is truncated.
    const bool eof = n < sealed[cur].size();
    const size_t full = n / kEncryptedChunkSize;
    const size_t rest = n % kEncryptedChunkSize;
    const bool has_final = eof && rest >= kTagSize;
    const size_t chunks = full + (has_final ? 1 : 0);
    // Indices from kMaxChunks on cannot occur in a valid payload.
    size_t usable = chunks;
    bool too_long = false;
    if (index > kMaxChunks || chunks > kMaxChunks - index) {
      usable = index >= kMaxChunks ? 0 : static_cast<size_t>(kMaxChunks - index);
      too_long = true;
    }
    if (plain.size() < full * kChunkSize + (has_final ? rest - kTagSize : 0)) {
      plain.resize(sealed[cur].size() / kEncryptedChunkSize * kChunkSize);
    }

    const std::vector<uint8_t>& src = sealed[cur];
    KH_RETURN_IF_ERROR(workers.Start(
        usable, [&src, &plain, &status, full, rest, index, base_nonce](AesGcm& gcm, size_t c) {
          const size_t begin = c * kEncryptedChunkSize;
          const size_t len = c < full ? kEncryptedChunkSize : rest;
          const auto nonce = ChunkNonce(base_nonce, index + c);
          Status s = gcm.Open(nonce, {}, std::span<const uint8_t>(src).subspan(begin, len),
                              std::span<uint8_t>(plain).subspan(c * kChunkSize, len - kTagSize));
          if (s.ok()) {
            status[c] = ChunkStatus::kOk;
          } else {
            status[c] = s.error().code == ErrorCode::kAuthFailed ? ChunkStatus::kAuthFailed
                                                                 : ChunkStatus::kInternal;
          }
        }));
    FinishGuard batch(workers);
    // Meanwhile, read the next batch into the other buffer (nothing of it is released before
    // it is authenticated in its turn).
    Result<size_t> next = size_t{0};
    if (!eof && !too_long) {
      next = ReadBatch(in, sealed[cur ^ 1], batch_number + 1, kEncryptedChunkSize);
    }
    batch.Finish();

    // Release the chunks before the first failure, in order, then report that failure.
    size_t good = 0;
    while (good < usable && status[good] == ChunkStatus::kOk) ++good;
    const size_t good_bytes =
        good <= full ? good * kChunkSize : full * kChunkSize + (rest - kTagSize);
    if (good_bytes != 0) {
      KH_RETURN_IF_ERROR(out.Write(std::span<const uint8_t>(plain).first(good_bytes)));
    }
    stats.chunks += good;
    stats.plaintext_bytes += good_bytes;
    if (good < usable) {
      if (status[good] == ChunkStatus::kInternal) {
        return Error(ErrorCode::kInternal, "aes-256-gcm open failed");
      }
      return PayloadAuthError();
    }
    if (too_long) return PayloadAuthError();
    index += chunks;
    if (eof) {
      if (!has_final) return PayloadAuthError();  // truncated: no final chunk
      return stats;
    }
    if (!next.ok()) return std::move(next).error();
    n = *next;
    cur ^= 1;
    ++batch_number;
  }
}

}  // namespace keyhold::cobblestone::internal
