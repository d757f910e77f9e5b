// Expanding command-line inputs (files and directory trees) into a list of objects.
#ifndef KEYHOLD_CLI_PATHS_H_
#define KEYHOLD_CLI_PATHS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "keyhold/crypto/envelope.h"
#include "keyhold/crypto/result.h"
#include "unique_fd.h"

namespace keyhold::cli {

// A directory named on the command line, held open while its files are processed. The walk
// and every later open of a walked file resolve their path beneath it (OpenBeneath), so a
// directory of the tree that is replaced by a link meanwhile is refused, never followed.
struct WalkRoot {
  UniqueFd fd;
};

struct InputFile {
  std::string path;      // as shown in messages
  std::string relative;  // path relative to the directory given on the command line, or the
                         // base name for a file given directly
  // Set for a file found by walking a directory as a regular file: it is opened as
  // `relative` beneath `root`, without following a link in any component or waiting on a
  // FIFO, and refused unless it is still a regular file (it may have been replaced since).
  // A file named on the command line (no root) may be any stream (a FIFO, /dev/fd/N).
  std::shared_ptr<const WalkRoot> root;
};

// Opens `rel` (a relative path without "..") beneath the directory `dir_fd`, following no
// symbolic link in any component: openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS or,
// where the kernel has no openat2 (before 5.6, or a sandbox that filters it), one
// openat(O_NOFOLLOW) per component. Returns the descriptor, or -1 with errno (ELOOP: a link).
int OpenBeneath(int dir_fd, const std::string& rel, int flags);
// Expands files and directories (recursively, in sorted order, not following symbolic links;
// symlinks and special files are reported in `skipped`). `skip_sidecars` leaves out NAME.hdr
// files whose NAME exists (the header of a detached object is not an object of its own).
struct Expansion {
  std::vector<InputFile> files;
  std::vector<std::string> skipped;
  bool had_directory = false;
  size_t roots = 0;  // descriptors held open by the files' WalkRoots, one per named directory
};
// `hold_roots`: keep each named directory open in its files' InputFile::root, for opening
// them beneath it (encrypt, decrypt). Otherwise each is closed once walked and the files
// have no root (scan, doctor and the bulk commands open by path: SECURITY.md, Limits).
Result<Expansion> ExpandInputs(const std::vector<std::string>& inputs, bool skip_sidecars,
                               bool hold_roots = false);

// Creates the directories between `root` (the -O DIR, created if missing) and `path`'s
// parent, like mkdir -p, refusing any existing component that is a symbolic link or not a
// directory, so outputs cannot be redirected outside `root` through a planted link.
// `path` must be `root` + "/" + a relative path without "..".
Status MakeParentDirs(const std::string& root, const std::string& path);

// Creates the -O DIR `root` (and its parents) if missing, before a job's workers start:
// true if this call's mkdir(2) of `root` made it, so that every file below it will be the
// job's own and no earlier file can be in the way of an output
// (AtomicFile::Overwrite::kNoAtCommit). False for a directory that existed, whatever the path
// that names it ("old/new/.."). kIo if it cannot be made or is not a directory.
Result<bool> CreateOutputRoot(const std::string& root);

// MakeParentDirs for the outputs of one job (one per thread), without repeating the
// component-by-component check for every file of a directory: for the next output in the
// directory checked last, one stat(2) proves it is still that very directory (stat follows
// links, so a component swapped for a link since the check shows up as another inode), and
// anything else gets the full check again.
class OutputDirs {
 public:
  explicit OutputDirs(std::string root) : root_(std::move(root)) {}
  // As MakeParentDirs(root, path).
  Status Prepare(const std::string& path);

 private:
  std::string root_;
  std::string last_;  // the directory checked last, and its identity
  dev_t last_dev_ = 0;
  ino_t last_ino_ = 0;
};

// For a job writing into -O DIR, where outputs[i] is files[i]'s output: refuses the job
// (kInvalidArgument, naming both inputs) when two inputs would be written to the same output,
// e.g. d1/x and d2/x given as files, one file given twice, or x and x.out.kh to decrypt.
// With --force the later one would silently replace the earlier, and with parallel workers a
// detached object's payload and header could even come from different inputs.
Status CheckDistinctOutputs(const std::vector<InputFile>& files,
                            const std::vector<std::string>& outputs);

// Parses repeated KEY=VALUE arguments into a context (kInvalidArgument on a missing '=',
// a duplicate key, or a key or value that breaks the format's rules).
Result<envelope::EncryptionContext> ParseContextArgs(const std::vector<std::string>& args,
                                                     const char* flag);

}  // namespace keyhold::cli

#endif  // KEYHOLD_CLI_PATHS_H_
