// The keystore's tamper-evident audit log: every keystore change and every key use by
// keyhold, one JSON object per line in DIR/audit.log, hash-chained and authenticated with a
// key that only an unlocked keystore has (Keystore::DeriveSubkey(kAuditSubkeyLabel)).
// DIR/audit.head records the last entry (sequence number and hash) under the same key, so
// truncation of the end is detected too. docs/audit-log.md specifies the format, and what is
// and is not detected.
#ifndef KEYHOLD_KEYSTORE_AUDIT_LOG_H_
#define KEYHOLD_KEYSTORE_AUDIT_LOG_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "keyhold/crypto/result.h"
#include "keyhold/crypto/secret_bytes.h"
#include "keyhold/keystore/keystore.h"

namespace keyhold::keystore {

constexpr std::string_view kAuditLogFileName = "audit.log";
constexpr std::string_view kAuditHeadFileName = "audit.head";
// The label for Keystore::DeriveSubkey that yields the audit log's MAC key.
constexpr std::string_view kAuditSubkeyLabel = "audit-log";
constexpr size_t kAuditMacKeySize = 32;
// A line longer than this (newline excluded) is never a valid entry; readers skip it
// without holding more than this in memory. Writers refuse entries that would exceed it.
constexpr size_t kMaxAuditLineSize = 64 * 1024;
// RecordKeyUse flushes by itself once this many events are buffered.
constexpr size_t kAuditFlushThreshold = 256;

// Event names the log itself writes (the keystore's are listed in docs/keystore.md; key
// uses are "use.<operation>").
constexpr std::string_view kAuditGenesisEvent = "audit.genesis";
constexpr std::string_view kAuditTornTailEvent = "audit.torn-tail";

// One entry as read back. Field values are exactly as recorded (strings).
struct AuditEntry {
  uint64_t seq = 0;
  std::string time;  // RFC 3339 UTC, "YYYY-MM-DDTHH:MM:SSZ"
  int64_t time_unix = 0;
  std::string event;
  std::vector<std::pair<std::string, std::string>> fields;
};

// A problem found by Verify, at a 1-based line of audit.log (0 = not tied to a line, e.g.
// a missing or inconsistent audit.head).
struct AuditFinding {
  uint64_t line = 0;
  std::string reason;
};

struct AuditVerifyReport {
  uint64_t lines = 0;             // lines read
  uint64_t verified_entries = 0;  // entries whose MAC, sequence number and chain verified
  uint64_t last_seq = 0;          // of the last verified entry
  std::string last_time;          // of the last verified entry
  // Where verification stopped: the first entry that fails its MAC, sequence number or
  // chain, or is not an entry at all. Nothing after it is verified.
  std::optional<AuditFinding> first_bad;
  // Problems that did not stop verification: acknowledged torn lines, gaps in the keystore
  // generations, a head that does not match. Each makes the log not intact.
  std::vector<AuditFinding> findings;
  // Informational, not failures: a head that lags behind (an interrupted append), a log
  // that started after the keystore was created.
  std::vector<std::string> notes;

  bool intact() const { return !first_bad && findings.empty(); }
  // first_bad or the first finding, whichever comes first in the file; nullopt if intact.
  std::optional<AuditFinding> FirstProblem() const;
};

struct AuditVerifyOptions {
  // The generation of the keystore as opened. When set, the log's last keystore change must
  // have this generation (otherwise changes are missing from the log, or the keystore was
  // rolled back).
  std::optional<uint64_t> keystore_generation;
};

struct AuditReadFilter {
  std::optional<int64_t> since_unix;  // entries at or after this time
  std::optional<std::string> key;     // entries naming this key (changes and uses)
};

struct AuditShownEntry {
  uint64_t line = 0;
  // False for entries after the point where verification stopped (report.first_bad):
  // they are shown as written, but anyone with write access to the directory could have
  // written them.
  bool verified = false;
  AuditEntry entry;
};

struct AuditReadResult {
  std::vector<AuditShownEntry> entries;  // filtered, in file order
  AuditVerifyReport report;              // of the whole log, as Verify
};

// Appends to one keystore's audit log. Keystore changes arrive through AuditSink::Record
// (Keystore::SetAuditSink); key uses through RecordKeyUse, buffered until Flush. Each flush
// takes an exclusive flock on audit.log itself (never the keystore's lock file, which the
// Keystore holds while calling Record), checks the end of the log against audit.head,
// writes every buffered entry with one O_APPEND write and one fsync, then replaces
// audit.head atomically. Safe for several processes; one AuditLog per thread.
class AuditLog final : public AuditSink {
 public:
  // No I/O happens until the first flush. `mac_key` must be kAuditMacKeySize bytes
  // (kInvalidArgument otherwise). `start_generation` is recorded in the genesis entry if
  // this AuditLog has to start a new log: the keystore generation the history starts after
  // (0 for a keystore being created now).
  static Result<std::unique_ptr<AuditLog>> Open(const std::string& dir, SecretBytes mac_key,
                                                uint64_t start_generation);
  // Flushes what is buffered, ignoring errors: call Flush() to learn of them.
  ~AuditLog() override;
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Appends a keystore change (after any buffered key uses, to keep the order) and flushes.
  // The event's generation is recorded as the field "generation".
  Status Record(const AuditEvent& event) override;

  // Buffers a key use: event "use.<operation>" with fields "keys" (the `key_versions`,
  // each "NAME vN", joined with ", ") and "object" (a path or id; never content). Flushes
  // when kAuditFlushThreshold events are buffered and returns that flush's status.
  // kInvalidArgument for an operation that is not [a-z0-9-]+. A failure is also kept and
  // returned again by the next Flush().
  Status RecordKeyUse(std::string_view operation, const std::vector<std::string>& key_versions,
                      std::string_view object);

  // Writes what is buffered. kAuthFailed if the end of audit.log does not match audit.head
  // or its last entry does not verify (nothing is written: run Verify); kInsecurePermissions
  // if audit.log is not a regular file private to its owner; kIo. Once the write started
  // the buffer is dropped even on failure (a retry could record events twice); a partial
  // write is a torn line that the next flush acknowledges. An earlier failed automatic
  // flush (from RecordKeyUse) is reported again here, so it cannot go unnoticed.
  Status Flush();

  size_t pending() const { return pending_.size(); }
  const std::string& dir() const { return dir_; }

  // Reads and checks the whole log: every entry's MAC, sequence number and chain link, the
  // head record, torn lines and their acknowledgements, and the keystore generations. The
  // report says whether the log is intact. kNotFound if neither audit.log nor audit.head
  // exists; kInvalidArgument for a key of the wrong size; kIo for read errors. Takes a shared
  // flock on audit.log, so the snapshot is consistent with concurrent appenders.
  static Result<AuditVerifyReport> Verify(const std::string& dir, std::span<const uint8_t> mac_key,
                                          const AuditVerifyOptions& options = {});

  // Verify, and also returns the entries that pass `filter`, marked verified or not.
  static Result<AuditReadResult> Read(const std::string& dir, std::span<const uint8_t> mac_key,
                                      const AuditReadFilter& filter,
                                      const AuditVerifyOptions& options = {});

 private:
  struct Pending {
    std::string event;
    std::vector<std::pair<std::string, std::string>> fields;
    int64_t time_unix = 0;
    std::optional<uint64_t> generation;  // keystore changes only
  };

  AuditLog(std::string dir, SecretBytes mac_key, uint64_t start_generation);
  Status FlushNow();

  std::string dir_;
  SecretBytes mac_key_;
  uint64_t start_generation_ = 0;
  std::vector<Pending> pending_;
  std::optional<Error> deferred_error_;
};

// Parses "YYYY-MM-DD" (midnight UTC) or RFC 3339 ("YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)",
// 't'/'z' accepted) to Unix seconds. kInvalidArgument otherwise.
Result<int64_t> ParseAuditTime(std::string_view text);

namespace internal {
// The codec, exposed for tests and the fuzz target. ParseAuditLine checks syntax and
// canonical form only (not the MAC): the line without its newline; returns the entry, the
// "prev" hash and the MAC. EncodeAuditLine(entry, prev, mac_key) yields the line, newline
// excluded; for every line ParseAuditLine accepts, re-encoding its entry with its prev
// gives the same bytes before the MAC.
struct ParsedAuditLine {
  AuditEntry entry;
  std::array<uint8_t, 32> prev{};
  std::array<uint8_t, 32> mac{};
  size_t mac_offset = 0;  // where `,"mac":"` starts: the MAC covers bytes [0, mac_offset)
};
Result<ParsedAuditLine> ParseAuditLine(std::string_view line);
Result<std::string> EncodeAuditLine(const AuditEntry& entry, std::span<const uint8_t> prev,
                                    std::span<const uint8_t> mac_key);
}  // namespace internal

}  // namespace keyhold::keystore

#endif  // KEYHOLD_KEYSTORE_AUDIT_LOG_H_
