// keyhold key destroy: the deletion guard (explicit flag), and optionally a scan of the
// object corpus so a version that objects still depend on is not destroyed by mistake.
#include <cstdio>

#include "bulk.h"
#include "commands/commands.h"
#include "exit_codes.h"
#include "scan_model.h"
#include "ui.h"

namespace keyhold::cli {

// At most this many dependent objects are listed on stderr; the count is always given.
constexpr size_t kMaxListedDependents = 50;

Result<int> RunKeyDestroy(Context& ctx, const std::string& name, uint32_t version, bool confirmed,
                          const std::vector<std::string>& scan_paths, bool force) {
  const std::string label = name + " version " + std::to_string(version);
  if (!confirmed) {
    return Error(ErrorCode::kPolicyRefused,
                 "destroying " + label + " needs --yes-destroy-key-material",
                 "objects wrapped only to this version become unrecoverable; check first with "
                 "`keyhold scan PATH`");
  }
  if (force && scan_paths.empty()) {
    return Error(ErrorCode::kInvalidArgument, "--force only makes sense with --scan");
  }
  KH_ASSIGN_OR_RETURN(keystore::Keystore * ks, ctx.UnlockedKeystore());
  if (!scan_paths.empty()) {
    // The decision uses the unlocked (verified) keystore's states, never Peek's.
    KH_ASSIGN_OR_RETURN(keystore::KeyInfo key, ks->GetKey(name));
    if (version == 0 || version > key.versions.size()) {
      return Error(ErrorCode::kNotFound,
                   "key " + name + " has no version " + std::to_string(version));
    }
    std::vector<std::string> skipped;
    KH_ASSIGN_OR_RETURN(std::vector<ScanEntry> entries,
                        ScanPaths(scan_paths, DefaultJobs(), &skipped));
    for (const auto& s : skipped) Warn("skipped " + Printable(s));
    size_t unreadable = 0, malformed = 0;
    for (const auto& e : entries) {
      if (e.kind == ScanEntry::kUnreadable) ++unreadable;
      if (e.kind == ScanEntry::kMalformed) ++malformed;
    }
    std::vector<std::string> dependents =
        ObjectsDependingOn(entries, ks->ListKeys(), key.key_id, version);
    if (!dependents.empty()) {
      if (!force) {
        PrintError(Error(
            ErrorCode::kPolicyRefused,
            std::to_string(dependents.size()) + " scanned object(s) can only be opened with " +
                label + " by this keystore: refusing to destroy it",
            "rewrap them first (`keyhold rewrap --from " + name + "@" + std::to_string(version) +
                " PATH`), or add --force to destroy anyway"));
      }
      for (size_t i = 0; i < dependents.size() && i < kMaxListedDependents; ++i) {
        std::fprintf(stderr, "keyhold: depends on %s: %s\n", label.c_str(),
                     Printable(dependents[i]).c_str());
      }
      if (dependents.size() > kMaxListedDependents) {
        std::fprintf(stderr, "keyhold: ... and %zu more (see `keyhold scan --json`)\n",
                     dependents.size() - kMaxListedDependents);
      }
      if (!force) return ExitCodeFor(ErrorCode::kPolicyRefused);
      // Always shown, even with -q: this is the moment data is lost.
      std::fprintf(stderr,
                   "keyhold: warning: --force: destroying %s although %zu scanned object(s) "
                   "depend on it; they become unrecoverable through this keystore\n",
                   label.c_str(), dependents.size());
    }
    // A file we could not read might depend on the version: that is not a pass.
    if (unreadable > 0 && !force) {
      return Error(ErrorCode::kPolicyRefused,
                   std::to_string(unreadable) +
                       " scanned file(s) could not be read, so "
                       "whether they depend on " +
                       label + " is unknown",
                   "fix their permissions and scan again (`keyhold scan --json` lists them), "
                   "or add --force");
    }
    if (malformed > 0 || unreadable > 0) {
      Warn(std::to_string(malformed + unreadable) +
           " scanned file(s) were malformed or unreadable and were not checked");
    }
  }
  KH_RETURN_IF_ERROR(ks->DestroyVersion(name, version, true));
  Warn("destroyed " + label + ": its secret is gone from the keystore (a tombstone remains)");
  return kExitOk;
}

}  // namespace keyhold::cli
