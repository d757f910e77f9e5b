#include "audit_hooks.h"

namespace keyhold::cli {

void AuditKeyUse(Context& ctx, const std::string& operation, const std::vector<std::string>& keys,
                 const std::string& object) {
  // The tamper-evident audit log (issue 7) records key use here; until it exists there is
  // nothing to append to.
  (void)ctx;
  (void)operation;
  (void)keys;
  (void)object;
}

}  // namespace keyhold::cli
