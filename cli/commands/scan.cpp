// keyhold scan: an inventory of a tree of objects without unlocking anything. Key states
// and policies come from Keystore::Peek and are marked unverified.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "bulk.h"
#include "commands/commands.h"
#include "exit_codes.h"
#include "scan_model.h"
#include "ui.h"

namespace keyhold::cli {
namespace {

struct ScanOptions {
  unsigned jobs = 0;
  std::vector<std::string> paths;
};

std::string Bytes(uint64_t b) { return std::to_string(b) + " bytes"; }

void PrintList(const char* title, const std::vector<std::string>& paths) {
  if (paths.empty()) return;
  std::printf("%s (%zu):\n", title, paths.size());
  for (const auto& p : paths) std::printf("  %s\n", Printable(p).c_str());
}

void PrintPairs(const char* title, const std::vector<std::pair<std::string, std::string>>& v) {
  if (v.empty()) return;
  std::printf("%s (%zu):\n", title, v.size());
  for (const auto& [p, why] : v)
    std::printf("  %s: %s\n", Printable(p).c_str(), Printable(why).c_str());
}

void PrintReport(const ScanReport& r) {
  std::printf("%llu files, %llu keyhold objects, %s\n", static_cast<unsigned long long>(r.files),
              static_cast<unsigned long long>(r.objects), Bytes(r.object_bytes).c_str());
  if (!r.keystore_known) {
    std::printf("no keystore: key states and recovery recipients unknown\n");
  } else if (!r.verified) {
    std::printf("key states: UNVERIFIED (read without unlocking the keystore)\n");
  }
  std::printf("key versions:\n");
  for (const auto& u : r.key_versions) {
    std::printf("  %s v%u  %s%s  %llu objects, %s\n", u.key_name.c_str(), u.version,
                u.state ? u.state->c_str() : (u.in_keystore ? "?" : "not in this keystore"),
                u.primary ? " (primary)" : "", static_cast<unsigned long long>(u.objects),
                Bytes(u.bytes).c_str());
  }
  std::printf("recipients:\n");
  for (const auto& u : r.recipients) {
    std::printf("  %s  %s%s  %llu objects, %s\n", u.fingerprint.c_str(),
                u.name ? u.name->c_str() : (u.recipient ? "recipient slot" : "unknown recipient"),
                u.recovery ? " (recovery)" : "", static_cast<unsigned long long>(u.objects),
                Bytes(u.bytes).c_str());
  }
  PrintList("only on decrypt-only versions (rewrap them)", r.only_decrypt_only);
  PrintList("only on versions below min_decryption_version (refused)", r.only_below_min);
  PrintList("only on disabled versions (refused)", r.only_disabled);
  PrintList("only on destroyed versions (lost unless another stanza opens them)", r.only_destroyed);
  PrintList("only on versions this keystore does not have", r.only_unknown_version);
  PrintList("not on their key's primary version", r.not_on_primary);
  PrintList("no stanza for a key of this keystore", r.no_keystore_stanza);
  PrintList("no recovery recipient", r.no_recovery);
  PrintPairs("not keyhold objects", r.not_keyhold);
  PrintPairs("malformed", r.malformed);
  PrintPairs("unreadable", r.unreadable);
}

Result<int> RunScan(Context& ctx, const ScanOptions& opts) {
  std::vector<std::string> skipped;
  KH_ASSIGN_OR_RETURN(std::vector<ScanEntry> entries,
                      ScanPaths(opts.paths, opts.jobs == 0 ? DefaultJobs() : opts.jobs, &skipped));
  for (const auto& s : skipped) Warn("skipped " + Printable(s));
  std::optional<keystore::UnverifiedSummary> summary;
  KH_ASSIGN_OR_RETURN(std::string dir, ctx.KeystoreDir());
  if (keystore::Keystore::Exists(dir)) {
    auto peek = keystore::Keystore::Peek(dir);
    if (peek.ok()) {
      summary = std::move(peek).value();
    } else {
      // An inventory is still useful without the keystore: say why the states are missing.
      Warn("keystore not read (" + peek.error().message + "): stanzas only");
    }
  }
  ScanReport report = BuildScanReport(entries, summary);
  if (ctx.global.json) {
    std::printf("%s\n", ScanReportToJson(report).dump(2).c_str());
  } else {
    PrintReport(report);
  }
  return kExitOk;
}

}  // namespace

void RegisterScan(CLI::App& app, Context& ctx, Runner& run) {
  auto opts = std::make_shared<ScanOptions>();
  CLI::App* cmd = AddCommand(app, "scan",
                             "inventory objects by key version and recipient, and list those "
                             "at risk; unlocks nothing");
  cmd->add_option("-j,--jobs", opts->jobs, "files read in parallel (default: number of CPUs)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("PATH", opts->paths, "objects or directories (recursive)")->required();
  cmd->callback([opts, &ctx, &run] { run = [opts, &ctx] { return RunScan(ctx, *opts); }; });
}

}  // namespace keyhold::cli
