// keyhold slot list | add-passphrase | add-recipient RECIPIENT | remove SLOT
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands/commands.h"
#include "exit_codes.h"
#include "format_util.h"
#include "keyhold/crypto/envelope.h"
#include "ui.h"

namespace keyhold::cli {
namespace {

struct SlotOptions {
  std::string recipient;
  std::string slot_id;
  std::string new_passphrase_file;
  bool fast_kdf_for_testing = false;
};

Result<int> RunList(Context& ctx) {
  KH_ASSIGN_OR_RETURN(keystore::Keystore * ks, ctx.UnlockedKeystore());
  auto slots = ks->ListSlots();
  if (ctx.global.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& s : slots) {
      nlohmann::json j = {
          {"id", s.id},
          {"kind", s.kind == keystore::SlotKind::kPassphrase ? "passphrase" : "recipient"},
          {"created", FormatTime(s.created_unix)}};
      if (s.kind == keystore::SlotKind::kPassphrase) {
        j["kdf"] = {{"algorithm", "argon2id"},
                    {"iterations", s.kdf.iterations},
                    {"memory_kib", s.kdf.memory_kib},
                    {"parallelism", s.kdf.parallelism}};
      } else {
        j["recipient"] = s.recipient;
      }
      arr.push_back(j);
    }
    std::printf("%s\n", nlohmann::json{{"slots", arr}}.dump(2).c_str());
    return kExitOk;
  }
  std::printf("%-18s %-11s %-20s %s\n", "SLOT", "KIND", "CREATED", "DETAILS");
  for (const auto& s : slots) {
    std::string details = s.kind == keystore::SlotKind::kPassphrase
                              ? "argon2id t=" + std::to_string(s.kdf.iterations) +
                                    " m=" + std::to_string(s.kdf.memory_kib / 1024) +
                                    "MiB p=" + std::to_string(s.kdf.parallelism)
                              : s.recipient;
    std::printf("%-18s %-11s %-20s %s\n", s.id.c_str(),
                s.kind == keystore::SlotKind::kPassphrase ? "passphrase" : "recipient",
                FormatTime(s.created_unix).c_str(), details.c_str());
  }
  return kExitOk;
}

Result<int> RunAddPassphrase(Context& ctx, const SlotOptions& opts) {
  KH_ASSIGN_OR_RETURN(keystore::Keystore * ks, ctx.UnlockedKeystore());
  PassphraseSource src;
  src.file = opts.new_passphrase_file;
  SecretBytes pass;
  if (!src.file.empty()) {
    KH_ASSIGN_OR_RETURN(pass, ReadPassphrase(src, "", false));
  } else {
    KH_ASSIGN_OR_RETURN(pass, PromptPassphrase("New slot passphrase", true));
  }
  std::optional<Argon2idParams> kdf;
  if (opts.fast_kdf_for_testing) kdf = Argon2idParams{1, kArgon2idMinMemoryKib, 1};
  KH_ASSIGN_OR_RETURN(std::string id, ks->AddPassphraseSlot(pass, kdf));
  std::printf("%s\n", id.c_str());
  return kExitOk;
}

Result<int> RunAddRecipient(Context& ctx, const SlotOptions& opts) {
  auto pub = envelope::ParseRecipient(opts.recipient);
  if (!pub.ok()) {
    return Error(ErrorCode::kInvalidArgument, "invalid recipient string " + opts.recipient,
                 "a recipient looks like kh1... (from `keyhold keygen`)");
  }
  KH_ASSIGN_OR_RETURN(keystore::Keystore * ks, ctx.UnlockedKeystore());
  KH_ASSIGN_OR_RETURN(std::string id, ks->AddRecipientSlot(*pub));
  std::printf("%s\n", id.c_str());
  return kExitOk;
}

Result<int> RunRemove(Context& ctx, const SlotOptions& opts) {
  KH_ASSIGN_OR_RETURN(keystore::Keystore * ks, ctx.UnlockedKeystore());
  KH_RETURN_IF_ERROR(ks->RemoveSlot(opts.slot_id));
  Note("removed slot " + opts.slot_id);
  return kExitOk;
}

}  // namespace

void RegisterSlot(CLI::App& app, Context& ctx, Runner& run) {
  auto opts = std::make_shared<SlotOptions>();
  CLI::App* slot = AddCommand(app, "slot", "manage the keystore's unlock slots");
  slot->require_subcommand(1);
  AddCommand(*slot, "list", "list unlock slots")->callback([&ctx, &run] {
    run = [&ctx] { return RunList(ctx); };
  });
  auto* addp = AddCommand(*slot, "add-passphrase", "add a passphrase slot");
  addp->add_option("--new-passphrase-file", opts->new_passphrase_file,
                   "read the new passphrase from FILE (default: prompt twice)");
  addp->add_flag("--insecure-fast-kdf-for-testing", opts->fast_kdf_for_testing)->group("");
  addp->callback(
      [opts, &ctx, &run] { run = [opts, &ctx] { return RunAddPassphrase(ctx, *opts); }; });
  auto* addr =
      AddCommand(*slot, "add-recipient", "add a recovery/automation slot for an X25519 recipient");
  addr->add_option("RECIPIENT", opts->recipient, "kh1... recipient string")->required();
  addr->callback(
      [opts, &ctx, &run] { run = [opts, &ctx] { return RunAddRecipient(ctx, *opts); }; });
  auto* rm = AddCommand(*slot, "remove", "remove an unlock slot (never the last one)");
  rm->add_option("SLOT", opts->slot_id, "slot id from `keyhold slot list`")->required();
  rm->callback([opts, &ctx, &run] { run = [opts, &ctx] { return RunRemove(ctx, *opts); }; });
}

}  // namespace keyhold::cli
