#include "internal/temp_registry.h"

#include <limits.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

namespace keyhold::internal {
namespace {

// A slot's state is a sequence count: (generation << 2) | phase, where phase is kFree,
// kFilling or kPublished. Claiming moves kFree -> kFilling by CAS; the owner fills the path,
// then publishes; releasing starts the next generation in kFree. A reader (the signal
// handler) copies a published path and keeps the copy only if the state is unchanged
// afterwards: the seqlock pattern. The path bytes are accessed atomically, so the concurrent
// read is not a data race: stored with release (ordered after the claim) and loaded with
// acquire (ordered before the re-check), the variant of Boehm's "Can seqlocks get along with
// programming language memory models?" (2012) that needs no fences; on x86 these are plain
// moves. 62 bits of generation: no wrap within any copy.
constexpr uint64_t kPhaseMask = 3;
constexpr uint64_t kFree = 0;
constexpr uint64_t kFilling = 1;
constexpr uint64_t kPublished = 2;

static_assert(std::atomic<uint64_t>::is_always_lock_free, "the handler needs lock-free state");
static_assert(std::atomic_ref<char>::is_always_lock_free, "the handler needs lock-free bytes");
static_assert(std::atomic<unsigned>::is_always_lock_free && std::atomic<bool>::is_always_lock_free);

// Slot i is g_states[i] and g_paths[i]. The states are kept apart from the paths, together
// in 8 KiB: the search for a free slot reads states only, and with each state beside its
// 4 KiB path that search touched a page per slot passed (2% of encrypt -O's time on 10,000
// small files, with hundreds of temp files pending).
constinit std::atomic<uint64_t> g_states[kMaxTempFiles] = {};
// Plain zeroed bytes, reached through std::atomic_ref: constant-initialized (constinit
// checks it), so start-up touches none of the 4 MiB.
constinit char g_paths[kMaxTempFiles][PATH_MAX] = {};

// Where the next search for a free slot starts: just after the last slot claimed, so that a
// job holding hundreds of temp files does not walk (and contend for) all of them each time.
constinit std::atomic<unsigned> g_next_slot{0};

// The creation gate (BeginTempCreation): how many threads are between registering a name
// and knowing whether its file exists, whether this thread is one of them, and whether a
// fatal signal's cleanup has begun.
constinit std::atomic<unsigned> g_creating{0};
constinit thread_local bool t_creating = false;
constinit std::atomic<bool> g_dying{false};

}  // namespace

void BeginTempCreation() {
  g_creating.fetch_add(1, std::memory_order_seq_cst);
  if (g_dying.load(std::memory_order_seq_cst)) {
    // The cleanup has begun (or is about to scan): creating a file now could leave it
    // behind, so this thread waits here for the re-raised signal to end the process.
    g_creating.fetch_sub(1, std::memory_order_seq_cst);
    for (;;) pause();
  }
  t_creating = true;
}

void EndTempCreation() {
  t_creating = false;
  g_creating.fetch_sub(1, std::memory_order_seq_cst);
}

void StopTempCreationForSignal() {
  g_dying.store(true, std::memory_order_seq_cst);
  // Threads already past the gate finish their open() in microseconds. The wait is bounded
  // (1 s) so that a thread stuck in open() on a hung file system cannot hold the process;
  // the handler's own thread, if it was interrupted inside the gate, is not waited for.
  const unsigned self = t_creating ? 1 : 0;
  for (int i = 0; i < 20000 && g_creating.load(std::memory_order_seq_cst) > self; ++i) {
    struct timespec ts = {0, 50 * 1000};
    nanosleep(&ts, nullptr);
  }
}

int RegisterTemp(std::string_view path) {
  if (path.size() >= PATH_MAX) return -1;
  const unsigned first = g_next_slot.load(std::memory_order_relaxed);
  for (unsigned k = 0; k < kMaxTempFiles; ++k) {
    const unsigned i = (first + k) % kMaxTempFiles;
    std::atomic<uint64_t>& state = g_states[i];
    uint64_t s = state.load(std::memory_order_relaxed);
    if ((s & kPhaseMask) != kFree) continue;
    if (!state.compare_exchange_strong(s, s | kFilling, std::memory_order_relaxed)) continue;
    // Release stores: a reader that sees any byte of the new path then sees the claim (the
    // state change) when it re-checks.
    char* slot_path = g_paths[i];
    for (size_t c = 0; c < path.size(); ++c) {
      std::atomic_ref<char>(slot_path[c]).store(path[c], std::memory_order_release);
    }
    std::atomic_ref<char>(slot_path[path.size()]).store('\0', std::memory_order_release);
    state.store((s & ~kPhaseMask) | kPublished, std::memory_order_release);
    g_next_slot.store((i + 1) % kMaxTempFiles, std::memory_order_relaxed);
    return static_cast<int>(i);
  }
  return -1;
}

void UnregisterTemp(int slot) {
  if (slot < 0 || static_cast<unsigned>(slot) >= kMaxTempFiles) return;
  std::atomic<uint64_t>& state = g_states[slot];
  // Only the owner releases, so a plain store is enough; the generation moves on, so a
  // reader that copied the path during or after this sees a different state and skips it.
  const uint64_t gen = state.load(std::memory_order_relaxed) >> 2;
  state.store(((gen + 1) << 2) | kFree, std::memory_order_release);
}

void ForEachRegisteredTemp(void (*fn)(const char* path, void* arg), void* arg) {
  char copy[PATH_MAX];
  for (unsigned i = 0; i < kMaxTempFiles; ++i) {
    std::atomic<uint64_t>& state = g_states[i];
    char* slot_path = g_paths[i];
    // A slot re-claimed during the copy holds a new temp file: read it again, a bounded
    // number of times (a handler must not spin on a slot another thread keeps reusing).
    for (int attempt = 0; attempt < 8; ++attempt) {
      const uint64_t before = state.load(std::memory_order_acquire);
      if ((before & kPhaseMask) != kPublished) break;
      size_t n = 0;
      for (; n + 1 < PATH_MAX; ++n) {
        copy[n] = std::atomic_ref<char>(slot_path[n]).load(std::memory_order_acquire);
        if (copy[n] == '\0') break;
      }
      copy[n] = '\0';
      if (state.load(std::memory_order_relaxed) != before) continue;  // changed: again
      fn(copy, arg);
      break;
    }
  }
}

}  // namespace keyhold::internal
