// File I/O with the guarantees keyhold promises: full reads and writes, and atomic creation
// of output files (temp file beside the target, fsync, rename, fsync the directory).
#ifndef KEYHOLD_CRYPTO_FILE_IO_H_
#define KEYHOLD_CRYPTO_FILE_IO_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
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
// O_EXCL|O_NOFOLLOW and mode 0600 from the start. Commit() fsyncs it, sets the final mode,
// renames it over (or, without overwrite, next to) the target atomically, and fsyncs the
// directory. If the object is destroyed without a successful Commit(), or the process gets
// SIGINT/SIGTERM/SIGHUP/SIGPIPE while it exists (see InstallTempFileCleanupHandlers), the
// temp file is removed: no partial file is ever left under the final name.
class AtomicFile {
 public:
  enum class Overwrite { kNo, kYes };

  // kAlreadyExists if the target exists and overwrite is kNo (checked again atomically at
  // Commit), kIo if the directory is not writable.
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
  AtomicFile() = default;
  std::string final_path_;
  std::string temp_path_;
  int fd_ = -1;
  int slot_ = -1;  // index in the signal-cleanup registry
  mode_t final_mode_ = 0600;
  Overwrite overwrite_ = Overwrite::kNo;
  bool committed_ = false;
};

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
