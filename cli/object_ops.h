// Encrypting, decrypting, inspecting and rewrapping one object on disk or on a pipe, with the
// file-safety rules: named outputs are atomic, never a partial file under the final name.
#ifndef KEYHOLD_CLI_OBJECT_OPS_H_
#define KEYHOLD_CLI_OBJECT_OPS_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "keyhold/crypto/cobblestone.h"
#include "keyhold/crypto/envelope.h"
#include "keyhold/crypto/file_io.h"
#include "keyhold/crypto/result.h"
#include "paths.h"
#include "unique_fd.h"

namespace keyhold::cli {

constexpr const char* kObjectSuffix = ".kh";
constexpr const char* kSidecarSuffix = ".hdr";

inline bool IsStdio(const std::string& path) { return path.empty() || path == "-"; }
std::string SidecarPath(const std::string& object_path);

// Mode for new ciphertext files (0666 & ~umask, the umask as it was when the process
// started); plaintext outputs are always 0600.
mode_t CiphertextMode();

// Where an object's header and payload are. `detached` when NAME.hdr exists beside NAME and
// NAME does not start with a header itself.
struct ObjectLocation {
  std::string path;
  bool detached = false;
  std::string header_path;  // == path unless detached
  std::vector<uint8_t> header_bytes;
  uint64_t payload_offset = 0;  // in `path`
  uint64_t payload_size = 0;
  // `path`, opened once: read the payload through this fd, never by reopening the path, so
  // a file renamed over `path` meanwhile cannot be mixed with this header.
  UniqueFd fd;
  dev_t dev = 0;
  ino_t ino = 0;
};

enum class Follow { kSymlinks, kNoSymlinks };

// Where a walked input is opened from: `relative` beneath `root` (InputFile::root and
// InputFile::relative; the root outlives the command's requests). No root: an input named on
// the command line, opened by its path.
struct WalkedPath {
  const WalkRoot* root = nullptr;
  std::string relative;
};

// Reads the header of a regular-file object (in-file or detached). kNotFound, kIo,
// kInvalidArgument (a directory, FIFO or device; a symlink with kNoSymlinks — for commands
// that rewrite the object), kMalformed (no header; or both an in-file header and a NAME.hdr
// sidecar, which is ambiguous: one of them is stale or planted).
// A walked object (`walked` with a root) is opened beneath its root, its sidecar too, and never
// through a link (as kNoSymlinks, for every component below the root).
Result<ObjectLocation> LocateObject(const std::string& path, Follow follow = Follow::kSymlinks,
                                    const WalkedPath& walked = {});

// True if `path` still names the file `loc` was read from (same device and inode).
bool StillSameFile(const ObjectLocation& loc);

// Checks that the payload at loc's payload offset was made with the opened header's data key
// and immutable part (its Cobblestone key commitment), before a header is rewritten in front
// of it. kAuthFailed otherwise.
Status VerifyPayloadCommitment(const ObjectLocation& loc, const envelope::OpenedHeader& opened);

// Where a detached reencrypt keeps the old payload of PATH until the new header is in place
// (see ReencryptObject): two files cannot be replaced by one rename.
std::string ReencryptBackupPath(const std::string& path);

// For a detached object whose payload does not belong to its header: if an interrupted
// reencrypt left the old payload under ReencryptBackupPath and the header's key commitment
// matches it, returns that payload's location (offset 0, whole file). kAuthFailed otherwise.
Result<ObjectLocation> InterruptedReencryptPayload(const ObjectLocation& loc,
                                                   const envelope::OpenedHeader& opened,
                                                   const WalkedPath& walked = {});

struct EncryptRequest {
  std::string input;   // "-" or empty: stdin
  std::string output;  // "-" or empty: stdout
  bool detached = false;
  bool force = false;
  // The output lies below a -O DIR this command created (CreateOutputRoot): nothing can be in
  // its way, so an in-file object skips the early checks for an existing output and a stale
  // sidecar; the rename still refuses an existing output (AtomicFile::Overwrite::kNoAtCommit).
  // A detached object keeps them: its header, refused only at its rename, would leave the
  // payload, renamed first, without its header.
  bool fresh_output_dir = false;
  WalkedPath walked;  // set when the input came from a directory walk (InputFile::root)
  // Named outputs only: when set, the written files are handed to `batch` instead of being
  // committed one by one, and `on_commit` reports when they are in place (or failed).
  AtomicBatch* batch = nullptr;
  AtomicBatch::Done on_commit;
};
Result<cobblestone::StreamStats> EncryptOne(const envelope::EncryptParams& params,
                                            const EncryptRequest& request);

struct DecryptRequest {
  std::string input;
  std::string output;
  bool force = false;
  bool fresh_output_dir = false;  // as in EncryptRequest
  WalkedPath walked;              // as in EncryptRequest
  envelope::EncryptionContext expected;
  unsigned threads = 0;
  AtomicBatch* batch = nullptr;  // as in EncryptRequest
  AtomicBatch::Done on_commit;
};
struct DecryptOutcome {
  cobblestone::StreamStats stats;
  std::string opened_with;  // "key NAME vN" or "recipient FINGERPRINT" (NAME from the header)
  std::optional<envelope::KekStanza> kek;  // the kek stanza that opened it, if any
  std::string object_id;                   // hex
  // Set when a detached object was read from the old payload an interrupted reencrypt left
  // behind (its header had not been replaced yet): the caller warns and suggests a rerun.
  bool from_interrupted_reencrypt = false;
};
Result<DecryptOutcome> DecryptOne(const DecryptRequest& request, const envelope::Keyring& keyring);

// Describes the stanza that opened a header, for messages and the audit log.
std::string DescribeStanza(const envelope::Stanza& stanza);

}  // namespace keyhold::cli

#endif  // KEYHOLD_CLI_OBJECT_OPS_H_
