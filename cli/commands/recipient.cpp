// keyhold recipient add NAME RECIPIENT | list | remove NAME: the public-key address book.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands/commands.h"
#include "exit_codes.h"
#include "keyhold/crypto/encoding.h"
#include "keyhold/crypto/envelope.h"
#include "ui.h"

namespace keyhold::cli {
namespace {

struct RecipientOptions {
  std::string name;
  std::string recipient;
};

Result<int> RunAdd(Context& ctx, const RecipientOptions& opts) {
  auto pub = envelope::ParseRecipient(opts.recipient);
  if (!pub.ok()) {
    return Error(ErrorCode::kInvalidArgument, "invalid recipient string " + opts.recipient,
                 "a recipient looks like kh1... (from `keyhold keygen`)");
  }
  KH_ASSIGN_OR_RETURN(keystore::Keystore * ks, ctx.UnlockedKeystore());
  KH_RETURN_IF_ERROR(ks->AddRecipient(opts.name, *pub));
  Note("added recipient " + opts.name);
  return kExitOk;
}

Result<int> RunList(Context& ctx) {
  KH_ASSIGN_OR_RETURN(keystore::Keystore * ks, ctx.UnlockedKeystore());
  auto list = ks->ListRecipients();
  if (ctx.global.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& r : list) {
      auto pub = envelope::ParseRecipient(r.recipient);
      arr.push_back(
          {{"name", r.name},
           {"recipient", r.recipient},
           {"fingerprint", pub.ok() ? HexEncode(envelope::RecipientFingerprint(*pub)) : ""}});
    }
    std::printf("%s\n", nlohmann::json{{"recipients", arr}}.dump(2).c_str());
    return kExitOk;
  }
  for (const auto& r : list) std::printf("%-20s %s\n", r.name.c_str(), r.recipient.c_str());
  return kExitOk;
}

Result<int> RunRemove(Context& ctx, const RecipientOptions& opts) {
  KH_ASSIGN_OR_RETURN(keystore::Keystore * ks, ctx.UnlockedKeystore());
  KH_RETURN_IF_ERROR(ks->RemoveRecipient(opts.name));
  Note("removed recipient " + opts.name);
  return kExitOk;
}

}  // namespace

void RegisterRecipient(CLI::App& app, Context& ctx, Runner& run) {
  auto opts = std::make_shared<RecipientOptions>();
  CLI::App* cmd = AddCommand(app, "recipient", "manage the address book of public recipients");
  cmd->require_subcommand(1);
  auto* add = AddCommand(*cmd, "add", "name a recipient (kh1...)");
  add->add_option("NAME", opts->name, "name to use with -r")->required();
  add->add_option("RECIPIENT", opts->recipient, "kh1... recipient string")->required();
  add->callback([opts, &ctx, &run] { run = [opts, &ctx] { return RunAdd(ctx, *opts); }; });
  AddCommand(*cmd, "list", "list named recipients")->callback([&ctx, &run] {
    run = [&ctx] { return RunList(ctx); };
  });
  auto* rm = AddCommand(*cmd, "remove", "remove a named recipient");
  rm->add_option("NAME", opts->name, "recipient name")->required();
  rm->callback([opts, &ctx, &run] { run = [opts, &ctx] { return RunRemove(ctx, *opts); }; });
}

}  // namespace keyhold::cli
