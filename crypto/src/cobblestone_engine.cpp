// The Cobblestone chunk engine: stripes of chunks (StripeChunks), each read (in order) and
// sealed or opened by one of a small set of threads that live for one message, and written in
// order by whichever of them is emitting.
#include "internal/cobblestone_engine.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
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

// What happened to one chunk of a stripe. Kept per chunk so that the first failure in chunk
// order is reported, whichever thread saw it first.
enum class ChunkStatus : uint8_t { kOk, kAuthFailed, kInternal };

Error PayloadAuthError() {
  // One message for every payload failure (bad chunk, truncation, trailing data): the caller
  // can do nothing different about them, and distinguishing them helps nobody but a prober.
  return Error(ErrorCode::kPayloadAuthFailed, "payload authentication failed",
               "the encrypted data was modified, truncated or extended");
}

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

namespace {

// Calls read(done, out.subspan(done)) until `out` is full or a call returns 0, so that a
// Source that returns short reads early cannot make a middle chunk look final.
template <typename ReadFn>
Result<size_t> Fill(std::span<uint8_t> out, ReadFn read) {
  size_t done = 0;
  while (done < out.size()) {
    KH_ASSIGN_OR_RETURN(size_t n, read(done, out.subspan(done)));
    if (n > out.size() - done) {
      return Error(ErrorCode::kInternal, "source returned more bytes than requested");
    }
    if (n == 0) break;
    done += n;
  }
  return done;
}

}  // namespace

Result<size_t> FillFromSource(Source& in, std::span<uint8_t> out) {
  return Fill(out, [&](size_t, std::span<uint8_t> rest) { return in.Read(rest); });
}

Result<size_t> FillAt(Source& in, uint64_t offset, std::span<uint8_t> out) {
  return Fill(out,
              [&](size_t done, std::span<uint8_t> rest) { return in.ReadAt(offset + done, rest); });
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

namespace {

// How long a thread waiting for a lane or a lock spins before it sleeps: 2000 pauses, 10 to
// 100 microseconds depending on the CPU's pause latency, a few chunks' worth of AES-GCM. The
// wait is usually over within that (the stripe ahead is being emitted, the holder of the read
// lock is finishing its read), and a futex wake-up costs more.
constexpr int kSpins = 2000;

// While it waits for a lane, a thread looks for chunks to share once every kHelpEvery pauses
// (0.3 to 3 microseconds by the figures above; a chunk's AES-GCM takes about 4).
constexpr int kHelpEvery = 64;

inline void Pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Locks `mu`, spinning briefly before sleeping: the holder is usually just finishing a read.
std::unique_lock<std::mutex> SpinLock(std::mutex& mu) {
  for (int i = 0; i < kSpins; ++i) {
    if (mu.try_lock()) return std::unique_lock<std::mutex>(mu, std::adopt_lock);
    Pause();
  }
  return std::unique_lock<std::mutex>(mu);
}

// A lane's claim word packs the stripe in hand (bits 16-63), the next of its chunks to hand
// out (bits 8-15) and how many it has to transform (bits 0-7). One compare-and-swap hands out
// a chunk and names the stripe it belongs to, so a thread holding a stale pointer to the lane
// can only ever claim a chunk of the stripe the word names now. Stripe numbers stay far below
// 2^48: a message stops at kMaxChunks, and at most kMaxThreads stripes are read past its end.
static_assert(kStripeChunks < 256 &&
              kMaxChunks / kStripeChunks + 2 + kMaxThreads < (uint64_t{1} << 48));
constexpr uint64_t PackClaim(uint64_t stripe, uint64_t next, uint64_t count) {
  return stripe << 16 | next << 8 | count;
}

// A stripe's buffers and state: its plaintext and sealed chunks, and what happened to them.
// One lane per thread (or more lanes than threads, if a thread could not be started). A lane
// is held by one thread from the read of its stripe to the end of its transform, then waits
// in the reorder window until its stripe is emitted, and is then free for the next stripe; a
// thread takes back the lane it used last, whose buffers (under 600 KiB each) are still in its
// core's cache when the next read copies into them. While its stripe is transformed, any
// thread waiting for a free lane may claim some of its chunks (StripePipeline::Work).
struct Lane {
  WipingBuffer plain;           // plaintext: the input when sealing, the output when opening
  std::vector<uint8_t> sealed;  // sealed chunks: the output when sealing, the input when opening
  std::array<ChunkStatus, kStripeChunks> status{};
  uint64_t stripe = 0;                // the stripe in hand
  unsigned user = 0;                  // the thread that held it last
  Result<size_t> read = size_t{0};    // what reading the stripe returned
  std::exception_ptr read_exception;  // or what it threw: raised in the stripe's turn
  // Published by the holder (release) once the stripe is read; starts with nothing to claim.
  // Each on a cache line of its own: the holder updates both at every chunk, a helper reads
  // the first while it looks for chunks, and adds to the second after each chunk it did.
  alignas(64) std::atomic<uint64_t> claim{PackClaim(0, 0, 0)};
  // Chunks of the stripe transformed so far, by any thread (each adds with release).
  alignas(64) std::atomic<uint32_t> done{0};
};

// Runs the stripes of one message through up to `threads` threads, one lane each. A thread
// takes a free lane and the next stripe, reads it, seals or opens it (in parallel with the
// others), and puts the lane in the reorder window. The stripe number is handed out under
// read_mu_. A Source that reads at offsets (a regular file: Source::StartPositional) is then
// read outside the lock, each thread at its own stripe's offset; any other Source is read
// under the lock, one reader at a time, in order.
//
// A thread that finds no free lane (its own stripe is done but waits behind a stripe still
// being transformed) spends the wait sealing or opening chunks of the stripes in hand, each
// chunk with its own thread's AES-GCM context; the lane's holder waits for those chunks before
// depositing it. So a faster vCPU takes over chunks from a slower one instead of idling.
// Reading outside the lock and sharing chunks only gain together: measured alone, each moved
// the waiting to the other place (a thread no longer waiting for the read lock waited for a
// lane, and the reverse); see docs/performance.md, stop 20.
//
// Whichever thread puts in the stripe whose turn it is, while no other thread is emitting,
// emits it and every stripe after it that is ready, in order, one at a time (the Sink sees
// the stripes in order), freeing their lanes as it goes. A thread that finishes out of turn
// does not wait to emit its own stripe: it waits only for a free lane. As in a serial loop,
// the first error in stripe order stops the message and nothing after it is emitted.
// Source::Read, Source::ReadAt and Sink::Write may therefore run on any of the threads:
// Reads one at a time, Writes one at a time, ReadAt calls at once with each other, and a read
// and a Write at once (cobblestone.h).
//
// Paired runs against the previous engine, in which each thread waited for its stripe's turn
// and emitted it itself (docs/performance.md, stop 18): 0.988 / 0.983 of the time (encrypt /
// decrypt) on a host with two equal vCPUs, 0.95-0.96 when one vCPU ran AES-GCM at 60-70% of
// the other's speed. Then (stop 20) reading outside the lock with chunk sharing, against the
// engine without them, medians of interleaved pairs on 1 GiB (encrypt / decrypt): 0.845 /
// 0.910 in 13 pairs with one vCPU at 2.5-2.8 GB/s of AES-GCM and the other at 4.0-4.3 (faster
// in 12 and 12), 0.994 / 0.963 in 11 with both at 2.6-3.0, 1.004 / 1.010 in 24 with both at
// 4.1-4.4.
//
// Direction (Sealer or Opener below) provides:
//   void Size(Lane&, uint64_t stripe)                  sizes the lane's buffers for the stripe
//   Result<size_t> Read(Source&, Lane&, uint64_t)      under read_mu_, in stripe order
//   Result<size_t> ReadAt(Source&, Lane&, uint64_t, uint64_t offset)
//                                                      or at the offset, on any thread, at once
//   uint64_t Offset(uint64_t stripe)                   where the stripe starts in the input
//   bool Last(const Lane&, uint64_t)                   after the read: no stripe follows this one
//   size_t Prepare(Lane&, uint64_t)                    after a successful Read, by the holder:
//                                                      the number of chunks to transform
//   void TransformChunk(Lane&, uint64_t, size_t c, AesGcm&) const
//                                                      chunk c, on any thread, in parallel;
//                                                      writes only chunk c's bytes and status
//   Status Emit(Lane&, uint64_t, bool* done)           in stripe order; done after the last one
template <typename Direction>
class StripePipeline {
 public:
  StripePipeline(std::span<const uint8_t> key, unsigned threads, Direction& dir, Source& in)
      : key_(key), threads_(std::max(1u, threads)), dir_(dir), in_(in) {}
  StripePipeline(const StripePipeline&) = delete;
  StripePipeline& operator=(const StripePipeline&) = delete;

  // After Run: the chunks that threads waiting for a lane did for others.
  uint64_t shared_chunks() const { return shared_chunks_.load(std::memory_order_relaxed); }

  // Every helper is joined before Run returns, whatever happens. An exception thrown on any
  // thread stops the others and is rethrown here; one thrown by Source::Read is raised in
  // its stripe's turn, so that an error in an earlier stripe still comes first.
  Status Run() {
    KH_ASSIGN_OR_RETURN(AesGcm gcm, AesGcm::Create(key_));
    contexts_.reserve(threads_);  // never reallocated once helpers run
    contexts_.push_back(std::move(gcm));
    lanes_.emplace_back();
    active_ = std::make_unique<std::atomic<Lane*>[]>(threads_);
    for (unsigned t = 0; t < threads_; ++t) active_[t].store(nullptr, std::memory_order_relaxed);
    free_.reserve(threads_);
    window_.assign(threads_, nullptr);
    free_.push_back(&lanes_[0]);
    free_count_.store(1, std::memory_order_relaxed);
    std::vector<std::thread> helpers;
    try {
      // Stripes 0 and 1 run on the caller alone: a message of up to 33 chunks (528 KiB)
      // starts no thread and builds no other lane.
      if (Step(0) && Step(0) && threads_ > 1) {
        // No helper runs yet: the read state needs no lock.
        positional_ = in_.StartPositional();
        positional_from_ = next_stripe_;
        AddLanes();
        StartHelpers(helpers);
      }
      while (Step(0)) {
      }
    } catch (...) {
      Abandon(std::current_exception());
    }
    for (std::thread& t : helpers) t.join();
    if (positional_) in_.EndPositional();
    if (exception_) std::rethrow_exception(exception_);
    if (error_) return std::move(*error_);
    return {};
  }

 private:
  // The helpers' lanes, sized for a full stripe here, on the caller's thread, so that no
  // helper allocates. As many as can be built: fewer lanes only mean fewer threads, as when a
  // thread cannot be started, and the output does not depend on how many run. No helper runs
  // yet, so free_ needs no lock.
  void AddLanes() {
    while (lanes_.size() < threads_) {
      Result<AesGcm> gcm = AesGcm::Create(key_);
      if (!gcm.ok()) break;
      contexts_.push_back(std::move(*gcm));
      lanes_.emplace_back();
      dir_.Size(lanes_.back(), 1);
      lanes_.back().user = static_cast<unsigned>(lanes_.size() - 1);
      free_.push_back(&lanes_.back());
    }
    free_count_.store(free_.size(), std::memory_order_relaxed);
  }

  // Helper t (1, 2, ...) prefers lane t, as the caller (0) prefers lane 0.
  void StartHelpers(std::vector<std::thread>& helpers) {
    for (unsigned t = 1; t < lanes_.size(); ++t) {
      try {
        helpers.emplace_back([this, t] { HelperLoop(t); });
      } catch (const std::system_error&) {
        return;  // out of threads: carry on with those we have (at worst the caller alone)
      }
    }
  }

  void HelperLoop(unsigned self) {
    try {
      while (Step(self)) {
      }
    } catch (...) {
      Abandon(std::current_exception());
    }
  }

  // Takes a free lane and the next stripe through read and transform, then puts the lane in
  // the reorder window (emitting what is in turn); false when this thread is done.
  bool Step(unsigned self) {
    Lane* lane = TakeLane(self);
    if (lane == nullptr) return false;
    {
      std::unique_lock<std::mutex> lock = SpinLock(read_mu_);
      // Nothing more is read once the message has stopped, as in a serial loop.
      if (input_done_ || stopped_.load(std::memory_order_acquire)) {
        lock.unlock();
        GiveBack(lane);
        return false;
      }
      lane->stripe = next_stripe_++;
      if (!positional_ && ReadStripe(*lane)) input_done_ = true;
    }
    // A positional Source is read outside the lock, by each thread at its stripe's offset,
    // so that a thread on a slower vCPU does not hold up the others while it copies. A
    // thread may so read a stripe past the end; it is dropped, as the message has ended at
    // an earlier stripe in stripe order, which is all that is emitted.
    if (positional_ && ReadStripe(*lane)) {
      std::lock_guard<std::mutex> lock(read_mu_);
      input_done_ = true;
    }
    if (!lane->read_exception && lane->read.ok()) Transform(*lane, self);
    return Deposit(lane);
  }

  // Reads the lane's stripe; true if no stripe should be read after it (the input ended or
  // failed there, or the message reached its chunk limit).
  bool ReadStripe(Lane& lane) {
    lane.read_exception = nullptr;
    try {
      lane.read = positional_
                      ? dir_.ReadAt(in_, lane, lane.stripe,
                                    dir_.Offset(lane.stripe) - dir_.Offset(positional_from_))
                      : dir_.Read(in_, lane, lane.stripe);
    } catch (...) {
      // Kept for the stripe's turn: an error in an earlier stripe must still win.
      lane.read_exception = std::current_exception();
      return true;
    }
    return !lane.read.ok() || dir_.Last(lane, lane.stripe);
  }

  // Seals or opens the stripe in `lane`, which this thread holds: publishes it for the threads
  // waiting for a lane, works through its chunks with them, and returns once every chunk is
  // done, whoever did it.
  void Transform(Lane& lane, unsigned self) {
    const size_t count = dir_.Prepare(lane, lane.stripe);
    lane.done.store(0, std::memory_order_relaxed);
    // Release: a thread that claims a chunk sees the stripe's bytes, read and size.
    lane.claim.store(PackClaim(lane.stripe, 0, count), std::memory_order_release);
    active_[self].store(&lane, std::memory_order_release);
    Work(lane, self);
    active_[self].store(nullptr, std::memory_order_relaxed);
    // The last chunks may still be in other threads' hands: a few microseconds each.
    for (int i = 0; lane.done.load(std::memory_order_acquire) != count;) {
      if (i < kSpins) {
        ++i;
        Pause();
      } else {
        std::this_thread::yield();  // the thread with the chunk lost its vCPU
      }
    }
  }

  // Claims chunks of `lane`'s current stripe and transforms them with thread `self`'s context
  // until none is left to claim; the number done. Any thread may call it on any lane: the
  // claim word names the stripe, and a lane is not reused before all its claims are done.
  size_t Work(Lane& lane, unsigned self) {
    size_t worked = 0;
    uint64_t w = lane.claim.load(std::memory_order_acquire);
    for (;;) {
      const uint64_t next = (w >> 8) & 0xff;
      if (next >= (w & 0xff)) return worked;
      if (!lane.claim.compare_exchange_weak(w, w + (uint64_t{1} << 8), std::memory_order_acq_rel,
                                            std::memory_order_acquire)) {
        continue;  // w now holds the current word
      }
      try {
        dir_.TransformChunk(lane, w >> 16, static_cast<size_t>(next), contexts_[self]);
      } catch (...) {
        // Only an allocation in an error's message can throw here. It stops the message and
        // is rethrown by Run, as on any thread; the chunk must still be counted, or its
        // holder would wait for it forever.
        lane.status[next] = ChunkStatus::kInternal;
        Abandon(std::current_exception());
      }
      lane.done.fetch_add(1, std::memory_order_release);
      ++worked;
      w = lane.claim.load(std::memory_order_acquire);
    }
  }

  // Helps with the stripes other threads are transforming; true if it did any chunk.
  bool Help(unsigned self) {
    size_t worked = 0;
    for (unsigned t = 0; t < lanes_.size(); ++t) {
      if (t == self) continue;
      Lane* lane = active_[t].load(std::memory_order_acquire);
      if (lane != nullptr) worked += Work(*lane, self);
    }
    shared_chunks_.fetch_add(worked, std::memory_order_relaxed);
    return worked != 0;
  }

  // A free lane, the one this thread used last if it is free; waits while none is, first
  // helping with the stripes in hand and spinning (the stripe ahead is usually about to be
  // emitted), then asleep. nullptr once the message has stopped.
  Lane* TakeLane(unsigned self) {
    std::unique_lock<std::mutex> lock = SpinLock(mu_);
    if (free_.empty()) {
      lock.unlock();
      for (int i = 0; i < kSpins && !LaneFreeOrStopped(); ++i) {
        // Looking for chunks reads the holders' claim words, which they write at every
        // chunk; reading them at every pause would make each of their claims a cache miss.
        if (i % kHelpEvery == 0 && Help(self)) {
          i = -1;  // more may be left: look again at once, and spin afresh
          continue;
        }
        Pause();
      }
      lock.lock();
      free_cv_.wait(lock, [&] { return !free_.empty() || stopped_.load(); });
    }
    if (stopped_.load()) return nullptr;
    auto mine =
        std::find_if(free_.rbegin(), free_.rend(), [&](Lane* l) { return l->user == self; });
    if (mine != free_.rend()) std::iter_swap(mine, free_.rbegin());
    Lane* lane = free_.back();
    lane->user = self;
    free_.pop_back();
    free_count_.store(free_.size(), std::memory_order_relaxed);
    return lane;
  }

  bool LaneFreeOrStopped() const {
    return free_count_.load(std::memory_order_relaxed) != 0 ||
           stopped_.load(std::memory_order_relaxed);
  }

  // Under mu_.
  void FreeLocked(Lane* lane) {
    free_.push_back(lane);
    free_count_.store(free_.size(), std::memory_order_relaxed);
  }

  void GiveBack(Lane* lane) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      FreeLocked(lane);
    }
    free_cv_.notify_one();
  }

  // Puts a transformed lane in the reorder window. If no thread is emitting, this one emits
  // every stripe that is ready, in order, until one is missing. The stripes in flight each
  // hold a lane, so they are fewer than window_.size() apart and stripe % size is a slot of
  // their own. False when the message has stopped.
  bool Deposit(Lane* lane) {
    std::unique_lock<std::mutex> lock(mu_);
    // After a stop the lane is dropped: Halt has woken every thread waiting for a lane, and
    // TakeLane returns none once stopped_ is set.
    if (stopped_.load()) return false;
    window_[lane->stripe % window_.size()] = lane;
    if (emitting_) return true;  // the emitting thread will find it
    emitting_ = true;
    for (;;) {
      Lane* next = window_[turn_ % window_.size()];
      if (next == nullptr || stopped_.load()) break;
      // Another stripe in the turn's slot would mean two stripes in flight a window apart,
      // which the lane count rules out; going on would emit out of order, and stopping here
      // would leave every thread waiting.
      if (next->stripe != turn_) std::abort();
      window_[turn_ % window_.size()] = nullptr;
      // Emitted without the lock: the other threads keep depositing and taking free lanes.
      // Only this thread emits until emitting_ is cleared, so the Sink sees one Write at a
      // time, in stripe order.
      lock.unlock();
      if (next->read_exception) std::rethrow_exception(next->read_exception);
      bool done = false;
      Status s =
          next->read.ok() ? dir_.Emit(*next, next->stripe, &done) : Status(next->read.error());
      if (!s.ok() || done) {
        Stop(std::move(s));
        return false;
      }
      lock.lock();
      ++turn_;
      FreeLocked(next);
      free_cv_.notify_one();
    }
    emitting_ = false;
    return !stopped_.load();
  }

  // Ends the message in turn: with the stripe's error, or after the last stripe. Only the
  // emitting thread writes error_.
  void Stop(Status s) {
    if (!s.ok()) error_ = std::move(s).error();
    Halt();
  }

  // Ends the message out of turn, on an exception: threads waiting for a lane give up.
  void Abandon(std::exception_ptr e) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!exception_) exception_ = std::move(e);
    }
    Halt();
  }

  void Halt() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopped_.store(true, std::memory_order_release);
    }
    free_cv_.notify_all();
    std::lock_guard<std::mutex> lock(read_mu_);
    input_done_ = true;
  }

  std::span<const uint8_t> key_;
  unsigned threads_;
  Direction& dir_;
  Source& in_;
  std::deque<Lane> lanes_;        // never moved: other threads hold pointers to lanes
  std::vector<AesGcm> contexts_;  // contexts_[t] is used by thread t only (AesGcm is not
                                  // thread-safe; all hold the same key schedule)
  std::unique_ptr<std::atomic<Lane*>[]> active_;  // [t]: the lane thread t is transforming
  std::atomic<uint64_t> shared_chunks_{0};        // chunks done by Help

  std::mutex read_mu_;  // the Source's Read, next_stripe_ and input_done_
  uint64_t next_stripe_ = 0;
  bool input_done_ = false;
  // Set before the helpers start: stripes from positional_from_ on are read with ReadAt.
  bool positional_ = false;
  uint64_t positional_from_ = 0;

  std::mutex mu_;  // free_, window_, turn_, emitting_, exception_, changes to stopped_
  std::condition_variable free_cv_;
  std::vector<Lane*> free_;
  std::atomic<size_t> free_count_{0};  // free_.size(), read without mu_ while spinning
  std::vector<Lane*> window_;          // transformed lanes waiting for their turn
  uint64_t turn_ = 0;                  // the stripe to emit next
  bool emitting_ = false;              // a thread is emitting the stripes in turn
  std::atomic<bool> stopped_{false};
  std::optional<Error> error_;  // written by the emitting thread, read after the join
  std::exception_ptr exception_;
};

// Seals stripes of plaintext. The prefix goes in front of stripe 0, so that it costs no write
// of its own.
class Sealer {
 public:
  Sealer(std::span<const uint8_t, kNonceSize> base_nonce, std::span<const uint8_t> prefix,
         Sink& out, uint64_t first_chunk)
      : base_nonce_(base_nonce), prefix_(prefix), out_(out), first_chunk_(first_chunk) {}

  void Size(Lane& lane, uint64_t stripe) const {
    const size_t chunks = StripeChunks(stripe);
    if (lane.plain.size() != chunks * kChunkSize) lane.plain.resize(chunks * kChunkSize);
    const size_t sealed = Head(stripe) + chunks * kEncryptedChunkSize;
    if (lane.sealed.size() != sealed) lane.sealed.resize(sealed);
  }

  Result<size_t> Read(Source& in, Lane& lane, uint64_t stripe) const {
    Size(lane, stripe);
    return FillFromSource(in, lane.plain);
  }
  Result<size_t> ReadAt(Source& in, Lane& lane, uint64_t stripe, uint64_t offset) const {
    Size(lane, stripe);
    return FillAt(in, offset, lane.plain);
  }
  static uint64_t Offset(uint64_t stripe) { return StripeFirstChunk(stripe) * kChunkSize; }

  // A full stripe holds only full chunks, and a full chunk is never the final one, so no
  // lookahead is needed: the final (possibly empty) chunk is in the first short stripe. A
  // stripe past the chunk limit ends the message too (with an error, in its turn).
  bool Last(const Lane& lane, uint64_t stripe) const {
    return lane.read.value() < lane.plain.size() ||
           TooLong(first_chunk_ + StripeFirstChunk(stripe), Chunks(lane));
  }

  // The prefix goes in front of stripe 0's chunks; a stripe past the chunk limit seals
  // nothing (Emit reports it).
  size_t Prepare(Lane& lane, uint64_t stripe) const {
    const size_t chunks = Chunks(lane);
    if (TooLong(first_chunk_ + StripeFirstChunk(stripe), chunks)) return 0;
    const size_t head = Head(stripe);
    std::copy(prefix_.begin(), prefix_.begin() + static_cast<ptrdiff_t>(head), lane.sealed.begin());
    return chunks;
  }

  void TransformChunk(Lane& lane, uint64_t stripe, size_t c, AesGcm& gcm) const {
    const size_t n = lane.read.value();
    const size_t begin = c * kChunkSize;
    const size_t len = std::min(kChunkSize, n - begin);
    Status s = gcm.Seal(ChunkNonce(base_nonce_, first_chunk_ + StripeFirstChunk(stripe) + c), {},
                        std::span<const uint8_t>(lane.plain).subspan(begin, len),
                        std::span<uint8_t>(lane.sealed)
                            .subspan(Head(stripe) + c * kEncryptedChunkSize, len + kTagSize));
    lane.status[c] = s.ok() ? ChunkStatus::kOk : ChunkStatus::kInternal;
  }

  Status Emit(Lane& lane, uint64_t stripe, bool* done) {
    const size_t n = lane.read.value();
    const size_t chunks = Chunks(lane);
    if (TooLong(first_chunk_ + StripeFirstChunk(stripe), chunks)) {
      return Error(ErrorCode::kInvalidArgument, "message too long for one cobblestone payload");
    }
    for (size_t c = 0; c < chunks; ++c) {
      if (lane.status[c] != ChunkStatus::kOk) {
        return Error(ErrorCode::kInternal, "aes-256-gcm seal failed");
      }
    }
    KH_RETURN_IF_ERROR(out_.Write(
        std::span<const uint8_t>(lane.sealed).first(Head(stripe) + n + chunks * kTagSize)));
    stats_.chunks += chunks;
    stats_.plaintext_bytes += n;
    *done = Last(lane, stripe);
    return {};
  }

  const StreamStats& stats() const { return stats_; }

 private:
  size_t Head(uint64_t stripe) const { return stripe == 0 ? prefix_.size() : 0; }
  static size_t Chunks(const Lane& lane) {
    const size_t n = lane.read.value();
    return n < lane.plain.size() ? n / kChunkSize + 1 : lane.plain.size() / kChunkSize;
  }
  static bool TooLong(uint64_t index, size_t chunks) {
    return index > kMaxChunks || chunks > kMaxChunks - index;
  }

  std::span<const uint8_t, kNonceSize> base_nonce_;
  std::span<const uint8_t> prefix_;
  Sink& out_;
  uint64_t first_chunk_;
  StreamStats stats_;
};

// Opens stripes of sealed chunks; only authenticated plaintext is emitted.
class Opener {
 public:
  Opener(std::span<const uint8_t, kNonceSize> base_nonce, Sink& out, uint64_t first_chunk)
      : base_nonce_(base_nonce), out_(out), first_chunk_(first_chunk) {}

  void Size(Lane& lane, uint64_t stripe) const {
    const size_t chunks = StripeChunks(stripe);
    if (lane.sealed.size() != chunks * kEncryptedChunkSize) {
      lane.sealed.resize(chunks * kEncryptedChunkSize);
    }
    if (lane.plain.size() != chunks * kChunkSize) lane.plain.resize(chunks * kChunkSize);
  }

  Result<size_t> Read(Source& in, Lane& lane, uint64_t stripe) const {
    Size(lane, stripe);
    return FillFromSource(in, lane.sealed);
  }
  Result<size_t> ReadAt(Source& in, Lane& lane, uint64_t stripe, uint64_t offset) const {
    Size(lane, stripe);
    return FillAt(in, offset, lane.sealed);
  }
  static uint64_t Offset(uint64_t stripe) { return StripeFirstChunk(stripe) * kEncryptedChunkSize; }

  // A short stripe ends the payload; so does one that reaches the chunk limit (no valid
  // payload goes on, and nothing past it is read).
  bool Last(const Lane& lane, uint64_t stripe) const {
    const Shape s = ShapeOf(lane, stripe);
    return s.eof || s.too_long;
  }

  // Chunks from kMaxChunks on are not opened (Emit reports them).
  size_t Prepare(Lane& lane, uint64_t stripe) const { return ShapeOf(lane, stripe).usable; }

  void TransformChunk(Lane& lane, uint64_t stripe, size_t c, AesGcm& gcm) const {
    const Shape s = ShapeOf(lane, stripe);
    const size_t len = c < s.full ? kEncryptedChunkSize : s.rest;
    Status r = gcm.Open(ChunkNonce(base_nonce_, s.index + c), {},
                        std::span<const uint8_t>(lane.sealed).subspan(c * kEncryptedChunkSize, len),
                        std::span<uint8_t>(lane.plain).subspan(c * kChunkSize, len - kTagSize));
    if (r.ok()) {
      lane.status[c] = ChunkStatus::kOk;
    } else {
      lane.status[c] = r.error().code == ErrorCode::kAuthFailed ? ChunkStatus::kAuthFailed
                                                                : ChunkStatus::kInternal;
    }
  }

  // Releases the chunks before the first failure, in order, then reports that failure.
  Status Emit(Lane& lane, uint64_t stripe, bool* done) {
    const Shape s = ShapeOf(lane, stripe);
    size_t good = 0;
    while (good < s.usable && lane.status[good] == ChunkStatus::kOk) ++good;
    const size_t good_bytes =
        good <= s.full ? good * kChunkSize : s.full * kChunkSize + (s.rest - kTagSize);
    if (good_bytes != 0) {
      KH_RETURN_IF_ERROR(out_.Write(std::span<const uint8_t>(lane.plain).first(good_bytes)));
    }
    stats_.chunks += good;
    stats_.plaintext_bytes += good_bytes;
    if (good < s.usable) {
      if (lane.status[good] == ChunkStatus::kInternal) {
        return Error(ErrorCode::kInternal, "aes-256-gcm open failed");
      }
      return PayloadAuthError();
    }
    if (s.too_long) return PayloadAuthError();
    if (s.eof) {
      if (!s.has_final) return PayloadAuthError();  // truncated: no final chunk
      *done = true;
    }
    return {};
  }

  const StreamStats& stats() const { return stats_; }

 private:
  // What a stripe of n bytes holds. A full stripe is full chunks only, none of them final (a
  // final chunk is at most 16399 bytes). A short stripe is the end of the payload: its full
  // chunks, then whatever remains, which must be a final chunk of 16..16399 bytes. A payload
  // that ends right after a full chunk has lost its final chunk and is truncated.
  struct Shape {
    bool eof;
    size_t full, rest;
    bool has_final;
    uint64_t index;  // of the stripe's first chunk
    size_t usable;   // chunks below kMaxChunks, the only ones opened
    bool too_long;   // chunks from kMaxChunks on, which no valid payload has
  };
  Shape ShapeOf(const Lane& lane, uint64_t stripe) const {
    Shape s;
    const size_t n = lane.read.value();
    s.eof = n < lane.sealed.size();
    s.full = n / kEncryptedChunkSize;
    s.rest = n % kEncryptedChunkSize;
    s.has_final = s.eof && s.rest >= kTagSize;
    const size_t chunks = s.full + (s.has_final ? 1 : 0);
    s.index = first_chunk_ + StripeFirstChunk(stripe);
    s.usable = chunks;
    s.too_long = false;
    if (s.index > kMaxChunks || chunks > kMaxChunks - s.index) {
      s.usable = s.index >= kMaxChunks ? 0 : static_cast<size_t>(kMaxChunks - s.index);
      s.too_long = true;
    }
    return s;
  }

  std::span<const uint8_t, kNonceSize> base_nonce_;
  Sink& out_;
  uint64_t first_chunk_;
  StreamStats stats_;
};

}  // namespace

Result<StreamStats> EncryptChunks(std::span<const uint8_t> key,
                                  std::span<const uint8_t, kNonceSize> base_nonce,
                                  std::span<const uint8_t> prefix, Source& in, Sink& out,
                                  const Options& options, uint64_t first_chunk) {
  KH_RETURN_IF_ERROR(CheckSizes(key));
  Sealer sealer(base_nonce, prefix, out, first_chunk);
  StripePipeline<Sealer> pipeline(key, ResolveThreads(options.threads), sealer, in);
  KH_RETURN_IF_ERROR(pipeline.Run());
  StreamStats stats = sealer.stats();
  stats.shared_chunks = pipeline.shared_chunks();
  return stats;
}

Result<StreamStats> DecryptChunks(std::span<const uint8_t> key,
                                  std::span<const uint8_t, kNonceSize> base_nonce, Source& in,
                                  Sink& out, const Options& options, uint64_t first_chunk) {
  KH_RETURN_IF_ERROR(CheckSizes(key));
  Opener opener(base_nonce, out, first_chunk);
  StripePipeline<Opener> pipeline(key, ResolveThreads(options.threads), opener, in);
  KH_RETURN_IF_ERROR(pipeline.Run());
  StreamStats stats = opener.stats();
  stats.shared_chunks = pipeline.shared_chunks();
  return stats;
}

}  // namespace keyhold::cobblestone::internal
