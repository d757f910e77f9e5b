// Rewrapping one object (new stanzas for the same data key, payload bytes untouched) and
// reencrypting one (new data key and payload), both safe to run on many threads at once.
#ifndef KEYHOLD_CLI_REWRAP_OPS_H_
#define KEYHOLD_CLI_REWRAP_OPS_H_

#include <array>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "keyhold/crypto/envelope.h"
#include "keyhold/crypto/result.h"
#include "keyhold/keystore/keystore.h"

namespace CLI {
class App;
}

namespace keyhold::cli {

class Context;

using KeyId = std::array<uint8_t, envelope::kKeyIdSize>;

// What a bulk job needs from the keystore, read once on the calling thread: the Keystore is
// not thread-safe, so workers never touch it. Target secrets point into the Keystore, which
// must outlive the snapshot and must not be changed while it is used.
struct KeystoreSnapshot {
  std::map<KeyId, keystore::KeyInfo> keys_by_id;
  std::map<std::string, envelope::KekTarget> primary;  // by key name; keys with a primary
  std::map<std::string, Error> no_primary;             // why the others have none

  static KeystoreSnapshot Take(const keystore::Keystore& ks);
  // The primary target of `name` (kNotFound, kPolicyRefused as Keystore::PrimaryTarget).
  Result<envelope::KekTarget> Primary(const std::string& name) const;
};

// Serializes another resolver so that worker threads can share one unlocked keystore.
class LockedResolver final : public envelope::KekResolver {
 public:
  explicit LockedResolver(envelope::KekResolver& inner) : inner_(inner) {}
  Result<const SecretBytes*> ResolveForDecrypt(const envelope::KekStanza& stanza) override;

 private:
  envelope::KekResolver& inner_;
  std::mutex mu_;
};

struct RewrapPlan {
  // With --to: every kek stanza of this keystore is replaced by these keys' primary versions.
  // Without: each kek stanza of this keystore moves to its own key's primary version.
  std::vector<std::string> to_keys;
  std::vector<X25519PublicKey> add_recipients;
  std::vector<std::array<uint8_t, envelope::kFingerprintSize>> remove_fingerprints;
  // --from KEY[@VERSION]: only objects with a kek stanza for that key (and version).
  std::optional<std::string> from_key;
  std::optional<uint32_t> from_version;
  bool dry_run = false;
};

// The target flags rewrap and reencrypt share.
struct TargetOptions {
  std::vector<std::string> to;
  std::vector<std::string> add_recipients;
  std::vector<std::string> remove_recipients;  // kh1..., address-book name, or fingerprint hex
  std::string from;                            // KEY or KEY@VERSION
  bool dry_run = false;
};
// Registers --to, --add-recipient, --remove-recipient, --from and --dry-run.
void AddTargetOptions(CLI::App* cmd, TargetOptions* options);
// Resolves recipients (which may unlock the keystore for the address book) and parses --from.
Result<RewrapPlan> BuildRewrapPlan(Context& ctx, const TargetOptions& options);

enum class RewrapStatus { kRewrapped, kUpToDate, kNotSelected };
std::string_view RewrapStatusName(RewrapStatus status);  // "rewrapped", "up-to-date", ...

struct RewrapOutcome {
  RewrapStatus status = RewrapStatus::kUpToDate;
  std::vector<std::string> old_keys;  // "NAME vN" of this keystore's stanzas before
  std::vector<std::string> new_keys;  // and after
  uint64_t header_bytes_written = 0;
  uint64_t object_bytes = 0;  // header + payload on disk
};

// Rewraps the object at `path` (in-file: atomic rewrite of the file with the payload bytes
// copied verbatim; detached: atomic rewrite of the sidecar only). Objects already in the
// desired state are left alone (kUpToDate), so reruns resume an interrupted job. Safe to call
// concurrently for different paths if `keyring.keks` is thread-safe (LockedResolver).
Result<RewrapOutcome> RewrapObject(const std::string& path, const RewrapPlan& plan,
                                   const KeystoreSnapshot& keys, const envelope::Keyring& keyring);

// Reencryption: the same plan fields select targets (--to, --add/--remove-recipient, --from);
// existing x25519 stanzas are re-created for recipients whose public key is known (address
// book, recipient slots, --add-recipient), keyed by fingerprint.
struct ReencryptPlan {
  RewrapPlan targets;
  std::map<std::array<uint8_t, envelope::kFingerprintSize>, X25519PublicKey> known_recipients;
};

enum class ReencryptStatus { kReencrypted, kNotSelected };

struct ReencryptOutcome {
  ReencryptStatus status = ReencryptStatus::kReencrypted;
  std::vector<std::string> old_keys;
  std::vector<std::string> new_keys;
  uint64_t object_bytes = 0;
  bool recovered = false;  // an interrupted earlier reencrypt of this object was completed
};

// Decrypts the object with its current header and encrypts the plaintext again under a fresh
// data key to the same context, to the plan's targets. The new object is written to temp
// files beside the old one and verified (its header opens with `keyring`, and its whole
// payload decrypts to the same SHA-256 as the plaintext read) before anything is replaced.
// In-file: one atomic rename. Detached: the old payload is first hard-linked to
// NAME.kh-tmp-reencrypt-old, then payload and sidecar are renamed in, then the link is
// removed; a later run finds the link and finishes or rolls back (see docs/rotation.md).
// Fails (leaving the object untouched) if a stanza could not be re-created: another
// keystore's key, an unknown stanza kind, or a recipient whose public key is unknown.
Result<ReencryptOutcome> ReencryptObject(const std::string& path, const ReencryptPlan& plan,
                                         const KeystoreSnapshot& keys,
                                         const envelope::Keyring& keyring);

}  // namespace keyhold::cli

#endif  // KEYHOLD_CLI_REWRAP_OPS_H_
