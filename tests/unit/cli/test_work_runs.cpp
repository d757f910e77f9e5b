// TakeWorkRun (cli/work_runs.h): how a tree's files are shared among encrypt's workers.
#include <atomic>
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "cli/work_runs.h"

using keyhold::cli::kMaxWorkRun;
using keyhold::cli::TakeWorkRun;
using keyhold::cli::WorkRun;

namespace {

// The runs one thread takes until none is left, in order.
std::vector<WorkRun> TakeAll(std::atomic<size_t>& next, size_t total, size_t jobs) {
  std::vector<WorkRun> runs;
  for (WorkRun r; (r = TakeWorkRun(next, total, jobs)).begin < r.end;) runs.push_back(r);
  return runs;
}

}  // namespace

TEST_CASE("work runs: one thread takes every item once, in order, in shrinking runs", "[cli]") {
  const size_t total = GENERATE(0, 1, 7, 8, 9, 100, 10000);
  const size_t jobs = GENERATE(1, 2, 16);
  std::atomic<size_t> next{0};
  const std::vector<WorkRun> runs = TakeAll(next, total, jobs);
  size_t expected_begin = 0;
  for (size_t k = 0; k < runs.size(); ++k) {
    const WorkRun& r = runs[k];
    CHECK(r.begin == expected_begin);
    REQUIRE(r.end > r.begin);
    const size_t left = total - r.begin;
    // A quarter of each worker's share of what was left, at least 1, at most kMaxWorkRun.
    CHECK(r.end - r.begin <= kMaxWorkRun);
    CHECK(r.end - r.begin == std::max<size_t>(1, std::min(kMaxWorkRun, left / (4 * jobs))));
    if (k > 0) CHECK(r.end - r.begin <= runs[k - 1].end - runs[k - 1].begin);
    expected_begin = r.end;
  }
  CHECK(expected_begin == total);
  // The last 4 * jobs items go one by one (all of them when there are fewer).
  const size_t singles = std::min(total, 4 * jobs);
  REQUIRE(runs.size() >= singles);
  for (size_t k = runs.size() - singles; k < runs.size(); ++k) {
    CHECK(runs[k].end - runs[k].begin == 1);
  }
  // Once the items are gone, every call returns an empty run at the end.
  const WorkRun after = TakeWorkRun(next, total, jobs);
  CHECK(after.begin == total);
  CHECK(after.end == total);
}

TEST_CASE("work runs: threads racing take every item exactly once", "[cli]") {
  constexpr size_t kTotal = 100000;
  constexpr size_t kThreads = 4;
  std::vector<std::atomic<int>> hits(kTotal);
  std::atomic<size_t> next{0};
  std::vector<std::thread> threads;
  for (size_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (WorkRun r; (r = TakeWorkRun(next, kTotal, kThreads)).begin < r.end;) {
        for (size_t i = r.begin; i < r.end; ++i) hits[i].fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  size_t wrong = 0;
  for (const auto& h : hits) wrong += h.load() != 1;
  CHECK(wrong == 0);
}

TEST_CASE("work runs: storing the total ends the sharing", "[cli]") {
  std::atomic<size_t> next{0};
  const WorkRun first = TakeWorkRun(next, 1000, 2);
  CHECK(first.begin == 0);
  CHECK(first.end == 64);
  next.store(1000);  // what encrypt does on a fatal error
  const WorkRun r = TakeWorkRun(next, 1000, 2);
  CHECK(r.begin == r.end);
}
