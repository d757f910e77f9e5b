#include "paths.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <unordered_map>

#include "keyhold/crypto/file_io.h"

namespace keyhold::cli {
namespace fs = std::filesystem;

namespace {

// `rel` is `dir` relative to the directory named on the command line, built during the walk
// (fs::relative would canonicalize both paths: a getcwd and a readlink per path component,
// for every file of the tree).
Status Walk(const fs::path& dir, const fs::path& rel, bool skip_sidecars, Expansion& out) {
  std::error_code ec;
  std::vector<fs::directory_entry> entries;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    entries.push_back(*it);
  }
  if (ec) return Error(ErrorCode::kIo, dir.string() + ": " + ec.message());
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.path() < b.path(); });
  for (const auto& e : entries) {
    // The entry's type as readdir(3) reported it (d_type, cached in the entry): no stat per
    // entry. Only on a file system that reports no type do these calls stat the path. The
    // type is a snapshot either way, as a stat was; the input is opened later by name.
    fs::file_type type = fs::file_type::unknown;
    if (e.is_symlink(ec)) {
      type = fs::file_type::symlink;
    } else if (!ec && e.is_directory(ec)) {
      type = fs::file_type::directory;
    } else if (!ec && e.is_regular_file(ec)) {
      type = fs::file_type::regular;
    }
    if (ec) return Error(ErrorCode::kIo, e.path().string() + ": " + ec.message());
    if (type == fs::file_type::symlink) {
      out.skipped.push_back(e.path().string() + " (symbolic link, not followed)");
    } else if (type == fs::file_type::directory) {
      KH_RETURN_IF_ERROR(Walk(e.path(), rel / e.path().filename(), skip_sidecars, out));
    } else if (type == fs::file_type::regular) {
      const std::string name = e.path().string();
      // Our own temp files from an interrupted run are not inputs.
      if (e.path().filename().string().find(".kh-tmp-") != std::string::npos) continue;
      if (skip_sidecars && name.size() > 4 && name.compare(name.size() - 4, 4, ".hdr") == 0 &&
          fs::exists(name.substr(0, name.size() - 4))) {
        continue;
      }
      out.files.push_back({name, (rel / e.path().filename()).string()});
    } else {
      out.skipped.push_back(e.path().string() + " (not a regular file)");
    }
  }
  return {};
}

}  // namespace

Result<Expansion> ExpandInputs(const std::vector<std::string>& inputs, bool skip_sidecars) {
  Expansion out;
  for (const auto& in : inputs) {
    if (in == "-") {
      out.files.push_back({"-", "-"});
      continue;
    }
    struct stat st;
    if (stat(in.c_str(), &st) != 0) {
      if (errno == ENOENT) return Error(ErrorCode::kNotFound, in + ": no such file or directory");
      return Error(ErrorCode::kIo, in + ": " + std::strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) {
      out.had_directory = true;
      KH_RETURN_IF_ERROR(Walk(fs::path(in), fs::path(), skip_sidecars, out));
    } else {
      out.files.push_back({in, fs::path(in).filename().string()});
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
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return Error(ErrorCode::kIo, "cannot create directory " + root + ": " + ec.message());
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
