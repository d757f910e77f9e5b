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
  const bool explicit_passphrase =
      !global.passphrase.file.empty() || global.passphrase.fd >= 0;
  if (!unlocker.identities.empty() && !explicit_passphrase) {
    auto ks = keystore::Keystore::Open(dir, unlocker);
    if (ks.ok()) {
      keystore_ = std::make_unique<keystore::Keystore>(std::move(ks).value());
      return keystore_.get();
    }
    if (ks.error().code != ErrorCode::kWrongPassphrase) return std::move(ks).error();
  }
  KH_ASSIGN_OR_RETURN(SecretBytes pass,
                      ReadPassphrase(global.passphrase, "Keystore passphrase", false));
  unlocker.passphrase = std::move(pass);
  KH_ASSIGN_OR_RETURN(keystore::Keystore ks, keystore::Keystore::Open(dir, unlocker));
  keystore_ = std::make_unique<keystore::Keystore>(std::move(ks));
  return keystore_.get();
}

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
