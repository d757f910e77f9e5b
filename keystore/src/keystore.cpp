// The keystore: on-disk format, unlock slots, integrity MAC, locking and atomic persistence.
// docs/keystore.md is the description; this file is its implementation.
#include "keyhold/keystore/keystore.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "keyhold/crypto/aes_gcm.h"
#include "keyhold/crypto/constant_time.h"
#include "keyhold/crypto/encoding.h"
#include "keyhold/crypto/file_io.h"
#include "keyhold/crypto/hash.h"
#include "keyhold/crypto/random.h"

namespace keyhold::keystore {
namespace {

using json = nlohmann::json;

// Domain separation: every key derived from the master key and every AAD starts with this.
constexpr std::string_view kDomain = "keyhold keystore v1";
constexpr std::string_view kFileMagic = "keyhold-keystore";
constexpr std::string_view kBodyFormat = "keyhold-keystore-body";
constexpr uint64_t kBodyVersion = 1;

// HKDF info strings (all under kDomain, none a prefix of another, so no label collides).
constexpr std::string_view kInfoFileMac = "keyhold keystore v1 file-mac";
constexpr std::string_view kInfoVersionWrap = "keyhold keystore v1 version-wrap";
constexpr std::string_view kInfoRecipientSlot = "keyhold keystore v1 recipient-slot";
constexpr std::string_view kInfoSubkeyPrefix = "keyhold keystore v1 subkey:";

constexpr size_t kSlotIdBytes = 6;  // 12 hex characters
constexpr size_t kWrappedKeySize = kMasterKeySize + kAesGcmTagSize;
constexpr size_t kSealedSecretSize = kVersionSecretSize + kAesGcmTagSize;
constexpr size_t kMacSize = 32;
// Structural limits on a parsed file (the size limit already bounds them; these keep
// per-item loops and messages sane).
constexpr size_t kMaxSlots = 256;
constexpr size_t kMaxKeys = 4096;
constexpr size_t kMaxRecipients = 4096;
constexpr size_t kMaxVersions = 1000000;

constexpr std::string_view kPermissionHintPrefix = "chmod 700 ";

internal::PersistHook g_persist_hook = nullptr;

void PersistStep(std::string_view step) {
  if (g_persist_hook != nullptr) g_persist_hook(step);
}

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

int64_t NowUnix() { return static_cast<int64_t>(std::time(nullptr)); }

Error IoError(const std::string& what, int err) {
  return Error(ErrorCode::kIo, what + ": " + std::strerror(err));
}

// --- The in-memory model of keystore.json's body ------------------------------------------

struct VersionRec {
  uint32_t version = 0;
  KeyState state = KeyState::kActive;
  KeyState previous = KeyState::kActive;  // meaningful while disabled
  int64_t created = 0;
  int64_t changed = 0;
  std::array<uint8_t, kAesGcmNonceSize> nonce{};
  std::array<uint8_t, kSealedSecretSize> sealed{};  // all zero (and not stored) if destroyed
};

struct KeyRec {
  std::string name;
  std::array<uint8_t, kKeyIdSize> key_id{};
  int64_t created = 0;
  KeyPolicy policy;
  std::vector<VersionRec> versions;
};

struct SlotRec {
  std::string id;
  SlotKind kind = SlotKind::kPassphrase;
  int64_t created = 0;
  Argon2idParams kdf;
  std::array<uint8_t, kArgon2idSaltSize> salt{};
  X25519PublicKey recipient{};
  X25519PublicKey ephemeral{};
  std::array<uint8_t, kAesGcmNonceSize> nonce{};
  std::array<uint8_t, kWrappedKeySize> wrapped{};
};

struct RecipientRec {
  std::string name;
  X25519PublicKey key{};
};

struct Body {
  uint64_t generation = 0;
  int64_t created = 0;
  std::vector<SlotRec> slots;
  std::vector<KeyRec> keys;
  std::vector<RecipientRec> recipients;
  std::optional<std::string> default_key;
};

struct ParsedFile {
  std::string body_text;
  std::array<uint8_t, kMacSize> mac{};
  Body body;
};

std::string_view SlotKindName(SlotKind kind) {
  return kind == SlotKind::kPassphrase ? "passphrase" : "recipient";
}

// --- JSON decoding: strict, typed, bounded ---------------------------------------------------
// Helpers throw FieldError internally; ParseBody converts it into one kMalformed Error at its
// boundary. No exception leaves this file. Messages name fields, never values.

struct FieldError {
  std::string field;
};

const json& Member(const json& obj, const char* name) {
  if (!obj.is_object()) throw FieldError{name};
  auto it = obj.find(name);
  if (it == obj.end()) throw FieldError{name};
  return *it;
}

uint64_t GetU64(const json& obj, const char* name) {
  const json& v = Member(obj, name);
  if (!v.is_number_unsigned()) throw FieldError{name};
  return v.get<uint64_t>();
}

uint32_t GetU32(const json& obj, const char* name) {
  uint64_t v = GetU64(obj, name);
  if (v > std::numeric_limits<uint32_t>::max()) throw FieldError{name};
  return static_cast<uint32_t>(v);
}

int64_t GetI64(const json& obj, const char* name) {
  const json& v = Member(obj, name);
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) throw FieldError{name};
    return static_cast<int64_t>(u);
  }
  if (!v.is_number_integer()) throw FieldError{name};
  return v.get<int64_t>();
}

std::string GetStr(const json& obj, const char* name) {
  const json& v = Member(obj, name);
  if (!v.is_string()) throw FieldError{name};
  return v.get<std::string>();
}

// Lowercase hex of exactly N bytes; anything else (upper case included) is refused so that
// the stored text has exactly one spelling.
template <size_t N>
std::array<uint8_t, N> GetHex(const json& obj, const char* name) {
  std::string text = GetStr(obj, name);
  auto decoded = HexDecode(text);
  if (!decoded.ok() || decoded->size() != N || HexEncode(*decoded) != text) {
    throw FieldError{name};
  }
  std::array<uint8_t, N> out{};
  std::copy(decoded->begin(), decoded->end(), out.begin());
  return out;
}

const json& GetArray(const json& obj, const char* name, size_t max_items) {
  const json& v = Member(obj, name);
  if (!v.is_array() || v.size() > max_items) throw FieldError{name};
  return v;
}

KeyState GetState(const json& obj, const char* name) {
  auto state = ParseKeyState(GetStr(obj, name));
  if (!state.ok()) throw FieldError{name};
  return *state;
}

// JSON nesting deeper than the format ever uses is refused before parsing, so a crafted
// file cannot make the parser (or the destructor of what it built) recurse deeply.
constexpr int kMaxJsonDepth = 8;

bool NestingWithin(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) return false;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return true;
}

Result<Body> ParseBody(std::string_view text) {
  if (!NestingWithin(text, kMaxJsonDepth)) {
    return Error(ErrorCode::kMalformed, "keystore file is malformed: nested too deeply");
  }
  json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) {
    return Error(ErrorCode::kMalformed,
                 "keystore file is malformed: the body is not a JSON object");
  }
  try {
    if (GetStr(root, "format") != kBodyFormat) throw FieldError{"format"};
    if (GetU64(root, "version") != kBodyVersion) {
      return Error(ErrorCode::kUnsupported,
                   "keystore format version " + std::to_string(GetU64(root, "version")) +
                       " is not supported (this keyhold reads version 1)",
                   "upgrade keyhold");
    }
    Body body;
    body.generation = GetU64(root, "generation");
    body.created = GetI64(root, "created");

    std::set<std::string> seen_ids;
    for (const json& s : GetArray(root, "slots", kMaxSlots)) {
      SlotRec slot;
      slot.id = GetStr(s, "id");
      if (slot.id.size() != 2 * kSlotIdBytes || !seen_ids.insert(slot.id).second) {
        throw FieldError{"slots.id"};
      }
      slot.created = GetI64(s, "created");
      std::string kind = GetStr(s, "kind");
      if (kind == "passphrase") {
        slot.kind = SlotKind::kPassphrase;
        const json& kdf = Member(s, "kdf");
        if (GetStr(kdf, "alg") != "argon2id") throw FieldError{"slots.kdf.alg"};
        slot.kdf.iterations = GetU32(kdf, "t");
        slot.kdf.memory_kib = GetU32(kdf, "m");
        slot.kdf.parallelism = GetU32(kdf, "p");
        slot.salt = GetHex<kArgon2idSaltSize>(kdf, "salt");
      } else if (kind == "recipient") {
        slot.kind = SlotKind::kRecipient;
        slot.recipient = GetHex<kX25519KeySize>(s, "recipient");
        slot.ephemeral = GetHex<kX25519KeySize>(s, "ephemeral");
      } else {
        throw FieldError{"slots.kind"};
      }
      slot.nonce = GetHex<kAesGcmNonceSize>(s, "nonce");
      slot.wrapped = GetHex<kWrappedKeySize>(s, "wrapped");
      body.slots.push_back(std::move(slot));
    }
    if (body.slots.empty()) throw FieldError{"slots"};

    std::set<std::string> names;
    std::set<std::array<uint8_t, kKeyIdSize>> key_ids;
    for (const json& k : GetArray(root, "keys", kMaxKeys)) {
      KeyRec key;
      key.name = GetStr(k, "name");
      if (!envelope::ValidateKeyName(key.name).ok() || !names.insert(key.name).second) {
        throw FieldError{"keys.name"};
      }
      key.key_id = GetHex<kKeyIdSize>(k, "key_id");
      if (!key_ids.insert(key.key_id).second) throw FieldError{"keys.key_id"};
      key.created = GetI64(k, "created");
      const json& policy = Member(k, "policy");
      key.policy.rotation_days = GetU32(policy, "rotation_days");
      key.policy.min_decryption_version = GetU32(policy, "min_decryption_version");
      if (key.policy.min_decryption_version == 0) throw FieldError{"keys.policy"};
      uint32_t expected = 1;
      for (const json& v : GetArray(k, "versions", kMaxVersions)) {
        VersionRec ver;
        ver.version = GetU32(v, "version");
        if (ver.version != expected++) throw FieldError{"keys.versions.version"};
        ver.state = GetState(v, "state");
        ver.created = GetI64(v, "created");
        ver.changed = GetI64(v, "changed");
        if (ver.state == KeyState::kDisabled) {
          ver.previous = GetState(v, "previous_state");
          if (ver.previous != KeyState::kActive && ver.previous != KeyState::kDecryptOnly) {
            throw FieldError{"keys.versions.previous_state"};
          }
        } else if (v.contains("previous_state")) {
          throw FieldError{"keys.versions.previous_state"};
        }
        if (ver.state == KeyState::kDestroyed) {
          if (v.contains("nonce") || v.contains("secret")) throw FieldError{"keys.versions.secret"};
        } else {
          ver.nonce = GetHex<kAesGcmNonceSize>(v, "nonce");
          ver.sealed = GetHex<kSealedSecretSize>(v, "secret");
        }
        key.versions.push_back(ver);
      }
      if (key.versions.empty()) throw FieldError{"keys.versions"};
      body.keys.push_back(std::move(key));
    }

    std::set<std::string> recipient_names;
    for (const json& r : GetArray(root, "recipients", kMaxRecipients)) {
      RecipientRec rec;
      rec.name = GetStr(r, "name");
      if (!envelope::ValidateKeyName(rec.name).ok() || !recipient_names.insert(rec.name).second) {
        throw FieldError{"recipients.name"};
      }
      rec.key = GetHex<kX25519KeySize>(r, "public_key");
      body.recipients.push_back(rec);
    }

    const json& def = Member(root, "default_key");
    if (def.is_string()) {
      body.default_key = def.get<std::string>();
      if (names.count(*body.default_key) == 0) throw FieldError{"default_key"};
    } else if (!def.is_null()) {
      throw FieldError{"default_key"};
    }
    return body;
  } catch (const FieldError& e) {
    return Error(ErrorCode::kMalformed,
                 "keystore file is malformed: field '" + e.field + "' is missing or invalid");
  } catch (const json::exception&) {
    // Only the kind of failure is reported: nlohmann's messages may quote file bytes.
    return Error(ErrorCode::kMalformed, "keystore file is malformed");
  }
}

json EncodeBody(const Body& body) {
  json slots = json::array();
  for (const SlotRec& s : body.slots) {
    json j = {{"id", s.id},
              {"kind", std::string(SlotKindName(s.kind))},
              {"created", s.created},
              {"nonce", HexEncode(s.nonce)},
              {"wrapped", HexEncode(s.wrapped)}};
    if (s.kind == SlotKind::kPassphrase) {
      j["kdf"] = {{"alg", "argon2id"},
                  {"t", s.kdf.iterations},
                  {"m", s.kdf.memory_kib},
                  {"p", s.kdf.parallelism},
                  {"salt", HexEncode(s.salt)}};
    } else {
      j["recipient"] = HexEncode(s.recipient);
      j["ephemeral"] = HexEncode(s.ephemeral);
    }
    slots.push_back(std::move(j));
  }
  json keys = json::array();
  for (const KeyRec& k : body.keys) {
    json versions = json::array();
    for (const VersionRec& v : k.versions) {
      json jv = {{"version", v.version},
                 {"state", std::string(KeyStateName(v.state))},
                 {"created", v.created},
                 {"changed", v.changed}};
      if (v.state == KeyState::kDisabled) {
        jv["previous_state"] = std::string(KeyStateName(v.previous));
      }
      if (v.state != KeyState::kDestroyed) {
        jv["nonce"] = HexEncode(v.nonce);
        jv["secret"] = HexEncode(v.sealed);
      }
      versions.push_back(std::move(jv));
    }
    keys.push_back({{"name", k.name},
                    {"key_id", HexEncode(k.key_id)},
                    {"created", k.created},
                    {"policy",
                     {{"rotation_days", k.policy.rotation_days},
                      {"min_decryption_version", k.policy.min_decryption_version}}},
                    {"versions", std::move(versions)}});
  }
  json recipients = json::array();
  for (const RecipientRec& r : body.recipients) {
    recipients.push_back({{"name", r.name}, {"public_key", HexEncode(r.key)}});
  }
  json root = {{"format", std::string(kBodyFormat)}, {"version", kBodyVersion},
               {"generation", body.generation},      {"created", body.created},
               {"slots", std::move(slots)},          {"keys", std::move(keys)},
               {"recipients", std::move(recipients)}};
  root["default_key"] = body.default_key ? json(*body.default_key) : json(nullptr);
  return root;
}

// The outer file: {"body":"<body JSON text>","mac":"<hex>","magic":"keyhold-keystore"} plus a
// newline. The MAC covers the body text exactly as stored, so no re-serialization is
// trusted; the outer object must be byte-for-byte canonical, so no byte of the file can
// change without changing the body text, the MAC or the magic.
std::string EncodeOuter(const std::string& body_text, std::span<const uint8_t> mac) {
  json outer = {{"body", body_text}, {"mac", HexEncode(mac)}, {"magic", std::string(kFileMagic)}};
  return outer.dump() + "\n";
}

Result<ParsedFile> ParseFile(std::span<const uint8_t> bytes) {
  std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (!NestingWithin(text, kMaxJsonDepth)) {
    return Error(ErrorCode::kMalformed, "keystore file is malformed: nested too deeply");
  }
  json outer = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (outer.is_discarded() || !outer.is_object() || outer.size() != 3) {
    return Error(ErrorCode::kMalformed, "keystore file is malformed: not a keyhold keystore");
  }
  ParsedFile parsed;
  try {
    if (GetStr(outer, "magic") != kFileMagic) throw FieldError{"magic"};
    parsed.body_text = GetStr(outer, "body");
    parsed.mac = GetHex<kMacSize>(outer, "mac");
    if (EncodeOuter(parsed.body_text, parsed.mac) != text) {
      return Error(ErrorCode::kMalformed, "keystore file is malformed: not in canonical form");
    }
  } catch (const FieldError& e) {
    return Error(ErrorCode::kMalformed,
                 "keystore file is malformed: field '" + e.field + "' is missing or invalid");
  } catch (const json::exception&) {
    return Error(ErrorCode::kMalformed, "keystore file is malformed");
  }
  KH_ASSIGN_OR_RETURN(parsed.body, ParseBody(parsed.body_text));
  return parsed;
}

// --- Keys derived from the master key ------------------------------------------------------

Result<SecretBytes> DeriveFromMaster(const SecretBytes& master, std::string_view info) {
  return Hkdf(HashAlg::kSha256, master.ExposeSecret(), {}, Bytes(info), 32);
}

std::vector<uint8_t> FileMacInput(std::string_view body_text) {
  std::vector<uint8_t> in(kDomain.begin(), kDomain.end());
  in.push_back(0);
  in.insert(in.end(), body_text.begin(), body_text.end());
  return in;
}

Result<std::array<uint8_t, kMacSize>> ComputeFileMac(const SecretBytes& master,
                                                     std::string_view body_text) {
  KH_ASSIGN_OR_RETURN(SecretBytes key, DeriveFromMaster(master, kInfoFileMac));
  KH_ASSIGN_OR_RETURN(auto tag,
                      HmacCompute(HashAlg::kSha256, key.ExposeSecret(), FileMacInput(body_text)));
  std::array<uint8_t, kMacSize> out{};
  if (tag.size() != out.size()) return Error(ErrorCode::kInternal, "unexpected hmac size");
  std::copy(tag.begin(), tag.end(), out.begin());
  return out;
}

Status VerifyFileMac(const SecretBytes& master, const ParsedFile& parsed) {
  KH_ASSIGN_OR_RETURN(SecretBytes key, DeriveFromMaster(master, kInfoFileMac));
  Status s =
      HmacVerify(HashAlg::kSha256, key.ExposeSecret(), FileMacInput(parsed.body_text), parsed.mac);
  if (!s.ok()) {
    return Error(ErrorCode::kAuthFailed,
                 "keystore integrity check failed: the keystore file was modified outside keyhold",
                 "restore the directory from a trusted backup; keystore.json.bak holds the "
                 "previous generation");
  }
  return OkStatus();
}

// AAD of a master-key wrap: binds the slot id and kind, so a wrapped key cannot be moved to
// another slot.
std::vector<uint8_t> SlotAad(const SlotRec& slot) {
  std::vector<uint8_t> aad(kDomain.begin(), kDomain.end());
  for (std::string_view part :
       {std::string_view("slot"), std::string_view(slot.id), SlotKindName(slot.kind)}) {
    aad.push_back(0);
    aad.insert(aad.end(), part.begin(), part.end());
  }
  return aad;
}

// AAD of a version secret: binds the key id and version number.
std::vector<uint8_t> VersionAad(const std::array<uint8_t, kKeyIdSize>& key_id, uint32_t version) {
  std::vector<uint8_t> aad(kDomain.begin(), kDomain.end());
  std::string_view tag = "version";
  aad.push_back(0);
  aad.insert(aad.end(), tag.begin(), tag.end());
  aad.push_back(0);
  aad.insert(aad.end(), key_id.begin(), key_id.end());
  for (int shift = 24; shift >= 0; shift -= 8) {
    aad.push_back(static_cast<uint8_t>(version >> shift));
  }
  return aad;
}

Result<SecretBytes> RecipientSlotKey(const SecretBytes& shared, const X25519PublicKey& ephemeral,
                                     const X25519PublicKey& recipient) {
  std::vector<uint8_t> salt(ephemeral.begin(), ephemeral.end());
  salt.insert(salt.end(), recipient.begin(), recipient.end());
  return Hkdf(HashAlg::kSha256, shared.ExposeSecret(), salt, Bytes(kInfoRecipientSlot),
              kAesGcmKeySize);
}

std::string NewSlotId(const Body& body) {
  for (;;) {
    std::array<uint8_t, kSlotIdBytes> raw{};
    RandomBytes(raw);
    std::string id = HexEncode(raw);
    bool taken = false;
    for (const SlotRec& s : body.slots) taken = taken || s.id == id;
    if (!taken) return id;
  }
}

// A new passphrase slot: fresh salt (so a fresh wrapping key) and a fresh nonce.
Result<SlotRec> MakePassphraseSlot(const Body& body, const SecretBytes& master,
                                   const SecretBytes& passphrase, const Argon2idParams& kdf) {
  if (passphrase.empty()) {
    return Error(ErrorCode::kInvalidArgument, "the passphrase is empty");
  }
  KH_RETURN_IF_ERROR(ValidateArgon2idParams(kdf));
  SlotRec slot;
  slot.id = NewSlotId(body);
  slot.kind = SlotKind::kPassphrase;
  slot.created = NowUnix();
  slot.kdf = kdf;
  RandomBytes(slot.salt);
  RandomBytes(slot.nonce);
  KH_ASSIGN_OR_RETURN(SecretBytes kek,
                      Argon2id(passphrase.ExposeSecret(), slot.salt, kdf, kAesGcmKeySize));
  KH_RETURN_IF_ERROR(AesGcmSeal(kek.ExposeSecret(), slot.nonce, SlotAad(slot),
                                master.ExposeSecret(), slot.wrapped));
  return slot;
}

// A new recipient slot: fresh ephemeral key (so a fresh wrapping key) and a fresh nonce.
// A recipient key must give a non-degenerate shared secret (X25519SharedSecret refuses the
// low-order points); checked with a throwaway key so a bad key is refused when it is added,
// not when it is first used.
Status ValidateRecipientKey(const X25519PublicKey& recipient) {
  X25519KeyPair probe = X25519Generate();
  if (!X25519SharedSecret(probe.secret, recipient).ok()) {
    return Error(ErrorCode::kInvalidArgument,
                 "the recipient public key is not usable (a low-order point)");
  }
  return OkStatus();
}

Result<SlotRec> MakeRecipientSlot(const Body& body, const SecretBytes& master,
                                  const X25519PublicKey& recipient) {
  SlotRec slot;
  slot.id = NewSlotId(body);
  slot.kind = SlotKind::kRecipient;
  slot.created = NowUnix();
  slot.recipient = recipient;
  X25519KeyPair eph = X25519Generate();
  slot.ephemeral = eph.public_key;
  KH_ASSIGN_OR_RETURN(SecretBytes shared, X25519SharedSecret(eph.secret, recipient));
  KH_ASSIGN_OR_RETURN(SecretBytes kek, RecipientSlotKey(shared, slot.ephemeral, recipient));
  RandomBytes(slot.nonce);
  KH_RETURN_IF_ERROR(AesGcmSeal(kek.ExposeSecret(), slot.nonce, SlotAad(slot),
                                master.ExposeSecret(), slot.wrapped));
  return slot;
}

Result<SecretBytes> OpenSlotWithKek(const SlotRec& slot, const SecretBytes& kek) {
  SecretBytes master(kMasterKeySize);
  KH_RETURN_IF_ERROR(AesGcmOpen(kek.ExposeSecret(), slot.nonce, SlotAad(slot), slot.wrapped,
                                master.ExposeSecret()));
  return master;
}

// Seals a new version secret under the version-wrap key with a fresh random nonce.
Status SealVersion(const SecretBytes& master, const std::array<uint8_t, kKeyIdSize>& key_id,
                   const SecretBytes& secret, VersionRec& ver) {
  KH_ASSIGN_OR_RETURN(SecretBytes wrap_key, DeriveFromMaster(master, kInfoVersionWrap));
  RandomBytes(ver.nonce);
  return AesGcmSeal(wrap_key.ExposeSecret(), ver.nonce, VersionAad(key_id, ver.version),
                    secret.ExposeSecret(), ver.sealed);
}

Status AddNewVersion(const SecretBytes& master, KeyRec& key) {
  if (key.versions.size() >= kMaxVersions) {
    return Error(ErrorCode::kPolicyRefused, "key " + key.name + " has too many versions");
  }
  VersionRec ver;
  ver.version = static_cast<uint32_t>(key.versions.size() + 1);
  ver.state = KeyState::kActive;
  ver.created = NowUnix();
  ver.changed = ver.created;
  SecretBytes secret = SecretBytes::Random(kVersionSecretSize);
  KH_RETURN_IF_ERROR(SealVersion(master, key.key_id, secret, ver));
  key.versions.push_back(ver);
  return OkStatus();
}

uint32_t PrimaryVersion(const KeyRec& key) {
  for (auto it = key.versions.rbegin(); it != key.versions.rend(); ++it) {
    if (it->version < key.policy.min_decryption_version) break;
    if (it->state == KeyState::kActive) return it->version;
  }
  return 0;
}

KeyInfo MakeKeyInfo(const KeyRec& key, int64_t now) {
  KeyInfo info;
  info.name = key.name;
  info.key_id = key.key_id;
  info.created_unix = key.created;
  info.policy = key.policy;
  for (const VersionRec& v : key.versions) {
    info.versions.push_back({v.version, v.state, v.created, v.changed});
  }
  info.primary_version = PrimaryVersion(key);
  info.last_rotated_unix = key.versions.empty() ? key.created : key.versions.back().created;
  info.rotation_overdue =
      key.policy.rotation_days > 0 &&
      now - info.last_rotated_unix > static_cast<int64_t>(key.policy.rotation_days) * 86400;
  return info;
}

SlotInfo MakeSlotInfo(const SlotRec& s) {
  SlotInfo info;
  info.id = s.id;
  info.kind = s.kind;
  info.created_unix = s.created;
  if (s.kind == SlotKind::kPassphrase) {
    info.kdf = s.kdf;
  } else {
    info.recipient = envelope::EncodeRecipient(s.recipient);
  }
  return info;
}

// --- Files, permissions and the lock --------------------------------------------------------

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }
  int get() const { return fd_; }

 private:
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  int fd_ = -1;
};

std::string ModeString(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

std::string PermissionHint(const std::string& dir) {
  return std::string(kPermissionHintPrefix) + dir + "; chmod 600 " + dir + "/*";
}

// The opened, checked keystore directory: a directory owned by us and closed to others. A
// symlink to it is accepted only if we own the link too (otherwise its owner could point it
// elsewhere between two runs).
Result<UniqueFd> OpenCheckedDir(const std::string& dir) {
  struct stat lst;
  if (lstat(dir.c_str(), &lst) != 0) {
    if (errno == ENOENT) {
      return Error(ErrorCode::kNotFound, "no keystore at " + dir,
                   "create one with `keyhold init`, or pass --keystore DIR");
    }
    return IoError("cannot access " + dir, errno);
  }
  uid_t me = geteuid();
  if (S_ISLNK(lst.st_mode) && lst.st_uid != me) {
    return Error(ErrorCode::kInsecurePermissions,
                 "keystore path " + dir + " is a symlink owned by another user (uid " +
                     std::to_string(lst.st_uid) + ")",
                 "use the real directory, or a symlink you own");
  }
  UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOTDIR) return Error(ErrorCode::kInvalidArgument, dir + " is not a directory");
    return IoError("cannot open " + dir, errno);
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return IoError("cannot stat " + dir, errno);
  if (st.st_uid != me) {
    return Error(ErrorCode::kInsecurePermissions,
                 "keystore directory " + dir + " is owned by another user (uid " +
                     std::to_string(st.st_uid) + ")",
                 "a keystore must belong to the user who runs keyhold");
  }
  if ((st.st_mode & 077) != 0) {
    return Error(ErrorCode::kInsecurePermissions,
                 "keystore directory " + dir + " is accessible by other users (mode " +
                     ModeString(st.st_mode) + ")",
                 PermissionHint(dir));
  }
  return fd;
}

Status CheckFileStat(const struct stat& st, const std::string& dir, std::string_view name) {
  std::string path = dir + "/" + std::string(name);
  if (S_ISLNK(st.st_mode)) {
    return Error(ErrorCode::kInsecurePermissions, path + " is a symlink",
                 "keystore files must be regular files");
  }
  if (!S_ISREG(st.st_mode)) {
    return Error(ErrorCode::kMalformed, path + " is not a regular file");
  }
  if (st.st_uid != geteuid()) {
    return Error(ErrorCode::kInsecurePermissions,
                 path + " is owned by another user (uid " + std::to_string(st.st_uid) + ")",
                 "a keystore must belong to the user who runs keyhold");
  }
  if ((st.st_mode & 077) != 0) {
    return Error(ErrorCode::kInsecurePermissions,
                 path + " is accessible by other users (mode " + ModeString(st.st_mode) + ")",
                 PermissionHint(dir));
  }
  return OkStatus();
}

// Checks a keystore file that may be absent, without following a symlink.
Status CheckOptionalFile(int dirfd, const std::string& dir, std::string_view name) {
  struct stat st;
  std::string n(name);
  if (fstatat(dirfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return OkStatus();
    return IoError("cannot stat " + dir + "/" + n, errno);
  }
  return CheckFileStat(st, dir, name);
}

// Reads keystore.json through one descriptor opened without following symlinks, so the
// permissions checked are those of the bytes read.
Result<std::vector<uint8_t>> ReadKeystoreFile(int dirfd, const std::string& dir) {
  KH_RETURN_IF_ERROR(CheckOptionalFile(dirfd, dir, kBackupFileName));
  KH_RETURN_IF_ERROR(CheckOptionalFile(dirfd, dir, kLockFileName));
  std::string name(kKeystoreFileName);
  // O_NONBLOCK: a FIFO planted under the name must not hang us (fstat then refuses it).
  UniqueFd fd(
      openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (fd.get() < 0) {
    int err = errno;
    if (err == ENOENT) {
      return Error(ErrorCode::kNotFound, "no keystore at " + dir,
                   "create one with `keyhold init`, or pass --keystore DIR");
    }
    if (err == ELOOP) {
      return Error(ErrorCode::kInsecurePermissions, dir + "/" + name + " is a symlink",
                   "keystore files must be regular files");
    }
    return IoError("cannot open " + dir + "/" + name, err);
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return IoError("cannot stat " + dir + "/" + name, errno);
  KH_RETURN_IF_ERROR(CheckFileStat(st, dir, kKeystoreFileName));
  if (st.st_size < 0 || static_cast<uint64_t>(st.st_size) > kMaxKeystoreFileSize) {
    return Error(ErrorCode::kMalformed,
                 "keystore file is larger than " + std::to_string(kMaxKeystoreFileSize) + " bytes");
  }
  // One byte more than the limit, so a file that grew after fstat is still caught.
  std::vector<uint8_t> buf(static_cast<size_t>(st.st_size) + 1);
  KH_ASSIGN_OR_RETURN(size_t n, ReadFull(fd.get(), buf));
  if (n != static_cast<size_t>(st.st_size)) {
    return Error(ErrorCode::kIo, "keystore file changed size while being read");
  }
  buf.resize(n);
  return buf;
}

// The writers' lock: an exclusive flock on DIR/lock, held for a whole read-modify-write.
Result<UniqueFd> AcquireLock(int dirfd, const std::string& dir) {
  std::string name(kLockFileName);
  UniqueFd fd(openat(dirfd, name.c_str(),
                     O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0600));
  if (fd.get() < 0) return IoError("cannot open the lock file " + dir + "/" + name, errno);
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return IoError("cannot stat " + dir + "/" + name, errno);
  KH_RETURN_IF_ERROR(CheckFileStat(st, dir, kLockFileName));
  while (flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return IoError("cannot lock " + dir + "/" + name, errno);
  }
  return fd;
}

// Temp files left by a writer that was killed: only writers create them and we hold the
// lock, so any that exist are stale. They hold nothing unencrypted, but a stale one could
// still carry a since-destroyed version's sealed secret.
void RemoveStaleTemps(int dirfd) {
  int dup_fd = dup(dirfd);
  if (dup_fd < 0) return;
  DIR* d = fdopendir(dup_fd);
  if (d == nullptr) {
    close(dup_fd);
    return;
  }
  const std::string main_prefix = "." + std::string(kKeystoreFileName) + ".kh-tmp-";
  const std::string bak_prefix = "." + std::string(kBackupFileName) + ".kh-tmp-";
  std::vector<std::string> stale;
  while (struct dirent* e = readdir(d)) {
    std::string_view n(e->d_name);
    if (n.starts_with(main_prefix) || n.starts_with(bak_prefix)) stale.emplace_back(n);
  }
  closedir(d);
  for (const std::string& n : stale) {
    struct stat st;
    if (fstatat(dirfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
      unlinkat(dirfd, n.c_str(), 0);
    }
  }
}

// Writes one file atomically with the test hook between write, fsync and rename.
Status WriteStep(const std::string& path, std::span<const uint8_t> data, std::string_view which) {
  KH_ASSIGN_OR_RETURN(AtomicFile file, AtomicFile::Create(path, AtomicFile::Overwrite::kYes, 0600));
  KH_RETURN_IF_ERROR(file.Write(data));
  PersistStep(std::string(which) + "-written");
  if (fsync(file.fd()) != 0) return IoError("fsync " + file.temp_path(), errno);
  PersistStep(std::string(which) + "-synced");
  KH_RETURN_IF_ERROR(file.Commit());
  PersistStep(std::string(which) + "-committed");
  return OkStatus();
}

Result<std::string> Serialize(const Body& body, const SecretBytes& master) {
  std::string body_text = EncodeBody(body).dump();
  KH_ASSIGN_OR_RETURN(auto mac, ComputeFileMac(master, body_text));
  return EncodeOuter(body_text, mac);
}

Status CreateDirs(const std::string& dir) {
  // Missing parents are created 0700 too: they are ours and nobody else needs them.
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    std::string prefix = dir.substr(0, pos);
    if (mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
      return IoError("cannot create " + prefix, errno);
    }
  }
  return OkStatus();
}

Argon2idParams Calibrate(double target_seconds) {
  Argon2idParams params = kArgon2idRecommended;
  std::array<uint8_t, 16> password{};
  std::array<uint8_t, kArgon2idSaltSize> salt{};
  RandomBytes(password);
  RandomBytes(salt);
  auto start = std::chrono::steady_clock::now();
  auto probe = Argon2id(password, salt, params, 32);
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!probe.ok() || elapsed <= 0 || !(target_seconds > elapsed)) return params;
  // Time grows linearly with iterations at fixed memory.
  double scaled = std::floor(static_cast<double>(params.iterations) * target_seconds / elapsed);
  double capped = std::min(scaled, static_cast<double>(kMaxCalibratedIterations));
  params.iterations = std::max(params.iterations, static_cast<uint32_t>(capped));
  return params;
}

std::string KeyIdHex(const std::array<uint8_t, kKeyIdSize>& id) { return HexEncode(id); }

Error NoSuchKey(std::string_view name) {
  return Error(ErrorCode::kNotFound, "no key named " + std::string(name),
               "list keys with `keyhold key list`");
}

KeyRec* FindKey(Body& body, std::string_view name) {
  for (KeyRec& k : body.keys) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

const KeyRec* FindKey(const Body& body, std::string_view name) {
  for (const KeyRec& k : body.keys) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

Result<VersionRec*> FindVersion(Body& body, std::string_view name, uint32_t version) {
  KeyRec* key = FindKey(body, name);
  if (key == nullptr) return NoSuchKey(name);
  if (version == 0 || version > key->versions.size()) {
    return Error(ErrorCode::kNotFound,
                 "key " + key->name + " has no version " + std::to_string(version));
  }
  return &key->versions[version - 1];
}

std::string VersionLabel(std::string_view name, uint32_t version) {
  return "key " + std::string(name) + " version " + std::to_string(version);
}

}  // namespace

// --- Keystore::Impl -------------------------------------------------------------------------

using VersionKey = std::pair<std::array<uint8_t, kKeyIdSize>, uint32_t>;

struct Keystore::Impl final : envelope::KekResolver {
  std::string dir;
  SecretBytes master;
  Body body;
  // Decrypted version secrets. unique_ptr keeps each secret's address stable across
  // snapshot refreshes, so KekTarget::secret stays valid.
  std::map<VersionKey, std::unique_ptr<SecretBytes>> secrets;
  AuditSink* audit = nullptr;

  // Makes `next` the snapshot: decrypts version secrets not yet held, drops those that are
  // gone or destroyed. On failure nothing changes.
  Status Adopt(Body next) {
    KH_ASSIGN_OR_RETURN(SecretBytes wrap_key, DeriveFromMaster(master, kInfoVersionWrap));
    std::map<VersionKey, std::unique_ptr<SecretBytes>> fresh;
    for (const KeyRec& k : next.keys) {
      for (const VersionRec& v : k.versions) {
        if (v.state == KeyState::kDestroyed) continue;
        VersionKey id{k.key_id, v.version};
        auto it = secrets.find(id);
        if (it != secrets.end()) {
          fresh.emplace(id, std::move(it->second));
          secrets.erase(it);
          continue;
        }
        auto secret = std::make_unique<SecretBytes>(kVersionSecretSize);
        Status s = AesGcmOpen(wrap_key.ExposeSecret(), v.nonce, VersionAad(k.key_id, v.version),
                              v.sealed, secret->ExposeSecret());
        if (!s.ok()) {
          // Put back what was moved so a failure leaves the snapshot as it was.
          for (auto& [fid, fsecret] : fresh) secrets.emplace(fid, std::move(fsecret));
          return Error(ErrorCode::kAuthFailed, "keystore integrity check failed: the secret of " +
                                                   VersionLabel(k.name, v.version) +
                                                   " does not decrypt");
        }
        fresh.emplace(id, std::move(secret));
      }
    }
    secrets = std::move(fresh);  // the remaining old entries are wiped as they are freed
    body = std::move(next);
    return OkStatus();
  }

  // The read-modify-write protocol. `apply` edits a body freshly read and verified under
  // the lock and fills in the audit event. When `scrub_backup` is set the backup receives
  // the new generation (written first), so a destroyed secret survives in neither file.
  Status Mutate(const std::function<Status(Body&, AuditEvent&)>& apply, bool scrub_backup) {
    KH_ASSIGN_OR_RETURN(UniqueFd dirfd, OpenCheckedDir(dir));
    KH_ASSIGN_OR_RETURN(UniqueFd lock, AcquireLock(dirfd.get(), dir));
    KH_ASSIGN_OR_RETURN(auto current, ReadKeystoreFile(dirfd.get(), dir));
    KH_ASSIGN_OR_RETURN(ParsedFile parsed, ParseFile(current));
    KH_RETURN_IF_ERROR(VerifyFileMac(master, parsed));
    if (parsed.body.generation < body.generation) {
      return Error(ErrorCode::kAuthFailed,
                   "keystore integrity check failed: the keystore went back from generation " +
                       std::to_string(body.generation) + " to " +
                       std::to_string(parsed.body.generation) + " while in use",
                   "an older copy was restored over it; find out why before continuing");
    }
    Body next = std::move(parsed.body);
    AuditEvent event;
    KH_RETURN_IF_ERROR(apply(next, event));
    next.generation += 1;
    KH_ASSIGN_OR_RETURN(std::string out, Serialize(next, master));
    if (out.size() > kMaxKeystoreFileSize) {
      // Writing it would make the keystore unreadable (Open refuses larger files).
      return Error(ErrorCode::kPolicyRefused,
                   "the change would make the keystore larger than " +
                       std::to_string(kMaxKeystoreFileSize) + " bytes",
                   "destroy old versions you no longer need");
    }
    RemoveStaleTemps(dirfd.get());
    std::span<const uint8_t> out_bytes = Bytes(out);
    KH_RETURN_IF_ERROR(WriteStep(dir + "/" + std::string(kBackupFileName),
                                 scrub_backup ? out_bytes : std::span<const uint8_t>(current),
                                 "bak"));
    KH_RETURN_IF_ERROR(WriteStep(dir + "/" + std::string(kKeystoreFileName), out_bytes, "main"));
    uint64_t generation = next.generation;
    KH_RETURN_IF_ERROR(Adopt(std::move(next)));
    if (audit != nullptr) {
      event.generation = generation;
      event.time_unix = NowUnix();
      Status s = audit->Record(event);
      if (!s.ok()) {
        return Error(ErrorCode::kIo,
                     "the change was saved, but the audit record could not be written: " +
                         s.error().message);
      }
    }
    return OkStatus();
  }

  Result<const SecretBytes*> ResolveForDecrypt(const envelope::KekStanza& stanza) override {
    const KeyRec* key = nullptr;
    for (const KeyRec& k : body.keys) {
      if (ConstantTimeEquals(k.key_id, stanza.key_id)) key = &k;
    }
    if (key == nullptr) {
      return Error(ErrorCode::kNotFound,
                   "key id " + KeyIdHex(stanza.key_id) + " is not in this keystore");
    }
    if (stanza.version == 0 || stanza.version > key->versions.size()) {
      return Error(ErrorCode::kNotFound,
                   "key " + key->name + " has no version " + std::to_string(stanza.version));
    }
    const VersionRec& v = key->versions[stanza.version - 1];
    std::string label = VersionLabel(key->name, v.version);
    if (v.state == KeyState::kDisabled) {
      return Error(ErrorCode::kPolicyRefused, label + " is disabled",
                   "enable it with `keyhold key enable " + key->name + " " +
                       std::to_string(v.version) + "`");
    }
    if (v.state == KeyState::kDestroyed) {
      return Error(ErrorCode::kPolicyRefused, label + " is destroyed",
                   "its secret is gone for good; the object can only be opened by another "
                   "stanza");
    }
    if (v.version < key->policy.min_decryption_version) {
      return Error(ErrorCode::kPolicyRefused,
                   label + " is below min_decryption_version " +
                       std::to_string(key->policy.min_decryption_version),
                   "rewrap the object to an allowed version");
    }
    auto it = secrets.find({key->key_id, v.version});
    if (it == secrets.end()) return Error(ErrorCode::kInternal, label + " has no secret loaded");
    return it->second.get();
  }

  Result<envelope::KekTarget> Target(std::string_view name, uint32_t version) const {
    const KeyRec* key = FindKey(body, name);
    if (key == nullptr) return NoSuchKey(name);
    if (version == 0) {
      return Error(ErrorCode::kPolicyRefused, "key " + key->name + " has no active version",
                   "rotate it with `keyhold key rotate " + key->name + "`");
    }
    if (version > key->versions.size()) {
      return Error(ErrorCode::kNotFound,
                   "key " + key->name + " has no version " + std::to_string(version));
    }
    const VersionRec& v = key->versions[version - 1];
    if (v.state != KeyState::kActive) {
      return Error(ErrorCode::kPolicyRefused,
                   VersionLabel(key->name, version) + " is " + std::string(KeyStateName(v.state)) +
                       " and cannot encrypt",
                   "encrypt to an active version (the primary is used by default)");
    }
    if (version < key->policy.min_decryption_version) {
      return Error(ErrorCode::kPolicyRefused,
                   VersionLabel(key->name, version) + " is below min_decryption_version " +
                       std::to_string(key->policy.min_decryption_version));
    }
    auto it = secrets.find({key->key_id, version});
    if (it == secrets.end()) {
      return Error(ErrorCode::kInternal, VersionLabel(key->name, version) + " has no secret");
    }
    envelope::KekTarget target;
    target.key_id = key->key_id;
    target.version = version;
    target.key_name = key->name;
    target.secret = it->second.get();
    return target;
  }
};

// --- Public API -------------------------------------------------------------------------------

std::string_view KeyStateName(KeyState state) {
  switch (state) {
    case KeyState::kActive:
      return "active";
    case KeyState::kDecryptOnly:
      return "decrypt-only";
    case KeyState::kDisabled:
      return "disabled";
    case KeyState::kDestroyed:
      return "destroyed";
  }
  return "unknown";
}

Result<KeyState> ParseKeyState(std::string_view name) {
  for (KeyState s :
       {KeyState::kActive, KeyState::kDecryptOnly, KeyState::kDisabled, KeyState::kDestroyed}) {
    if (KeyStateName(s) == name) return s;
  }
  return Error(ErrorCode::kInvalidArgument, "unknown key state '" + std::string(name) + "'",
               "use active, decrypt-only, disabled or destroyed");
}

namespace internal {
void SetPersistHookForTesting(PersistHook hook) { g_persist_hook = hook; }
}  // namespace internal

Keystore::Keystore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Keystore::Keystore(Keystore&&) noexcept = default;
Keystore& Keystore::operator=(Keystore&&) noexcept = default;
Keystore::~Keystore() = default;

bool Keystore::Exists(const std::string& dir) {
  struct stat st;
  std::string path = dir + "/" + std::string(kKeystoreFileName);
  return lstat(path.c_str(), &st) == 0;
}

Status Keystore::Init(const std::string& dir, const SecretBytes& passphrase,
                      const InitOptions& options, AuditSink* audit) {
  if (dir.empty()) return Error(ErrorCode::kInvalidArgument, "empty keystore directory");
  if (passphrase.empty()) return Error(ErrorCode::kInvalidArgument, "the passphrase is empty");
  if (options.kdf) KH_RETURN_IF_ERROR(ValidateArgon2idParams(*options.kdf));
  KH_RETURN_IF_ERROR(CreateDirs(dir));
  KH_ASSIGN_OR_RETURN(UniqueFd dirfd, OpenCheckedDir(dir));
  KH_ASSIGN_OR_RETURN(UniqueFd lock, AcquireLock(dirfd.get(), dir));
  struct stat st;
  std::string main_name(kKeystoreFileName);
  if (fstatat(dirfd.get(), main_name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    return Error(ErrorCode::kAlreadyExists, "a keystore already exists in " + dir,
                 "use it, or choose another directory with --keystore");
  }
  Argon2idParams kdf = options.kdf ? *options.kdf : Calibrate(options.calibrate_seconds);

  SecretBytes master = SecretBytes::Random(kMasterKeySize);
  Body body;
  body.generation = 1;
  body.created = NowUnix();
  KH_ASSIGN_OR_RETURN(SlotRec slot, MakePassphraseSlot(body, master, passphrase, kdf));
  std::string slot_id = slot.id;
  body.slots.push_back(std::move(slot));
  KH_ASSIGN_OR_RETURN(std::string out, Serialize(body, master));
  KH_RETURN_IF_ERROR(
      WriteFileAtomically(dir + "/" + main_name, Bytes(out), AtomicFile::Overwrite::kNo, 0600));
  if (audit != nullptr) {
    AuditEvent event{"keystore.init",
                     {{"slot", slot_id},
                      {"kdf", "argon2id t=" + std::to_string(kdf.iterations) +
                                  " m=" + std::to_string(kdf.memory_kib) +
                                  " p=" + std::to_string(kdf.parallelism)}},
                     body.generation,
                     NowUnix()};
    Status s = audit->Record(event);
    if (!s.ok()) {
      return Error(ErrorCode::kIo,
                   "the keystore was created, but the audit record could not be written: " +
                       s.error().message);
    }
  }
  return OkStatus();
}

Result<Keystore> Keystore::Open(const std::string& dir, const Unlocker& unlocker) {
  KH_ASSIGN_OR_RETURN(UniqueFd dirfd, OpenCheckedDir(dir));
  KH_ASSIGN_OR_RETURN(auto bytes, ReadKeystoreFile(dirfd.get(), dir));
  KH_ASSIGN_OR_RETURN(ParsedFile parsed, ParseFile(bytes));

  // Every slot's KDF parameters are bounded before any derivation: a file asking for 64 GiB
  // is refused at once, even though its MAC (checked later) would fail too.
  for (const SlotRec& slot : parsed.body.slots) {
    if (slot.kind != SlotKind::kPassphrase) continue;
    Status s = ValidateArgon2idParams(slot.kdf);
    if (!s.ok()) {
      return Error(ErrorCode::kUnsupported, "unlock slot " + slot.id + ": " + s.error().message,
                   "the keystore file may have been tampered with");
    }
  }

  std::optional<SecretBytes> master;
  bool matched_recipient_failed = false;
  // Identities first: they cost one X25519 each, a passphrase costs a whole Argon2id.
  for (const SlotRec& slot : parsed.body.slots) {
    if (master || slot.kind != SlotKind::kRecipient) continue;
    for (const envelope::Identity& id : unlocker.identities) {
      if (!ConstantTimeEquals(id.public_key, slot.recipient)) continue;
      auto shared = X25519SharedSecret(id.secret, slot.ephemeral);
      if (!shared.ok()) {
        matched_recipient_failed = true;
        continue;
      }
      auto kek = RecipientSlotKey(*shared, slot.ephemeral, slot.recipient);
      if (!kek.ok()) return std::move(kek).error();
      auto opened = OpenSlotWithKek(slot, *kek);
      if (opened.ok()) {
        master = std::move(opened).value();
        break;
      }
      matched_recipient_failed = true;
    }
  }
  if (!master && unlocker.passphrase && !unlocker.passphrase->empty()) {
    for (const SlotRec& slot : parsed.body.slots) {
      if (slot.kind != SlotKind::kPassphrase) continue;
      KH_ASSIGN_OR_RETURN(SecretBytes kek, Argon2id(unlocker.passphrase->ExposeSecret(), slot.salt,
                                                    slot.kdf, kAesGcmKeySize));
      auto opened = OpenSlotWithKek(slot, kek);
      if (opened.ok()) {
        master = std::move(opened).value();
        break;
      }
    }
  }
  if (!master) {
    if (matched_recipient_failed) {
      // The identity's public key names this slot, so a failure to open it is not a wrong
      // secret but a modified slot (public information only: which recipient matched).
      return Error(ErrorCode::kAuthFailed,
                   "keystore integrity check failed: the recipient slot for this identity "
                   "does not open",
                   "restore the directory from a trusted backup");
    }
    return Error(ErrorCode::kWrongPassphrase, "no unlock slot could be opened",
                 "check the passphrase, or unlock through a recovery slot with --identity FILE");
  }
  // The slot list, the KDF parameters and every wrapped key are under this MAC: a slot
  // added or swapped by someone without the master key is caught here.
  KH_RETURN_IF_ERROR(VerifyFileMac(*master, parsed));

  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->master = std::move(*master);
  KH_RETURN_IF_ERROR(impl->Adopt(std::move(parsed.body)));
  return Keystore(std::move(impl));
}

Result<UnverifiedSummary> Keystore::Peek(const std::string& dir) {
  KH_ASSIGN_OR_RETURN(UniqueFd dirfd, OpenCheckedDir(dir));
  KH_ASSIGN_OR_RETURN(auto bytes, ReadKeystoreFile(dirfd.get(), dir));
  KH_ASSIGN_OR_RETURN(ParsedFile parsed, ParseFile(bytes));
  UnverifiedSummary summary;
  summary.generation = parsed.body.generation;
  int64_t now = NowUnix();
  for (const KeyRec& k : parsed.body.keys) summary.keys.push_back(MakeKeyInfo(k, now));
  for (const SlotRec& s : parsed.body.slots) summary.slots.push_back(MakeSlotInfo(s));
  for (const RecipientRec& r : parsed.body.recipients) {
    summary.recipients.push_back({r.name, envelope::EncodeRecipient(r.key)});
  }
  summary.default_key = parsed.body.default_key;
  summary.verified = false;
  return summary;
}

void Keystore::SetAuditSink(AuditSink* audit) { impl_->audit = audit; }
const std::string& Keystore::dir() const { return impl_->dir; }
uint64_t Keystore::generation() const { return impl_->body.generation; }

std::vector<KeyInfo> Keystore::ListKeys() const {
  std::vector<KeyInfo> out;
  int64_t now = NowUnix();
  for (const KeyRec& k : impl_->body.keys) out.push_back(MakeKeyInfo(k, now));
  return out;
}

Result<KeyInfo> Keystore::GetKey(std::string_view name) const {
  const KeyRec* key = FindKey(impl_->body, name);
  if (key == nullptr) return NoSuchKey(name);
  return MakeKeyInfo(*key, NowUnix());
}

std::vector<SlotInfo> Keystore::ListSlots() const {
  std::vector<SlotInfo> out;
  for (const SlotRec& s : impl_->body.slots) out.push_back(MakeSlotInfo(s));
  return out;
}

std::vector<RecipientInfo> Keystore::ListRecipients() const {
  std::vector<RecipientInfo> out;
  for (const RecipientRec& r : impl_->body.recipients) {
    out.push_back({r.name, envelope::EncodeRecipient(r.key)});
  }
  return out;
}

Result<X25519PublicKey> Keystore::LookupRecipient(std::string_view name) const {
  for (const RecipientRec& r : impl_->body.recipients) {
    if (r.name == name) return r.key;
  }
  return Error(ErrorCode::kNotFound, "no recipient named " + std::string(name),
               "list them with `keyhold recipient list`");
}

std::optional<std::string> Keystore::DefaultKey() const { return impl_->body.default_key; }

Result<KeyInfo> Keystore::CreateKey(std::string_view name, const KeyPolicy& policy) {
  KH_RETURN_IF_ERROR(envelope::ValidateKeyName(name));
  if (policy.min_decryption_version > 1) {
    return Error(ErrorCode::kInvalidArgument,
                 "min_decryption_version of a new key must be 1 (its only version)");
  }
  std::string key_name(name);
  Status s = impl_->Mutate(
      [&](Body& body, AuditEvent& event) -> Status {
        if (FindKey(body, key_name) != nullptr) {
          return Error(ErrorCode::kAlreadyExists, "a key named " + key_name + " already exists");
        }
        if (body.keys.size() >= kMaxKeys) {
          return Error(ErrorCode::kPolicyRefused, "the keystore holds too many keys");
        }
        KeyRec key;
        key.name = key_name;
        RandomBytes(key.key_id);
        key.created = NowUnix();
        key.policy = policy;
        key.policy.min_decryption_version = 1;
        KH_RETURN_IF_ERROR(AddNewVersion(impl_->master, key));
        event = {"key.create",
                 {{"key", key_name},
                  {"key_id", KeyIdHex(key.key_id)},
                  {"version", "1"},
                  {"rotation_days", std::to_string(policy.rotation_days)}}};
        body.keys.push_back(std::move(key));
        return OkStatus();
      },
      false);
  KH_RETURN_IF_ERROR(s);
  return GetKey(name);
}

Result<uint32_t> Keystore::RotateKey(std::string_view name) {
  uint32_t new_version = 0;
  Status s = impl_->Mutate(
      [&](Body& body, AuditEvent& event) -> Status {
        KeyRec* key = FindKey(body, name);
        if (key == nullptr) return NoSuchKey(name);
        KH_RETURN_IF_ERROR(AddNewVersion(impl_->master, *key));
        new_version = key->versions.back().version;
        event = {"key.rotate", {{"key", key->name}, {"version", std::to_string(new_version)}}};
        return OkStatus();
      },
      false);
  KH_RETURN_IF_ERROR(s);
  return new_version;
}

namespace {

// One state transition of one version; `allowed` lists the states it may start from.
Status Transition(Body& body, AuditEvent& event, std::string_view name, uint32_t version,
                  std::initializer_list<KeyState> allowed, KeyState to, const char* verb,
                  const char* event_name) {
  KH_ASSIGN_OR_RETURN(VersionRec * v, FindVersion(body, name, version));
  bool ok = false;
  for (KeyState s : allowed) ok = ok || v->state == s;
  if (!ok) {
    std::string hint;
    if (v->state == KeyState::kDestroyed) hint = "a destroyed version cannot be used again";
    return Error(ErrorCode::kPolicyRefused,
                 "cannot " + std::string(verb) + " " + VersionLabel(name, version) + ": it is " +
                     std::string(KeyStateName(v->state)),
                 hint);
  }
  KeyState from = v->state;
  if (to == KeyState::kDisabled) v->previous = from;
  v->state = to;
  v->changed = NowUnix();
  event = {event_name,
           {{"key", std::string(name)},
            {"version", std::to_string(version)},
            {"from", std::string(KeyStateName(from))},
            {"to", std::string(KeyStateName(to))}}};
  return OkStatus();
}

}  // namespace

Status Keystore::RetireVersion(std::string_view name, uint32_t version) {
  return impl_->Mutate(
      [&](Body& body, AuditEvent& event) {
        return Transition(body, event, name, version, {KeyState::kActive}, KeyState::kDecryptOnly,
                          "retire", "key.retire");
      },
      false);
}

Status Keystore::DisableVersion(std::string_view name, uint32_t version) {
  return impl_->Mutate(
      [&](Body& body, AuditEvent& event) {
        return Transition(body, event, name, version, {KeyState::kActive, KeyState::kDecryptOnly},
                          KeyState::kDisabled, "disable", "key.disable");
      },
      false);
}

Status Keystore::EnableVersion(std::string_view name, uint32_t version) {
  return impl_->Mutate(
      [&](Body& body, AuditEvent& event) -> Status {
        KH_ASSIGN_OR_RETURN(VersionRec * v, FindVersion(body, name, version));
        KeyState to = v->previous;
        return Transition(body, event, name, version, {KeyState::kDisabled}, to, "enable",
                          "key.enable");
      },
      false);
}

Status Keystore::DestroyVersion(std::string_view name, uint32_t version, bool confirmed) {
  if (!confirmed) {
    return Error(ErrorCode::kPolicyRefused,
                 "destroying " + VersionLabel(name, version) + " needs confirmation",
                 "objects wrapped only to it become unreadable for good; confirm explicitly "
                 "(--yes-destroy-key-material)");
  }
  return impl_->Mutate(
      [&](Body& body, AuditEvent& event) -> Status {
        KH_RETURN_IF_ERROR(
            Transition(body, event, name, version,
                       {KeyState::kActive, KeyState::kDecryptOnly, KeyState::kDisabled},
                       KeyState::kDestroyed, "destroy", "key.destroy"));
        KH_ASSIGN_OR_RETURN(VersionRec * v, FindVersion(body, name, version));
        v->nonce.fill(0);
        v->sealed.fill(0);
        return OkStatus();
      },
      /*scrub_backup=*/true);
}

Status Keystore::SetPolicy(std::string_view name, std::optional<uint32_t> rotation_days,
                           std::optional<uint32_t> min_decryption_version) {
  return impl_->Mutate(
      [&](Body& body, AuditEvent& event) -> Status {
        KeyRec* key = FindKey(body, name);
        if (key == nullptr) return NoSuchKey(name);
        event = {"key.policy", {{"key", key->name}}};
        if (min_decryption_version) {
          uint32_t m = *min_decryption_version;
          // The bound is the newest active version regardless of the current minimum, so a
          // minimum can also be lowered again.
          uint32_t newest_active = 0;
          for (const VersionRec& v : key->versions) {
            if (v.state == KeyState::kActive) newest_active = v.version;
          }
          uint32_t limit = std::max<uint32_t>(newest_active, 1);
          if (m == 0 || m > limit) {
            return Error(ErrorCode::kInvalidArgument,
                         "min_decryption_version " + std::to_string(m) +
                             " must be between 1 "
                             "and the primary version " +
                             std::to_string(limit) + " of key " + key->name,
                         "rotate the key first to raise it further");
          }
          key->policy.min_decryption_version = m;
          event.fields.emplace_back("min_decryption_version", std::to_string(m));
        }
        if (rotation_days) {
          key->policy.rotation_days = *rotation_days;
          event.fields.emplace_back("rotation_days", std::to_string(*rotation_days));
        }
        return OkStatus();
      },
      false);
}

Status Keystore::SetDefaultKey(std::optional<std::string> name) {
  return impl_->Mutate(
      [&](Body& body, AuditEvent& event) -> Status {
        if (name && FindKey(body, *name) == nullptr) return NoSuchKey(*name);
        body.default_key = name;
        event = {"keystore.default-key", {{"key", name ? *name : std::string()}}};
        return OkStatus();
      },
      false);
}

Result<std::string> Keystore::AddPassphraseSlot(const SecretBytes& passphrase,
                                                std::optional<Argon2idParams> kdf) {
  if (passphrase.empty()) return Error(ErrorCode::kInvalidArgument, "the passphrase is empty");
  if (kdf) KH_RETURN_IF_ERROR(ValidateArgon2idParams(*kdf));
  // Calibrated before taking the lock, so other writers do not wait for it.
  Argon2idParams params = kdf ? *kdf : Calibrate(kDefaultCalibrationSeconds);
  std::string id;
  Status s = impl_->Mutate(
      [&](Body& body, AuditEvent& event) -> Status {
        if (body.slots.size() >= kMaxSlots) {
          return Error(ErrorCode::kPolicyRefused, "the keystore has too many unlock slots");
        }
        KH_ASSIGN_OR_RETURN(SlotRec slot,
                            MakePassphraseSlot(body, impl_->master, passphrase, params));
        id = slot.id;
        event = {"slot.add",
                 {{"slot", id},
                  {"kind", "passphrase"},
                  {"kdf", "argon2id t=" + std::to_string(params.iterations) +
                              " m=" + std::to_string(params.memory_kib) +
                              " p=" + std::to_string(params.parallelism)}}};
        body.slots.push_back(std::move(slot));
        return OkStatus();
      },
      false);
  KH_RETURN_IF_ERROR(s);
  return id;
}

Result<std::string> Keystore::AddRecipientSlot(const X25519PublicKey& recipient) {
  KH_RETURN_IF_ERROR(ValidateRecipientKey(recipient));
  std::string id;
  Status s = impl_->Mutate(
      [&](Body& body, AuditEvent& event) -> Status {
        for (const SlotRec& existing : body.slots) {
          if (existing.kind == SlotKind::kRecipient && existing.recipient == recipient) {
            return Error(ErrorCode::kAlreadyExists,
                         "unlock slot " + existing.id + " already opens with this recipient");
          }
        }
        if (body.slots.size() >= kMaxSlots) {
          return Error(ErrorCode::kPolicyRefused, "the keystore has too many unlock slots");
        }
        KH_ASSIGN_OR_RETURN(SlotRec slot, MakeRecipientSlot(body, impl_->master, recipient));
        id = slot.id;
        event = {"slot.add",
                 {{"slot", id},
                  {"kind", "recipient"},
                  {"recipient", envelope::EncodeRecipient(recipient)}}};
        body.slots.push_back(std::move(slot));
        return OkStatus();
      },
      false);
  KH_RETURN_IF_ERROR(s);
  return id;
}

Status Keystore::RemoveSlot(std::string_view id) {
  return impl_->Mutate(
      [&](Body& body, AuditEvent& event) -> Status {
        auto it = std::find_if(body.slots.begin(), body.slots.end(),
                               [&](const SlotRec& s) { return s.id == id; });
        if (it == body.slots.end()) {
          return Error(ErrorCode::kNotFound, "no unlock slot " + std::string(id),
                       "list them with `keyhold slot list`");
        }
        if (body.slots.size() == 1) {
          return Error(ErrorCode::kPolicyRefused,
                       "cannot remove " + std::string(id) + ": it is the last unlock slot",
                       "add another slot first, or the keystore could never be opened again");
        }
        event = {"slot.remove", {{"slot", it->id}, {"kind", std::string(SlotKindName(it->kind))}}};
        body.slots.erase(it);
        return OkStatus();
      },
      false);
}

Status Keystore::AddRecipient(std::string_view name, const X25519PublicKey& recipient) {
  KH_RETURN_IF_ERROR(envelope::ValidateKeyName(name));
  KH_RETURN_IF_ERROR(ValidateRecipientKey(recipient));
  return impl_->Mutate(
      [&](Body& body, AuditEvent& event) -> Status {
        for (const RecipientRec& r : body.recipients) {
          if (r.name == name) {
            return Error(ErrorCode::kAlreadyExists,
                         "a recipient named " + std::string(name) + " already exists",
                         "remove it first to replace its key");
          }
        }
        if (body.recipients.size() >= kMaxRecipients) {
          return Error(ErrorCode::kPolicyRefused, "the address book is full");
        }
        body.recipients.push_back({std::string(name), recipient});
        event = {
            "recipient.add",
            {{"name", std::string(name)}, {"recipient", envelope::EncodeRecipient(recipient)}}};
        return OkStatus();
      },
      false);
}

Status Keystore::RemoveRecipient(std::string_view name) {
  return impl_->Mutate(
      [&](Body& body, AuditEvent& event) -> Status {
        auto it = std::find_if(body.recipients.begin(), body.recipients.end(),
                               [&](const RecipientRec& r) { return r.name == name; });
        if (it == body.recipients.end()) {
          return Error(ErrorCode::kNotFound, "no recipient named " + std::string(name));
        }
        event = {"recipient.remove",
                 {{"name", it->name}, {"recipient", envelope::EncodeRecipient(it->key)}}};
        body.recipients.erase(it);
        return OkStatus();
      },
      false);
}

Result<envelope::KekTarget> Keystore::PrimaryTarget(std::string_view name) const {
  const KeyRec* key = FindKey(impl_->body, name);
  if (key == nullptr) return NoSuchKey(name);
  return impl_->Target(name, PrimaryVersion(*key));
}

Result<envelope::KekTarget> Keystore::TargetForVersion(std::string_view name,
                                                       uint32_t version) const {
  if (version == 0) {
    return Error(ErrorCode::kNotFound, "key " + std::string(name) + " has no version 0");
  }
  return impl_->Target(name, version);
}

envelope::KekResolver& Keystore::Resolver() { return *impl_; }

Result<SecretBytes> Keystore::DeriveSubkey(std::string_view label) const {
  if (label.empty()) return Error(ErrorCode::kInvalidArgument, "empty subkey label");
  std::string info(kInfoSubkeyPrefix);
  info += label;
  return DeriveFromMaster(impl_->master, info);
}

}  // namespace keyhold::keystore
