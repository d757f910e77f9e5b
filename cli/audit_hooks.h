// Recording key use (encrypt, decrypt, rewrap, reencrypt) in the keystore's audit log.
#ifndef KEYHOLD_CLI_AUDIT_HOOKS_H_
#define KEYHOLD_CLI_AUDIT_HOOKS_H_

#include <string>
#include <vector>

#include "context.h"

namespace keyhold::cli {

// Appends one key-use event if the keystore was unlocked by this command (public-recipient
// operations do not touch the keystore and are not logged). Never records content or secrets:
// the operation, the key versions used, and the object path.
void AuditKeyUse(Context& ctx, const std::string& operation, const std::vector<std::string>& keys,
                 const std::string& object);

// Starts the audit log of a keystore `keyhold init` just created and records keystore.init:
// the log's MAC key exists only once the keystore does, so the new keystore is opened again
// with the same passphrase (a second passphrase derivation). kIo, saying that the keystore
// itself was created, on failure.
Status AuditKeystoreInit(const std::string& dir, const SecretBytes& passphrase);

}  // namespace keyhold::cli

#endif  // KEYHOLD_CLI_AUDIT_HOOKS_H_
