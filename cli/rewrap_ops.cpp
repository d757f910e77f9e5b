#include "rewrap_ops.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "keyhold/crypto/file_io.h"
#include "object_ops.h"

namespace keyhold::cli {
namespace {

using KeyId = std::array<uint8_t, envelope::kKeyIdSize>;

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

}  // namespace

Result<RewrapOutcome> RewrapObject(const std::string& path, const RewrapPlan& plan,
                                   keystore::Keystore& ks, const envelope::Keyring& keyring) {
  KH_ASSIGN_OR_RETURN(ObjectLocation loc, LocateObject(path));
  size_t header_size = 0;
  KH_ASSIGN_OR_RETURN(envelope::Header header, envelope::ParseHeader(loc.header_bytes, &header_size));

  // This keystore's keys by id.
  std::map<KeyId, keystore::KeyInfo> keys_by_id;
  for (auto& k : ks.ListKeys()) keys_by_id.emplace(k.key_id, std::move(k));

  RewrapOutcome outcome;
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
    KH_ASSIGN_OR_RETURN(envelope::KekTarget t, ks.PrimaryTarget(name));
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
  for (const auto& w : wanted) outcome.new_keys.push_back(w.key_name + " v" + std::to_string(w.version));
  if (!changed) {
    outcome.status = RewrapStatus::kUpToDate;
    return outcome;
  }
  if (params.keep.empty() && params.keks.empty() && params.recipients.empty()) {
    return Error(ErrorCode::kInvalidArgument,
                 "rewrapping would leave no stanza: nobody could decrypt the object");
  }
  // Open with what we hold (this checks the MAC), then build the new header.
  KH_ASSIGN_OR_RETURN(envelope::OpenedHeader opened, envelope::OpenHeader(loc.header_bytes, keyring));
  KH_ASSIGN_OR_RETURN(std::vector<uint8_t> new_header, envelope::Rewrap(opened, params));
  outcome.status = RewrapStatus::kRewrapped;
  outcome.header_bytes_written = new_header.size();
  if (plan.dry_run) return outcome;

  struct stat st;
  if (stat(loc.header_path.c_str(), &st) != 0) {
    return Error(ErrorCode::kIo, loc.header_path + ": " + std::strerror(errno));
  }
  const mode_t mode = st.st_mode & 07777;
  if (loc.detached) {
    KH_RETURN_IF_ERROR(WriteFileAtomically(loc.header_path, new_header,
                                           AtomicFile::Overwrite::kYes, mode));
    return outcome;
  }
  int in_fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in_fd < 0) return Error(ErrorCode::kIo, path + ": " + std::strerror(errno));
  KH_ASSIGN_OR_RETURN(AtomicFile out, AtomicFile::Create(path, AtomicFile::Overwrite::kYes, mode));
  Status s = out.Write(new_header);
  if (s.ok()) s = CopyRange(in_fd, loc.payload_offset, loc.payload_size, out.fd());
  close(in_fd);
  KH_RETURN_IF_ERROR(s);
  KH_RETURN_IF_ERROR(out.Commit());
  return outcome;
}

}  // namespace keyhold::cli
