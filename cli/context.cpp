#include "context.h"

#include "keyhold/keystore/location.h"

namespace keyhold::cli {

Result<std::string> Context::KeystoreDir() const {
  return keystore::ResolveKeystoreDir(global.keystore_dir);
}

bool Context::KeystoreExists() const {
  auto dir = KeystoreDir();
  return dir.ok() && keystore::Keystore::Exists(*dir);
}

Result<std::span<const envelope::Identity>> Context::Identities() {
  if (!identities_loaded_) {
    KH_ASSIGN_OR_RETURN(identities_, ReadIdentityFiles(global.identity_files));
    identities_loaded_ = true;
  }
  return std::span<const envelope::Identity>(identities_);
}

Result<keystore::Keystore*> Context::UnlockedKeystore() {
  if (keystore_) return keystore_.get();
  KH_ASSIGN_OR_RETURN(std::string dir, KeystoreDir());
  if (!keystore::Keystore::Exists(dir)) {
    return Error(ErrorCode::kNotFound, "no keystore at " + dir,
                 "create one with `keyhold init`, or point to it with --keystore DIR or "
                 "KEYHOLD_HOME");
  }
  keystore::Unlocker unlocker;
  KH_ASSIGN_OR_RETURN(auto ids, Identities());
  for (const auto& id : ids) {
    unlocker.identities.push_back(envelope::Identity{id.secret.Clone(), id.public_key});
  }
  // With identities and no explicit passphrase source, try the identities alone first so
  // automation never blocks on a prompt.
  const bool explicit_passphrase = !global.passphrase.file.empty() || global.passphrase.fd >= 0;
  if (!unlocker.identities.empty() && !explicit_passphrase) {
    auto ks = keystore::Keystore::Open(dir, unlocker);
    if (ks.ok()) {
      keystore_ = std::make_unique<keystore::Keystore>(std::move(ks).value());
      KH_RETURN_IF_ERROR(AttachAuditLog());
      return keystore_.get();
    }
    if (ks.error().code != ErrorCode::kWrongPassphrase) return std::move(ks).error();
  }
  KH_ASSIGN_OR_RETURN(SecretBytes pass,
                      ReadPassphrase(global.passphrase, "Keystore passphrase", false));
  unlocker.passphrase = std::move(pass);
  KH_ASSIGN_OR_RETURN(keystore::Keystore ks, keystore::Keystore::Open(dir, unlocker));
  keystore_ = std::make_unique<keystore::Keystore>(std::move(ks));
  KH_RETURN_IF_ERROR(AttachAuditLog());
  return keystore_.get();
}

// --- Audit log (docs/audit-log.md) -----------------------------------------------------------
Status Context::AttachAuditLog() {
  auto key = keystore_->DeriveSubkey(keystore::kAuditSubkeyLabel);
  if (!key.ok()) {
    keystore_.reset();  // no keystore use without its audit log
    return std::move(key).error();
  }
  auto log =
      keystore::AuditLog::Open(keystore_->dir(), std::move(key).value(), keystore_->generation());
  if (!log.ok()) {
    keystore_.reset();
    return std::move(log).error();
  }
  audit_ = std::move(log).value();
  keystore_->SetAuditSink(audit_.get());
  return OkStatus();
}

Status Context::FinishAudit() {
  if (!audit_) return OkStatus();
  Status s = audit_->Flush();
  if (s.ok()) return s;
  return Error(s.error().code, "the audit log could not be written: " + s.error().message,
               s.error().hint);
}
// --- end audit log ---------------------------------------------------------------------------

Result<X25519PublicKey> Context::ResolveRecipient(const std::string& text) {
  if (text.rfind("kh1", 0) == 0) {
    auto pub = envelope::ParseRecipient(text);
    if (!pub.ok()) {
      return Error(ErrorCode::kInvalidArgument, "invalid recipient string " + text,
                   "a recipient looks like kh1... (from `keyhold keygen`)");
    }
    return pub;
  }
  KH_ASSIGN_OR_RETURN(keystore::Keystore * ks, UnlockedKeystore());
  auto pub = ks->LookupRecipient(text);
  if (!pub.ok()) {
    return Error(ErrorCode::kNotFound, "unknown recipient " + text,
                 "give a kh1... recipient string, or add a name with `keyhold recipient add`");
  }
  return pub;
}

}  // namespace keyhold::cli
