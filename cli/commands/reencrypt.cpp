// keyhold reencrypt: a fresh data key and payload for each object (for when a data key may
// have leaked), with the same safety as rewrap: verified before the replace, atomic, parallel.
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "audit_hooks.h"
#include "bulk.h"
#include "commands/commands.h"
#include "exit_codes.h"
#include "object_ops.h"
#include "rewrap_ops.h"
#include "ui.h"

namespace keyhold::cli {
namespace {

struct ReencryptOptions {
  TargetOptions targets;
  BulkCliOptions bulk;
  std::string skip_newer_than;
};

// The modification time of the file holding an object's header (the sidecar if detached).
Result<struct timespec> HeaderMtime(const std::string& path) {
  struct stat st;
  const std::string sidecar = SidecarPath(path);
  const std::string& which = lstat(sidecar.c_str(), &st) == 0 ? sidecar : path;
  if (lstat(which.c_str(), &st) != 0) {
    return Error(ErrorCode::kIo, which + ": " + std::strerror(errno));
  }
  return st.st_mtim;
}

bool Newer(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec > b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec > b.tv_nsec);
}

Result<int> RunReencrypt(Context& ctx, const ReencryptOptions& opts) {
  KH_ASSIGN_OR_RETURN(std::vector<BulkItem> items, CollectFromOptions(opts.bulk));
  std::optional<struct timespec> stamp;
  if (!opts.skip_newer_than.empty()) {
    struct stat st;
    if (stat(opts.skip_newer_than.c_str(), &st) != 0) {
      return Error(ErrorCode::kNotFound, opts.skip_newer_than + ": " + std::strerror(errno),
                   "create the stamp with `touch FILE` before the first run of the job");
    }
    stamp = st.st_mtim;
  }
  KH_ASSIGN_OR_RETURN(RewrapPlan targets, BuildRewrapPlan(ctx, opts.targets));
  KH_ASSIGN_OR_RETURN(keystore::Keystore * ks, ctx.UnlockedKeystore());
  KH_ASSIGN_OR_RETURN(auto identities, ctx.Identities());
  for (const auto& name : targets.to_keys) KH_RETURN_IF_ERROR(ks->PrimaryTarget(name));

  ReencryptPlan plan;
  plan.targets = std::move(targets);
  // Recipients whose stanzas can be re-created: the address book, the recipient slots, and
  // the --add-recipient keys.
  auto know = [&](const std::string& text) {
    if (auto pub = envelope::ParseRecipient(text); pub.ok()) {
      plan.known_recipients[envelope::RecipientFingerprint(*pub)] = *pub;
    }
  };
  for (const auto& r : ks->ListRecipients()) know(r.recipient);
  for (const auto& s : ks->ListSlots()) {
    if (s.kind == keystore::SlotKind::kRecipient) know(s.recipient);
  }
  for (const auto& pub : plan.targets.add_recipients) {
    plan.known_recipients[envelope::RecipientFingerprint(pub)] = pub;
  }
  const KeystoreSnapshot snapshot = KeystoreSnapshot::Take(*ks);
  LockedResolver resolver(ks->Resolver());
  const envelope::Keyring keyring{&resolver, identities};

  BulkSummary summary = RunBulk(
      items, opts.bulk.jobs == 0 ? DefaultJobs() : opts.bulk.jobs, ShowProgress(),
      [&](const BulkItem& item) {
        ItemResult r;
        // An interrupted detached reencrypt (backup left) is never skipped: it needs recovery.
        struct stat backup;
        if (stamp && lstat(ReencryptBackupPath(item.path).c_str(), &backup) != 0) {
          auto mtime = HeaderMtime(item.path);
          if (mtime.ok() && Newer(*mtime, *stamp)) {
            r.status = ItemStatus::kSkipped;
            r.skip_reason = "newer-than-stamp";
            return r;
          }
        }
        auto outcome = ReencryptObject(item.path, plan, snapshot, keyring);
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
        if (outcome->status == ReencryptStatus::kNotSelected) {
          r.status = ItemStatus::kSkipped;
          r.skip_reason = "not-selected";
          return r;
        }
        r.status = ItemStatus::kDone;
        r.keys_used = outcome->new_keys;
        return r;
      },
      [&](const BulkItem& item, const ItemResult& r) {
        if (r.status != ItemStatus::kDone || plan.targets.dry_run) return;
        AuditKeyUse(ctx, "reencrypt", r.keys_used, item.path);
      });

  if (ctx.global.json) {
    nlohmann::json j = BulkSummaryToJson(summary);
    j["command"] = "reencrypt";
    j["dry_run"] = plan.targets.dry_run;
    j["shard"] = opts.bulk.shard.empty() ? nlohmann::json() : nlohmann::json(opts.bulk.shard);
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    PrintBulkSummary(summary, plan.targets.dry_run ? "would reencrypt" : "reencrypted");
  }
  return summary.failed == 0 ? kExitOk : kExitPartialFailure;
}

}  // namespace

void RegisterReencrypt(CLI::App& app, Context& ctx, Runner& run) {
  auto opts = std::make_shared<ReencryptOptions>();
  CLI::App* cmd = AddCommand(app, "reencrypt",
                             "new data key and payload for each object (after a suspected data "
                             "key leak); the plaintext and context stay the same");
  AddTargetOptions(cmd, &opts->targets);
  cmd->add_option("--skip-newer-than", opts->skip_newer_than,
                  "skip objects whose header changed after FILE's mtime (resume a job)");
  AddBulkOptions(cmd, &opts->bulk);
  cmd->callback([opts, &ctx, &run] { run = [opts, &ctx] { return RunReencrypt(ctx, *opts); }; });
}

}  // namespace keyhold::cli
