// Bulk jobs over many objects (rewrap, reencrypt): choosing the objects (paths, manifests,
// shards), a worker pool, a progress line and the final summary.
#ifndef KEYHOLD_CLI_BULK_H_
#define KEYHOLD_CLI_BULK_H_

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "keyhold/crypto/result.h"

namespace keyhold::cli {

// --shard I/N: this process handles shard I (0-based) of N.
struct Shard {
  uint64_t index = 0;
  uint64_t count = 1;
};
// Parses "I/N" with 0 <= I < N, N >= 1 (kInvalidArgument otherwise).
Result<Shard> ParseShard(std::string_view text);
// The shard of an object: the first 8 bytes of SHA-256(relative), read big-endian, mod
// `count`. `relative` is the path relative to the directory given on the command line (or
// the manifest line verbatim, or the base name of a file given directly), so every machine
// computes the same split whatever its mount point. docs/rotation.md documents it for other
// tools.
uint64_t ShardOf(std::string_view relative, uint64_t count);

struct BulkItem {
  std::string path;      // as opened
  std::string relative;  // what the shard hash covers
};

// The objects of a job: the expansion of `paths` (files and directory trees, NAME.hdr
// sidecars folded into their object) and, if `manifest` is set, its lines (one path per line,
// empty lines ignored; "-" reads stdin), keeping only `shard`'s part. Symlinks and special
// files are reported in `skipped`. kNotFound/kIo for a missing input or unreadable manifest.
Result<std::vector<BulkItem>> CollectBulkItems(const std::vector<std::string>& paths,
                                               const std::string& manifest,
                                               const std::optional<Shard>& shard,
                                               std::vector<std::string>* skipped);

enum class ItemStatus { kDone, kSkipped, kFailed };

struct ItemResult {
  ItemStatus status = ItemStatus::kDone;
  std::string skip_reason;             // for kSkipped: "up-to-date", "not-selected", ...
  Error error;                         // for kFailed
  uint64_t bytes = 0;                  // bytes of the object, for the progress line
  std::vector<std::string> keys_used;  // "NAME vN" wrapped to, for the audit log
};

struct BulkFailure {
  std::string path;
  Error error;
};

struct BulkSummary {
  uint64_t objects = 0;
  uint64_t done = 0;
  uint64_t skipped = 0;
  uint64_t failed = 0;
  uint64_t bytes = 0;
  double seconds = 0;
  std::vector<std::pair<std::string, uint64_t>> skipped_by_reason;  // sorted by reason
  std::vector<BulkFailure> failures;                                // in input order
};

// True for the error LocateObject gives a file that is not a keyhold object at all (no magic,
// no sidecar): bulk jobs skip such files ("not-keyhold") instead of failing them, since trees
// often mix objects and other files. A damaged object (magic present) is still a failure.
bool IsNotKeyholdError(const std::string& path, const Error& error);

// Default -j: the number of online CPUs (at least 1).
unsigned DefaultJobs();

// At most this many workers write output files at once (encrypt -O): more buys nothing on
// one filesystem and costs descriptors.
inline constexpr size_t kMaxOutputJobs = 16;

// How the AtomicBatch of each of `jobs` parallel workers commits, a group being
// `files_per_group` open temp files. A batch holds at most 256 groups; all pending batches
// together at most 768 files, nor more than half of `fd_limit` (the soft RLIMIT_NOFILE), so
// that a job stays within the descriptor limit and within the 1024 temp files that are
// removed on SIGINT/SIGTERM (crypto/file_io.cpp). Fewer, larger batches mean fewer syncfs and
// directory fsyncs: 256 instead of 64 took 10,000 files from 1.74 to 1.44 s on ext4
// (docs/performance.md). Where the budget leaves each of two batches per worker a group, a
// full batch is committed on a thread of its own while the next is written (overlap);
// otherwise (many workers, a low descriptor limit) one batch per worker, of at least 1 group.
struct BatchPlan {
  size_t groups;
  bool overlap;
};
BatchPlan PlanBatches(size_t jobs, size_t files_per_group, uint64_t fd_limit);

// The soft limit on open file descriptors (RLIMIT_NOFILE), for PlanBatches.
uint64_t OpenFileLimit();

// Runs `work` on every item with `jobs` threads (each item exactly once; one item's failure
// never stops the others). `work` must be safe to call concurrently. `on_result` is called
// for each item in completion order, on the calling thread (never concurrently, and while
// the workers go on), e.g. for the audit log; an exception it throws is rethrown once the
// workers are joined, and no later on_result is called.
// With `progress`, a line with counts, bytes and ETA is redrawn on stderr and erased at the end.
BulkSummary RunBulk(const std::vector<BulkItem>& items, unsigned jobs, bool progress,
                    const std::function<ItemResult(const BulkItem&)>& work,
                    const std::function<void(const BulkItem&, const ItemResult&)>& on_result);

// {"objects", "done", "skipped", "skipped_by_reason": {...}, "failed", "failures": [{"path",
// "code", "reason"}], "bytes", "seconds"}.
nlohmann::json BulkSummaryToJson(const BulkSummary& summary);
// Human form on stderr: each failure as an error line, then one summary line (`done_verb`
// e.g. "rewrapped").
void PrintBulkSummary(const BulkSummary& summary, std::string_view done_verb);

// The options every bulk command shares: -j, --shard, --manifest and the PATH arguments.
struct BulkCliOptions {
  unsigned jobs = 0;  // 0: DefaultJobs()
  std::string shard;
  std::string manifest;
  std::vector<std::string> paths;
};
void AddBulkOptions(CLI::App* cmd, BulkCliOptions* options);
// CollectBulkItems for those options; kInvalidArgument if there is neither a PATH nor a
// manifest. Skipped inputs are warned about.
Result<std::vector<BulkItem>> CollectFromOptions(const BulkCliOptions& options);
// Whether to draw the progress line: stderr is a terminal and -q was not given.
bool ShowProgress();

}  // namespace keyhold::cli

#endif  // KEYHOLD_CLI_BULK_H_
