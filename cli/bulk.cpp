#include "bulk.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "exit_codes.h"
#include "keyhold/crypto/hash.h"
#include "object_ops.h"
#include "paths.h"
#include "ui.h"

namespace keyhold::cli {

Result<Shard> ParseShard(std::string_view text) {
  const Error bad(ErrorCode::kInvalidArgument, "--shard expects I/N with 0 <= I < N",
                  "e.g. --shard 0/4 ... --shard 3/4 on four machines");
  size_t slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == text.size()) return bad;
  auto parse = [](std::string_view digits, uint64_t* out) {
    if (digits.empty() || digits.size() > 9) return false;  // keeps N far below 2^64
    uint64_t v = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    *out = v;
    return true;
  };
  Shard s;
  if (!parse(text.substr(0, slash), &s.index) || !parse(text.substr(slash + 1), &s.count) ||
      s.count == 0 || s.index >= s.count) {
    return bad;
  }
  return s;
}

uint64_t ShardOf(std::string_view relative, uint64_t count) {
  Sha256Digest d =
      Sha256(std::span(reinterpret_cast<const uint8_t*>(relative.data()), relative.size()));
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | d[i];
  return v % count;
}

Result<std::vector<BulkItem>> CollectBulkItems(const std::vector<std::string>& paths,
                                               const std::string& manifest,
                                               const std::optional<Shard>& shard,
                                               std::vector<std::string>* skipped) {
  std::vector<BulkItem> all;
  if (!paths.empty()) {
    KH_ASSIGN_OR_RETURN(Expansion expansion, ExpandInputs(paths, /*skip_sidecars=*/true));
    for (auto& f : expansion.files) {
      if (f.path == "-") {
        return Error(ErrorCode::kInvalidArgument, "bulk jobs work on files, not stdin",
                     "give files or directories, or --manifest -");
      }
      all.push_back({std::move(f.path), std::move(f.relative)});
    }
    if (skipped != nullptr) {
      skipped->insert(skipped->end(), expansion.skipped.begin(), expansion.skipped.end());
    }
  }
  if (!manifest.empty()) {
    std::ifstream file;
    std::istream* in = &std::cin;
    if (manifest != "-") {
      file.open(manifest);
      if (!file) return Error(ErrorCode::kNotFound, manifest + ": cannot open the manifest");
      in = &file;
    }
    std::string line;
    while (std::getline(*in, line)) {
      if (line.empty()) continue;
      all.push_back({line, line});
    }
    if (in->bad()) return Error(ErrorCode::kIo, manifest + ": read error");
  }
  if (!shard) return all;
  std::vector<BulkItem> mine;
  for (auto& item : all) {
    if (ShardOf(item.relative, shard->count) == shard->index) mine.push_back(std::move(item));
  }
  return mine;
}

bool IsNotKeyholdError(const std::string& path, const Error& error) {
  struct stat st;
  return error.code == ErrorCode::kMalformed && error.message == path + ": not a keyhold object" &&
         lstat(SidecarPath(path).c_str(), &st) != 0;
}

unsigned DefaultJobs() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

namespace {

// Groups per batch when `batches` batches share the temp-file budget (0: not one fits).
size_t GroupsPerBatch(size_t batches, size_t files_per_group, uint64_t fd_limit) {
  constexpr size_t kMaxGroups = 256, kMaxOpenTempFiles = 768;
  const size_t budget = static_cast<size_t>(std::min<uint64_t>(kMaxOpenTempFiles, fd_limit / 2));
  return std::min(budget / std::max<size_t>(1, batches * files_per_group), kMaxGroups);
}

}  // namespace

BatchPlan PlanBatches(size_t jobs, size_t files_per_group, uint64_t fd_limit) {
  if (const size_t g = GroupsPerBatch(2 * jobs, files_per_group, fd_limit); g >= 1) {
    return {g, true};
  }
  return {std::max<size_t>(1, GroupsPerBatch(jobs, files_per_group, fd_limit)), false};
}

uint64_t OpenFileLimit() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;  // the usual default
  return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : static_cast<uint64_t>(rl.rlim_cur);
}

namespace {

std::string HumanBytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(units)) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

std::string Duration(double seconds) {
  auto s = static_cast<uint64_t>(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%llu:%02llu:%02llu", static_cast<unsigned long long>(s / 3600),
                static_cast<unsigned long long>(s / 60 % 60),
                static_cast<unsigned long long>(s % 60));
  return buf;
}

}  // namespace

BulkSummary RunBulk(const std::vector<BulkItem>& items, unsigned jobs, bool progress,
                    const std::function<ItemResult(const BulkItem&)>& work,
                    const std::function<void(const BulkItem&, const ItemResult&)>& on_result) {
  const auto start = std::chrono::steady_clock::now();
  BulkSummary summary;
  summary.objects = items.size();
  std::vector<std::optional<Error>> errors(items.size());
  std::map<std::string, uint64_t> reasons;
  // on_result (the audit record) runs on this thread, which otherwise only waits: every 256th
  // record is an audit flush with three fsyncs, and a worker calling it itself (under any
  // lock they share) stalled the others for as long. The workers queue their results; a
  // worker waits only when kMaxQueued are waiting.
  constexpr size_t kMaxQueued = 256;
  std::mutex mu;  // the summary, errors, reasons, `finished`, `reported` and `queued`
  std::condition_variable wake;  // this thread: a result queued, or all reported
  std::condition_variable room;  // the workers: room in `queued`
  std::deque<std::pair<size_t, ItemResult>> queued;  // results waiting for on_result
  std::atomic<size_t> next{0};
  size_t finished = 0;  // items whose work is done
  size_t reported = 0;  // items whose on_result has returned (or that need none)
  std::exception_ptr on_result_error;

  auto worker = [&] {
    for (;;) {
      size_t i = next.fetch_add(1);
      if (i >= items.size()) return;
      ItemResult r;
      try {
        r = work(items[i]);
      } catch (const std::exception& e) {  // e.g. bad_alloc: fail this object, not the job
        r.status = ItemStatus::kFailed;
        r.error = Error(ErrorCode::kInternal, std::string("unexpected failure: ") + e.what());
      }
      std::unique_lock<std::mutex> lock(mu);
      switch (r.status) {
        case ItemStatus::kDone:
          ++summary.done;
          break;
        case ItemStatus::kSkipped:
          ++summary.skipped;
          ++reasons[r.skip_reason];
          break;
        case ItemStatus::kFailed:
          ++summary.failed;
          errors[i] = r.error;
          break;
      }
      summary.bytes += r.bytes;
      ++finished;
      if (on_result) {
        room.wait(lock, [&] { return queued.size() < kMaxQueued; });
        queued.emplace_back(i, std::move(r));
      } else {
        ++reported;
      }
      wake.notify_one();
    }
  };

  jobs = std::max(
      1u, std::min<unsigned>(jobs, static_cast<unsigned>(std::max<size_t>(items.size(), 1))));
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < jobs; ++t) pool.emplace_back(worker);
  {
    std::unique_lock<std::mutex> lock(mu);
    auto last_progress = std::chrono::steady_clock::now();
    while (reported < items.size()) {
      wake.wait_for(lock, std::chrono::milliseconds(200),
                    [&] { return !queued.empty() || reported == items.size(); });
      while (!queued.empty()) {
        std::pair<size_t, ItemResult> q = std::move(queued.front());
        queued.pop_front();
        room.notify_one();
        lock.unlock();
        // An exception (bad_alloc) is raised once the workers are joined; the records after
        // it are not attempted.
        if (!on_result_error) {
          try {
            on_result(items[q.first], q.second);
          } catch (...) {
            on_result_error = std::current_exception();
          }
        }
        lock.lock();
        ++reported;
      }
      const auto now = std::chrono::steady_clock::now();
      if (!progress || now - last_progress < std::chrono::milliseconds(200)) continue;
      last_progress = now;
      double elapsed = std::chrono::duration<double>(now - start).count();
      std::string eta = "--:--:--";
      if (finished > 0) {
        eta = Duration(elapsed / static_cast<double>(finished) *
                       static_cast<double>(items.size() - finished));
      }
      std::fprintf(stderr, "\r\033[K%zu/%zu objects, %llu failed, %s, ETA %s", finished,
                   items.size(), static_cast<unsigned long long>(summary.failed),
                   HumanBytes(summary.bytes).c_str(), eta.c_str());
      std::fflush(stderr);
    }
  }
  for (auto& t : pool) t.join();
  if (progress) {
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
  }
  if (on_result_error) std::rethrow_exception(on_result_error);
  for (size_t i = 0; i < items.size(); ++i) {
    if (errors[i]) summary.failures.push_back({items[i].path, std::move(*errors[i])});
  }
  for (auto& [reason, n] : reasons) summary.skipped_by_reason.emplace_back(reason, n);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

nlohmann::json BulkSummaryToJson(const BulkSummary& s) {
  nlohmann::json failures = nlohmann::json::array();
  for (const auto& f : s.failures) {
    failures.push_back({{"path", f.path},
                        {"code", std::string(ErrorCodeName(f.error.code))},
                        {"exit_code", ExitCodeFor(f.error.code)},
                        {"reason", f.error.message}});
  }
  nlohmann::json reasons = nlohmann::json::object();
  for (const auto& [reason, n] : s.skipped_by_reason) reasons[reason] = n;
  return {{"objects", s.objects}, {"done", s.done},
          {"skipped", s.skipped}, {"skipped_by_reason", reasons},
          {"failed", s.failed},   {"failures", failures},
          {"bytes", s.bytes},     {"seconds", s.seconds}};
}

void PrintBulkSummary(const BulkSummary& s, std::string_view done_verb) {
  for (const auto& f : s.failures) {
    // Most messages already start with the path; do not say it twice.
    const bool named = f.error.message.rfind(f.path, 0) == 0;
    PrintError(Error(
        f.error.code,
        named ? Printable(f.error.message) : Printable(f.path) + ": " + Printable(f.error.message),
        f.error.hint));
  }
  std::string line = std::string(done_verb) + " " + std::to_string(s.done);
  for (const auto& [reason, n] : s.skipped_by_reason) {
    std::string words = reason;  // "up-to-date" -> "up to date 3"
    std::replace(words.begin(), words.end(), '-', ' ');
    line += ", " + words + " " + std::to_string(n);
  }
  line += ", failed " + std::to_string(s.failed) + " of " + std::to_string(s.objects) + " objects";
  Note(line);
}

void AddBulkOptions(CLI::App* cmd, BulkCliOptions* o) {
  cmd->add_option("-j,--jobs", o->jobs, "objects processed in parallel (default: number of CPUs)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--shard", o->shard,
                  "process only shard I of N (0-based), by SHA-256 of the relative path");
  cmd->add_option("--manifest", o->manifest,
                  "read object paths from FILE, one per line (- = stdin)");
  cmd->add_option("PATH", o->paths, "objects or directories (recursive)");
}

Result<std::vector<BulkItem>> CollectFromOptions(const BulkCliOptions& o) {
  if (o.paths.empty() && o.manifest.empty()) {
    return Error(ErrorCode::kInvalidArgument, "no objects given",
                 "give files or directories, or --manifest FILE");
  }
  std::optional<Shard> shard;
  if (!o.shard.empty()) {
    KH_ASSIGN_OR_RETURN(Shard s, ParseShard(o.shard));
    shard = s;
  }
  std::vector<std::string> skipped;
  KH_ASSIGN_OR_RETURN(std::vector<BulkItem> items,
                      CollectBulkItems(o.paths, o.manifest, shard, &skipped));
  for (const auto& s : skipped) Warn("skipped " + Printable(s));
  return items;
}

bool ShowProgress() { return StderrIsTerminal() && !Quiet(); }

}  // namespace keyhold::cli
