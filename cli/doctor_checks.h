// The checks behind `keyhold doctor`: each compares one fact about the keystore, the objects,
// the audit log or the process environment with the policy in docs/best-practices.md and
// yields findings with a stable id and severity. The checks never print and never unlock:
// the command gathers the facts (unverified from Keystore::Peek, or verified from an
// unlocked keystore) and hands them in. docs/best-practices.md lists every id.
#ifndef KEYHOLD_CLI_DOCTOR_CHECKS_H_
#define KEYHOLD_CLI_DOCTOR_CHECKS_H_

#include <sys/types.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "keyhold/crypto/result.h"
#include "keyhold/keystore/audit_log.h"
#include "keyhold/keystore/keystore.h"
#include "scan_model.h"

namespace keyhold::cli {

// Ordered: a higher value is more severe (--fail-on compares with >=).
enum class Severity { kInfo = 0, kLow = 1, kMedium = 2, kHigh = 3 };

std::string_view SeverityName(Severity severity);  // "info", "low", "medium", "high"
// The inverse of SeverityName; kInvalidArgument for anything else.
Result<Severity> ParseSeverity(std::string_view name);

struct Finding {
  std::string id;  // stable, e.g. "KH-KS-001"
  Severity severity = Severity::kInfo;
  std::string title;                 // one line: what is wrong, naming the subject
  std::string evidence;              // the observed values that prove it
  std::string remediation;           // what to run or change
  std::vector<std::string> objects;  // corpus findings: every object concerned
};

// A key with more active versions than this is reported (KH-KEY-003).
constexpr size_t kMaxActiveVersions = 2;
// Memory locking below this soft RLIMIT_MEMLOCK is considered unavailable (KH-ENV-002):
// keyhold locks a few pages per secret held at once.
constexpr uint64_t kMinMemlockBytes = 64 * 1024;
// Human evidence names at most this many objects; JSON lists them all.
constexpr size_t kMaxEvidenceObjects = 5;
constexpr int64_t kSecondsPerDay = 86400;

// --- Keystore location ---------------------------------------------------------------------

// Permissions and owner of the keystore directory and of every regular file in it
// (KH-KS-001..003), ancestors writable by others without the sticky bit (KH-KS-004, 005) and
// a network or FUSE filesystem (KH-KS-006). `fs_type_override` replaces statfs's f_type (for
// tests). lstat-based: reports, never opens anything for writing.
std::vector<Finding> CheckKeystoreLocation(const std::string& dir, uid_t euid,
                                           std::optional<int64_t> fs_type_override);

// The name of a network or user-space filesystem for a statfs f_type (NFS, CIFS, SMB2, FUSE,
// 9p, AFS, Ceph, ...), or nullopt for a local one.
std::optional<std::string> NetworkFilesystemName(int64_t f_type);

// --- Keystore contents ---------------------------------------------------------------------

// KDF floor (KH-SL-001), recovery slot (KH-SL-002), single slot (KH-SL-003).
std::vector<Finding> CheckSlots(const std::vector<keystore::SlotInfo>& slots);

// Rotation overdue (KH-KEY-001), no policy (002), too many active versions (003), stale
// active versions (004), min_decryption_version not raised (005), no primary (006). Ages are
// computed against `now_unix`.
std::vector<Finding> CheckKeys(const std::vector<keystore::KeyInfo>& keys, int64_t now_unix);

// --- Objects -------------------------------------------------------------------------------

struct CorpusPolicy {
  bool keystore_known = false;   // a keystore was read (else version checks are skipped)
  bool require_context = false;  // --require-context: every object needs a non-empty context
};

// KH-OBJ-001..012 from a scan (ScanPaths + BuildScanReport).
std::vector<Finding> CheckCorpus(const std::vector<ScanEntry>& entries, const ScanReport& report,
                                 const CorpusPolicy& policy);

// --- Audit log -----------------------------------------------------------------------------

// KH-AUD-001: neither audit.log nor audit.head exists in `dir` (checked without a key).
std::optional<Finding> CheckAuditLogPresent(const std::string& dir);
// KH-AUD-002 from a verification report (unlocked keystore).
std::optional<Finding> CheckAuditReport(const keystore::AuditVerifyReport& report);
// KH-AUD-003: the log could not be verified because the keystore stayed locked.
Finding AuditNotVerifiedFinding();

// --- Process environment -------------------------------------------------------------------

struct HygieneFacts {
  // Soft RLIMIT_CORE of the invoking shell (keyhold sets its own to 0 at startup); nullopt
  // if it could not be read. UINT64_MAX for unlimited.
  std::optional<uint64_t> shell_core_limit;
  std::string core_pattern;    // /proc/sys/kernel/core_pattern, for the evidence
  uint64_t memlock_limit = 0;  // soft RLIMIT_MEMLOCK of this process (UINT64_MAX: unlimited)
  bool cap_ipc_lock = false;   // CAP_IPC_LOCK in the effective set (no limit applies)
  std::optional<std::string> swaps_text;  // /proc/swaps, nullopt if unreadable
};

// Reads the facts: /proc/PPID/limits for the shell's core limit, getrlimit, CapEff from
// /proc/self/status, and `swaps_path` (normally /proc/swaps).
HygieneFacts CollectHygieneFacts(const std::string& swaps_path);

// The "Max core file size" soft limit from the text of /proc/PID/limits (UINT64_MAX for
// unlimited); nullopt if the line is missing or malformed.
std::optional<uint64_t> ParseCoreLimit(std::string_view limits_text);

// The active swap areas listed in /proc/swaps text that can reach a disk (the header line
// skipped; zram devices, which stay in memory, left out).
std::vector<std::string> ParseDiskSwaps(std::string_view swaps_text);

// Core dumps (KH-ENV-001), memory locking (KH-ENV-002), swap (KH-ENV-003), and KH-ENV-004
// when a fact could not be read.
std::vector<Finding> CheckHygiene(const HygieneFacts& facts);

// --- Report --------------------------------------------------------------------------------

// Most severe first, then by id, keeping the checks' order within an id.
void SortFindings(std::vector<Finding>& findings);
// "N findings: a high, b medium, c low, d info".
std::string SummaryLine(const std::vector<Finding>& findings);
// {"findings": [...], "summary": {...}, "verified": bool, ...}: the stable JSON form
// documented in docs/best-practices.md.
nlohmann::json DoctorReportToJson(const std::vector<Finding>& findings, bool verified,
                                  const std::optional<std::string>& keystore_dir, Severity fail_on,
                                  bool failed);

}  // namespace keyhold::cli

#endif  // KEYHOLD_CLI_DOCTOR_CHECKS_H_
