// Sharing a list of items among worker threads in runs of consecutive items.
#ifndef KEYHOLD_CLI_WORK_RUNS_H_
#define KEYHOLD_CLI_WORK_RUNS_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace keyhold::cli {

// Items [begin, end) for one worker; empty (begin == end) when none are left.
struct WorkRun {
  size_t begin = 0;
  size_t end = 0;
  size_t size() const { return end - begin; }
};

// The longest run a worker takes.
inline constexpr size_t kMaxWorkRun = 64;
// What a worker handles of a run before it gives the rest back (see WorkSharer).
inline constexpr uint64_t kWorkRunBytes = 1 << 20;

// Shares `total` items among `jobs` workers in runs of consecutive items.
//
// Consecutive items of a walked tree are files of one directory, so two workers taking runs
// mostly create their outputs in different directories (when the tree has subdirectories):
// taking items one at a time, they both worked in the same directory, each waiting on its
// lock and on its blocks while the other's batch was being synced. A run is a quarter of
// each worker's share of what is left (at most kMaxWorkRun), so runs shrink as the end nears
// and the last 4 * jobs items go one by one.
//
// Runs are for small files. A worker that has handled kWorkRunBytes of a run gives the rest
// back (GiveBack) before going on, and given-back items are taken before new ones: a
// directory of large files is shared out a file or a few at a time, instead of going to one
// worker while the others, done with their small files, wait.
//
// Every item is taken exactly once, by whichever worker takes a run it is in. Thread-safe.
class WorkSharer {
 public:
  WorkSharer(size_t total, size_t jobs) : total_(total), jobs_(std::max<size_t>(jobs, 1)) {}

  // The next run; empty once every item has been taken, or after Stop.
  WorkRun Take() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!returned_.empty()) {
      WorkRun& back = returned_.back();
      const WorkRun run{back.begin, back.begin + RunLength(back.size())};
      back.begin = run.end;
      if (back.begin == back.end) returned_.pop_back();
      return run;
    }
    const size_t begin = next_;
    next_ = std::min(total_, next_ + RunLength(total_ - next_));
    return {begin, next_};
  }

  // Items of a run taken from this sharer that the caller will not handle, to be taken again.
  void GiveBack(WorkRun rest) {
    std::lock_guard<std::mutex> lock(mu_);
    if (rest.begin < rest.end && !stopped_.load(std::memory_order_relaxed)) {
      returned_.push_back(rest);
    }
  }

  // Ends the sharing (a fatal error): Take returns nothing more, and Stopped tells a worker to
  // leave the run in hand.
  void Stop() {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_.store(true, std::memory_order_relaxed);
    next_ = total_;
    returned_.clear();
  }
  // Read once per item, without the lock.
  bool Stopped() const { return stopped_.load(std::memory_order_relaxed); }

 private:
  size_t RunLength(size_t left) const {
    return std::clamp<size_t>(left / (4 * jobs_), 1, kMaxWorkRun);
  }

  const size_t total_;
  const size_t jobs_;
  std::mutex mu_;                  // next_, returned_; held to set stopped_. Taken once per run.
  size_t next_ = 0;                // the first item not yet taken from the list
  std::vector<WorkRun> returned_;  // given back, not yet taken again
  std::atomic<bool> stopped_{false};
};

}  // namespace keyhold::cli

#endif  // KEYHOLD_CLI_WORK_RUNS_H_
