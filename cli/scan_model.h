// A keyless inventory of a tree of objects, shared by `keyhold scan`, `keyhold key destroy
// --scan` and `keyhold doctor`: which keys, versions and recipients the objects are wrapped
// to, and which objects are at risk. Nothing here unlocks anything; docs/rotation.md defines
// every category and the JSON fields.
#ifndef KEYHOLD_CLI_SCAN_MODEL_H_
#define KEYHOLD_CLI_SCAN_MODEL_H_

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "inspect_model.h"
#include "keyhold/crypto/result.h"
#include "keyhold/keystore/keystore.h"

namespace keyhold::cli {

// One input file, classified from its header alone.
struct ScanEntry {
  enum Kind {
    kObject,      // a well-formed keyhold header (in-file or with a NAME.hdr sidecar)
    kNotKeyhold,  // does not start with the keyhold magic (and has no sidecar)
    kMalformed,   // starts like a keyhold object (or has a sidecar) but does not parse
    kUnreadable,  // open/read failed (permissions, vanished while scanning)
  };
  std::string path;      // as opened
  std::string relative;  // relative to the root given on the command line (sharding uses it)
  Kind kind = kObject;
  std::optional<ObjectSummary> summary;  // set for kObject
  std::string error;                     // why, for the other kinds
};

// Expands files and directories (recursively, sorted, symlinks not followed, NAME.hdr
// sidecars folded into their object) and reads every header with `threads` workers
// (0 = number of cores). Entries come back in expansion order. Fails only when an input
// argument itself is missing or a directory cannot be listed; a bad file is an entry.
// `skipped` (may be null) receives symlinks and special files that were not read.
Result<std::vector<ScanEntry>> ScanPaths(const std::vector<std::string>& paths, unsigned threads,
                                         std::vector<std::string>* skipped = nullptr);

// How usable a kek stanza of this keystore is, from the key's (unverified or verified) state.
enum class VersionStatus {
  kUsable,          // active and >= min_decryption_version
  kDecryptOnly,     // decrypt-only and >= min_decryption_version: opens, but should be rewrapped
  kBelowMin,        // below the key's min_decryption_version: refused
  kDisabled,        // disabled: refused until enabled
  kDestroyed,       // destroyed: gone for good
  kUnknownVersion,  // the key exists but has no such version (another copy of the keystore?)
};
std::string_view VersionStatusName(VersionStatus status);  // "usable", "decrypt-only", ...

struct KeyVersionUsage {
  std::string key_name;  // from the keystore when known, else the stanza's hint
  std::string key_id;    // hex
  uint32_t version = 0;
  bool in_keystore = false;          // key id known to the keystore
  std::optional<std::string> state;  // keystore state name, unset if not in the keystore
  bool primary = false;              // this is the key's primary version
  uint64_t objects = 0;
  uint64_t bytes = 0;  // header + payload bytes of those objects
};

struct RecipientUsage {
  std::string fingerprint;               // hex, as in the stanza
  std::optional<std::string> name;       // address-book name, if any
  std::optional<std::string> recipient;  // "kh1...", if known from a slot or the address book
  bool recovery = false;                 // matches a recipient slot or an address-book entry
  uint64_t objects = 0;
  uint64_t bytes = 0;
};

struct ScanReport {
  bool keystore_known = false;  // a keystore summary was given
  bool verified = false;        // states came from an unlocked keystore (else unverified)
  uint64_t files = 0;
  uint64_t objects = 0;
  uint64_t object_bytes = 0;
  std::vector<KeyVersionUsage> key_versions;  // sorted by key name, then version
  std::vector<RecipientUsage> recipients;     // sorted by fingerprint
  // Object paths by category (see docs/rotation.md). An object's "best" kek stanza of this
  // keystore decides the first four; objects with no kek stanza of this keystore are in
  // `no_keystore_stanza`.
  std::vector<std::string> only_decrypt_only;
  std::vector<std::string> only_below_min;
  std::vector<std::string> only_disabled;
  std::vector<std::string> only_destroyed;
  std::vector<std::string> only_unknown_version;
  std::vector<std::string> not_on_primary;  // some kek stanza of ours is not the primary
  std::vector<std::string> no_keystore_stanza;
  std::vector<std::string> no_recovery;  // no x25519 stanza for a recovery recipient
  std::vector<std::pair<std::string, std::string>> not_keyhold;  // path, reason
  std::vector<std::pair<std::string, std::string>> malformed;    // path, reason
  std::vector<std::pair<std::string, std::string>> unreadable;   // path, reason
};

// Builds the report from the entries. `keystore` (from Keystore::Peek, or assembled from an
// unlocked keystore's ListKeys/ListSlots/ListRecipients with `verified` set) supplies names,
// states, policies and recovery recipients; without it only the stanzas are counted and
// `no_recovery` lists objects with no x25519 stanza at all.
ScanReport BuildScanReport(const std::vector<ScanEntry>& entries,
                           const std::optional<keystore::UnverifiedSummary>& keystore);

// The stable JSON form (fields documented in docs/rotation.md).
nlohmann::json ScanReportToJson(const ScanReport& report);

// The objects that depend on version `version` of the key with id `key_id`: they have a kek
// stanza for it and no other kek stanza of this keystore for a version that is usable
// (active or decrypt-only, >= min_decryption_version, and not `version` itself). X25519
// stanzas do not count as a way out: whoever holds the identity may be offline.
std::vector<std::string> ObjectsDependingOn(const std::vector<ScanEntry>& entries,
                                            const std::vector<keystore::KeyInfo>& keys,
                                            const std::array<uint8_t, keystore::kKeyIdSize>& key_id,
                                            uint32_t version);

}  // namespace keyhold::cli

#endif  // KEYHOLD_CLI_SCAN_MODEL_H_
