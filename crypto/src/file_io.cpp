#include "keyhold/crypto/file_io.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <exception>
#include <system_error>
#include <utility>

#include "internal/temp_registry.h"
#include "keyhold/crypto/random.h"
#include "keyhold/crypto/secret_bytes.h"

namespace keyhold {
namespace {

std::string ErrnoText(int err) { return std::strerror(err); }

Error IoError(const std::string& what, int err) {
  std::string hint;
  if (err == ENOSPC) hint = "free some disk space and try again";
  if (err == EFBIG) hint = "the file size limit (ulimit -f) or the filesystem's limit was reached";
  if (err == EACCES || err == EPERM) hint = "check the permissions of the file and its directory";
  return Error(ErrorCode::kIo, what + ": " + ErrnoText(err), hint);
}

// A temp file's name needs unpredictable bytes, not secret ones: they are drawn a pool at a
// time, one getrandom(2) per 455 names instead of one per name (10,000 files of 4 KiB with
// encrypt -O made 20,000 calls). keyhold never forks. A child of fork(2) would repeat its
// parent's next names: O_EXCL refuses them and Create draws again, but a signal in the child
// between registering such a name and the refused open would unlink the parent's file.
void NameRandomBytes(std::span<uint8_t> out) {
  thread_local std::array<uint8_t, 4095> pool;
  thread_local size_t used = pool.size();
  if (pool.size() - used < out.size()) {
    RandomBytes(pool);
    used = 0;
  }
  std::memcpy(out.data(), pool.data() + used, out.size());
  used += out.size();
}

// 12 characters of [A-Za-z0-9_-]: 72 random bits, so a name is never guessed in advance
// and two writers in one directory never collide in practice (O_EXCL still decides).
std::string RandomNameSuffix() {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
  uint8_t r[9];
  NameRandomBytes(r);
  std::string out(12, '\0');
  for (size_t i = 0; i < 3; ++i) {
    const uint32_t v = (uint32_t{r[3 * i]} << 16) | (uint32_t{r[3 * i + 1]} << 8) | r[3 * i + 2];
    for (size_t j = 0; j < 4; ++j) out[4 * i + j] = kAlphabet[(v >> (18 - 6 * j)) & 63];
  }
  return out;
}

void UnlinkForSignal(const char* path, void*) { unlink(path); }

extern "C" void CleanupAndReraise(int sig) {
  // Other threads keep running during the handler: close the creation gate first, so the
  // scan sees every temp file that exists or will (see temp_registry.h).
  internal::StopTempCreationForSignal();
  internal::ForEachRegisteredTemp(UnlinkForSignal, nullptr);
  signal(sig, SIG_DFL);
  raise(sig);
}

}  // namespace

Result<size_t> ReadFull(int fd, std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = read(fd, out.data() + done, out.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError("read failed", errno);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

Result<size_t> PreadFull(int fd, std::span<uint8_t> out, uint64_t offset) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError("read failed", errno);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

Status WriteAll(int fd, std::span<const uint8_t> data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError("write failed", errno);
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

Result<std::vector<uint8_t>> ReadSmallFile(const std::string& path, size_t max_size) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return Error(ErrorCode::kNotFound, path + ": no such file");
    return IoError(path, err);
  }
  // Grow in blocks rather than allocating max_size + 1 up front: that sum wraps to 0 for
  // SIZE_MAX (the file then read as empty), and a generous limit must not cost its size in
  // memory (nor throw std::bad_alloc across the API). Key files are read here, so the buffer
  // wipes every block it frees while growing.
  constexpr size_t kBlock = 16 * 1024;
  WipingBuffer buf;
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 0) {
    const auto size = static_cast<uint64_t>(st.st_size);
    if (size > max_size) {
      close(fd);
      return Error(ErrorCode::kMalformed,
                   path + ": larger than the limit of " + std::to_string(max_size) + " bytes");
    }
    // Only a hint (the file may change while it is read), capped so it never over-allocates.
    buf.reserve(static_cast<size_t>(std::min<uint64_t>(size, 64 * kBlock)) + 1);
  }
  for (;;) {
    const size_t have = buf.size();  // never above max_size here
    const size_t left = max_size - have;
    // One byte past the limit is enough to tell that the file is too large.
    const size_t want = left < kBlock ? left + 1 : kBlock;
    buf.resize(have + want);
    auto n = ReadFull(fd, std::span<uint8_t>(buf).subspan(have, want));
    if (!n.ok()) {
      close(fd);
      return std::move(n).error();
    }
    buf.resize(have + *n);
    if (buf.size() > max_size) {
      close(fd);
      return Error(ErrorCode::kMalformed,
                   path + ": larger than the limit of " + std::to_string(max_size) + " bytes");
    }
    if (*n < want) break;  // end of file
  }
  close(fd);
  return std::vector<uint8_t>(buf.begin(), buf.end());
}

std::string DirName(const std::string& path) {
  size_t pos = path.find_last_of('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

std::string BaseName(const std::string& path) {
  size_t pos = path.find_last_of('/');
  return pos == std::string::npos ? path : path.substr(pos + 1);
}

Status FsyncDirectory(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return IoError("cannot open directory " + dir, errno);
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  // Some filesystems do not support fsync on directories; that is not a data-loss error.
  if (rc != 0 && err != EINVAL && err != EROFS) return IoError("fsync " + dir, err);
  return {};
}

Result<AtomicFile> AtomicFile::Create(const std::string& final_path, Overwrite overwrite,
                                      mode_t final_mode) {
  if (final_path.empty()) return Error(ErrorCode::kInvalidArgument, "empty output path");
  struct stat st;
  if (overwrite != Overwrite::kNoAtCommit && lstat(final_path.c_str(), &st) == 0) {
    if (overwrite == Overwrite::kNo) {
      return Error(ErrorCode::kAlreadyExists, final_path + ": already exists",
                   "use --force to overwrite it, or choose another output name");
    }
    if (S_ISDIR(st.st_mode)) {
      return Error(ErrorCode::kAlreadyExists, final_path + ": is a directory");
    }
  }
  AtomicFile f;
  f.final_path_ = final_path;
  f.final_mode_ = final_mode;
  f.overwrite_ = overwrite;
  std::string dir = DirName(final_path);
  // Same directory as the target, so rename(2) is atomic; hidden, unpredictable suffix.
  std::string prefix;
  if (final_path.find('/') != std::string::npos) {
    prefix = (dir == "/" ? std::string() : dir) + "/";
  }
  prefix += ".";
  prefix += BaseName(final_path);
  prefix += ".kh-tmp-";
  // The name is registered for signal cleanup before the file exists, so a signal at any
  // moment finds every file that exists. Unlinking a name not created yet is harmless; a
  // name that exists already (EEXIST, then unregistered) is someone else's file, which a
  // signal in that window would remove: 72 random bits make that chance 2^-72 per attempt.
  // O_CREAT|O_EXCL with mode 0600: never follows a planted symlink, never reuses a file.
  internal::BeginTempCreation();
  struct GateExit {
    ~GateExit() { internal::EndTempCreation(); }
  } gate_exit;
  for (int attempt = 0; attempt < 16; ++attempt) {
    std::string path = prefix + RandomNameSuffix();
    const int slot = internal::RegisterTemp(path);
    const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      f.fd_ = fd;
      f.temp_path_ = std::move(path);
      f.slot_ = slot;
      return f;
    }
    const int err = errno;
    internal::UnregisterTemp(slot);
    if (err != EEXIST) return IoError("cannot create a temporary file in " + dir, err);
  }
  return IoError("cannot create a temporary file in " + dir, EEXIST);
}

AtomicFile::AtomicFile(AtomicFile&& o) noexcept
    : final_path_(std::move(o.final_path_)),
      temp_path_(std::move(o.temp_path_)),
      fd_(o.fd_),
      slot_(o.slot_),
      final_mode_(o.final_mode_),
      overwrite_(o.overwrite_),
      committed_(o.committed_) {
  o.fd_ = -1;
  o.slot_ = -1;
  o.committed_ = true;
}

AtomicFile& AtomicFile::operator=(AtomicFile&& o) noexcept {
  if (this != &o) {
    Abort();
    final_path_ = std::move(o.final_path_);
    temp_path_ = std::move(o.temp_path_);
    fd_ = o.fd_;
    slot_ = o.slot_;
    final_mode_ = o.final_mode_;
    overwrite_ = o.overwrite_;
    committed_ = o.committed_;
    o.fd_ = -1;
    o.slot_ = -1;
    o.committed_ = true;
  }
  return *this;
}

AtomicFile::~AtomicFile() { Abort(); }

void AtomicFile::Abort() {
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  if (!committed_ && !temp_path_.empty()) {
    unlink(temp_path_.c_str());
    temp_path_.clear();
  }
  internal::UnregisterTemp(slot_);
  slot_ = -1;
}

Status AtomicFile::SetFinalMode() {
  if (fd_ < 0 || committed_) return Error(ErrorCode::kInternal, "atomic file already closed");
  if (fchmod(fd_, final_mode_) != 0) {
    Status s = IoError("chmod " + temp_path_, errno);
    Abort();
    return s;
  }
  return {};
}

Status AtomicFile::RenameIntoPlace() {
  if (fd_ < 0 || committed_) return Error(ErrorCode::kInternal, "atomic file already closed");
  if (close(fd_) != 0) {
    fd_ = -1;
    Status s = IoError("close " + final_path_, errno);
    Abort();
    return s;
  }
  fd_ = -1;
  int rc;
  if (overwrite_ == Overwrite::kYes) {
    rc = rename(temp_path_.c_str(), final_path_.c_str());
  } else {
    rc = renameat2(AT_FDCWD, temp_path_.c_str(), AT_FDCWD, final_path_.c_str(), RENAME_NOREPLACE);
    if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
      // Filesystem without RENAME_NOREPLACE: link(2) fails if the name exists.
      rc = link(temp_path_.c_str(), final_path_.c_str());
      if (rc == 0) unlink(temp_path_.c_str());
    }
  }
  if (rc != 0) {
    int err = errno;
    Abort();
    if (err == EEXIST) {
      struct stat st;
      if (lstat(final_path_.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        return Error(ErrorCode::kAlreadyExists, final_path_ + ": is a directory",
                     "choose another output name");
      }
      return Error(ErrorCode::kAlreadyExists, final_path_ + ": already exists",
                   "use --force to overwrite it, or choose another output name");
    }
    return IoError("rename to " + final_path_, err);
  }
  committed_ = true;
  internal::UnregisterTemp(slot_);
  slot_ = -1;
  return {};
}

Status AtomicFile::Commit() {
  KH_RETURN_IF_ERROR(SetFinalMode());
  if (fsync(fd_) != 0) {
    Status s = IoError("fsync " + final_path_, errno);
    Abort();
    return s;
  }
  KH_RETURN_IF_ERROR(RenameIntoPlace());
  return FsyncDirectory(DirName(final_path_));
}

AtomicBatch::~AtomicBatch() {
  if (committer_.joinable()) committer_.join();  // its exception, if any, is dropped
  for (auto& g : groups_) {
    for (auto& f : g.files) f.Abort();
  }
}

void AtomicBatch::WaitInFlight() {
  if (committer_.joinable()) committer_.join();
  in_flight_.clear();  // committed, or aborted by Commit
  if (committer_error_) std::rethrow_exception(std::exchange(committer_error_, nullptr));
}

void AtomicBatch::Add(std::vector<AtomicFile> group, Done done) {
  groups_.push_back(Group{std::move(group), std::move(done), {}});
  if (groups_.size() < max_groups_) return;
  if (!overlap_) return Flush();
  WaitInFlight();
  in_flight_ = std::exchange(groups_, {});
  try {
    committer_ = std::thread([this] {
      try {
        Commit(in_flight_);
      } catch (...) {
        committer_error_ = std::current_exception();  // read after the join
      }
    });
  } catch (const std::system_error&) {
    Commit(in_flight_);  // no thread to be had: here, as without overlap
    in_flight_.clear();
  }
}

void AtomicBatch::Flush() {
  WaitInFlight();
  if (groups_.empty()) return;
  std::vector<Group> groups = std::exchange(groups_, {});
  Commit(groups);
}

void AtomicBatch::Commit(std::vector<Group>& groups) {
  // 1. Final modes; then one syncfs per filesystem, or an fsync per file where that fails.
  // A file is on its directory's filesystem, so consecutive files of one directory (the
  // usual case: a tree is walked directory by directory) need one fstat between them.
  std::vector<std::pair<dev_t, int>> filesystems;  // device, an fd on it
  std::string last_dir;
  bool have_last = false;
  for (auto& g : groups) {
    for (auto& f : g.files) {
      if (!g.status.ok()) break;
      g.status = f.SetFinalMode();
      if (!g.status.ok()) break;
      std::string dir = DirName(f.final_path_);
      if (have_last && dir == last_dir) continue;
      struct stat st;
      if (fstat(f.fd(), &st) != 0) {
        g.status = IoError("fstat " + f.temp_path_, errno);
        break;
      }
      last_dir = std::move(dir);
      have_last = true;
      bool seen = false;
      for (const auto& fs : filesystems) seen = seen || fs.first == st.st_dev;
      if (!seen) filesystems.emplace_back(st.st_dev, f.fd());
    }
  }
  static const bool syncfs_reports_errors = [] {
    struct utsname u;
    return uname(&u) == 0 && SyncfsReportsErrors(u.release);
  }();
  std::vector<dev_t> unsynced;
  for (const auto& [dev, fd] : filesystems) {
    if (!syncfs_reports_errors || syncfs(fd) != 0) unsynced.push_back(dev);
  }
  for (auto& g : groups) {
    for (auto& f : g.files) {
      if (!g.status.ok() || unsynced.empty()) break;
      struct stat st;
      if (fstat(f.fd(), &st) == 0 &&
          std::find(unsynced.begin(), unsynced.end(), st.st_dev) == unsynced.end()) {
        continue;
      }
      if (fsync(f.fd()) != 0) g.status = IoError("fsync " + f.final_path_, errno);
    }
  }
  // 2. Renames, in order; a failure stops the rest of its group.
  std::vector<std::string> dirs;
  for (auto& g : groups) {
    for (auto& f : g.files) {
      if (!g.status.ok()) {
        f.Abort();
        continue;
      }
      const std::string dir = DirName(f.final_path_);
      g.status = f.RenameIntoPlace();
      if (g.status.ok() && std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) {
        dirs.push_back(dir);
      }
    }
  }
  // 3. Each directory once; a failure there is reported for every group renamed into it.
  std::vector<std::pair<std::string, Status>> dir_status;
  for (const auto& d : dirs) dir_status.emplace_back(d, FsyncDirectory(d));
  // 4. Every group's callback, even after one throws: its files are in place by now, and a
  // caller counts and logs them in its callback. The first exception is rethrown after.
  std::exception_ptr thrown;
  for (auto& g : groups) {
    if (g.status.ok()) {
      for (const auto& f : g.files) {
        for (const auto& [d, s] : dir_status) {
          if (g.status.ok() && !s.ok() && d == DirName(f.final_path_)) g.status = s;
        }
      }
    }
    if (!g.done) continue;
    try {
      g.done(g.status);
    } catch (...) {
      if (!thrown) thrown = std::current_exception();
    }
  }
  if (thrown) std::rethrow_exception(thrown);
}

bool SyncfsReportsErrors(std::string_view release) {
  // "MAJOR.MINOR[.PATCH][-suffix]"; anything else is treated as an old kernel (fsync per file:
  // slower, never wrong).
  unsigned major = 0, minor = 0;
  size_t i = 0;
  auto number = [&](unsigned& out) {
    const size_t start = i;
    while (i < release.size() && release[i] >= '0' && release[i] <= '9' && i - start < 6) {
      out = out * 10 + static_cast<unsigned>(release[i] - '0');
      ++i;
    }
    return i > start;
  };
  if (!number(major) || i >= release.size() || release[i] != '.') return false;
  ++i;
  if (!number(minor)) return false;
  return major > 5 || (major == 5 && minor >= 8);
}

Status WriteFileAtomically(const std::string& path, std::span<const uint8_t> data,
                           AtomicFile::Overwrite overwrite, mode_t mode) {
  KH_ASSIGN_OR_RETURN(AtomicFile f, AtomicFile::Create(path, overwrite, mode));
  KH_RETURN_IF_ERROR(f.Write(data));
  return f.Commit();
}

void InstallTempFileCleanupHandlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = CleanupAndReraise;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

}  // namespace keyhold
