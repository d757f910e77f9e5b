// The keystore: customer-held key-encryption keys, their versions and states, the unlock
// slots that protect them, and the public recipients address book. docs/keystore.md
// describes the key hierarchy, the on-disk layout and what each protection covers.
//
// A keystore is a directory (mode 0700) holding keystore.json (the current generation),
// keystore.json.bak (the previous one) and lock (the writers' flock). A random 256-bit
// master key encrypts every key version secret and authenticates the whole file; it is
// stored only wrapped, in unlock slots (passphrase or X25519 recipient).
#ifndef KEYHOLD_KEYSTORE_KEYSTORE_H_
#define KEYHOLD_KEYSTORE_KEYSTORE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "keyhold/crypto/argon2id.h"
#include "keyhold/crypto/envelope.h"
#include "keyhold/crypto/result.h"
#include "keyhold/crypto/secret_bytes.h"
#include "keyhold/crypto/x25519.h"

namespace keyhold::keystore {

// File names inside the keystore directory.
constexpr std::string_view kKeystoreFileName = "keystore.json";
constexpr std::string_view kBackupFileName = "keystore.json.bak";
constexpr std::string_view kLockFileName = "lock";

constexpr size_t kMasterKeySize = 32;
constexpr size_t kVersionSecretSize = 32;
constexpr size_t kKeyIdSize = envelope::kKeyIdSize;  // 16
// A keystore file larger than this is refused (kMalformed) before it is parsed.
constexpr size_t kMaxKeystoreFileSize = 16 * 1024 * 1024;
// Calibration raises Argon2id iterations above kArgon2idRecommended up to this cap.
constexpr uint32_t kMaxCalibratedIterations = 32;
constexpr double kDefaultCalibrationSeconds = 0.5;

enum class KeyState { kActive, kDecryptOnly, kDisabled, kDestroyed };

// "active", "decrypt-only", "disabled", "destroyed".
std::string_view KeyStateName(KeyState state);
// The inverse of KeyStateName; kInvalidArgument for anything else.
Result<KeyState> ParseKeyState(std::string_view name);

struct KeyVersionInfo {
  uint32_t version = 0;
  KeyState state = KeyState::kActive;
  int64_t created_unix = 0;
  int64_t changed_unix = 0;  // last state change (== created_unix if never changed)
};

struct KeyPolicy {
  uint32_t rotation_days = 0;           // 0 = no rotation schedule
  uint32_t min_decryption_version = 1;  // versions below refuse to decrypt
};

struct KeyInfo {
  std::string name;
  std::array<uint8_t, kKeyIdSize> key_id{};
  int64_t created_unix = 0;
  KeyPolicy policy;
  std::vector<KeyVersionInfo> versions;  // ascending, versions[i].version == i + 1
  // The newest active version that is >= policy.min_decryption_version; 0 if there is none
  // (the key cannot encrypt until it is rotated or a version is enabled).
  uint32_t primary_version = 0;
  bool rotation_overdue = false;  // rotation_days > 0 and the newest version is older
  int64_t last_rotated_unix = 0;  // creation time of the newest version
};

enum class SlotKind { kPassphrase, kRecipient };

struct SlotInfo {
  std::string id;
  SlotKind kind = SlotKind::kPassphrase;
  Argon2idParams kdf;     // meaningful for kPassphrase only
  std::string recipient;  // "kh1..." for kRecipient, empty otherwise
  int64_t created_unix = 0;
};

struct RecipientInfo {
  std::string name;
  std::string recipient;  // "kh1..."
};

// What `Peek` can tell without unlocking. Nothing here is authenticated: anyone with write
// access to the directory could have changed it. For display ("unverified") only, never for
// a decision.
struct UnverifiedSummary {
  uint64_t generation = 0;
  std::vector<KeyInfo> keys;
  std::vector<SlotInfo> slots;
  std::vector<RecipientInfo> recipients;
  std::optional<std::string> default_key;
  bool verified = false;  // always false; present so printers cannot forget to say so
};

// What the caller offers to open an unlock slot. The CLI prompts or reads files; the
// library only takes bytes.
struct Unlocker {
  std::optional<SecretBytes> passphrase;
  std::vector<envelope::Identity> identities;
};

struct InitOptions {
  // Argon2id parameters of the first passphrase slot. Unset: calibrate, starting from
  // kArgon2idRecommended and raising iterations until one derivation takes about
  // `calibrate_seconds` (never below the recommendation, never above
  // kMaxCalibratedIterations).
  std::optional<Argon2idParams> kdf;
  double calibrate_seconds = kDefaultCalibrationSeconds;
};

// One change to the keystore, for the audit log. Fields are non-secret (names, versions,
// slot ids, recipients, states).
struct AuditEvent {
  std::string event;  // e.g. "key.rotate"; see docs/keystore.md for the list
  std::vector<std::pair<std::string, std::string>> fields;
  uint64_t generation = 0;  // the keystore generation the change produced
  int64_t time_unix = 0;
};

// Receives every change after it was written, while the keystore lock is still held (so
// records are ordered like generations). An error is returned to the caller of the mutation
// as kIo with a message saying the change itself was saved.
class AuditSink {
 public:
  virtual ~AuditSink() = default;
  virtual Status Record(const AuditEvent& event) = 0;
};

// An unlocked, verified keystore. Reads answer from the in-memory snapshot verified at Open
// (or at the last mutation). Every mutation takes the exclusive lock, re-reads and
// re-verifies the file with the master key held in memory, applies the change, writes the
// previous generation to keystore.json.bak and the new one to keystore.json (each
// atomically), then updates the snapshot. Not thread-safe: one Keystore per thread;
// several processes may share a directory.
class Keystore {
 public:
  // Creates a keystore in `dir` (created with mode 0700, as are missing parents) with a
  // fresh master key and one passphrase slot. kAlreadyExists if `dir` already holds a
  // keystore; kInsecurePermissions if an existing `dir` is accessible to others;
  // kInvalidArgument for an empty passphrase; kUnsupported for out-of-bounds KDF params.
  static Status Init(const std::string& dir, const SecretBytes& passphrase,
                     const InitOptions& options, AuditSink* audit = nullptr);

  // Checks ownership and permissions, reads keystore.json, bounds-checks every slot's KDF
  // parameters, opens the first slot the unlocker can open and verifies the file's MAC.
  // kNotFound (no keystore), kInsecurePermissions (with a chmod hint), kMalformed,
  // kUnsupported (KDF bounds, format version), kWrongPassphrase ("no unlock slot could be
  // opened", whichever slot and secret failed), kAuthFailed (the file was modified).
  static Result<Keystore> Open(const std::string& dir, const Unlocker& unlocker);

  // Names, versions, states, slots and recipients without unlocking; unverified. Checks
  // permissions like Open.
  static Result<UnverifiedSummary> Peek(const std::string& dir);

  // True if `dir` contains a keystore file (no permission or integrity check).
  static bool Exists(const std::string& dir);

  Keystore(Keystore&&) noexcept;
  Keystore& operator=(Keystore&&) noexcept;
  Keystore(const Keystore&) = delete;
  Keystore& operator=(const Keystore&) = delete;
  ~Keystore();  // wipes the master key and every version secret

  // Borrowed; must outlive this Keystore or be reset to nullptr.
  void SetAuditSink(AuditSink* audit);
  const std::string& dir() const;
  uint64_t generation() const;

  // --- Reads (verified snapshot) -----------------------------------------------------------
  std::vector<KeyInfo> ListKeys() const;
  Result<KeyInfo> GetKey(std::string_view name) const;  // kNotFound
  std::vector<SlotInfo> ListSlots() const;
  std::vector<RecipientInfo> ListRecipients() const;
  Result<X25519PublicKey> LookupRecipient(std::string_view name) const;  // kNotFound
  std::optional<std::string> DefaultKey() const;

  // --- Mutations ---------------------------------------------------------------------------
  // Each: kNotFound (unknown key/version/slot/recipient), kPolicyRefused (a forbidden state
  // transition or policy violation; the message names the current state), kAuthFailed (the
  // file on disk no longer verifies, or went back to an older generation), kIo.

  // A new key with a random key_id and version 1 active. kAlreadyExists; kInvalidArgument
  // for a bad name (envelope::ValidateKeyName) or policy.
  Result<KeyInfo> CreateKey(std::string_view name, const KeyPolicy& policy);
  // Adds version n+1, active, with a fresh random secret; returns n+1. Always allowed
  // (rotation is how a key whose versions are all retired or destroyed recovers).
  Result<uint32_t> RotateKey(std::string_view name);
  // active -> decrypt-only.
  Status RetireVersion(std::string_view name, uint32_t version);
  // active or decrypt-only -> disabled (reversible with EnableVersion).
  Status DisableVersion(std::string_view name, uint32_t version);
  // disabled -> the state it had before it was disabled.
  Status EnableVersion(std::string_view name, uint32_t version);
  // any state but destroyed -> destroyed: the secret is removed from keystore.json and from
  // keystore.json.bak for good. kPolicyRefused unless `confirmed`.
  Status DestroyVersion(std::string_view name, uint32_t version, bool confirmed);
  // Changes the given fields. kInvalidArgument if min_decryption_version is 0 or exceeds
  // the primary version (or 1 when there is no primary).
  Status SetPolicy(std::string_view name, std::optional<uint32_t> rotation_days,
                   std::optional<uint32_t> min_decryption_version);
  // The key `keyhold encrypt` uses without -k; nullopt clears it. kNotFound for an unknown key.
  Status SetDefaultKey(std::optional<std::string> name);

  // Wraps the master key under a new slot; returns its id. Nothing else is re-encrypted.
  // `kdf` unset = calibrated as at Init (about kDefaultCalibrationSeconds).
  // kInvalidArgument for an empty passphrase; kUnsupported for out-of-bounds params.
  Result<std::string> AddPassphraseSlot(const SecretBytes& passphrase,
                                        std::optional<Argon2idParams> kdf);
  // kAlreadyExists if a slot for this recipient exists; kInvalidArgument for a low-order key.
  Result<std::string> AddRecipientSlot(const X25519PublicKey& recipient);
  // kPolicyRefused for the last slot.
  Status RemoveSlot(std::string_view id);

  // The address book (public keys only). kAlreadyExists, kInvalidArgument (name rules of
  // envelope::ValidateKeyName), kNotFound.
  Status AddRecipient(std::string_view name, const X25519PublicKey& recipient);
  Status RemoveRecipient(std::string_view name);

  // --- For the envelope --------------------------------------------------------------------
  // The primary version of `name`, to encrypt to. kNotFound (unknown key), kPolicyRefused
  // (no active version). KekTarget.secret points into this Keystore and stays valid while it
  // lives, unless that version is destroyed through it.
  Result<envelope::KekTarget> PrimaryTarget(std::string_view name) const;
  // A specific version, which must be active and >= min_decryption_version (kPolicyRefused).
  Result<envelope::KekTarget> TargetForVersion(std::string_view name, uint32_t version) const;
  // Policy-enforcing resolver for decryption: kNotFound for a key_id (or version) not in
  // this keystore; kPolicyRefused "key NAME version N is disabled|destroyed|below
  // min_decryption_version M" with a hint; active and decrypt-only versions resolve.
  // Valid while this Keystore lives (it follows moves of the Keystore's internals).
  envelope::KekResolver& Resolver();

  // A 32-byte key for another keyhold component (e.g. the audit log's MAC key):
  // HKDF-SHA-256 of the master key with info "keyhold keystore v1 subkey:" || label.
  // kInvalidArgument for an empty label.
  Result<SecretBytes> DeriveSubkey(std::string_view label) const;

  struct Impl;

 private:
  explicit Keystore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

namespace internal {
// Test seam for the crash tests: called at each step of a keystore write with its name
// ("bak-written", "bak-synced", "bak-committed", "main-written", "main-synced",
// "main-committed"), so a test tool can sleep there and be killed between steps.
using PersistHook = void (*)(std::string_view step);
void SetPersistHookForTesting(PersistHook hook);
}  // namespace internal

}  // namespace keyhold::keystore

#endif  // KEYHOLD_KEYSTORE_KEYSTORE_H_
