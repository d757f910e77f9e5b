#include "rewrap_ops.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>

#include "context.h"
#include "keyhold/crypto/constant_time.h"
#include "keyhold/crypto/encoding.h"
#include "keyhold/crypto/file_io.h"
#include "keyhold/crypto/hash.h"
#include "object_ops.h"

namespace keyhold::cli {
namespace {

// Copies [offset, offset + size) of in_fd to out_fd without touching the bytes.
Status CopyRange(int in_fd, uint64_t offset, uint64_t size, int out_fd) {
  std::vector<uint8_t> buf(1 << 20);
  while (size > 0) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(size, buf.size()));
    KH_ASSIGN_OR_RETURN(size_t n, PreadFull(in_fd, std::span(buf.data(), want), offset));
    if (n != want) return Error(ErrorCode::kIo, "the object shrank while being rewrapped");
    KH_RETURN_IF_ERROR(WriteAll(out_fd, std::span(buf.data(), n)));
    offset += n;
    size -= n;
  }
  return {};
}

// Closes an fd on scope exit.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

Result<int> OpenRead(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Error(ErrorCode::kIo, path + ": " + std::strerror(errno));
  return fd;
}

// The mode to give a rewritten file: the old file's permission bits, never more than
// rw-rw-rw- (no exec, setuid or sticky bits; a symlink's 0777 never leaks into a real file).
Result<mode_t> FileMode(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0)
    return Error(ErrorCode::kIo, path + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) {
    return Error(ErrorCode::kInvalidArgument,
                 path + ": not a regular file; refusing to rewrite it");
  }
  return static_cast<mode_t>(st.st_mode & 0666);
}

// The plaintext of an opened object, read in order through its random-access reader (every
// chunk authenticated before it is handed out) and hashed on the way.
class PlaintextSource final : public cobblestone::Source {
 public:
  PlaintextSource(cobblestone::RandomAccessReader& reader, Hasher& hasher)
      : reader_(reader), hasher_(hasher) {}
  Result<size_t> Read(std::span<uint8_t> out) override {
    KH_ASSIGN_OR_RETURN(size_t n, reader_.ReadAt(offset_, out));
    hasher_.Update(out.first(n));
    offset_ += n;
    return n;
  }

 private:
  cobblestone::RandomAccessReader& reader_;
  Hasher& hasher_;
  uint64_t offset_ = 0;
};

class HashingSink final : public cobblestone::Sink {
 public:
  explicit HashingSink(Hasher& hasher) : hasher_(hasher) {}
  Status Write(std::span<const uint8_t> data) override {
    hasher_.Update(data);
    return {};
  }

 private:
  Hasher& hasher_;
};

// Which of this keystore's kek stanzas the header has ("NAME vN"), and whether --from
// selects the object.
bool SelectAndDescribe(const envelope::Header& header, const RewrapPlan& plan,
                       const KeystoreSnapshot& keys, std::vector<std::string>* old_keys) {
  bool selected = !plan.from_key.has_value();
  for (const auto& st : header.stanzas) {
    const auto* k = std::get_if<envelope::KekStanza>(&st);
    if (k == nullptr) continue;
    auto it = keys.keys_by_id.find(k->key_id);
    if (it == keys.keys_by_id.end()) continue;
    old_keys->push_back(it->second.name + " v" + std::to_string(k->version));
    if (plan.from_key && it->second.name == *plan.from_key &&
        (!plan.from_version || *plan.from_version == k->version)) {
      selected = true;
    }
  }
  return selected;
}

// True if `header_bytes` opens and its key commitment matches the payload of `payload_path`
// (whole file) — i.e. header and payload belong together.
bool HeaderMatchesPayload(std::span<const uint8_t> header_bytes, const std::string& payload_path,
                          const envelope::Keyring& keyring) {
  auto opened = envelope::OpenHeader(header_bytes, keyring);
  if (!opened.ok()) return false;
  auto fd = OpenRead(payload_path);
  if (!fd.ok()) return false;
  ScopedFd guard(*fd);
  struct stat st;
  if (fstat(guard.get(), &st) != 0) return false;
  auto reader =
      envelope::OpenRandomAccess(*opened, guard.get(), 0, static_cast<uint64_t>(st.st_size));
  return reader.ok();
}

// Finishes or rolls back a detached reencrypt that was interrupted between its renames
// (see ReencryptObject). Returns true if the object is already reencrypted (nothing to do).
Result<bool> RecoverDetached(const std::string& path, const std::string& header_path,
                             const envelope::Keyring& keyring) {
  const std::string backup = ReencryptBackupPath(path);
  struct stat b, p;
  if (lstat(backup.c_str(), &b) != 0) return false;  // nothing interrupted
  const std::string dir = DirName(path);
  auto drop_backup = [&]() -> Status {
    if (unlink(backup.c_str()) != 0) {
      return Error(ErrorCode::kIo, backup + ": " + std::strerror(errno));
    }
    return FsyncDirectory(dir);
  };
  if (lstat(path.c_str(), &p) == 0 && p.st_ino == b.st_ino && p.st_dev == b.st_dev) {
    // Killed before the payload was replaced: the backup is just a second name.
    KH_RETURN_IF_ERROR(drop_backup());
    return false;
  }
  KH_ASSIGN_OR_RETURN(std::vector<uint8_t> header_bytes,
                      ReadSmallFile(header_path, envelope::kMaxHeaderSize));
  if (HeaderMatchesPayload(header_bytes, path, keyring)) {
    // Killed after both renames: done, only the backup is left.
    KH_RETURN_IF_ERROR(drop_backup());
    return true;
  }
  if (HeaderMatchesPayload(header_bytes, backup, keyring)) {
    // Killed between the renames: the old header still belongs to the old payload.
    if (rename(backup.c_str(), path.c_str()) != 0) {
      return Error(ErrorCode::kIo, "restoring " + backup + ": " + std::strerror(errno));
    }
    KH_RETURN_IF_ERROR(FsyncDirectory(dir));
    return false;
  }
  return Error(ErrorCode::kAuthFailed,
               "an interrupted reencrypt left " + backup +
                   " and neither it nor the current payload matches the header",
               "keep both files and restore by hand: the header opens one of them");
}

}  // namespace

Result<RewrapPlan> BuildRewrapPlan(Context& ctx, const TargetOptions& opts) {
  RewrapPlan plan;
  plan.to_keys = opts.to;
  plan.dry_run = opts.dry_run;
  for (const auto& r : opts.add_recipients) {
    KH_ASSIGN_OR_RETURN(X25519PublicKey pub, ctx.ResolveRecipient(r));
    plan.add_recipients.push_back(pub);
  }
  for (const auto& r : opts.remove_recipients) {
    // A recipient to remove may be given as kh1..., a name, or a fingerprint from inspect.
    if (r.size() == 2 * envelope::kFingerprintSize) {
      if (auto fp = HexDecode(r); fp.ok()) {
        std::array<uint8_t, envelope::kFingerprintSize> a{};
        std::copy(fp->begin(), fp->end(), a.begin());
        plan.remove_fingerprints.push_back(a);
        continue;
      }
    }
    KH_ASSIGN_OR_RETURN(X25519PublicKey pub, ctx.ResolveRecipient(r));
    plan.remove_fingerprints.push_back(envelope::RecipientFingerprint(pub));
  }
  if (!opts.from.empty()) {
    const Error bad(ErrorCode::kInvalidArgument, "--from expects KEY or KEY@VERSION");
    size_t at = opts.from.find('@');
    plan.from_key = opts.from.substr(0, at);
    if (plan.from_key->empty()) return bad;
    if (at != std::string::npos) {
      const std::string digits = opts.from.substr(at + 1);
      if (digits.empty() || digits.size() > 9 ||
          digits.find_first_not_of("0123456789") != std::string::npos) {
        return bad;
      }
      plan.from_version = static_cast<uint32_t>(std::stoul(digits));
      if (*plan.from_version == 0) return bad;
    }
  }
  return plan;
}

KeystoreSnapshot KeystoreSnapshot::Take(const keystore::Keystore& ks) {
  KeystoreSnapshot snap;
  for (auto& k : ks.ListKeys()) {
    auto target = ks.PrimaryTarget(k.name);
    if (target.ok()) {
      snap.primary.emplace(k.name, std::move(target).value());
    } else {
      snap.no_primary.emplace(k.name, target.error());
    }
    snap.keys_by_id.emplace(k.key_id, std::move(k));
  }
  return snap;
}

Result<envelope::KekTarget> KeystoreSnapshot::Primary(const std::string& name) const {
  if (auto it = primary.find(name); it != primary.end()) return it->second;
  if (auto it = no_primary.find(name); it != no_primary.end()) return it->second;
  return Error(ErrorCode::kNotFound, "no key named " + name + " in the keystore",
               "list keys with `keyhold key list`");
}

Result<const SecretBytes*> LockedResolver::ResolveForDecrypt(const envelope::KekStanza& stanza) {
  std::lock_guard<std::mutex> lock(mu_);
  return inner_.ResolveForDecrypt(stanza);
}

std::string_view RewrapStatusName(RewrapStatus status) {
  switch (status) {
    case RewrapStatus::kRewrapped:
      return "rewrapped";
    case RewrapStatus::kUpToDate:
      return "up-to-date";
    case RewrapStatus::kNotSelected:
      return "not-selected";
  }
  return "unknown";
}

Result<RewrapOutcome> RewrapObject(const std::string& path, const RewrapPlan& plan,
                                   const KeystoreSnapshot& keys, const envelope::Keyring& keyring) {
  std::error_code ec;
  if (std::filesystem::exists(SidecarPath(path), ec)) {
    // Settle an interrupted reencrypt first (finish or roll back), or the header would be
    // rewritten for a payload it does not belong to.
    KH_ASSIGN_OR_RETURN(bool finished, RecoverDetached(path, SidecarPath(path), keyring));
    static_cast<void>(finished);  // either way the pair on disk now belongs together
  }
  KH_ASSIGN_OR_RETURN(ObjectLocation loc, LocateObject(path, Follow::kNoSymlinks));
  size_t header_size = 0;
  KH_ASSIGN_OR_RETURN(envelope::Header header,
                      envelope::ParseHeader(loc.header_bytes, &header_size));
  const auto& keys_by_id = keys.keys_by_id;

  RewrapOutcome outcome;
  outcome.object_bytes = loc.payload_offset + loc.payload_size + (loc.detached ? header_size : 0);
  bool selected = !plan.from_key.has_value();
  for (const auto& st : header.stanzas) {
    const auto* k = std::get_if<envelope::KekStanza>(&st);
    if (k == nullptr) continue;
    auto it = keys_by_id.find(k->key_id);
    if (it == keys_by_id.end()) continue;
    outcome.old_keys.push_back(it->second.name + " v" + std::to_string(k->version));
    if (plan.from_key && it->second.name == *plan.from_key &&
        (!plan.from_version || *plan.from_version == k->version)) {
      selected = true;
    }
  }
  if (!selected) {
    outcome.status = RewrapStatus::kNotSelected;
    return outcome;
  }

  // The kek targets we want: --to keys, or each of our keys present in the header.
  std::vector<envelope::KekTarget> wanted;
  auto want_key = [&](const std::string& name) -> Status {
    KH_ASSIGN_OR_RETURN(envelope::KekTarget t, keys.Primary(name));
    for (const auto& w : wanted) {
      if (w.key_id == t.key_id) return {};
    }
    wanted.push_back(std::move(t));
    return {};
  };
  if (!plan.to_keys.empty()) {
    for (const auto& name : plan.to_keys) KH_RETURN_IF_ERROR(want_key(name));
  } else {
    for (const auto& st : header.stanzas) {
      const auto* k = std::get_if<envelope::KekStanza>(&st);
      if (k == nullptr) continue;
      auto it = keys_by_id.find(k->key_id);
      if (it != keys_by_id.end()) KH_RETURN_IF_ERROR(want_key(it->second.name));
    }
  }

  envelope::RewrapParams params;
  bool changed = false;
  std::vector<bool> target_present(wanted.size(), false);
  for (size_t i = 0; i < header.stanzas.size(); ++i) {
    const auto& st = header.stanzas[i];
    if (const auto* k = std::get_if<envelope::KekStanza>(&st)) {
      if (keys_by_id.find(k->key_id) == keys_by_id.end()) {
        params.keep.push_back(i);  // another keystore's key: not ours to change
        continue;
      }
      bool is_target = false;
      for (size_t w = 0; w < wanted.size(); ++w) {
        if (wanted[w].key_id == k->key_id && wanted[w].version == k->version &&
            !target_present[w]) {
          target_present[w] = true;
          is_target = true;
        }
      }
      if (is_target) {
        params.keep.push_back(i);
      } else {
        changed = true;  // an old version, or a key --to moves away from
      }
    } else if (const auto* x = std::get_if<envelope::X25519Stanza>(&st)) {
      bool remove = std::find(plan.remove_fingerprints.begin(), plan.remove_fingerprints.end(),
                              x->fingerprint) != plan.remove_fingerprints.end();
      if (remove) {
        changed = true;
      } else {
        params.keep.push_back(i);
      }
    } else {
      params.keep.push_back(i);
    }
  }
  for (size_t w = 0; w < wanted.size(); ++w) {
    if (!target_present[w]) {
      params.keks.push_back(wanted[w]);
      changed = true;
    }
  }
  for (const auto& pub : plan.add_recipients) {
    auto fp = envelope::RecipientFingerprint(pub);
    bool present = false;
    for (size_t i : params.keep) {
      const auto* x = std::get_if<envelope::X25519Stanza>(&header.stanzas[i]);
      if (x != nullptr && x->fingerprint == fp) present = true;
    }
    if (!present) {
      params.recipients.push_back(pub);
      changed = true;
    }
  }
  for (const auto& w : wanted)
    outcome.new_keys.push_back(w.key_name + " v" + std::to_string(w.version));
  if (!changed) {
    outcome.status = RewrapStatus::kUpToDate;
    return outcome;
  }
  if (params.keep.empty() && params.keks.empty() && params.recipients.empty()) {
    return Error(ErrorCode::kInvalidArgument,
                 "rewrapping would leave no stanza: nobody could decrypt the object");
  }
  // Open with what we hold (this checks the MAC), then build the new header.
  KH_ASSIGN_OR_RETURN(envelope::OpenedHeader opened,
                      envelope::OpenHeader(loc.header_bytes, keyring));
  KH_ASSIGN_OR_RETURN(std::vector<uint8_t> new_header, envelope::Rewrap(opened, params));
  outcome.status = RewrapStatus::kRewrapped;
  outcome.header_bytes_written = new_header.size();
  if (plan.dry_run) return outcome;

  // The header we opened must belong to the payload we are about to put it in front of
  // (a stale or swapped header would otherwise be made permanent).
  KH_RETURN_IF_ERROR(VerifyPayloadCommitment(loc, opened));
  KH_ASSIGN_OR_RETURN(const mode_t mode, FileMode(loc.header_path));
  if (loc.detached) {
    KH_RETURN_IF_ERROR(
        WriteFileAtomically(loc.header_path, new_header, AtomicFile::Overwrite::kYes, mode));
    return outcome;
  }
  // Copy the payload through the fd the header was read from: never reopen by name.
  KH_ASSIGN_OR_RETURN(AtomicFile out, AtomicFile::Create(path, AtomicFile::Overwrite::kYes, mode));
  KH_RETURN_IF_ERROR(out.Write(new_header));
  KH_RETURN_IF_ERROR(CopyRange(loc.fd.get(), loc.payload_offset, loc.payload_size, out.fd()));
  if (!StillSameFile(loc)) {
    // Someone replaced the object meanwhile: renaming ours over theirs would lose theirs.
    return Error(ErrorCode::kIo, path + ": the object changed while being rewrapped",
                 "run the job again");
  }
  KH_RETURN_IF_ERROR(out.Commit());
  return outcome;
}

Result<ReencryptOutcome> ReencryptObject(const std::string& path, const ReencryptPlan& plan,
                                         const KeystoreSnapshot& keys,
                                         const envelope::Keyring& keyring) {
  const RewrapPlan& tp = plan.targets;
  ReencryptOutcome outcome;
  std::error_code ec;
  if (std::filesystem::exists(SidecarPath(path), ec)) {
    KH_ASSIGN_OR_RETURN(bool finished, RecoverDetached(path, SidecarPath(path), keyring));
    outcome.recovered = true;
    if (finished) return outcome;
  }
  KH_ASSIGN_OR_RETURN(ObjectLocation loc, LocateObject(path, Follow::kNoSymlinks));
  size_t header_size = 0;
  KH_ASSIGN_OR_RETURN(envelope::Header header,
                      envelope::ParseHeader(loc.header_bytes, &header_size));
  outcome.object_bytes = loc.payload_offset + loc.payload_size + (loc.detached ? header_size : 0);
  if (!SelectAndDescribe(header, tp, keys, &outcome.old_keys)) {
    outcome.status = ReencryptStatus::kNotSelected;
    return outcome;
  }

  // Targets. A stanza we cannot re-create fails the object rather than silently dropping
  // someone's access.
  envelope::EncryptParams params;
  params.context = header.context;
  params.engine.threads = 1;  // the job is parallel over objects already
  auto want_key = [&](const std::string& name) -> Status {
    KH_ASSIGN_OR_RETURN(envelope::KekTarget t, keys.Primary(name));
    for (const auto& w : params.keks) {
      if (w.key_id == t.key_id) return {};
    }
    params.keks.push_back(std::move(t));
    return {};
  };
  auto want_recipient = [&](const X25519PublicKey& pub) {
    auto fp = envelope::RecipientFingerprint(pub);
    for (const auto& r : params.recipients) {
      if (envelope::RecipientFingerprint(r) == fp) return;
    }
    params.recipients.push_back(pub);
  };
  for (const auto& name : tp.to_keys) KH_RETURN_IF_ERROR(want_key(name));
  for (const auto& st : header.stanzas) {
    if (const auto* k = std::get_if<envelope::KekStanza>(&st)) {
      auto it = keys.keys_by_id.find(k->key_id);
      if (it == keys.keys_by_id.end()) {
        return Error(ErrorCode::kUnsupported,
                     "stanza for key " + k->key_name + " (key id " + HexEncode(k->key_id) +
                         ") belongs to another keystore and cannot be re-created",
                     "reencrypt with that keystore, or rewrap it away first");
      }
      if (tp.to_keys.empty()) KH_RETURN_IF_ERROR(want_key(it->second.name));
    } else if (const auto* x = std::get_if<envelope::X25519Stanza>(&st)) {
      if (std::find(tp.remove_fingerprints.begin(), tp.remove_fingerprints.end(), x->fingerprint) !=
          tp.remove_fingerprints.end()) {
        continue;
      }
      auto it = plan.known_recipients.find(x->fingerprint);
      if (it == plan.known_recipients.end()) {
        return Error(ErrorCode::kNotFound,
                     "recipient " + HexEncode(x->fingerprint) +
                         " has no known public key, so its stanza cannot be re-created",
                     "add it with `keyhold recipient add NAME kh1...` or --add-recipient, or "
                     "drop it with --remove-recipient");
      }
      want_recipient(it->second);
    } else {
      return Error(ErrorCode::kUnsupported,
                   "the header has a stanza of an unknown kind that cannot be re-created");
    }
  }
  for (const auto& pub : tp.add_recipients) want_recipient(pub);
  if (params.keks.empty() && params.recipients.empty()) {
    return Error(ErrorCode::kInvalidArgument,
                 "reencrypting would leave no stanza: nobody could decrypt the object");
  }
  for (const auto& t : params.keks) {
    outcome.new_keys.push_back(t.key_name + " v" + std::to_string(t.version));
  }

  // Open the old object and authenticate its length before writing anything.
  KH_ASSIGN_OR_RETURN(envelope::OpenedHeader opened,
                      envelope::OpenHeader(loc.header_bytes, keyring));
  KH_ASSIGN_OR_RETURN(int in_raw, OpenRead(path));
  ScopedFd in(in_raw);
  KH_ASSIGN_OR_RETURN(
      cobblestone::RandomAccessReader reader,
      envelope::OpenRandomAccess(opened, in.get(), loc.payload_offset, loc.payload_size));
  KH_ASSIGN_OR_RETURN(uint64_t plaintext_size, reader.AuthenticatedSize());
  if (tp.dry_run) return outcome;

  KH_ASSIGN_OR_RETURN(mode_t payload_mode, FileMode(path));
  KH_ASSIGN_OR_RETURN(AtomicFile payload,
                      AtomicFile::Create(path, AtomicFile::Overwrite::kYes, payload_mode));
  std::optional<AtomicFile> sidecar;
  if (loc.detached) {
    KH_ASSIGN_OR_RETURN(mode_t header_mode, FileMode(loc.header_path));
    KH_ASSIGN_OR_RETURN(AtomicFile h, AtomicFile::Create(loc.header_path,
                                                         AtomicFile::Overwrite::kYes, header_mode));
    sidecar.emplace(std::move(h));
  }
  Hasher read_hash(HashAlg::kSha256);
  PlaintextSource source(reader, read_hash);
  cobblestone::FdSink payload_sink(payload.fd());
  std::optional<cobblestone::FdSink> header_sink;
  if (sidecar) header_sink.emplace(sidecar->fd());
  KH_ASSIGN_OR_RETURN(
      cobblestone::StreamStats stats,
      envelope::EncryptObject(
          params, source,
          header_sink ? static_cast<cobblestone::Sink&>(*header_sink) : payload_sink,
          payload_sink));
  if (stats.plaintext_bytes != plaintext_size) {
    return Error(ErrorCode::kIo, path + ": the object changed size while being reencrypted");
  }
  const std::vector<uint8_t> read_digest = read_hash.Finish();

  // Verify what was written, read back from the temp files: the new header opens with what
  // we hold, it is a new object, and the payload decrypts to the same plaintext.
  {
    KH_ASSIGN_OR_RETURN(int hdr_raw,
                        OpenRead(sidecar ? sidecar->temp_path() : payload.temp_path()));
    ScopedFd hdr_fd(hdr_raw);
    cobblestone::FdSource hdr_src(hdr_fd.get());
    KH_ASSIGN_OR_RETURN(std::vector<uint8_t> new_header_bytes, envelope::ReadHeaderBytes(hdr_src));
    auto reopened = envelope::OpenHeader(new_header_bytes, keyring, header.context);
    if (!reopened.ok()) {
      return Error(ErrorCode::kInternal,
                   "the new header does not open with the keys this command holds (" +
                       reopened.error().message + "); the object was left unchanged",
                   "reencrypt to a key of this keystore, or give the recipient's --identity");
    }
    if (reopened->header.object_id == header.object_id) {
      return Error(ErrorCode::kInternal, "the new object reuses the old object id");
    }
    std::optional<ScopedFd> pay_fd;
    cobblestone::FdSource* pay_src = &hdr_src;  // in-file: the payload follows the header
    std::optional<cobblestone::FdSource> detached_src;
    if (sidecar) {
      KH_ASSIGN_OR_RETURN(int pay_raw, OpenRead(payload.temp_path()));
      pay_fd.emplace(pay_raw);
      detached_src.emplace(pay_fd->get());
      pay_src = &*detached_src;
    }
    Hasher check_hash(HashAlg::kSha256);
    HashingSink check_sink(check_hash);
    cobblestone::Options engine;
    engine.threads = 1;
    KH_RETURN_IF_ERROR(envelope::DecryptPayload(*reopened, *pay_src, check_sink, engine));
    if (!ConstantTimeEquals(check_hash.Finish(), read_digest)) {
      return Error(ErrorCode::kInternal,
                   "the new payload does not decrypt to the old plaintext; the object was left "
                   "unchanged");
    }
  }

  if (!sidecar) {
    KH_RETURN_IF_ERROR(payload.Commit());
    return outcome;
  }
  // Two files cannot be replaced at once: keep the old payload under a second name until the
  // new header is in place, so that a crash at any point leaves a recoverable pair.
  const std::string backup = ReencryptBackupPath(path);
  if (link(path.c_str(), backup.c_str()) != 0) {
    return Error(ErrorCode::kIo, backup + ": " + std::strerror(errno));
  }
  // After a failed Commit (which may have renamed before its directory fsync failed), let the
  // recovery decide from what is on disk: it finishes or rolls back, never drops a payload.
  auto restore = [&] { static_cast<void>(RecoverDetached(path, loc.header_path, keyring)); };
  Status s = FsyncDirectory(DirName(path));
  if (!s.ok()) {
    unlink(backup.c_str());  // nothing was replaced yet
    return s.error();
  }
  if (Status p = payload.Commit(); !p.ok()) {
    restore();
    return p.error();
  }
  if (Status h = sidecar->Commit(); !h.ok()) {
    restore();
    return h.error();
  }
  if (unlink(backup.c_str()) != 0) {
    return Error(ErrorCode::kIo, backup + ": " + std::strerror(errno),
                 "the object was reencrypted; remove the leftover old payload by hand");
  }
  KH_RETURN_IF_ERROR(FsyncDirectory(DirName(path)));
  return outcome;
}

}  // namespace keyhold::cli
