// keyhold key destroy: the deletion guard (explicit flag), and optionally a scan of the
// object corpus so a version that objects still depend on is not destroyed by mistake.
#include "commands/commands.h"
#include "exit_codes.h"
#include "ui.h"

namespace keyhold::cli {

Result<int> RunKeyDestroy(Context& ctx, const std::string& name, uint32_t version,
                          bool confirmed, const std::vector<std::string>& scan_paths, bool force) {
  if (!confirmed) {
    return Error(ErrorCode::kPolicyRefused,
                 "destroying " + name + " version " + std::to_string(version) +
                     " needs --yes-destroy-key-material",
                 "objects wrapped only to this version become unrecoverable; check first with "
                 "`keyhold scan PATH`");
  }
  if (!scan_paths.empty() || force) {
    return Error(ErrorCode::kUnsupported, "--scan is not available yet");
  }
  KH_ASSIGN_OR_RETURN(keystore::Keystore * ks, ctx.UnlockedKeystore());
  KH_RETURN_IF_ERROR(ks->DestroyVersion(name, version, true));
  Warn("destroyed " + name + " version " + std::to_string(version) +
       ": its secret is gone from the keystore (a tombstone remains)");
  return kExitOk;
}

}  // namespace keyhold::cli
