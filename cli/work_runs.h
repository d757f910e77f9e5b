// Sharing a list of items among worker threads in runs of consecutive items.
#ifndef KEYHOLD_CLI_WORK_RUNS_H_
#define KEYHOLD_CLI_WORK_RUNS_H_

#include <algorithm>
#include <atomic>
#include <cstddef>

namespace keyhold::cli {

// Items [begin, end) for one worker; empty (begin == end) when none are left.
struct WorkRun {
  size_t begin = 0;
  size_t end = 0;
};

// The longest run a worker takes.
inline constexpr size_t kMaxWorkRun = 64;

// Takes the next run of the `total` items shared by `jobs` workers through `next` (the
// index of the first item not yet taken; storing `total` or more in it ends the sharing).
// Consecutive items of a walked tree are files of one directory, so two workers taking runs
// mostly create their outputs in different directories: taking items one at a time, they
// both worked in the same directory, each waiting on its lock and on its blocks while the
// other's batch was being synced. A run is a quarter of each worker's share of what is left
// (at most kMaxWorkRun): runs shrink as the end nears, and the last 4 * jobs items go one by
// one, so a few large files at the end are still shared out rather than left to one worker.
// Every item is taken exactly once, by whichever thread takes the run it is in.
inline WorkRun TakeWorkRun(std::atomic<size_t>& next, size_t total, size_t jobs) {
  const size_t taken = next.load(std::memory_order_relaxed);
  const size_t left = taken < total ? total - taken : 0;
  const size_t run = std::clamp<size_t>(left / (4 * std::max<size_t>(jobs, 1)), 1, kMaxWorkRun);
  // A stale `left` only changes the run's length; fetch_add alone decides which items.
  const size_t begin = std::min(next.fetch_add(run), total);
  return {begin, std::min(begin + run, total)};
}

}  // namespace keyhold::cli

#endif  // KEYHOLD_CLI_WORK_RUNS_H_
