// File I/O with the guarantees keyhold promises: full reads and writes, and atomic creation
// of output files (temp file beside the target, fsync, rename, fsync the directory).
#ifndef KEYHOLD_CRYPTO_FILE_IO_H_
#define KEYHOLD_CRYPTO_FILE_IO_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "keyhold/crypto/result.h"

namespace keyhold {

// Reads until `out` is full or end of file; returns the number of bytes read (less than
// out.size() only at end of file). Retries on EINTR. kIo on a read error.
Result<size_t> ReadFull(int fd, std::span<uint8_t> out);
// Writes all of `data`, retrying on EINTR and short writes. kIo (naming ENOSPC, EFBIG, EPIPE
// in the message) on failure.
Status WriteAll(int fd, std::span<const uint8_t> data);
// pread until full or end of file.
Result<size_t> PreadFull(int fd, std::span<uint8_t> out, uint64_t offset);

// Reads a whole small file (at most `max_size` bytes; kMalformed if larger).
Result<std::vector<uint8_t>> ReadSmallFile(const std::string& path, size_t max_size);

// Where a path's directory is, for temp files and directory fsync ("." for a bare name).
std::string DirName(const std::string& path);
std::string BaseName(const std::string& path);

// An output file that appears under its final name only when Commit() succeeds.
//
// Create() makes a temp file with an unpredictable name in the target's directory, with
// O_CREAT|O_EXCL (so never through a planted symlink) and mode 0600 from the start. Commit()
// fsyncs it, sets the final mode, renames it over (or, without overwrite, next to) the
// target atomically, and fsyncs the directory. If the object is destroyed without a
// successful Commit(), or the process gets SIGINT/SIGTERM/SIGHUP while it exists (see
// InstallTempFileCleanupHandlers), the temp file is removed: no partial file is ever left
// under the final name.
class AtomicFile {
 public:
  // kNo: an existing target is refused, at Create (an early error, before any work is done)
  // and again, atomically, at Commit. kNoAtCommit: refused at Commit only; for a directory
  // this process has just created, where the check at Create could find nothing and would
  // cost a path lookup per file. kYes: the target is replaced (not if it is a directory).
  enum class Overwrite { kNo, kNoAtCommit, kYes };

  // kAlreadyExists if the target exists and overwrite is kNo, or is a directory and overwrite
  // is kYes (kNoAtCommit finds either only at Commit); kIo if the directory is not writable.
  static Result<AtomicFile> Create(const std::string& final_path, Overwrite overwrite,
                                   mode_t final_mode = 0600);

  AtomicFile(AtomicFile&& other) noexcept;
  AtomicFile& operator=(AtomicFile&& other) noexcept;
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();  // removes the temp file unless committed

  int fd() const { return fd_; }
  const std::string& final_path() const { return final_path_; }
  const std::string& temp_path() const { return temp_path_; }
  Status Write(std::span<const uint8_t> data) { return WriteAll(fd_, data); }
  Status Commit();
  void Abort();  // removes the temp file now

 private:
  friend class AtomicBatch;
  AtomicFile() = default;
  // Commit() in steps, for AtomicBatch: final mode; rename into place (no fsync of either).
  Status SetFinalMode();
  Status RenameIntoPlace();
  std::string final_path_;
  std::string temp_path_;
  int fd_ = -1;
  int slot_ = -1;  // index in the signal-cleanup registry
  mode_t final_mode_ = 0600;
  Overwrite overwrite_ = Overwrite::kNo;
  bool committed_ = false;
};

// Commits many AtomicFiles with one data sync instead of one fsync per file, as dpkg does when
// it unpacks a package: written files wait, still under their temp names; Flush() makes all of
// them durable at once (syncfs(2) on each filesystem involved; fsync of each file if syncfs
// fails or cannot report errors, see SyncfsReportsErrors), then renames them into place in the
// order they were added, then fsyncs each directory once. Every AtomicFile guarantee still holds
// per file: a final name appears only with complete, durable content; a crash or signal leaves at
// most temp files (removed on SIGINT/SIGTERM/SIGHUP like any AtomicFile temp). What changes is only
// when each file appears: at the next Flush (every `max_groups` groups, and at the end) rather than
// at once.
//
// With `overlap`, a full batch is committed on a thread of its own while the caller writes the
// next one, so that the caller's work goes on during the data sync: at most one batch is in
// flight, so up to 2 * max_groups groups are pending, and their callbacks run on that thread
// (they must be thread-safe). Without a thread to be had, the batch is committed in Add.
class AtomicBatch {
 public:
  // Called once per group, after its files were renamed and their directories fsynced (ok),
  // or with the first error (the group's remaining temp files are removed).
  using Done = std::function<void(const Status&)>;
  explicit AtomicBatch(size_t max_groups = 64, bool overlap = false)
      : max_groups_(max_groups), overlap_(overlap) {}
  AtomicBatch(const AtomicBatch&) = delete;
  AtomicBatch& operator=(const AtomicBatch&) = delete;
  // Waits for a batch in flight, which completes (callbacks called; what its thread threw is
  // dropped: call Flush to see it); the files still pending are removed, never renamed, and
  // their callbacks are not called.
  ~AtomicBatch();

  // Takes fully written files that belong together (e.g. a payload, then its sidecar header):
  // they are renamed in this order, and a failure stops the rest of the group. Commits when
  // max_groups groups are pending (first waiting for a batch in flight). Rethrows what the
  // commit thread threw (e.g. bad_alloc), if anything.
  void Add(std::vector<AtomicFile> group, Done done);
  // Waits for a batch in flight, then commits the rest; rethrows as Add.
  void Flush();
  size_t pending() const { return groups_.size(); }

 private:
  struct Group {
    std::vector<AtomicFile> files;
    Done done;
    Status status;
  };
  static void Commit(std::vector<Group>& groups);
  void WaitInFlight();
  size_t max_groups_;
  bool overlap_;
  std::vector<Group> groups_;
  std::vector<Group> in_flight_;  // the batch being committed by committer_
  std::thread committer_;
  std::exception_ptr committer_error_;
};

// Whether syncfs(2) reports writeback errors on a kernel of this release (uname -r): only
// since Linux 5.8. Before that it returned 0 even when data failed to reach the disk, so
// AtomicBatch then fsyncs every file instead.
bool SyncfsReportsErrors(std::string_view kernel_release);

// Writes `data` to `path` atomically (AtomicFile in one call).
Status WriteFileAtomically(const std::string& path, std::span<const uint8_t> data,
                           AtomicFile::Overwrite overwrite, mode_t mode = 0600);

// Installs handlers for SIGINT, SIGTERM and SIGHUP that unlink every live AtomicFile temp
// file and then re-raise the signal with its default action (so the exit status still says
// "killed by signal"). SIGPIPE is ignored so that a closed pipe becomes an EPIPE write error.
// Call once at program start.
void InstallTempFileCleanupHandlers();

// fsync a directory (after creating or renaming an entry in it).
Status FsyncDirectory(const std::string& dir);

}  // namespace keyhold

#endif  // KEYHOLD_CRYPTO_FILE_IO_H_
