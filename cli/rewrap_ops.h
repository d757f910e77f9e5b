// Rewrapping one object: new stanzas for the same data key, payload bytes untouched.
#ifndef KEYHOLD_CLI_REWRAP_OPS_H_
#define KEYHOLD_CLI_REWRAP_OPS_H_

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "keyhold/crypto/envelope.h"
#include "keyhold/crypto/result.h"
#include "keyhold/keystore/keystore.h"

namespace keyhold::cli {

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

enum class RewrapStatus { kRewrapped, kUpToDate, kNotSelected };

struct RewrapOutcome {
  RewrapStatus status = RewrapStatus::kUpToDate;
  std::vector<std::string> old_keys;  // "NAME vN" of this keystore's stanzas before
  std::vector<std::string> new_keys;  // and after
  uint64_t header_bytes_written = 0;
};

// Rewraps the object at `path` (in-file: atomic rewrite of the file with the payload bytes
// copied verbatim; detached: atomic rewrite of the sidecar only). Objects already in the
// desired state are left alone (kUpToDate), so reruns resume an interrupted job.
Result<RewrapOutcome> RewrapObject(const std::string& path, const RewrapPlan& plan,
                                   keystore::Keystore& ks, const envelope::Keyring& keyring);

}  // namespace keyhold::cli

#endif  // KEYHOLD_CLI_REWRAP_OPS_H_
