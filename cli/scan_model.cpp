#include "scan_model.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <set>
#include <thread>
#include <tuple>

#include "keyhold/crypto/encoding.h"
#include "object_ops.h"
#include "paths.h"

namespace keyhold::cli {
namespace {

using Fingerprint = std::array<uint8_t, envelope::kFingerprintSize>;

ScanEntry Classify(const InputFile& file) {
  ScanEntry e;
  e.path = file.path;
  e.relative = file.relative;
  auto summary = SummarizeObject(file.path);
  if (summary.ok()) {
    e.kind = ScanEntry::kObject;
    e.summary = std::move(summary).value();
    return e;
  }
  const Error& err = summary.error();
  std::error_code ec;
  e.error = err.message;
  if (e.error.rfind(file.path + ": ", 0) == 0) e.error.erase(0, file.path.size() + 2);
  if (err.code == ErrorCode::kIo || err.code == ErrorCode::kNotFound) {
    e.kind = ScanEntry::kUnreadable;
  } else if (err.code == ErrorCode::kMalformed &&
             err.message.find("not a keyhold object") != std::string::npos &&
             !std::filesystem::exists(SidecarPath(file.path), ec)) {
    e.kind = ScanEntry::kNotKeyhold;
  } else {
    e.kind = ScanEntry::kMalformed;
  }
  return e;
}

// Status of one kek stanza against the keystore's key (nullopt: not this keystore's key).
std::optional<VersionStatus> StatusOf(const envelope::KekStanza& k, const keystore::KeyInfo& key) {
  if (k.version == 0 || k.version > key.versions.size()) return VersionStatus::kUnknownVersion;
  const keystore::KeyVersionInfo& v = key.versions[k.version - 1];
  switch (v.state) {
    case keystore::KeyState::kDestroyed:
      return VersionStatus::kDestroyed;
    case keystore::KeyState::kDisabled:
      return VersionStatus::kDisabled;
    default:
      break;
  }
  if (k.version < key.policy.min_decryption_version) return VersionStatus::kBelowMin;
  return v.state == keystore::KeyState::kActive ? VersionStatus::kUsable
                                                : VersionStatus::kDecryptOnly;
}

// Lower is better: the order in which a decrypt would prefer the outcomes.
int Rank(VersionStatus s) {
  switch (s) {
    case VersionStatus::kUsable:
      return 0;
    case VersionStatus::kDecryptOnly:
      return 1;
    case VersionStatus::kBelowMin:
      return 2;
    case VersionStatus::kDisabled:
      return 3;
    case VersionStatus::kUnknownVersion:
      return 4;
    case VersionStatus::kDestroyed:
      return 5;
  }
  return 6;
}

const keystore::KeyInfo* FindKey(const std::vector<keystore::KeyInfo>& keys,
                                 const std::array<uint8_t, keystore::kKeyIdSize>& id) {
  for (const auto& k : keys) {
    if (k.key_id == id) return &k;
  }
  return nullptr;
}

}  // namespace

std::string_view VersionStatusName(VersionStatus status) {
  switch (status) {
    case VersionStatus::kUsable:
      return "usable";
    case VersionStatus::kDecryptOnly:
      return "decrypt-only";
    case VersionStatus::kBelowMin:
      return "below-min";
    case VersionStatus::kDisabled:
      return "disabled";
    case VersionStatus::kDestroyed:
      return "destroyed";
    case VersionStatus::kUnknownVersion:
      return "unknown-version";
  }
  return "unknown";
}

Result<std::vector<ScanEntry>> ScanPaths(const std::vector<std::string>& paths, unsigned threads,
                                         std::vector<std::string>* skipped) {
  KH_ASSIGN_OR_RETURN(Expansion expansion, ExpandInputs(paths, /*skip_sidecars=*/true));
  if (skipped != nullptr) *skipped = expansion.skipped;
  std::vector<InputFile> files;
  for (auto& f : expansion.files) {
    if (f.path == "-") {
      return Error(ErrorCode::kInvalidArgument, "scan reads files, not stdin",
                   "give files or directories");
    }
    files.push_back(std::move(f));
  }
  std::vector<ScanEntry> entries(files.size());
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  threads = static_cast<unsigned>(std::min<size_t>(threads, std::max<size_t>(files.size(), 1)));
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < files.size();) entries[i] = Classify(files[i]);
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  return entries;
}

ScanReport BuildScanReport(const std::vector<ScanEntry>& entries,
                           const std::optional<keystore::UnverifiedSummary>& keystore) {
  ScanReport r;
  r.keystore_known = keystore.has_value();
  r.verified = keystore && keystore->verified;
  static const std::vector<keystore::KeyInfo> kNoKeys;
  const auto& keys = keystore ? keystore->keys : kNoKeys;

  // Recovery recipients: recipient slots and the address book.
  std::map<Fingerprint, std::pair<std::optional<std::string>, std::string>> recovery;
  if (keystore) {
    for (const auto& s : keystore->slots) {
      if (s.kind != keystore::SlotKind::kRecipient) continue;
      if (auto pub = envelope::ParseRecipient(s.recipient); pub.ok()) {
        recovery[envelope::RecipientFingerprint(*pub)] = {std::nullopt, s.recipient};
      }
    }
    for (const auto& a : keystore->recipients) {
      if (auto pub = envelope::ParseRecipient(a.recipient); pub.ok()) {
        recovery[envelope::RecipientFingerprint(*pub)] = {a.name, a.recipient};
      }
    }
  }

  std::map<std::tuple<std::string, std::string, uint32_t>, KeyVersionUsage> versions;
  std::map<std::string, RecipientUsage> recipients;
  for (const auto& e : entries) {
    ++r.files;
    if (e.kind == ScanEntry::kNotKeyhold) {
      r.not_keyhold.emplace_back(e.path, e.error);
      continue;
    }
    if (e.kind == ScanEntry::kMalformed) {
      r.malformed.emplace_back(e.path, e.error);
      continue;
    }
    if (e.kind == ScanEntry::kUnreadable || !e.summary) {
      r.unreadable.emplace_back(e.path, e.error);
      continue;
    }
    const ObjectSummary& s = *e.summary;
    const uint64_t bytes = s.payload_size + s.header_size;
    ++r.objects;
    r.object_bytes += bytes;
    std::optional<VersionStatus> best;
    bool off_primary = false;
    bool has_recovery = false;
    std::set<std::pair<std::string, uint32_t>> counted;  // one count per object and version
    std::set<std::string> counted_fp;
    for (const auto& st : s.header.stanzas) {
      if (const auto* k = std::get_if<envelope::KekStanza>(&st)) {
        const keystore::KeyInfo* key = FindKey(keys, k->key_id);
        const std::string id = HexEncode(k->key_id);
        const std::string name = key ? key->name : k->key_name;
        if (counted.insert({id, k->version}).second) {
          auto& u = versions[{name, id, k->version}];
          u.key_name = name;
          u.key_id = id;
          u.version = k->version;
          u.in_keystore = key != nullptr;
          if (key) {
            u.primary = key->primary_version == k->version;
            if (k->version >= 1 && k->version <= key->versions.size()) {
              u.state = std::string(keystore::KeyStateName(key->versions[k->version - 1].state));
            } else {
              u.state = "no-such-version";
            }
          }
          ++u.objects;
          u.bytes += bytes;
        }
        if (key == nullptr) continue;
        VersionStatus vs = *StatusOf(*k, *key);
        if (!best || Rank(vs) < Rank(*best)) best = vs;
        if (key->primary_version != k->version) off_primary = true;
      } else if (const auto* x = std::get_if<envelope::X25519Stanza>(&st)) {
        const std::string fp = HexEncode(x->fingerprint);
        auto rec = recovery.find(x->fingerprint);
        const bool is_recovery = keystore ? rec != recovery.end() : true;
        has_recovery = has_recovery || is_recovery;
        if (!counted_fp.insert(fp).second) continue;
        auto& u = recipients[fp];
        u.fingerprint = fp;
        if (rec != recovery.end()) {
          u.name = rec->second.first;
          u.recipient = rec->second.second;
        }
        u.recovery = rec != recovery.end();
        ++u.objects;
        u.bytes += bytes;
      }
    }
    if (!has_recovery) r.no_recovery.push_back(e.path);
    if (off_primary) r.not_on_primary.push_back(e.path);
    if (!keystore) continue;
    if (!best) {
      r.no_keystore_stanza.push_back(e.path);
      continue;
    }
    switch (*best) {
      case VersionStatus::kUsable:
        break;
      case VersionStatus::kDecryptOnly:
        r.only_decrypt_only.push_back(e.path);
        break;
      case VersionStatus::kBelowMin:
        r.only_below_min.push_back(e.path);
        break;
      case VersionStatus::kDisabled:
        r.only_disabled.push_back(e.path);
        break;
      case VersionStatus::kDestroyed:
        r.only_destroyed.push_back(e.path);
        break;
      case VersionStatus::kUnknownVersion:
        r.only_unknown_version.push_back(e.path);
        break;
    }
  }
  for (auto& [k, v] : versions) r.key_versions.push_back(std::move(v));
  for (auto& [k, v] : recipients) r.recipients.push_back(std::move(v));
  return r;
}

nlohmann::json ScanReportToJson(const ScanReport& r) {
  auto paths = [](const std::vector<std::string>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& p : v) a.push_back(p);
    return a;
  };
  auto pairs = [](const std::vector<std::pair<std::string, std::string>>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& [p, why] : v) a.push_back({{"path", p}, {"reason", why}});
    return a;
  };
  nlohmann::json kv = nlohmann::json::array();
  for (const auto& u : r.key_versions) {
    kv.push_back({{"key", u.key_name},
                  {"key_id", u.key_id},
                  {"version", u.version},
                  {"in_keystore", u.in_keystore},
                  {"state", u.state ? nlohmann::json(*u.state) : nlohmann::json()},
                  {"primary", u.primary},
                  {"objects", u.objects},
                  {"bytes", u.bytes}});
  }
  nlohmann::json rc = nlohmann::json::array();
  for (const auto& u : r.recipients) {
    rc.push_back({{"fingerprint", u.fingerprint},
                  {"name", u.name ? nlohmann::json(*u.name) : nlohmann::json()},
                  {"recipient", u.recipient ? nlohmann::json(*u.recipient) : nlohmann::json()},
                  {"recovery", u.recovery},
                  {"objects", u.objects},
                  {"bytes", u.bytes}});
  }
  return {{"scan_format", 1},
          {"keystore", r.keystore_known},
          {"verified", r.verified},
          {"files", r.files},
          {"objects", r.objects},
          {"object_bytes", r.object_bytes},
          {"key_versions", kv},
          {"recipients", rc},
          {"at_risk",
           {{"only_decrypt_only", paths(r.only_decrypt_only)},
            {"only_below_min", paths(r.only_below_min)},
            {"only_disabled", paths(r.only_disabled)},
            {"only_destroyed", paths(r.only_destroyed)},
            {"only_unknown_version", paths(r.only_unknown_version)},
            {"not_on_primary", paths(r.not_on_primary)},
            {"no_keystore_stanza", paths(r.no_keystore_stanza)},
            {"no_recovery", paths(r.no_recovery)}}},
          {"not_keyhold", pairs(r.not_keyhold)},
          {"malformed", pairs(r.malformed)},
          {"unreadable", pairs(r.unreadable)}};
}

std::vector<std::string> ObjectsDependingOn(const std::vector<ScanEntry>& entries,
                                            const std::vector<keystore::KeyInfo>& keys,
                                            const std::array<uint8_t, keystore::kKeyIdSize>& key_id,
                                            uint32_t version) {
  std::vector<std::string> out;
  for (const auto& e : entries) {
    if (e.kind != ScanEntry::kObject || !e.summary) continue;
    bool uses = false;
    bool other_way = false;
    for (const auto& st : e.summary->header.stanzas) {
      const auto* k = std::get_if<envelope::KekStanza>(&st);
      if (k == nullptr) continue;
      if (k->key_id == key_id && k->version == version) {
        uses = true;
        continue;
      }
      const keystore::KeyInfo* key = FindKey(keys, k->key_id);
      if (key == nullptr) continue;  // another keystore's key: we cannot vouch for it
      auto s = StatusOf(*k, *key);
      if (s == VersionStatus::kUsable || s == VersionStatus::kDecryptOnly) other_way = true;
    }
    if (uses && !other_way) out.push_back(e.path);
  }
  return out;
}

}  // namespace keyhold::cli
