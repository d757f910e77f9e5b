#include "doctor_checks.h"

#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "format_util.h"
#include "keyhold/crypto/argon2id.h"
#include "ui.h"

namespace keyhold::cli {
namespace {

Finding Make(std::string id, Severity severity, std::string title, std::string evidence,
             std::string remediation) {
  Finding f;
  f.id = std::move(id);
  f.severity = severity;
  f.title = std::move(title);
  f.evidence = std::move(evidence);
  f.remediation = std::move(remediation);
  return f;
}

std::string Octal(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

std::string Days(int64_t seconds) { return std::to_string(seconds / kSecondsPerDay) + " days"; }

std::optional<std::string> ReadSmallText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream out;
  // /proc files are small; the cap keeps a planted huge file from costing memory.
  std::array<char, 4096> buf{};
  size_t total = 0;
  while (in && total < 1024 * 1024) {
    in.read(buf.data(), buf.size());
    auto n = static_cast<size_t>(in.gcount());
    if (n == 0) break;
    out.write(buf.data(), static_cast<std::streamsize>(n));
    total += n;
  }
  return out.str();
}

std::string Join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

// Evidence for an object list: the count and the first few paths.
std::string ObjectsEvidence(const std::vector<std::string>& paths) {
  std::string out = std::to_string(paths.size()) + (paths.size() == 1 ? " object: " : " objects: ");
  for (size_t i = 0; i < paths.size() && i < kMaxEvidenceObjects; ++i) {
    if (i != 0) out += ", ";
    out += Printable(paths[i]);
  }
  if (paths.size() > kMaxEvidenceObjects) {
    out += " and " + std::to_string(paths.size() - kMaxEvidenceObjects) + " more";
  }
  return out;
}

std::string PairsEvidence(const std::vector<std::pair<std::string, std::string>>& pairs) {
  std::string out = std::to_string(pairs.size()) + (pairs.size() == 1 ? " file: " : " files: ");
  for (size_t i = 0; i < pairs.size() && i < kMaxEvidenceObjects; ++i) {
    if (i != 0) out += "; ";
    out += Printable(pairs[i].first) + " (" + Printable(pairs[i].second) + ")";
  }
  if (pairs.size() > kMaxEvidenceObjects) {
    out += " and " + std::to_string(pairs.size() - kMaxEvidenceObjects) + " more";
  }
  return out;
}

void AddCorpusFinding(std::vector<Finding>& out, const std::vector<std::string>& paths,
                      const char* id, Severity severity, const char* title,
                      const char* remediation) {
  if (paths.empty()) return;
  Finding f = Make(id, severity, title, ObjectsEvidence(paths), remediation);
  f.objects = paths;
  out.push_back(std::move(f));
}

void AddFileFinding(std::vector<Finding>& out,
                    const std::vector<std::pair<std::string, std::string>>& pairs, const char* id,
                    Severity severity, const char* title, const char* remediation) {
  if (pairs.empty()) return;
  Finding f = Make(id, severity, title, PairsEvidence(pairs), remediation);
  for (const auto& p : pairs) f.objects.push_back(p.first);
  out.push_back(std::move(f));
}

// The directories above `dir`: those of the path as given (made absolute; a symlink in it
// is controlled by its directory's writers too) and those of its canonical form. Nearest
// first, no duplicates.
std::vector<std::string> Ancestors(const std::string& dir) {
  std::vector<std::string> out;
  auto add_parents = [&out](std::string p) {
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    while (p.size() > 1) {
      size_t slash = p.rfind('/');
      if (slash == std::string::npos) break;
      p = slash == 0 ? "/" : p.substr(0, slash);
      if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
    }
  };
  std::string given = dir;
  if (!given.starts_with("/")) {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) != nullptr) given = std::string(cwd) + "/" + given;
  }
  if (given.starts_with("/")) add_parents(given);
  if (char* real = realpath(dir.c_str(), nullptr)) {
    add_parents(real);
    std::free(real);
  }
  return out;
}

void CheckEntryOwnerAndMode(std::vector<Finding>& out, const std::string& path,
                            const struct stat& st, uid_t euid, const char* mode_id,
                            const std::string& chmod_fix) {
  if (st.st_uid != euid) {
    out.push_back(Make(
        "KH-KS-002", Severity::kHigh, Printable(path) + " is owned by another user",
        "owner uid " + std::to_string(st.st_uid) + ", keyhold runs as uid " + std::to_string(euid),
        "a keystore must belong to the user who runs keyhold: chown it back "
        "(and find out who changed it), or restore the keystore from a backup"));
  }
  if ((st.st_mode & 077) != 0) {
    out.push_back(Make(mode_id, Severity::kHigh, Printable(path) + " is accessible by other users",
                       "mode " + Octal(st.st_mode) + "; group and others must have no access",
                       chmod_fix));
  }
}

}  // namespace

std::string_view SeverityName(Severity severity) {
  switch (severity) {
    case Severity::kInfo:
      return "info";
    case Severity::kLow:
      return "low";
    case Severity::kMedium:
      return "medium";
    case Severity::kHigh:
      return "high";
  }
  return "info";
}

Result<Severity> ParseSeverity(std::string_view name) {
  for (Severity s : {Severity::kInfo, Severity::kLow, Severity::kMedium, Severity::kHigh}) {
    if (name == SeverityName(s)) return s;
  }
  return Error(ErrorCode::kInvalidArgument, "unknown severity " + Printable(name),
               "use info, low, medium or high");
}

// --- Keystore location ---------------------------------------------------------------------

std::optional<std::string> NetworkFilesystemName(int64_t f_type) {
  // Magic numbers from linux/magic.h and the filesystems' own headers: the kernel reports
  // them in statfs's f_type, which is the only portable way to tell a mount's kind.
  struct Entry {
    int64_t magic;
    const char* name;
  };
  static constexpr Entry kNetwork[] = {
      {0x6969, "NFS"},      {0x517B, "SMB"},       {0xFF534D42, "CIFS"}, {0xFE534D42, "SMB2"},
      {0x65735546, "FUSE"}, {0x01021997, "9P"},    {0x5346414F, "AFS"},  {0x6B414653, "kAFS"},
      {0x00C36400, "Ceph"}, {0x73757245, "Coda"},  {0x564C, "NCP"},      {0x0BD00BD0, "Lustre"},
      {0x01161970, "GFS2"}, {0x7461636F, "OCFS2"}, {0x47504653, "GPFS"},
  };
  for (const auto& e : kNetwork) {
    if (e.magic == f_type) return std::string(e.name);
  }
  return std::nullopt;
}

std::vector<Finding> CheckKeystoreLocation(const std::string& dir, uid_t euid,
                                           std::optional<int64_t> fs_type_override) {
  std::vector<Finding> out;
  struct stat lst;
  if (lstat(dir.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode) && lst.st_uid != euid) {
    out.push_back(Make("KH-KS-002", Severity::kHigh,
                       "keystore path " + Printable(dir) + " is a symlink owned by another user",
                       "link owner uid " + std::to_string(lst.st_uid) +
                           ": its owner chooses which directory is the keystore",
                       "use the real directory, or a symlink you own"));
  }
  struct stat st;
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return out;
  CheckEntryOwnerAndMode(out, dir, st, euid, "KH-KS-001", "chmod 700 " + Printable(dir));

  // Every entry of the directory: keystore.json, its .bak, lock, audit.log, audit.head and
  // anything else someone put there.
  if (DIR* d = opendir(dir.c_str())) {
    std::vector<std::string> names;
    while (struct dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(std::move(n));
    }
    closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      const std::string path = dir + "/" + n;
      struct stat fst;
      if (lstat(path.c_str(), &fst) != 0) continue;
      if (S_ISLNK(fst.st_mode)) {
        out.push_back(Make("KH-KS-003", Severity::kHigh, Printable(path) + " is a symbolic link",
                           "keyhold never follows links inside a keystore; whoever controls "
                           "the link target controls the file",
                           "replace the link with the regular file it should be, or remove it"));
        continue;
      }
      if (!S_ISREG(fst.st_mode)) continue;
      CheckEntryOwnerAndMode(out, path, fst, euid, "KH-KS-003",
                             "chmod 600 " + Printable(dir) + "/*");
    }
  }

  for (const auto& a : Ancestors(dir)) {
    struct stat ast;
    if (stat(a.c_str(), &ast) != 0) continue;
    const bool sticky = (ast.st_mode & S_ISVTX) != 0;
    if ((ast.st_mode & S_IWOTH) != 0 && !sticky) {
      out.push_back(Make("KH-KS-004", Severity::kHigh,
                         "parent directory " + Printable(a) + " is writable by every user",
                         "mode " + Octal(ast.st_mode) +
                             " without the sticky bit: any user can rename the keystore away "
                             "and put their own in its place",
                         "chmod o-w " + Printable(a) +
                             " (or +t), or move the keystore "
                             "under a directory only you can write"));
    } else if ((ast.st_mode & S_IWGRP) != 0 && !sticky) {
      out.push_back(Make("KH-KS-005", Severity::kMedium,
                         "parent directory " + Printable(a) + " is writable by its group",
                         "mode " + Octal(ast.st_mode) + ", group gid " +
                             std::to_string(ast.st_gid) +
                             ", no sticky bit: group members can replace the keystore",
                         "chmod g-w " + Printable(a) +
                             ", or move the keystore under a "
                             "directory only you can write"));
    } else if (ast.st_uid != 0 && ast.st_uid != euid) {
      out.push_back(
          Make("KH-KS-005", Severity::kMedium,
               "parent directory " + Printable(a) + " belongs to another user",
               "owner uid " + std::to_string(ast.st_uid) + ": that user can replace the keystore",
               "move the keystore under a directory owned by you or root"));
    }
  }

  std::optional<int64_t> f_type = fs_type_override;
  if (!f_type) {
    struct statfs sfs;
    if (statfs(dir.c_str(), &sfs) == 0) f_type = static_cast<int64_t>(sfs.f_type);
  }
  if (f_type) {
    if (auto name = NetworkFilesystemName(*f_type)) {
      char hex[24];
      std::snprintf(hex, sizeof(hex), "0x%llx", static_cast<unsigned long long>(*f_type));
      out.push_back(Make("KH-KS-006", Severity::kMedium,
                         "keystore is on a network or user-space filesystem (" + *name + ")",
                         "statfs f_type " + std::string(hex) + " for " + Printable(dir) +
                             ": its administrators and servers see the files, and flock and "
                             "atomic rename may not hold across clients",
                         "keep the keystore on a local disk (--keystore DIR or KEYHOLD_HOME) "
                         "and copy only encrypted backups to shared storage"));
    }
  }
  return out;
}

// --- Keystore contents ---------------------------------------------------------------------

std::vector<Finding> CheckSlots(const std::vector<keystore::SlotInfo>& slots) {
  std::vector<Finding> out;
  const Argon2idParams& floor = kArgon2idRecommended;
  bool has_recipient = false;
  for (const auto& s : slots) {
    if (s.kind == keystore::SlotKind::kRecipient) {
      has_recipient = true;
      continue;
    }
    if (s.kdf.iterations < floor.iterations || s.kdf.memory_kib < floor.memory_kib ||
        s.kdf.parallelism < floor.parallelism) {
      out.push_back(
          Make("KH-SL-001", Severity::kMedium,
               "passphrase slot " + Printable(s.id) + " has Argon2id parameters below the floor",
               "t=" + std::to_string(s.kdf.iterations) + " m=" + std::to_string(s.kdf.memory_kib) +
                   " KiB p=" + std::to_string(s.kdf.parallelism) + "; the floor is t=" +
                   std::to_string(floor.iterations) + " m=" + std::to_string(floor.memory_kib) +
                   " KiB p=" + std::to_string(floor.parallelism) + " (RFC 9106)",
               "keyhold slot add-passphrase (calibrated, at or above the floor), then keyhold slot "
               "remove " +
                   Printable(s.id)));
    }
  }
  if (!has_recipient) {
    out.push_back(Make("KH-SL-002", Severity::kMedium, "no recovery slot",
                       std::to_string(slots.size()) +
                           " unlock slot(s), none for a recipient: a lost or forgotten "
                           "passphrase means every key, and every object, is lost",
                       "on an offline machine: keyhold keygen -o recovery.key; then keyhold "
                       "slot add-recipient kh1...; store recovery.key offline "
                       "(docs/best-practices.md, Recovery)"));
  }
  if (slots.size() == 1) {
    out.push_back(
        Make("KH-SL-003", Severity::kLow, "only one unlock slot",
             "slot " + Printable(slots.front().id) + " is the only way to open the keystore",
             "add a second slot: a recovery recipient (keyhold slot add-recipient) "
             "or a second passphrase held by someone else"));
  }
  return out;
}

std::vector<Finding> CheckKeys(const std::vector<keystore::KeyInfo>& keys, int64_t now_unix) {
  std::vector<Finding> out;
  for (const auto& k : keys) {
    const std::string name = Printable(k.name);
    const int64_t period = static_cast<int64_t>(k.policy.rotation_days) * kSecondsPerDay;
    if (k.policy.rotation_days == 0) {
      out.push_back(Make("KH-KEY-002", Severity::kLow, "key " + name + " has no rotation policy",
                         "rotation_days is 0",
                         "keyhold key policy " + name + " --rotation-days 90 (or your schedule)"));
    } else if (now_unix - k.last_rotated_unix > period) {
      out.push_back(
          Make("KH-KEY-001", Severity::kMedium, "key " + name + " is overdue for rotation",
               "newest version v" + std::to_string(k.versions.size()) + " created " +
                   FormatTime(k.last_rotated_unix) + ", " + Days(now_unix - k.last_rotated_unix) +
                   " ago; rotation_days is " + std::to_string(k.policy.rotation_days),
               "keyhold key rotate " + name +
                   ", then keyhold rewrap the objects and "
                   "keyhold key retire the old version"));
    }
    std::vector<std::string> active;
    std::vector<std::string> stale;
    for (const auto& v : k.versions) {
      if (v.state != keystore::KeyState::kActive) continue;
      active.push_back("v" + std::to_string(v.version));
      if (k.policy.rotation_days > 0 && v.version != k.primary_version &&
          now_unix - v.created_unix > period) {
        stale.push_back("v" + std::to_string(v.version) + " (created " +
                        FormatTime(v.created_unix) + ", " + Days(now_unix - v.created_unix) +
                        " ago)");
      }
    }
    if (active.size() > kMaxActiveVersions) {
      out.push_back(Make(
          "KH-KEY-003", Severity::kLow,
          "key " + name + " has " + std::to_string(active.size()) + " active versions",
          "active: " + Join(active, ", ") + "; more than " + std::to_string(kMaxActiveVersions) +
              " widens what a leaked "
              "keystore copy still encrypts with",
          "keyhold rewrap the objects to the primary, then keyhold key retire " + name +
              " VERSION for each older one"));
    }
    if (!stale.empty()) {
      out.push_back(Make(
          "KH-KEY-004", Severity::kMedium,
          "key " + name +
              " has active non-primary versions older than its "
              "rotation period",
          Join(stale, ", ") + "; rotation_days is " + std::to_string(k.policy.rotation_days) +
              ", primary is v" + std::to_string(k.primary_version),
          "keyhold rewrap the objects, then keyhold key retire " + name + " VERSION for each"));
    }
    // Rule (docs/best-practices.md): once every version below the primary has stopped being
    // active, the key was rotated and the old versions wound down; min_decryption_version
    // still at 1 means a re-enabled or forgotten old version would still decrypt.
    if (k.primary_version > 1 && k.policy.min_decryption_version == 1) {
      bool all_old_retired = true;
      for (const auto& v : k.versions) {
        if (v.version < k.primary_version && v.state == keystore::KeyState::kActive) {
          all_old_retired = false;
        }
      }
      if (all_old_retired) {
        out.push_back(
            Make("KH-KEY-005", Severity::kLow,
                 "key " + name + ": min_decryption_version not raised after rotation",
                 "primary is v" + std::to_string(k.primary_version) +
                     ", every older version is retired, disabled or destroyed, and "
                     "min_decryption_version is still 1",
                 "when keyhold scan (or keyhold doctor PATH...) shows no object depends on the old "
                 "versions: keyhold key policy " +
                     name + " --min-decryption-version " + std::to_string(k.primary_version)));
      }
    }
    if (k.primary_version == 0) {
      out.push_back(Make("KH-KEY-006", Severity::kLow, "key " + name + " has no primary version",
                         "no active version at or above min_decryption_version " +
                             std::to_string(k.policy.min_decryption_version) +
                             ": encrypt refuses this key",
                         "keyhold key rotate " + name + " if the key is still in use"));
    }
  }
  return out;
}

// --- Objects -------------------------------------------------------------------------------

std::vector<Finding> CheckCorpus(const std::vector<ScanEntry>& entries, const ScanReport& r,
                                 const CorpusPolicy& policy) {
  std::vector<Finding> out;
  if (policy.keystore_known) {
    AddCorpusFinding(out, r.only_destroyed, "KH-OBJ-001", Severity::kHigh,
                     "objects wrapped only to destroyed key versions",
                     "unless a recipient identity opens them they are lost: decrypt them "
                     "with it (keyhold decrypt -i FILE) now and encrypt them again");
    AddCorpusFinding(out, r.only_disabled, "KH-OBJ-002", Severity::kHigh,
                     "objects wrapped only to disabled key versions",
                     "keyhold key enable NAME VERSION, keyhold rewrap the objects, then disable "
                     "again");
    AddCorpusFinding(out, r.only_below_min, "KH-OBJ-003", Severity::kHigh,
                     "objects wrapped only to versions below min_decryption_version",
                     "lower the key's --min-decryption-version, keyhold rewrap the objects, "
                     "then raise it again");
    AddCorpusFinding(out, r.only_decrypt_only, "KH-OBJ-004", Severity::kMedium,
                     "objects wrapped only to retired (decrypt-only) key versions",
                     "keyhold rewrap PATH... moves them to the primary version");
    AddCorpusFinding(out, r.only_unknown_version, "KH-OBJ-005", Severity::kHigh,
                     "objects wrapped to key versions this keystore does not have",
                     "they were made with another (newer) copy of the keystore: find it, or "
                     "decrypt with a recipient identity");
    AddCorpusFinding(out, r.no_keystore_stanza, "KH-OBJ-006", Severity::kMedium,
                     "objects with no stanza for a key of this keystore",
                     "wrapped only to recipients or another keystore's keys: check you run "
                     "doctor with the right keystore, or keyhold rewrap --to KEY");
    AddCorpusFinding(out, r.not_on_primary, "KH-OBJ-012", Severity::kLow,
                     "objects not wrapped to their key's primary version",
                     "keyhold rewrap PATH... after each rotation");
  }
  AddCorpusFinding(out, r.no_recovery, "KH-OBJ-007", Severity::kMedium,
                   "objects with no recovery recipient",
                   "keyhold rewrap --add-recipient RECOVERY PATH... (a recipient slot's kh1... "
                   "or an address-book name)");
  AddFileFinding(out, r.malformed, "KH-OBJ-008", Severity::kHigh,
                 "malformed keyhold objects (corrupted or tampered)",
                 "restore them from a backup; keyhold inspect FILE shows the error");
  AddFileFinding(out, r.not_keyhold, "KH-OBJ-009", Severity::kMedium,
                 "files that are not keyhold objects (plaintext in the encrypted tree?)",
                 "encrypt them with keyhold encrypt, or move them out of the tree");
  AddFileFinding(out, r.unreadable, "KH-OBJ-010", Severity::kMedium, "files that could not be read",
                 "fix their permissions and run doctor again");
  if (policy.require_context) {
    std::vector<std::string> empty;
    for (const auto& e : entries) {
      if (e.kind == ScanEntry::kObject && e.summary && e.summary->header.context.empty()) {
        empty.push_back(e.path);
      }
    }
    AddCorpusFinding(out, empty, "KH-OBJ-011", Severity::kMedium,
                     "objects with an empty encryption context (--require-context)",
                     "the context cannot be added afterwards: keyhold decrypt and keyhold "
                     "encrypt -c bucket=... -c object=... again, then decrypt with "
                     "--expect-context");
  }
  return out;
}

// --- Audit log -----------------------------------------------------------------------------

std::optional<Finding> CheckAuditLogPresent(const std::string& dir) {
  struct stat st;
  const bool log = lstat((dir + "/" + std::string(keystore::kAuditLogFileName)).c_str(), &st) == 0;
  const bool head =
      lstat((dir + "/" + std::string(keystore::kAuditHeadFileName)).c_str(), &st) == 0;
  if (log || head) return std::nullopt;
  return Make("KH-AUD-001", Severity::kHigh, "no audit log",
              "neither " + std::string(keystore::kAuditLogFileName) + " nor " +
                  std::string(keystore::kAuditHeadFileName) + " in " + Printable(dir) +
                  ": keyhold init starts the log, so it was deleted (or never written)",
              "restore audit.log and audit.head from the keystore's backup; if they are gone, "
              "the history is lost (docs/audit-log.md); the next keystore change starts a new log");
}

std::optional<Finding> CheckAuditReport(const keystore::AuditVerifyReport& report) {
  auto first = report.FirstProblem();
  if (!first) return std::nullopt;
  std::string where =
      first->line == 0 ? std::string() : "line " + std::to_string(first->line) + ": ";
  return Make("KH-AUD-002", Severity::kHigh, "audit log verification failed",
              where + Printable(first->reason) + " (" + std::to_string(report.verified_entries) +
                  " entries verified before it)",
              "keyhold log verify shows every problem; compare with the keystore's backup and "
              "treat the keystore as possibly tampered with (docs/audit-log.md)");
}

Finding AuditNotVerifiedFinding() {
  return Make("KH-AUD-003", Severity::kInfo, "audit log not verified (keystore locked)",
              "the audit log's MAC key comes from the unlocked keystore; doctor ran without "
              "a passphrase or identity",
              "run keyhold doctor --unlock (or with --passphrase-file FILE, --passphrase-fd N "
              "or --identity FILE) to verify the keystore and the audit chain");
}

// --- Process environment -------------------------------------------------------------------

std::optional<uint64_t> ParseCoreLimit(std::string_view text) {
  constexpr std::string_view kName = "Max core file size";
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    std::string_view line = text.substr(pos, eol == std::string_view::npos ? eol : eol - pos);
    pos = eol == std::string_view::npos ? text.size() : eol + 1;
    if (!line.starts_with(kName)) continue;
    std::istringstream fields{std::string(line.substr(kName.size()))};
    std::string soft;
    if (!(fields >> soft)) return std::nullopt;
    if (soft == "unlimited") return UINT64_MAX;
    if (soft.empty() || soft.size() > 20 ||
        !std::all_of(soft.begin(), soft.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    errno = 0;
    unsigned long long v = std::strtoull(soft.c_str(), nullptr, 10);
    if (errno != 0) return std::nullopt;
    return static_cast<uint64_t>(v);
  }
  return std::nullopt;
}

std::vector<std::string> ParseDiskSwaps(std::string_view text) {
  std::vector<std::string> out;
  size_t pos = 0;
  bool header = true;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    std::string_view line = text.substr(pos, eol == std::string_view::npos ? eol : eol - pos);
    pos = eol == std::string_view::npos ? text.size() : eol + 1;
    if (header) {  // "Filename  Type  Size  Used  Priority"
      header = false;
      continue;
    }
    size_t start = line.find_first_not_of(" \t");
    if (start == std::string_view::npos) continue;
    size_t end = line.find_first_of(" \t", start);
    std::string name(line.substr(start, end == std::string_view::npos ? end : end - start));
    // zram swap is compressed RAM: swapped secrets never reach a disk.
    if (name.starts_with("/dev/zram")) continue;
    out.push_back(Printable(name));
  }
  return out;
}

HygieneFacts CollectHygieneFacts(const std::string& swaps_path) {
  HygieneFacts f;
  // keyhold sets its own RLIMIT_CORE to 0 at startup, so the user's setting is read from
  // the parent (the invoking shell or script).
  if (auto limits = ReadSmallText("/proc/" + std::to_string(getppid()) + "/limits")) {
    f.shell_core_limit = ParseCoreLimit(*limits);
  }
  if (auto pattern = ReadSmallText("/proc/sys/kernel/core_pattern")) {
    f.core_pattern = *pattern;
    while (!f.core_pattern.empty() && f.core_pattern.back() == '\n') f.core_pattern.pop_back();
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0) {
    f.memlock_limit =
        rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : static_cast<uint64_t>(rl.rlim_cur);
  }
  if (auto status = ReadSmallText("/proc/self/status")) {
    size_t p = status->find("\nCapEff:");
    if (p != std::string::npos) {
      constexpr unsigned kCapIpcLock = 14;  // linux/capability.h
      unsigned long long caps = std::strtoull(status->c_str() + p + 8, nullptr, 16);
      f.cap_ipc_lock = ((caps >> kCapIpcLock) & 1U) != 0;
    }
  }
  f.swaps_text = ReadSmallText(swaps_path);
  return f;
}

std::vector<Finding> CheckHygiene(const HygieneFacts& f) {
  std::vector<Finding> out;
  auto limit_text = [](uint64_t v) {
    return v == UINT64_MAX ? std::string("unlimited") : std::to_string(v) + " bytes";
  };
  if (!f.shell_core_limit) {
    out.push_back(Make("KH-ENV-004", Severity::kInfo, "core dump limit of the shell not determined",
                       "/proc/PPID/limits could not be read or parsed",
                       "check `ulimit -c` in the shell that runs keyhold; it should print 0"));
  } else if (*f.shell_core_limit > 0) {
    out.push_back(Make("KH-ENV-001", Severity::kMedium, "core dumps are enabled for this shell",
                       "ulimit -c of the invoking process: " + limit_text(*f.shell_core_limit) +
                           "; kernel.core_pattern: " + Printable(f.core_pattern) +
                           ". keyhold disables them for itself, but other programs that "
                           "handle your plaintext or passphrases (editors, pipelines) do not",
                       "ulimit -c 0 in the shell profile, or `* hard core 0` in "
                       "/etc/security/limits.conf; with systemd-coredump also Storage=none in "
                       "/etc/systemd/coredump.conf"));
  }
  if (!f.cap_ipc_lock && f.memlock_limit < kMinMemlockBytes) {
    out.push_back(Make("KH-ENV-002", Severity::kLow, "memory locking is not available",
                       "RLIMIT_MEMLOCK soft limit " + limit_text(f.memlock_limit) + " (below " +
                           std::to_string(kMinMemlockBytes) +
                           " bytes) and no CAP_IPC_LOCK: key material may be paged out",
                       "raise it: ulimit -l 65536 (or memlock in /etc/security/limits.conf, "
                       "LimitMEMLOCK= in a systemd unit)"));
  }
  if (!f.swaps_text) {
    out.push_back(Make("KH-ENV-004", Severity::kInfo, "swap configuration not determined",
                       "/proc/swaps could not be read", "check `swapon --show`"));
  } else {
    std::vector<std::string> swaps = ParseDiskSwaps(*f.swaps_text);
    if (!swaps.empty()) {
      const bool lockable = f.cap_ipc_lock || f.memlock_limit >= kMinMemlockBytes;
      out.push_back(Make("KH-ENV-003", Severity::kLow, "swap on disk is enabled",
                         "active swap: " + Join(swaps, ", ") +
                             (lockable ? "; memory locking is available, so keyhold's own "
                                         "secrets stay in RAM, but plaintext in other programs "
                                         "may be swapped"
                                       : "; memory locking is NOT available, so key material "
                                         "may be written to it"),
                         "encrypt swap (dm-crypt with a random key per boot) or use zram, or "
                         "swapoff on machines that handle keys"));
    }
  }
  return out;
}

// --- Report --------------------------------------------------------------------------------

void SortFindings(std::vector<Finding>& findings) {
  std::stable_sort(findings.begin(), findings.end(), [](const Finding& a, const Finding& b) {
    if (a.severity != b.severity) return a.severity > b.severity;
    return a.id < b.id;
  });
}

std::string SummaryLine(const std::vector<Finding>& findings) {
  size_t counts[4] = {0, 0, 0, 0};
  for (const auto& f : findings) ++counts[static_cast<int>(f.severity)];
  return std::to_string(findings.size()) + (findings.size() == 1 ? " finding: " : " findings: ") +
         std::to_string(counts[3]) + " high, " + std::to_string(counts[2]) + " medium, " +
         std::to_string(counts[1]) + " low, " + std::to_string(counts[0]) + " info";
}

nlohmann::json DoctorReportToJson(const std::vector<Finding>& findings, bool verified,
                                  const std::optional<std::string>& keystore_dir, Severity fail_on,
                                  bool failed) {
  nlohmann::json arr = nlohmann::json::array();
  size_t counts[4] = {0, 0, 0, 0};
  for (const auto& f : findings) {
    ++counts[static_cast<int>(f.severity)];
    nlohmann::json j = {{"id", f.id},
                        {"severity", std::string(SeverityName(f.severity))},
                        {"title", f.title},
                        {"evidence", f.evidence},
                        {"remediation", f.remediation}};
    if (!f.objects.empty()) j["objects"] = f.objects;
    arr.push_back(std::move(j));
  }
  return {{"doctor_format", 1},
          {"keystore", keystore_dir ? nlohmann::json(*keystore_dir) : nlohmann::json()},
          {"verified", verified},
          {"findings", arr},
          {"summary",
           {{"total", findings.size()},
            {"high", counts[3]},
            {"medium", counts[2]},
            {"low", counts[1]},
            {"info", counts[0]},
            {"fail_on", std::string(SeverityName(fail_on))},
            {"failed", failed}}}};
}

}  // namespace keyhold::cli
