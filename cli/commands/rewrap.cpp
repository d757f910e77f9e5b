// keyhold rewrap: move objects' data keys to the current primary key versions (or other keys
// and recipients) without touching their payloads.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "audit_hooks.h"
#include "commands/commands.h"
#include "exit_codes.h"
#include "keyhold/crypto/encoding.h"
#include "paths.h"
#include "rewrap_ops.h"
#include "ui.h"

namespace keyhold::cli {
namespace {

struct RewrapOptions {
  std::vector<std::string> to;
  std::vector<std::string> add_recipients;
  std::vector<std::string> remove_recipients;
  std::string from;
  bool dry_run = false;
  std::vector<std::string> paths;
};

Result<RewrapPlan> BuildPlan(Context& ctx, const RewrapOptions& opts) {
  RewrapPlan plan;
  plan.to_keys = opts.to;
  plan.dry_run = opts.dry_run;
  for (const auto& r : opts.add_recipients) {
    KH_ASSIGN_OR_RETURN(X25519PublicKey pub, ctx.ResolveRecipient(r));
    plan.add_recipients.push_back(pub);
  }
  for (const auto& r : opts.remove_recipients) {
    // A recipient to remove may be given as kh1..., a name, or a fingerprint from inspect.
    if (r.size() == 2 * envelope::kFingerprintSize) {
      if (auto fp = HexDecode(r); fp.ok()) {
        std::array<uint8_t, envelope::kFingerprintSize> a{};
        std::copy(fp->begin(), fp->end(), a.begin());
        plan.remove_fingerprints.push_back(a);
        continue;
      }
    }
    KH_ASSIGN_OR_RETURN(X25519PublicKey pub, ctx.ResolveRecipient(r));
    plan.remove_fingerprints.push_back(envelope::RecipientFingerprint(pub));
  }
  if (!opts.from.empty()) {
    size_t at = opts.from.find('@');
    plan.from_key = opts.from.substr(0, at);
    if (at != std::string::npos) {
      try {
        plan.from_version = static_cast<uint32_t>(std::stoul(opts.from.substr(at + 1)));
      } catch (...) {
        return Error(ErrorCode::kInvalidArgument, "--from expects KEY or KEY@VERSION");
      }
    }
  }
  return plan;
}

Result<int> RunRewrap(Context& ctx, const RewrapOptions& opts) {
  KH_ASSIGN_OR_RETURN(RewrapPlan plan, BuildPlan(ctx, opts));
  KH_ASSIGN_OR_RETURN(Expansion expansion, ExpandInputs(opts.paths, /*skip_sidecars=*/true));
  for (const auto& s : expansion.skipped) Warn("skipped " + s);
  KH_ASSIGN_OR_RETURN(keystore::Keystore * ks, ctx.UnlockedKeystore());
  KH_ASSIGN_OR_RETURN(auto identities, ctx.Identities());
  envelope::Keyring keyring{&ks->Resolver(), identities};

  size_t rewrapped = 0, up_to_date = 0, not_selected = 0;
  nlohmann::json failures = nlohmann::json::array();
  for (const auto& f : expansion.files) {
    auto outcome = RewrapObject(f.path, plan, *ks, keyring);
    if (!outcome.ok()) {
      failures.push_back({{"path", f.path},
                          {"code", std::string(ErrorCodeName(outcome.error().code))},
                          {"reason", outcome.error().message}});
      if (!ctx.global.json) {
        PrintError(Error(outcome.error().code, f.path + ": " + outcome.error().message,
                         outcome.error().hint));
      }
      continue;
    }
    switch (outcome->status) {
      case RewrapStatus::kRewrapped:
        ++rewrapped;
        if (!plan.dry_run) AuditKeyUse(ctx, "rewrap", outcome->new_keys, f.path);
        break;
      case RewrapStatus::kUpToDate: ++up_to_date; break;
      case RewrapStatus::kNotSelected: ++not_selected; break;
    }
  }
  if (ctx.global.json) {
    nlohmann::json j = {{"rewrapped", rewrapped},
                        {"skipped_up_to_date", up_to_date},
                        {"skipped_not_selected", not_selected},
                        {"failed", failures.size()},
                        {"failures", failures},
                        {"dry_run", plan.dry_run}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    Note(std::string(plan.dry_run ? "would rewrap " : "rewrapped ") + std::to_string(rewrapped) +
         ", up to date " + std::to_string(up_to_date) + ", not selected " +
         std::to_string(not_selected) + ", failed " + std::to_string(failures.size()));
  }
  return failures.empty() ? kExitOk : kExitPartialFailure;
}

}  // namespace

void RegisterRewrap(CLI::App& app, Context& ctx, Runner& run) {
  auto opts = std::make_shared<RewrapOptions>();
  CLI::App* cmd = AddCommand(app, "rewrap",
                             "re-wrap objects' data keys to current key versions; payloads are "
                             "not decrypted or changed");
  cmd->add_option("--to", opts->to, "wrap to these keys' primary versions instead")
      ->allow_extra_args(false);
  cmd->add_option("--add-recipient", opts->add_recipients, "also wrap to this recipient")
      ->allow_extra_args(false);
  cmd->add_option("--remove-recipient", opts->remove_recipients,
                  "remove this recipient's stanza (kh1..., name, or fingerprint)")
      ->allow_extra_args(false);
  cmd->add_option("--from", opts->from, "only objects wrapped to KEY or KEY@VERSION");
  cmd->add_flag("--dry-run", opts->dry_run, "report what would change, write nothing");
  cmd->add_option("PATH", opts->paths, "objects or directories")->required();
  cmd->callback([opts, &ctx, &run] { run = [opts, &ctx] { return RunRewrap(ctx, *opts); }; });
}

}  // namespace keyhold::cli
