// Per-invocation state shared by the commands: global flags, and the keystore and identities,
// each opened at most once per command (one unlock per command, whatever the object count).
#ifndef KEYHOLD_CLI_CONTEXT_H_
#define KEYHOLD_CLI_CONTEXT_H_

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "keyhold/crypto/envelope.h"
#include "keyhold/crypto/result.h"
#include "keyhold/keystore/audit_log.h"
#include "keyhold/keystore/keystore.h"
#include "secret_input.h"

namespace keyhold::cli {

struct GlobalOptions {
  std::string keystore_dir;                 // --keystore
  PassphraseSource passphrase;              // --passphrase-file / --passphrase-fd
  std::vector<std::string> identity_files;  // --identity (repeatable)
  bool json = false;                        // --json
  bool quiet = false;                       // -q
};

class Context {
 public:
  GlobalOptions global;

  // The keystore directory (--keystore, $KEYHOLD_HOME, XDG default).
  Result<std::string> KeystoreDir() const;
  // Opens and unlocks the keystore (first call only): with --identity files, a recipient slot
  // is tried; with a passphrase source (or a terminal), a passphrase slot.
  Result<keystore::Keystore*> UnlockedKeystore();
  bool KeystoreExists() const;
  // The keystore if this command already unlocked it, else null (never prompts).
  keystore::Keystore* LoadedKeystore() { return keystore_.get(); }
  // The --identity files, parsed once.
  Result<std::span<const envelope::Identity>> Identities();
  // Resolves a recipient argument: a "kh1..." string, or a name in the keystore's address
  // book (which needs the keystore unlocked, since the address book is authenticated).
  Result<X25519PublicKey> ResolveRecipient(const std::string& text);

  // --- Audit log (docs/audit-log.md) ---------------------------------------------------------
  // The unlocked keystore's audit log (it also receives the keystore's changes); null until
  // UnlockedKeystore succeeded.
  keystore::AuditLog* Audit() { return audit_.get(); }
  // Writes the buffered key-use events and reports any earlier failure to append. main calls
  // it once after the command, whatever the command's result.
  Status FinishAudit();

 private:
  Status AttachAuditLog();
  // Declared before keystore_ so it is destroyed after the Keystore that points to it.
  std::unique_ptr<keystore::AuditLog> audit_;
  // --- end audit log -------------------------------------------------------------------------
  std::unique_ptr<keystore::Keystore> keystore_;
  std::vector<envelope::Identity> identities_;
  bool identities_loaded_ = false;
};

}  // namespace keyhold::cli

#endif  // KEYHOLD_CLI_CONTEXT_H_
