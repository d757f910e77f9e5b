// keyhold rewrap: move objects' data keys to the current primary key versions (or other keys
// and recipients) without touching their payloads, over whole trees, in parallel, sharded.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "audit_hooks.h"
#include "bulk.h"
#include "commands/commands.h"
#include "exit_codes.h"
#include "rewrap_ops.h"
#include "ui.h"

namespace keyhold::cli {
namespace {

struct RewrapOptions {
  TargetOptions targets;
  BulkCliOptions bulk;
};

Result<int> RunRewrap(Context& ctx, const RewrapOptions& opts) {
  KH_ASSIGN_OR_RETURN(std::vector<BulkItem> items, CollectFromOptions(opts.bulk));
  KH_ASSIGN_OR_RETURN(RewrapPlan plan, BuildRewrapPlan(ctx, opts.targets));
  // One unlock for the whole job; workers only see the snapshot and a serialized resolver.
  KH_ASSIGN_OR_RETURN(keystore::Keystore * ks, ctx.UnlockedKeystore());
  KH_ASSIGN_OR_RETURN(auto identities, ctx.Identities());
  for (const auto& name : plan.to_keys) KH_RETURN_IF_ERROR(ks->PrimaryTarget(name));
  const KeystoreSnapshot snapshot = KeystoreSnapshot::Take(*ks);
  LockedResolver resolver(ks->Resolver());
  const envelope::Keyring keyring{&resolver, identities};

  BulkSummary summary = RunBulk(
      items, opts.bulk.jobs == 0 ? DefaultJobs() : opts.bulk.jobs, ShowProgress(),
      [&](const BulkItem& item) {
        ItemResult r;
        auto outcome = RewrapObject(item.path, plan, snapshot, keyring);
        if (!outcome.ok() && IsNotKeyholdError(item.path, outcome.error())) {
          r.status = ItemStatus::kSkipped;
          r.skip_reason = "not-keyhold";
          return r;
        }
        if (!outcome.ok()) {
          r.status = ItemStatus::kFailed;
          r.error = outcome.error();
          return r;
        }
        r.bytes = outcome->object_bytes;
        if (outcome->status == RewrapStatus::kRewrapped) {
          r.status = ItemStatus::kDone;
        } else {
          r.status = ItemStatus::kSkipped;
          r.skip_reason = std::string(RewrapStatusName(outcome->status));
        }
        r.keys_used = outcome->new_keys;
        return r;
      },
      [&](const BulkItem& item, const ItemResult& r) {
        if (r.status != ItemStatus::kDone || plan.dry_run) return;
        AuditKeyUse(ctx, "rewrap", r.keys_used, item.path);
      });

  if (ctx.global.json) {
    nlohmann::json j = BulkSummaryToJson(summary);
    j["command"] = "rewrap";
    j["dry_run"] = plan.dry_run;
    j["shard"] = opts.bulk.shard.empty() ? nlohmann::json() : nlohmann::json(opts.bulk.shard);
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    PrintBulkSummary(summary, plan.dry_run ? "would rewrap" : "rewrapped");
  }
  return summary.failed == 0 ? kExitOk : kExitPartialFailure;
}

}  // namespace

void AddTargetOptions(CLI::App* cmd, TargetOptions* t) {
  cmd->add_option("--to", t->to, "wrap to these keys' primary versions instead (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--add-recipient", t->add_recipients, "also wrap to this recipient")
      ->allow_extra_args(false);
  cmd->add_option("--remove-recipient", t->remove_recipients,
                  "remove this recipient's stanza (kh1..., name, or fingerprint)")
      ->allow_extra_args(false);
  cmd->add_option("--from", t->from, "only objects wrapped to KEY or KEY@VERSION");
  cmd->add_flag("--dry-run", t->dry_run, "report what would change, write nothing");
}

void RegisterRewrap(CLI::App& app, Context& ctx, Runner& run) {
  auto opts = std::make_shared<RewrapOptions>();
  CLI::App* cmd = AddCommand(app, "rewrap",
                             "re-wrap objects' data keys to current key versions; payloads are "
                             "not decrypted or changed");
  AddTargetOptions(cmd, &opts->targets);
  AddBulkOptions(cmd, &opts->bulk);
  cmd->callback([opts, &ctx, &run] { run = [opts, &ctx] { return RunRewrap(ctx, *opts); }; });
}

}  // namespace keyhold::cli
