#include "internal/temp_registry.h"

#include <limits.h>

#include <atomic>
#include <cstdint>

namespace keyhold::internal {
namespace {

// A slot's state is a sequence count: (generation << 2) | phase, where phase is kFree,
// kFilling or kPublished. Claiming moves kFree -> kFilling by CAS; the owner fills the path,
// then publishes; releasing starts the next generation in kFree. A reader (the signal
// handler) copies a published path and keeps the copy only if the state is unchanged
// afterwards: the seqlock pattern, with the path held in relaxed atomics so that the
// concurrent read is not a data race (Boehm, "Can seqlocks get along with programming
// language memory models?", 2012: writer fence release after claiming, reader fence acquire
// before the re-check).
constexpr uint32_t kPhaseMask = 3;
constexpr uint32_t kFree = 0;
constexpr uint32_t kFilling = 1;
constexpr uint32_t kPublished = 2;

struct TempSlot {
  std::atomic<uint32_t> state{0};
  // Zero: constant-initialized, so start-up touches none of the 4 MiB.
  std::atomic<char> path[PATH_MAX]{};
};
TempSlot g_slots[kMaxTempFiles];

// Where the next search for a free slot starts: just after the last slot claimed, so that a
// job holding hundreds of temp files does not walk (and contend for) all of them each time.
std::atomic<unsigned> g_next_slot{0};

}  // namespace

int RegisterTemp(std::string_view path) {
  if (path.size() >= PATH_MAX) return -1;
  const unsigned first = g_next_slot.load(std::memory_order_relaxed);
  for (unsigned k = 0; k < kMaxTempFiles; ++k) {
    const unsigned i = (first + k) % kMaxTempFiles;
    TempSlot& slot = g_slots[i];
    uint32_t s = slot.state.load(std::memory_order_relaxed);
    if ((s & kPhaseMask) != kFree) continue;
    if (!slot.state.compare_exchange_strong(s, s | kFilling, std::memory_order_relaxed)) {
      continue;
    }
    // Orders the claim before the path stores: a reader that sees any byte of the new path
    // then sees the state change when it re-checks.
    std::atomic_thread_fence(std::memory_order_release);
    for (size_t c = 0; c < path.size(); ++c) {
      slot.path[c].store(path[c], std::memory_order_relaxed);
    }
    slot.path[path.size()].store('\0', std::memory_order_relaxed);
    slot.state.store((s & ~kPhaseMask) | kPublished, std::memory_order_release);
    g_next_slot.store((i + 1) % kMaxTempFiles, std::memory_order_relaxed);
    return static_cast<int>(i);
  }
  return -1;
}

void UnregisterTemp(int slot) {
  if (slot < 0 || static_cast<unsigned>(slot) >= kMaxTempFiles) return;
  TempSlot& s = g_slots[slot];
  // Only the owner releases, so a plain store is enough; the generation moves on, so a
  // reader that copied the path during or after this sees a different state and skips it.
  const uint32_t gen = s.state.load(std::memory_order_relaxed) >> 2;
  s.state.store(((gen + 1) << 2) | kFree, std::memory_order_release);
}

void ForEachRegisteredTemp(void (*fn)(const char* path, void* arg), void* arg) {
  char copy[PATH_MAX];
  for (TempSlot& slot : g_slots) {
    // A slot re-claimed during the copy holds a new temp file: read it again, a bounded
    // number of times (a handler must not spin on a slot another thread keeps reusing).
    for (int attempt = 0; attempt < 8; ++attempt) {
      const uint32_t before = slot.state.load(std::memory_order_acquire);
      if ((before & kPhaseMask) != kPublished) break;
      size_t n = 0;
      for (; n + 1 < PATH_MAX; ++n) {
        copy[n] = slot.path[n].load(std::memory_order_relaxed);
        if (copy[n] == '\0') break;
      }
      copy[n] = '\0';
      std::atomic_thread_fence(std::memory_order_acquire);
      if (slot.state.load(std::memory_order_relaxed) != before) continue;  // changed: again
      fn(copy, arg);
      break;
    }
  }
}

}  // namespace keyhold::internal
