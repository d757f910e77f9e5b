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

}  // namespace keyhold::cli

#endif  // KEYHOLD_CLI_AUDIT_HOOKS_H_
