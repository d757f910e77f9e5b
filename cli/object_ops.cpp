#include "object_ops.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "keyhold/crypto/constant_time.h"
#include "keyhold/crypto/encoding.h"
#include "keyhold/crypto/file_io.h"
#include "ui.h"

namespace keyhold::cli {
namespace {

Error OpenError(const std::string& path, int err) {
  if (err == ENOENT) return Error(ErrorCode::kNotFound, path + ": no such file");
  if (err == EACCES) {
    return Error(ErrorCode::kIo, path + ": permission denied", "check the file's permissions");
  }
  return Error(ErrorCode::kIo, path + ": " + std::strerror(err));
}

// Opens a named input for streaming (any kind of file the user names: a FIFO or
// /dev/fd/N from process substitution is a valid stream). Directories are refused.
Result<UniqueFd> OpenInput(const std::string& path) {
  if (IsStdio(path)) return UniqueFd(STDIN_FILENO);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return OpenError(path, errno);
  UniqueFd owned(fd);
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    return Error(ErrorCode::kInvalidArgument, path + ": is a directory",
                 "use -O DIR to process a directory tree");
  }
  return owned;
}

// Opens a regular file without blocking on a FIFO or device planted under that name. A walked
// file (`walked` with a root) is opened as its relative path beneath the root, following no
// link in any component; `path` then only names it in messages.
Result<UniqueFd> OpenRegular(const std::string& path, Follow follow, struct stat* st,
                             const WalkedPath& walked = {}) {
  int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK;
  if (follow == Follow::kNoSymlinks || walked.root != nullptr) flags |= O_NOFOLLOW;
  int fd = walked.root != nullptr ? OpenBeneath(walked.root->fd.get(), walked.relative, flags)
                                  : open(path.c_str(), flags);
  if (fd < 0) {
    if (errno == ELOOP && walked.root != nullptr) {
      return Error(ErrorCode::kInvalidArgument,
                   path +
                       ": it, or a directory above it in the tree, is now a symbolic link;"
                       " not followed");
    }
    if (errno == ELOOP && follow == Follow::kNoSymlinks) {
      return Error(ErrorCode::kInvalidArgument, path + ": is a symbolic link; not followed",
                   "run the command on the link's target");
    }
    return OpenError(path, errno);
  }
  UniqueFd owned(fd);
  if (fstat(fd, st) != 0) return OpenError(path, errno);
  if (S_ISDIR(st->st_mode)) return Error(ErrorCode::kInvalidArgument, path + ": is a directory");
  if (!S_ISREG(st->st_mode)) {
    return Error(ErrorCode::kInvalidArgument, path + ": not a regular file");
  }
  // O_NONBLOCK was for the open only. F_SETFL sets the status flags, of which this open set
  // none but O_NONBLOCK (the access mode and O_CLOEXEC / O_NOFOLLOW are not status flags).
  if (fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) return OpenError(path, errno);
  return owned;
}

AtomicFile::Overwrite OutputOverwrite(bool force, bool fresh_output_dir) {
  if (force) return AtomicFile::Overwrite::kYes;
  return fresh_output_dir ? AtomicFile::Overwrite::kNoAtCommit : AtomicFile::Overwrite::kNo;
}

bool StartsWithMagic(int fd) {
  uint8_t buf[envelope::kMagic.size()];
  auto n = PreadFull(fd, buf, 0);
  return n.ok() && *n == sizeof(buf) &&
         std::equal(envelope::kMagic.begin(), envelope::kMagic.end(), buf);
}

}  // namespace

std::string SidecarPath(const std::string& object_path) { return object_path + kSidecarSuffix; }

namespace {

// umask(2) can only be read by setting it, so it is read once, by this initializer: it runs
// before main, while the process has one thread. Read by a worker (as it was, on the first
// CiphertextMode call), a file or directory another thread created between the two calls
// (e.g. a worker's mkdir in MakeParentDirs) got no umask.
const mode_t g_ciphertext_mode = [] {
  const mode_t mask = umask(0);
  umask(mask);
  return static_cast<mode_t>(0666 & ~mask);
}();

}  // namespace

mode_t CiphertextMode() { return g_ciphertext_mode; }

std::string DescribeStanza(const envelope::Stanza& stanza) {
  if (const auto* k = std::get_if<envelope::KekStanza>(&stanza)) {
    return "key " + k->key_name + " v" + std::to_string(k->version);
  }
  if (const auto* x = std::get_if<envelope::X25519Stanza>(&stanza)) {
    return "recipient " + HexEncode(x->fingerprint);
  }
  return "unknown stanza kind " + std::to_string(std::get<envelope::UnknownStanza>(stanza).kind);
}

Result<ObjectLocation> LocateObject(const std::string& path, Follow follow,
                                    const WalkedPath& walked) {
  ObjectLocation loc;
  loc.path = path;
  struct stat st;
  KH_ASSIGN_OR_RETURN(loc.fd, OpenRegular(path, follow, &st, walked));
  loc.dev = st.st_dev;
  loc.ino = st.st_ino;
  const std::string sidecar = SidecarPath(path);
  WalkedPath walked_sidecar;
  bool sidecar_exists = false;
  if (walked.root != nullptr) {
    // Beneath the root as the object was: an O_PATH descriptor of the entry itself (a link
    // included, as lstat would see it), through no link above it.
    walked_sidecar = {walked.root, SidecarPath(walked.relative)};
    UniqueFd probe(OpenBeneath(walked.root->fd.get(), walked_sidecar.relative, O_PATH));
    sidecar_exists = probe.valid();
  } else {
    struct stat sst;
    sidecar_exists = lstat(sidecar.c_str(), &sst) == 0;
  }
  if (sidecar_exists && StartsWithMagic(loc.fd.get())) {
    // Which header is the object's? Guessing lets a stale or planted sidecar hide the real
    // header from rewrap and scan (rotation would silently skip the object).
    return Error(ErrorCode::kMalformed,
                 path + " has an in-file header and a sidecar " + sidecar + " too",
                 "one of them is stale or was planted: if " + path +
                     " was re-encrypted in-file, remove " + sidecar);
  }
  loc.detached = sidecar_exists;
  UniqueFd header_fd;
  int hfd = loc.fd.get();
  if (loc.detached) {
    loc.header_path = sidecar;
    struct stat hst;
    KH_ASSIGN_OR_RETURN(header_fd, OpenRegular(sidecar, follow, &hst, walked_sidecar));
    hfd = header_fd.get();
  } else {
    loc.header_path = path;
  }
  cobblestone::FdSource src(hfd);
  auto header = envelope::ReadHeaderBytes(src);
  if (!header.ok()) {
    Error e = std::move(header).error();
    e.message = loc.header_path + ": " + e.message;
    return e;
  }
  loc.header_bytes = std::move(header).value();
  if (loc.detached) {
    // The sidecar must hold the header and nothing else.
    uint8_t extra;
    KH_ASSIGN_OR_RETURN(size_t n, ReadFull(hfd, std::span(&extra, 1)));
    if (n != 0) {
      return Error(ErrorCode::kMalformed, sidecar + ": trailing bytes after the header");
    }
    loc.payload_offset = 0;
    loc.payload_size = static_cast<uint64_t>(st.st_size);
  } else {
    loc.payload_offset = loc.header_bytes.size();
    const auto size = static_cast<uint64_t>(st.st_size);
    loc.payload_size = size > loc.payload_offset ? size - loc.payload_offset : 0;
  }
  return loc;
}

bool StillSameFile(const ObjectLocation& loc) {
  struct stat st;
  return lstat(loc.path.c_str(), &st) == 0 && st.st_dev == loc.dev && st.st_ino == loc.ino;
}

Status VerifyPayloadCommitment(const ObjectLocation& loc, const envelope::OpenedHeader& opened) {
  std::array<uint8_t, cobblestone::kPrefixSize> prefix{};
  KH_ASSIGN_OR_RETURN(size_t n, PreadFull(loc.fd.get(), prefix, loc.payload_offset));
  const Error mismatch(ErrorCode::kAuthFailed,
                       loc.path + ": the payload does not belong to this header",
                       "the object was tampered with, or its header and payload were mixed up");
  if (n != prefix.size()) return mismatch;
  auto salt = std::span<const uint8_t>(prefix).first(cobblestone::kSaltSize);
  auto commitment = std::span<const uint8_t>(prefix).subspan(cobblestone::kSaltSize);
  KH_ASSIGN_OR_RETURN(cobblestone::DerivedKeys keys,
                      cobblestone::Derive(opened.dek, salt, opened.immutable));
  if (!ConstantTimeEquals(keys.commitment, commitment)) return mismatch;
  return {};
}

std::string ReencryptBackupPath(const std::string& path) { return path + ".kh-tmp-reencrypt-old"; }

Result<ObjectLocation> InterruptedReencryptPayload(const ObjectLocation& loc,
                                                   const envelope::OpenedHeader& opened,
                                                   const WalkedPath& walked) {
  const Error mismatch(ErrorCode::kAuthFailed,
                       loc.path + ": the payload does not belong to this header",
                       "the object was tampered with, or its header and payload were mixed up");
  if (!loc.detached) return mismatch;
  ObjectLocation old;
  old.path = ReencryptBackupPath(loc.path);
  old.detached = true;
  old.header_path = loc.header_path;
  old.header_bytes = loc.header_bytes;
  struct stat st;
  // A walked object's backup is opened beneath the walk's root, as the object was.
  const WalkedPath walked_backup =
      walked.root != nullptr ? WalkedPath{walked.root, ReencryptBackupPath(walked.relative)}
                             : WalkedPath{};
  auto fd = OpenRegular(old.path, Follow::kNoSymlinks, &st, walked_backup);
  if (!fd.ok()) return mismatch;  // no backup: an ordinary mismatch
  old.fd = std::move(fd).value();
  old.dev = st.st_dev;
  old.ino = st.st_ino;
  old.payload_offset = 0;
  old.payload_size = static_cast<uint64_t>(st.st_size);
  if (!VerifyPayloadCommitment(old, opened).ok()) return mismatch;
  return old;
}

Result<cobblestone::StreamStats> EncryptOne(const envelope::EncryptParams& params,
                                            const EncryptRequest& request) {
  struct stat st;
  KH_ASSIGN_OR_RETURN(UniqueFd in,
                      request.walked.root != nullptr
                          ? OpenRegular(request.input, Follow::kNoSymlinks, &st, request.walked)
                          : OpenInput(request.input));
  cobblestone::FdSource source(in.get());
  const bool fresh = request.fresh_output_dir && !request.detached;
  const auto overwrite = OutputOverwrite(request.force, fresh);

  if (IsStdio(request.output)) {
    if (request.detached) {
      return Error(ErrorCode::kInvalidArgument, "--detached needs a named output file",
                   "give -o FILE (the header goes to FILE.hdr)");
    }
    if (StdoutIsTerminal()) {
      return Error(ErrorCode::kInvalidArgument, "refusing to write ciphertext to a terminal",
                   "redirect the output, or give -o FILE");
    }
    cobblestone::FdSink out(STDOUT_FILENO);
    return envelope::EncryptObject(params, source, out, out);
  }

  const std::string sidecar = SidecarPath(request.output);
  struct stat sst;
  const bool stale_sidecar = !request.detached && !fresh && lstat(sidecar.c_str(), &sst) == 0;
  if (stale_sidecar && !request.force) {
    // An in-file object beside an old NAME.hdr would be ambiguous to every later reader.
    return Error(ErrorCode::kAlreadyExists,
                 sidecar + " exists (the header of an earlier detached object)",
                 "remove it, or use --force to replace the object and remove it");
  }
  KH_ASSIGN_OR_RETURN(AtomicFile payload,
                      AtomicFile::Create(request.output, overwrite, CiphertextMode()));
  cobblestone::FdSink payload_sink(payload.fd());
  if (!request.detached) {
    KH_ASSIGN_OR_RETURN(auto stats,
                        envelope::EncryptObject(params, source, payload_sink, payload_sink));
    // The old sidecar goes only once the new object is in place: a failure or a kill before
    // that leaves the old detached object whole. A kill between the rename and the unlink
    // leaves the new object beside the old header, which every reader refuses with a message
    // naming the file to remove (LocateObject), instead of a payload without its header.
    auto remove_stale_sidecar = [stale_sidecar, sidecar]() -> Status {
      if (!stale_sidecar) return {};
      if (unlink(sidecar.c_str()) != 0 && errno != ENOENT) {
        return Error(ErrorCode::kIo,
                     "cannot remove the stale " + sidecar + ": " + std::strerror(errno),
                     "the new object is in place; remove " + sidecar + " by hand");
      }
      return FsyncDirectory(DirName(sidecar));
    };
    if (request.batch != nullptr) {
      std::vector<AtomicFile> group;
      group.push_back(std::move(payload));
      request.batch->Add(std::move(group),
                         [remove_stale_sidecar, done = request.on_commit](const Status& s) {
                           Status result = s.ok() ? remove_stale_sidecar() : s;
                           if (done) done(result);
                         });
      return stats;
    }
    KH_RETURN_IF_ERROR(payload.Commit());
    KH_RETURN_IF_ERROR(remove_stale_sidecar());
    return stats;
  }
  KH_ASSIGN_OR_RETURN(AtomicFile header,
                      AtomicFile::Create(SidecarPath(request.output), overwrite, CiphertextMode()));
  cobblestone::FdSink header_sink(header.fd());
  KH_ASSIGN_OR_RETURN(auto stats,
                      envelope::EncryptObject(params, source, header_sink, payload_sink));
  // Payload first: a crash between the two renames leaves a payload without a header (not
  // decryptable, clearly incomplete), never a header pointing at a missing payload.
  if (request.batch != nullptr) {
    std::vector<AtomicFile> group;
    group.push_back(std::move(payload));
    group.push_back(std::move(header));
    request.batch->Add(std::move(group), request.on_commit);
    return stats;
  }
  KH_RETURN_IF_ERROR(payload.Commit());
  KH_RETURN_IF_ERROR(header.Commit());
  return stats;
}

Result<DecryptOutcome> DecryptOne(const DecryptRequest& request, const envelope::Keyring& keyring) {
  DecryptOutcome outcome;
  struct stat st;
  // A walked input is an object file or nothing: never read as a stream, never through a link.
  const bool stream = request.walked.root == nullptr &&
                      (IsStdio(request.input) || (stat(request.input.c_str(), &st) == 0 &&
                                                  !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)));
  // One open: the header and the payload come from the same file (or stream).
  ObjectLocation loc;
  if (stream) {
    // stdin, a FIFO or /dev/fd/N: the header comes first on the stream, no sidecar.
    KH_ASSIGN_OR_RETURN(loc.fd, OpenInput(request.input));
    cobblestone::FdSource src(loc.fd.get());
    KH_ASSIGN_OR_RETURN(loc.header_bytes, envelope::ReadHeaderBytes(src));
  } else {
    KH_ASSIGN_OR_RETURN(loc, LocateObject(request.input, Follow::kSymlinks, request.walked));
  }
  KH_ASSIGN_OR_RETURN(envelope::OpenedHeader opened,
                      envelope::OpenHeader(loc.header_bytes, keyring, request.expected));
  if (loc.detached && !VerifyPayloadCommitment(loc, opened).ok()) {
    // Killed between a reencrypt's two renames: the new payload is in place, the header is
    // still the old one, and the old payload is kept beside them until a rerun finishes.
    KH_ASSIGN_OR_RETURN(loc, InterruptedReencryptPayload(loc, opened, request.walked));
    outcome.from_interrupted_reencrypt = true;
  }
  UniqueFd payload_fd = std::move(loc.fd);
  if (!stream && lseek(payload_fd.get(), static_cast<off_t>(loc.payload_offset), SEEK_SET) < 0) {
    return Error(ErrorCode::kIo, request.input + ": seek failed");
  }
  const envelope::Stanza& used = opened.header.stanzas[opened.opened_stanza];
  outcome.opened_with = DescribeStanza(used);
  if (const auto* k = std::get_if<envelope::KekStanza>(&used)) outcome.kek = *k;
  outcome.object_id = HexEncode(opened.header.object_id);
  cobblestone::FdSource source(payload_fd.get());
  cobblestone::Options engine;
  engine.threads = request.threads;

  if (IsStdio(request.output)) {
    cobblestone::FdSink out(STDOUT_FILENO);
    KH_ASSIGN_OR_RETURN(outcome.stats, envelope::DecryptPayload(opened, source, out, engine));
    return outcome;
  }
  const auto overwrite = OutputOverwrite(request.force, request.fresh_output_dir);
  KH_ASSIGN_OR_RETURN(AtomicFile out, AtomicFile::Create(request.output, overwrite, 0600));
  cobblestone::FdSink sink(out.fd());
  // On failure `out` is destroyed uncommitted: the partial plaintext is removed.
  KH_ASSIGN_OR_RETURN(outcome.stats, envelope::DecryptPayload(opened, source, sink, engine));
  if (request.batch != nullptr) {
    std::vector<AtomicFile> group;
    group.push_back(std::move(out));
    request.batch->Add(std::move(group), request.on_commit);
    return outcome;
  }
  KH_RETURN_IF_ERROR(out.Commit());
  return outcome;
}

}  // namespace keyhold::cli
