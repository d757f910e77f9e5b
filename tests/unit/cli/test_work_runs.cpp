// WorkSharer (cli/work_runs.h): how a tree's files are shared among encrypt's workers.
#include <atomic>
#include <catch2/catch.hpp>
#include <random>
#include <thread>
#include <vector>

#include "work_runs.h"

using keyhold::cli::kMaxWorkRun;
using keyhold::cli::WorkRun;
using keyhold::cli::WorkSharer;

namespace {

// The runs one thread takes until none is left, in order.
std::vector<WorkRun> TakeAll(WorkSharer& sharer) {
  std::vector<WorkRun> runs;
  for (WorkRun r; (r = sharer.Take()).size() > 0;) runs.push_back(r);
  return runs;
}

size_t ExpectedLength(size_t left, size_t jobs) {
  return std::max<size_t>(1, std::min(kMaxWorkRun, left / (4 * jobs)));
}

}  // namespace

TEST_CASE("work runs: one thread takes every item once, in order, in shrinking runs", "[cli]") {
  const size_t total = GENERATE(0, 1, 7, 8, 9, 100, 10000);
  const size_t jobs = GENERATE(1, 2, 16);
  WorkSharer sharer(total, jobs);
  const std::vector<WorkRun> runs = TakeAll(sharer);
  size_t expected_begin = 0;
  for (size_t k = 0; k < runs.size(); ++k) {
    const WorkRun& r = runs[k];
    CHECK(r.begin == expected_begin);
    REQUIRE(r.end > r.begin);
    // A quarter of each worker's share of what was left, at least 1, at most kMaxWorkRun.
    CHECK(r.size() == ExpectedLength(total - r.begin, jobs));
    if (k > 0) CHECK(r.size() <= runs[k - 1].size());
    expected_begin = r.end;
  }
  CHECK(expected_begin == total);
  // The last 4 * jobs items go one by one (all of them when there are fewer).
  const size_t singles = std::min(total, 4 * jobs);
  REQUIRE(runs.size() >= singles);
  for (size_t k = runs.size() - singles; k < runs.size(); ++k) CHECK(runs[k].size() == 1);
  // Once the items are gone, every call returns an empty run.
  CHECK(sharer.Take().size() == 0);
}

TEST_CASE("work runs: given-back items are taken again first, in runs of their own", "[cli]") {
  WorkSharer sharer(1000, 2);
  const WorkRun first = sharer.Take();
  REQUIRE(first.begin == 0);
  REQUIRE(first.size() == 64);
  // The worker handled items 0 and 1 (say, two large files) and gives back 2..63.
  sharer.GiveBack({2, 64});
  const WorkRun again = sharer.Take();
  CHECK(again.begin == 2);
  CHECK(again.size() == ExpectedLength(62, 2));   // 7: a run of what was given back
  sharer.GiveBack({again.begin + 1, again.end});  // one more large file handled
  const WorkRun third = sharer.Take();
  CHECK(third.begin == 3);
  CHECK(third.size() == 1);  // 6 left of what was given back: one at a time
  // Then the given-back items run out and the list goes on where it was.
  std::vector<bool> seen(1000, false);
  for (size_t i = first.begin; i < third.end; ++i) seen[i] = true;
  for (WorkRun r; (r = sharer.Take()).size() > 0;) {
    for (size_t i = r.begin; i < r.end; ++i) {
      CHECK_FALSE(seen[i]);
      seen[i] = true;
    }
  }
  CHECK(std::count(seen.begin(), seen.end(), true) == 1000);
  sharer.GiveBack({});  // an empty rest is ignored
  CHECK(sharer.Take().size() == 0);
}

TEST_CASE("work runs: threads racing, giving back at random, take every item exactly once",
          "[cli]") {
  constexpr size_t kTotal = 100000;
  constexpr size_t kThreads = 4;
  std::vector<std::atomic<int>> hits(kTotal);
  WorkSharer sharer(kTotal, kThreads);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      for (WorkRun r; (r = sharer.Take()).size() > 0;) {
        // Handle a random prefix of the run (at least one item), give the rest back.
        const size_t handled = 1 + rng() % r.size();
        for (size_t i = r.begin; i < r.begin + handled; ++i) hits[i].fetch_add(1);
        if (rng() % 2 == 0) {
          sharer.GiveBack({r.begin + handled, r.end});
        } else {
          for (size_t i = r.begin + handled; i < r.end; ++i) hits[i].fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  size_t wrong = 0;
  for (const auto& h : hits) wrong += h.load() != 1;
  CHECK(wrong == 0);
}

TEST_CASE("work runs: Stop ends the sharing, given-back items included", "[cli]") {
  WorkSharer sharer(1000, 2);
  const WorkRun first = sharer.Take();
  sharer.GiveBack({first.begin + 1, first.end});
  CHECK_FALSE(sharer.Stopped());
  sharer.Stop();  // what encrypt does on a fatal error
  CHECK(sharer.Stopped());
  CHECK(sharer.Take().size() == 0);
  sharer.GiveBack({1, 10});  // ignored once stopped
  CHECK(sharer.Take().size() == 0);
}
