#include "paths.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string_view>
#include <unordered_map>

#include "keyhold/crypto/file_io.h"

namespace keyhold::cli {
namespace fs = std::filesystem;

namespace {

struct DirCloser {
  void operator()(DIR* d) const { closedir(d); }
};

struct DirEntry {
  std::string name;
  unsigned char type;  // DT_REG, DT_DIR, DT_LNK, other DT_ values, or kVanished
};
// An entry that was gone when its type had to be looked up (DT_UNKNOWN, then ENOENT).
constexpr unsigned char kVanished = 0xff;

Error WalkError(const std::string& path, int err) {
  return Error(ErrorCode::kIo, path + ": " + std::strerror(err));
}

// Lists the directory `rel` beneath the walk's root (`dir` is its name in messages), sorted by
// name, with each entry's type from readdir's d_type: no stat per entry, except on a file
// system that reports no type (DT_UNKNOWN), where one lstat of the entry (fstatat,
// AT_SYMLINK_NOFOLLOW) gives it. The directory is closed before the caller recurses, so a
// deep tree holds one descriptor beside the root's. A subdirectory that is no longer a
// directory beneath the root when it is opened (replaced by a link, or a file, or removed)
// gives nullopt: the caller reports it as skipped and walks on.
Result<std::optional<std::vector<DirEntry>>> ListDir(const std::string& dir, const WalkRoot& root,
                                                     const std::string& rel) {
  const int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
  const int fd = OpenBeneath(root.fd.get(), rel.empty() ? "." : rel, flags);
  if (fd < 0) {
    const int e = errno;
    if (!rel.empty() && (e == ELOOP || e == ENOTDIR || e == ENOENT)) {
      return std::optional<std::vector<DirEntry>>();
    }
    return WalkError(dir, e);
  }
  std::unique_ptr<DIR, DirCloser> d(fdopendir(fd));
  if (!d) {
    const int e = errno;
    close(fd);
    return WalkError(dir, e);
  }
  std::vector<DirEntry> entries;
  for (;;) {
    errno = 0;
    const dirent* de = readdir(d.get());
    if (de == nullptr) {
      if (errno != 0) return WalkError(dir, errno);
      break;
    }
    const std::string_view name = de->d_name;
    if (name == "." || name == "..") continue;
    unsigned char type = de->d_type;
    if (type == DT_UNKNOWN) {
      struct stat st;
      if (fstatat(dirfd(d.get()), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        const int e = errno;
        if (e != ENOENT) return WalkError((fs::path(dir) / de->d_name).string(), e);
        type = kVanished;
      } else {
        type = S_ISREG(st.st_mode)   ? DT_REG
               : S_ISDIR(st.st_mode) ? DT_DIR
               : S_ISLNK(st.st_mode) ? DT_LNK
                                     : DT_UNKNOWN;
      }
    }
    entries.push_back({std::string(name), type});
  }
  std::sort(entries.begin(), entries.end(),
            [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
  return std::optional<std::vector<DirEntry>>(std::move(entries));
}

// `rel` is `dir` relative to the directory named on the command line, built during the walk
// (fs::relative would canonicalize both paths: a getcwd and a readlink per path component,
// for every file of the tree).
Status Walk(const std::string& dir, const std::shared_ptr<const WalkRoot>& root,
            const fs::path& rel, bool skip_sidecars, Expansion& out) {
  KH_ASSIGN_OR_RETURN(std::optional<std::vector<DirEntry>> listed,
                      ListDir(dir, *root, rel.string()));
  if (!listed) {
    out.skipped.push_back(dir + " (changed during the walk, not read)");
    return {};
  }
  const std::vector<DirEntry>& entries = *listed;
  // Whether this directory lists `name` (of any type): the listing is sorted by name.
  auto listed_name = [&](std::string_view name) {
    auto it = std::lower_bound(entries.begin(), entries.end(), name,
                               [](const DirEntry& e, std::string_view n) { return e.name < n; });
    return it != entries.end() && it->name == name;
  };
  for (const DirEntry& e : entries) {
    const std::string path = (fs::path(dir) / e.name).string();  // as directory_iterator did
    if (e.type == DT_LNK) {
      out.skipped.push_back(path + " (symbolic link, not followed)");
    } else if (e.type == DT_DIR) {
      KH_RETURN_IF_ERROR(Walk(path, root, rel / e.name, skip_sidecars, out));
    } else if (e.type == DT_REG) {
      // Our own temp files from an interrupted run are not inputs.
      if (e.name.find(".kh-tmp-") != std::string::npos) continue;
      // The header of a detached object NAME is NAME.hdr beside it: not an object of its own.
      // Decided from the listing, without a stat that a planted link loop could fail.
      const std::string_view n = e.name;
      if (skip_sidecars && n.size() > 4 && n.substr(n.size() - 4) == ".hdr" &&
          listed_name(n.substr(0, n.size() - 4))) {
        continue;
      }
      // The type is a snapshot: the file is opened later beneath the root, without following
      // a link or waiting on a FIFO, and must still be a regular file (InputFile::root).
      out.files.push_back({path, (rel / e.name).string(), root});
    } else if (e.type == kVanished) {
      out.skipped.push_back(path + " (removed during the walk)");
    } else {
      out.skipped.push_back(path + " (not a regular file)");
    }
  }
  return {};
}

}  // namespace

int OpenBeneath(int dir_fd, const std::string& rel, int flags) {
  open_how how{};
  how.flags = static_cast<__u64>(static_cast<unsigned int>(flags | O_NOFOLLOW | O_CLOEXEC));
  how.resolve = static_cast<__u64>(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS);
  // Whether openat2 was found missing: asked once per process, not before every open.
  static std::atomic<bool> no_openat2{false};
  for (int attempt = 0; attempt < 8 && !no_openat2.load(std::memory_order_relaxed); ++attempt) {
    const long fd = syscall(SYS_openat2, dir_fd, rel.c_str(), &how, sizeof how);
    if (fd >= 0) return static_cast<int>(fd);
    if (errno == EAGAIN) continue;  // a concurrent rename made the kernel's check inconclusive
    if (errno != ENOSYS && errno != EPERM) return -1;
    // No openat2 here (EPERM: a seccomp filter that refuses unknown system calls).
    no_openat2.store(true, std::memory_order_relaxed);
  }
  // One component at a time, each opened with O_NOFOLLOW beneath the previous one. `rel` is
  // built by the walk from directory entries: no "..", no empty component, no leading '/'.
  int cur = dir_fd;
  size_t start = 0;
  for (;;) {
    const size_t slash = rel.find('/', start);
    const std::string part =
        rel.substr(start, slash == std::string::npos ? rel.npos : slash - start);
    const bool last = slash == std::string::npos;
    const int next = openat(
        cur, part.c_str(),
        last ? flags | O_NOFOLLOW | O_CLOEXEC : O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int saved = errno;
    struct stat st;
    if (next < 0 && saved == ENOTDIR && !last &&
        fstatat(cur, part.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
      saved = ELOOP;  // O_DIRECTORY | O_NOFOLLOW on a link says ENOTDIR; openat2 says ELOOP
    }
    if (cur != dir_fd) close(cur);
    errno = saved;
    if (next < 0 || last) return next;
    cur = next;
    start = slash + 1;
  }
}

Result<Expansion> ExpandInputs(const std::vector<std::string>& inputs, bool skip_sidecars,
                               bool hold_roots) {
  Expansion out;
  for (const auto& in : inputs) {
    if (in == "-") {
      out.files.push_back({"-", "-", nullptr});
      continue;
    }
    struct stat st;
    if (stat(in.c_str(), &st) != 0) {
      if (errno == ENOENT) return Error(ErrorCode::kNotFound, in + ": no such file or directory");
      return Error(ErrorCode::kIo, in + ": " + std::strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) {
      out.had_directory = true;
      // The named directory itself is opened as named (it may be a link); what is beneath
      // it is opened only through this descriptor.
      const int fd = open(in.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) return WalkError(in, errno);
      auto root = std::make_shared<WalkRoot>();
      root->fd = UniqueFd(fd);
      const size_t first = out.files.size();
      KH_RETURN_IF_ERROR(Walk(in, root, fs::path(), skip_sidecars, out));
      if (hold_roots) {
        ++out.roots;
      } else {
        for (size_t i = first; i < out.files.size(); ++i) out.files[i].root.reset();
      }
    } else {
      out.files.push_back({in, fs::path(in).filename().string(), nullptr});
    }
  }
  return out;
}

Status MakeParentDirs(const std::string& root, const std::string& path) {
  auto ensure_dir = [](const std::string& dir) -> Status {
    struct stat st;
    if (lstat(dir.c_str(), &st) == 0) {
      if (S_ISLNK(st.st_mode)) {
        return Error(ErrorCode::kInvalidArgument,
                     dir +
                         ": is a symbolic link inside the output directory; refusing to "
                         "write through it");
      }
      if (!S_ISDIR(st.st_mode)) return Error(ErrorCode::kIo, dir + ": not a directory");
      return {};
    }
    if (mkdir(dir.c_str(), 0777) != 0 && errno != EEXIST) {
      return Error(ErrorCode::kIo, "cannot create directory " + dir + ": " + std::strerror(errno));
    }
    return {};
  };
  // The root itself may be anything the user chose (even a link they made); what lies
  // below it is checked component by component.
  KH_RETURN_IF_ERROR(CreateOutputRoot(root));
  fs::path rel = fs::path(path).lexically_relative(root).parent_path();
  std::string dir = root;
  for (const auto& part : rel) {
    if (part == ".." || part == ".") {
      return Error(ErrorCode::kInvalidArgument, "output path escapes " + root + ": " + path);
    }
    dir += "/" + part.string();
    KH_RETURN_IF_ERROR(ensure_dir(dir));
  }
  return {};
}

Result<bool> CreateOutputRoot(const std::string& root) {
  // Its parents like mkdir -p, then one mkdir(2) of `root` exactly as given: true only if that
  // call made it. (std::filesystem::create_directories says true for "old/new/..", an old
  // directory, after making "new"; mkdir("old/new/..") fails with EEXIST.)
  std::string exact = root;
  while (exact.size() > 1 && exact.back() == '/') exact.pop_back();
  const fs::path parent = fs::path(exact).parent_path();
  std::error_code ec;
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (ec) return Error(ErrorCode::kIo, "cannot create directory " + root + ": " + ec.message());
  if (mkdir(exact.c_str(), 0777) == 0) return true;
  const int err = errno;
  struct stat st;
  if (err == EEXIST && stat(exact.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return false;
  return Error(ErrorCode::kIo,
               "cannot create directory " + root + ": " +
                   (err == EEXIST ? "a file of that name exists" : std::strerror(err)));
}

Status OutputDirs::Prepare(const std::string& path) {
  std::string dir = DirName(path);
  struct stat st;
  if (dir == last_ && stat(dir.c_str(), &st) == 0 && st.st_dev == last_dev_ &&
      st.st_ino == last_ino_) {
    return {};
  }
  last_.clear();
  KH_RETURN_IF_ERROR(MakeParentDirs(root_, path));
  if (stat(dir.c_str(), &st) != 0) {
    return Error(ErrorCode::kIo, dir + ": " + std::strerror(errno));
  }
  last_ = std::move(dir);
  last_dev_ = st.st_dev;
  last_ino_ = st.st_ino;
  return {};
}

Status CheckDistinctOutputs(const std::vector<InputFile>& files,
                            const std::vector<std::string>& outputs) {
  std::unordered_map<std::string, size_t> seen;
  for (size_t i = 0; i < outputs.size() && i < files.size(); ++i) {
    // Plain string comparison: the outputs are built from clean relative names (no ".", ".."
    // or empty parts); normalizing would make "DIR/a/.." equal to "DIR/".
    auto [it, fresh] = seen.emplace(outputs[i], i);
    if (!fresh) {
      return Error(ErrorCode::kInvalidArgument,
                   files[it->second].path + " and " + files[i].path + " would both be written to " +
                       outputs[i],
                   "give their common parent directory instead, or run one command for each");
    }
  }
  return {};
}

Result<envelope::EncryptionContext> ParseContextArgs(const std::vector<std::string>& args,
                                                     const char* flag) {
  envelope::EncryptionContext ctx;
  for (const auto& a : args) {
    size_t eq = a.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Error(ErrorCode::kInvalidArgument,
                   std::string(flag) + " expects KEY=VALUE, got \"" + a + "\"");
    }
    std::string key = a.substr(0, eq), value = a.substr(eq + 1);
    if (!ctx.emplace(key, value).second) {
      return Error(ErrorCode::kInvalidArgument,
                   std::string(flag) + ": key \"" + key + "\" given twice");
    }
  }
  auto encoded = envelope::EncodeContext(ctx);
  if (!encoded.ok()) {
    return Error(ErrorCode::kInvalidArgument, std::string(flag) + ": " + encoded.error().message);
  }
  return ctx;
}

}  // namespace keyhold::cli
