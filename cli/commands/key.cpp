// keyhold key create | list | show | rotate | retire | disable | enable | destroy | policy |
// default: the life of key-encryption keys.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands/commands.h"
#include "exit_codes.h"
#include "format_util.h"
#include "keyhold/crypto/encoding.h"
#include "ui.h"

namespace keyhold::cli {
namespace {

struct KeyOptions {
  std::string name;
  uint32_t version = 0;
  std::optional<uint32_t> rotation_days;
  std::optional<uint32_t> min_decryption_version;
  bool yes_destroy = false;
  bool set_default = false;
  std::vector<std::string> scan_paths;
  bool force = false;
};

nlohmann::json KeyToJson(const keystore::KeyInfo& k) {
  nlohmann::json versions = nlohmann::json::array();
  for (const auto& v : k.versions) {
    versions.push_back({{"version", v.version},
                        {"state", std::string(keystore::KeyStateName(v.state))},
                        {"created", FormatTime(v.created_unix)},
                        {"state_changed", FormatTime(v.changed_unix)}});
  }
  return {{"name", k.name},
          {"key_id", HexEncode(k.key_id)},
          {"created", FormatTime(k.created_unix)},
          {"primary_version", k.primary_version},
          {"rotation_days", k.policy.rotation_days},
          {"min_decryption_version", k.policy.min_decryption_version},
          {"last_rotated", FormatTime(k.last_rotated_unix)},
          {"rotation_overdue", k.rotation_overdue},
          {"versions", versions}};
}

Result<int> RunCreate(Context& ctx, const KeyOptions& opts) {
  KH_ASSIGN_OR_RETURN(keystore::Keystore * ks, ctx.UnlockedKeystore());
  keystore::KeyPolicy policy;
  if (opts.rotation_days) policy.rotation_days = *opts.rotation_days;
  KH_ASSIGN_OR_RETURN(keystore::KeyInfo info, ks->CreateKey(opts.name, policy));
  if (opts.set_default || !ks->DefaultKey()) {
    KH_RETURN_IF_ERROR(ks->SetDefaultKey(opts.name));
  }
  if (ctx.global.json) {
    std::printf("%s\n", KeyToJson(info).dump(2).c_str());
  } else {
    Note("created key " + info.name + " (version 1, active)" +
         (ks->DefaultKey() == std::optional<std::string>(info.name) ? ", the default key" : ""));
  }
  return kExitOk;
}

Result<int> RunList(Context& ctx) {
  KH_ASSIGN_OR_RETURN(keystore::Keystore * ks, ctx.UnlockedKeystore());
  auto keys = ks->ListKeys();
  auto def = ks->DefaultKey();
  if (ctx.global.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& k : keys) {
      auto j = KeyToJson(k);
      j["default"] = def && *def == k.name;
      arr.push_back(j);
    }
    std::printf("%s\n", nlohmann::json{{"keys", arr}}.dump(2).c_str());
    return kExitOk;
  }
  std::printf("%-24s %-8s %-9s %-10s %s\n", "NAME", "PRIMARY", "VERSIONS", "ROTATION", "NOTES");
  for (const auto& k : keys) {
    std::string notes;
    if (def && *def == k.name) notes += "default ";
    if (k.rotation_overdue) notes += "ROTATION OVERDUE ";
    if (k.primary_version == 0) notes += "no active version ";
    std::string rotation =
        k.policy.rotation_days ? std::to_string(k.policy.rotation_days) + "d" : "none";
    std::printf("%-24s %-8s %-9zu %-10s %s\n", k.name.c_str(),
                k.primary_version ? ("v" + std::to_string(k.primary_version)).c_str() : "-",
                k.versions.size(), rotation.c_str(), notes.c_str());
  }
  return kExitOk;
}

Result<int> RunShow(Context& ctx, const KeyOptions& opts) {
  KH_ASSIGN_OR_RETURN(keystore::Keystore * ks, ctx.UnlockedKeystore());
  KH_ASSIGN_OR_RETURN(keystore::KeyInfo k, ks->GetKey(opts.name));
  if (ctx.global.json) {
    std::printf("%s\n", KeyToJson(k).dump(2).c_str());
    return kExitOk;
  }
  std::printf("key %s (id %s)\n", k.name.c_str(), HexEncode(k.key_id).c_str());
  std::printf("  created:                %s\n", FormatTime(k.created_unix).c_str());
  std::printf("  primary version:        %s\n",
              k.primary_version ? std::to_string(k.primary_version).c_str() : "none");
  std::printf(
      "  rotation period:        %s%s\n",
      k.policy.rotation_days ? (std::to_string(k.policy.rotation_days) + " days").c_str() : "none",
      k.rotation_overdue ? " (OVERDUE)" : "");
  std::printf("  min decryption version: %u\n", k.policy.min_decryption_version);
  std::printf("  %-8s %-13s %-20s %s\n", "VERSION", "STATE", "CREATED", "CHANGED");
  for (const auto& v : k.versions) {
    std::printf("  %-8u %-13s %-20s %s\n", v.version,
                std::string(keystore::KeyStateName(v.state)).c_str(),
                FormatTime(v.created_unix).c_str(), FormatTime(v.changed_unix).c_str());
  }
  return kExitOk;
}

Result<int> RunRotate(Context& ctx, const KeyOptions& opts) {
  KH_ASSIGN_OR_RETURN(keystore::Keystore * ks, ctx.UnlockedKeystore());
  KH_ASSIGN_OR_RETURN(uint32_t v, ks->RotateKey(opts.name));
  if (ctx.global.json) {
    std::printf("%s\n", nlohmann::json{{"name", opts.name}, {"primary_version", v}}.dump().c_str());
  } else {
    Note("rotated " + opts.name + ": version " + std::to_string(v) +
         " is now primary; older versions still decrypt (retire them with `keyhold key "
         "retire`, then rewrap objects with `keyhold rewrap`)");
  }
  return kExitOk;
}

template <typename F>
Result<int> RunStateChange(Context& ctx, const KeyOptions& opts, const char* verb, F change) {
  KH_ASSIGN_OR_RETURN(keystore::Keystore * ks, ctx.UnlockedKeystore());
  KH_RETURN_IF_ERROR(change(*ks));
  Note(std::string(verb) + " " + opts.name + " version " + std::to_string(opts.version));
  return kExitOk;
}

Result<int> RunPolicy(Context& ctx, const KeyOptions& opts) {
  KH_ASSIGN_OR_RETURN(keystore::Keystore * ks, ctx.UnlockedKeystore());
  if (opts.rotation_days || opts.min_decryption_version) {
    KH_RETURN_IF_ERROR(ks->SetPolicy(opts.name, opts.rotation_days, opts.min_decryption_version));
  }
  KH_ASSIGN_OR_RETURN(keystore::KeyInfo k, ks->GetKey(opts.name));
  if (ctx.global.json) {
    std::printf("%s\n", KeyToJson(k).dump(2).c_str());
  } else {
    std::printf("%s: rotation_days=%u min_decryption_version=%u\n", k.name.c_str(),
                k.policy.rotation_days, k.policy.min_decryption_version);
  }
  return kExitOk;
}

Result<int> RunDefault(Context& ctx, const KeyOptions& opts) {
  KH_ASSIGN_OR_RETURN(keystore::Keystore * ks, ctx.UnlockedKeystore());
  if (!opts.name.empty()) KH_RETURN_IF_ERROR(ks->SetDefaultKey(opts.name));
  auto def = ks->DefaultKey();
  std::printf("%s\n", def ? def->c_str() : "(none)");
  return kExitOk;
}

void AddNameVersion(CLI::App* cmd, KeyOptions* opts) {
  cmd->add_option("NAME", opts->name, "key name")->required();
  cmd->add_option("VERSION", opts->version, "key version")->required()->check(CLI::PositiveNumber);
}

}  // namespace

// Implemented in destroy_guard.cpp (scan-based protection, rotation issue).
Result<int> RunKeyDestroy(Context& ctx, const std::string& name, uint32_t version, bool confirmed,
                          const std::vector<std::string>& scan_paths, bool force);

void RegisterKey(CLI::App& app, Context& ctx, Runner& run) {
  auto opts = std::make_shared<KeyOptions>();
  CLI::App* key = AddCommand(app, "key", "manage key-encryption keys and their versions");
  key->require_subcommand(1);

  auto* create = AddCommand(*key, "create", "create a key (version 1, active)");
  create->add_option("NAME", opts->name, "key name: letters, digits, . _ -")->required();
  create->add_option("--rotation-days", opts->rotation_days, "rotation period in days");
  create->add_flag("--default", opts->set_default, "make it the default key for encrypt");
  create->callback([opts, &ctx, &run] { run = [opts, &ctx] { return RunCreate(ctx, *opts); }; });

  AddCommand(*key, "list", "list keys")->callback([&ctx, &run] {
    run = [&ctx] { return RunList(ctx); };
  });

  auto* show = AddCommand(*key, "show", "show a key's versions and policy");
  show->add_option("NAME", opts->name, "key name")->required();
  show->callback([opts, &ctx, &run] { run = [opts, &ctx] { return RunShow(ctx, *opts); }; });

  auto* rotate = AddCommand(*key, "rotate", "add a new active version and make it primary");
  rotate->add_option("NAME", opts->name, "key name")->required();
  rotate->callback([opts, &ctx, &run] { run = [opts, &ctx] { return RunRotate(ctx, *opts); }; });

  auto* retire = AddCommand(*key, "retire", "make a version decrypt-only");
  AddNameVersion(retire, opts.get());
  retire->callback([opts, &ctx, &run] {
    run = [opts, &ctx] {
      return RunStateChange(ctx, *opts, "retired", [&](keystore::Keystore& ks) {
        return ks.RetireVersion(opts->name, opts->version);
      });
    };
  });
  auto* disable = AddCommand(*key, "disable", "refuse all use of a version (reversible)");
  AddNameVersion(disable, opts.get());
  disable->callback([opts, &ctx, &run] {
    run = [opts, &ctx] {
      return RunStateChange(ctx, *opts, "disabled", [&](keystore::Keystore& ks) {
        return ks.DisableVersion(opts->name, opts->version);
      });
    };
  });
  auto* enable = AddCommand(*key, "enable", "undo disable");
  AddNameVersion(enable, opts.get());
  enable->callback([opts, &ctx, &run] {
    run = [opts, &ctx] {
      return RunStateChange(ctx, *opts, "enabled", [&](keystore::Keystore& ks) {
        return ks.EnableVersion(opts->name, opts->version);
      });
    };
  });
  auto* destroy = AddCommand(*key, "destroy",
                             "wipe a version's secret for good (objects wrapped only to it are "
                             "lost)");
  AddNameVersion(destroy, opts.get());
  destroy->add_flag("--yes-destroy-key-material", opts->yes_destroy,
                    "required: confirms that the version's secret is to be destroyed");
  destroy->add_option("--scan", opts->scan_paths,
                      "refuse if any object under these paths still depends on the version");
  destroy->add_flag("--force", opts->force,
                    "destroy even if scanned objects still depend on the version");
  destroy->callback([opts, &ctx, &run] {
    run = [opts, &ctx] {
      return RunKeyDestroy(ctx, opts->name, opts->version, opts->yes_destroy, opts->scan_paths,
                           opts->force);
    };
  });
  auto* policy = AddCommand(*key, "policy", "show or change a key's policy");
  policy->add_option("NAME", opts->name, "key name")->required();
  policy->add_option("--rotation-days", opts->rotation_days, "rotation period in days (0: none)");
  policy->add_option("--min-decryption-version", opts->min_decryption_version,
                     "versions below this refuse to decrypt");
  policy->callback([opts, &ctx, &run] { run = [opts, &ctx] { return RunPolicy(ctx, *opts); }; });
  auto* def = AddCommand(*key, "default", "show or set the default key for encrypt");
  def->add_option("NAME", opts->name, "key name");
  def->callback([opts, &ctx, &run] { run = [opts, &ctx] { return RunDefault(ctx, *opts); }; });
}

}  // namespace keyhold::cli
