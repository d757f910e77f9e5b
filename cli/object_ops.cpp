#include "object_ops.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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

// Closes an fd on scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ > STDERR_FILENO) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

Result<int> OpenInput(const std::string& path) {
  if (IsStdio(path)) return STDIN_FILENO;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return OpenError(path, errno);
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    close(fd);
    return Error(ErrorCode::kInvalidArgument, path + ": is a directory",
                 "use -O DIR to process a directory tree");
  }
  return fd;
}

}  // namespace

std::string SidecarPath(const std::string& object_path) { return object_path + kSidecarSuffix; }

mode_t CiphertextMode() {
  static const mode_t mode = [] {
    mode_t mask = umask(0);
    umask(mask);
    return static_cast<mode_t>(0666 & ~mask);
  }();
  return mode;
}

std::string DescribeStanza(const envelope::Stanza& stanza) {
  if (const auto* k = std::get_if<envelope::KekStanza>(&stanza)) {
    return "key " + k->key_name + " v" + std::to_string(k->version);
  }
  if (const auto* x = std::get_if<envelope::X25519Stanza>(&stanza)) {
    return "recipient " + HexEncode(x->fingerprint);
  }
  return "unknown stanza kind " +
         std::to_string(std::get<envelope::UnknownStanza>(stanza).kind);
}

Result<ObjectLocation> LocateObject(const std::string& path) {
  ObjectLocation loc;
  loc.path = path;
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return OpenError(path, errno);
  if (S_ISDIR(st.st_mode)) return Error(ErrorCode::kInvalidArgument, path + ": is a directory");
  const std::string sidecar = SidecarPath(path);
  struct stat sst;
  loc.detached = stat(sidecar.c_str(), &sst) == 0 && S_ISREG(sst.st_mode);
  loc.header_path = loc.detached ? sidecar : path;
  KH_ASSIGN_OR_RETURN(int hfd, OpenInput(loc.header_path));
  Fd header_fd(hfd);
  cobblestone::FdSource src(header_fd.get());
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
    KH_ASSIGN_OR_RETURN(size_t n, ReadFull(header_fd.get(), std::span(&extra, 1)));
    if (n != 0) {
      return Error(ErrorCode::kMalformed, sidecar + ": trailing data after the header");
    }
    loc.payload_offset = 0;
    loc.payload_size = static_cast<uint64_t>(st.st_size);
  } else {
    loc.payload_offset = loc.header_bytes.size();
    loc.payload_size = static_cast<uint64_t>(st.st_size) - loc.header_bytes.size();
  }
  return loc;
}

Result<cobblestone::StreamStats> EncryptOne(const envelope::EncryptParams& params,
                                            const EncryptRequest& request) {
  KH_ASSIGN_OR_RETURN(int in_raw, OpenInput(request.input));
  Fd in(in_raw);
  cobblestone::FdSource source(in.get());
  const auto overwrite = request.force ? AtomicFile::Overwrite::kYes : AtomicFile::Overwrite::kNo;

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

  KH_ASSIGN_OR_RETURN(AtomicFile payload,
                      AtomicFile::Create(request.output, overwrite, CiphertextMode()));
  cobblestone::FdSink payload_sink(payload.fd());
  if (!request.detached) {
    KH_ASSIGN_OR_RETURN(auto stats, envelope::EncryptObject(params, source, payload_sink,
                                                            payload_sink));
    KH_RETURN_IF_ERROR(payload.Commit());
    return stats;
  }
  KH_ASSIGN_OR_RETURN(AtomicFile header,
                      AtomicFile::Create(SidecarPath(request.output), overwrite,
                                         CiphertextMode()));
  cobblestone::FdSink header_sink(header.fd());
  KH_ASSIGN_OR_RETURN(auto stats,
                      envelope::EncryptObject(params, source, header_sink, payload_sink));
  // Payload first: a crash between the two renames leaves a payload without a header (not
  // decryptable, clearly incomplete), never a header pointing at a missing payload.
  KH_RETURN_IF_ERROR(payload.Commit());
  KH_RETURN_IF_ERROR(header.Commit());
  return stats;
}

Result<DecryptOutcome> DecryptOne(const DecryptRequest& request, const envelope::Keyring& keyring) {
  DecryptOutcome outcome;
  std::vector<uint8_t> header_bytes;
  int payload_raw = -1;
  if (IsStdio(request.input)) {
    cobblestone::FdSource src(STDIN_FILENO);
    KH_ASSIGN_OR_RETURN(header_bytes, envelope::ReadHeaderBytes(src));
    payload_raw = STDIN_FILENO;
  } else {
    KH_ASSIGN_OR_RETURN(ObjectLocation loc, LocateObject(request.input));
    header_bytes = std::move(loc.header_bytes);
    KH_ASSIGN_OR_RETURN(payload_raw, OpenInput(request.input));
    if (loc.payload_offset > 0 &&
        lseek(payload_raw, static_cast<off_t>(loc.payload_offset), SEEK_SET) < 0) {
      close(payload_raw);
      return Error(ErrorCode::kIo, request.input + ": seek failed");
    }
  }
  Fd payload_fd(payload_raw);
  KH_ASSIGN_OR_RETURN(envelope::OpenedHeader opened,
                      envelope::OpenHeader(header_bytes, keyring, request.expected));
  outcome.opened_with = DescribeStanza(opened.header.stanzas[opened.opened_stanza]);
  outcome.object_id = HexEncode(opened.header.object_id);
  cobblestone::FdSource source(payload_fd.get());
  cobblestone::Options engine;
  engine.threads = request.threads;

  if (IsStdio(request.output)) {
    cobblestone::FdSink out(STDOUT_FILENO);
    KH_ASSIGN_OR_RETURN(outcome.stats, envelope::DecryptPayload(opened, source, out, engine));
    return outcome;
  }
  const auto overwrite = request.force ? AtomicFile::Overwrite::kYes : AtomicFile::Overwrite::kNo;
  KH_ASSIGN_OR_RETURN(AtomicFile out, AtomicFile::Create(request.output, overwrite, 0600));
  cobblestone::FdSink sink(out.fd());
  // On failure `out` is destroyed uncommitted: the partial plaintext is removed.
  KH_ASSIGN_OR_RETURN(outcome.stats, envelope::DecryptPayload(opened, source, sink, engine));
  KH_RETURN_IF_ERROR(out.Commit());
  return outcome;
}

}  // namespace keyhold::cli
