// keyhold doctor [--fail-on SEVERITY] [--unlock] [--require-context] [PATH...]: checks the
// keystore, its audit log, the process environment and (with paths) a tree of objects against
// the policy in docs/best-practices.md. Without a passphrase or identity it unlocks nothing
// and reads the keystore with Peek (reported as unverified); unlocked, it checks the
// verified keystore and the audit chain. Exit 10 when a finding is at or above --fail-on.
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "bulk.h"
#include "commands/commands.h"
#include "doctor_checks.h"
#include "exit_codes.h"
#include "ui.h"

namespace keyhold::cli {
namespace {

struct DoctorOptions {
  std::string fail_on = "high";
  bool unlock = false;
  bool require_context = false;
  unsigned jobs = 0;
  std::vector<std::string> paths;
  // Test seams (hidden options): the clock for rotation ages, the swaps file, and the
  // filesystem type, none of which a test can otherwise control.
  std::optional<int64_t> now_for_testing;
  std::string swaps_file_for_testing;
  std::optional<int64_t> fs_type_for_testing;
};

void Append(std::vector<Finding>& to, std::vector<Finding> from) {
  for (auto& f : from) to.push_back(std::move(f));
}

// Errors that mean the invocation is wrong (not the keystore): they end doctor with the usual
// exit code instead of becoming a finding.
bool IsInvocationError(ErrorCode code) {
  return code == ErrorCode::kWrongPassphrase || code == ErrorCode::kInvalidArgument ||
         code == ErrorCode::kIo || code == ErrorCode::kCancelled || code == ErrorCode::kNotFound ||
         code == ErrorCode::kInternal;
}

Finding UnreadableKeystore(const std::string& dir, const Error& e, bool unlocking) {
  Finding f;
  f.id = "KH-KS-007";
  f.severity = Severity::kHigh;
  f.title =
      std::string(unlocking ? "keystore failed to open and verify" : "keystore could not be read") +
      ": its slots and keys were not checked";
  f.evidence = Printable(dir) + ": " + Printable(e.message);
  f.remediation = e.hint.empty() ? "see docs/keystore.md; restore keystore.json from a backup "
                                   "if it was damaged"
                                 : Printable(e.hint);
  return f;
}

void PrintHuman(const std::vector<Finding>& findings, const std::optional<std::string>& dir,
                bool verified, bool unverified_summary, uint64_t files) {
  if (dir) {
    std::printf("keystore: %s (%s)\n", Printable(*dir).c_str(),
                verified ? "verified: unlocked"
                         : (unverified_summary ? "UNVERIFIED: read without unlocking"
                                               : "contents not read"));
  } else {
    std::printf("keystore: none (object checks only)\n");
  }
  if (files > 0)
    std::printf("objects: %llu files checked\n", static_cast<unsigned long long>(files));
  if (!findings.empty()) {
    std::printf("\n%-12s %-9s %s\n", "ID", "SEVERITY", "FINDING");
    for (const auto& f : findings) {
      std::printf("%-12s %-9s %s\n", f.id.c_str(), std::string(SeverityName(f.severity)).c_str(),
                  f.title.c_str());
      std::printf("%-22s evidence: %s\n", "", f.evidence.c_str());
      std::printf("%-22s fix: %s\n", "", f.remediation.c_str());
    }
    std::printf("\n");
  }
  std::printf("%s\n", SummaryLine(findings).c_str());
}

Result<int> RunDoctor(Context& ctx, const DoctorOptions& opts) {
  KH_ASSIGN_OR_RETURN(Severity fail_on, ParseSeverity(opts.fail_on));
  KH_ASSIGN_OR_RETURN(std::string dir, ctx.KeystoreDir());
  const bool exists = keystore::Keystore::Exists(dir);
  if (!exists && opts.paths.empty()) {
    return Error(ErrorCode::kNotFound, "no keystore at " + dir,
                 "point to it with --keystore DIR or KEYHOLD_HOME, or give PATH... to check "
                 "objects only");
  }
  const int64_t now =
      opts.now_for_testing ? *opts.now_for_testing : static_cast<int64_t>(std::time(nullptr));
  std::vector<Finding> findings;
  std::optional<keystore::UnverifiedSummary> summary;
  bool verified = false;

  if (exists) {
    Append(findings, CheckKeystoreLocation(dir, geteuid(), opts.fs_type_for_testing));
    const bool unlock = opts.unlock || !ctx.global.passphrase.file.empty() ||
                        ctx.global.passphrase.fd >= 0 || !ctx.global.identity_files.empty();
    if (unlock) {
      auto ks = ctx.UnlockedKeystore();
      if (!ks.ok()) {
        if (IsInvocationError(ks.error().code)) return std::move(ks).error();
        findings.push_back(UnreadableKeystore(dir, ks.error(), true));
      } else {
        keystore::Keystore* k = *ks;
        keystore::UnverifiedSummary s;  // same shape; marked verified below
        s.generation = k->generation();
        s.keys = k->ListKeys();
        s.slots = k->ListSlots();
        s.recipients = k->ListRecipients();
        s.default_key = k->DefaultKey();
        s.verified = true;
        summary = std::move(s);
        verified = true;
        if (auto missing = CheckAuditLogPresent(dir)) {
          findings.push_back(std::move(*missing));
        } else {
          KH_ASSIGN_OR_RETURN(SecretBytes mac_key, k->DeriveSubkey(keystore::kAuditSubkeyLabel));
          keystore::AuditVerifyOptions vo;
          vo.keystore_generation = k->generation();
          auto report = keystore::AuditLog::Verify(dir, mac_key.ExposeSecret(), vo);
          if (!report.ok()) return std::move(report).error();
          if (auto bad = CheckAuditReport(*report)) findings.push_back(std::move(*bad));
        }
      }
    } else {
      auto peek = keystore::Keystore::Peek(dir);
      if (peek.ok()) {
        summary = std::move(peek).value();
      } else {
        if (IsInvocationError(peek.error().code) && peek.error().code != ErrorCode::kNotFound) {
          return std::move(peek).error();
        }
        findings.push_back(UnreadableKeystore(dir, peek.error(), false));
      }
      if (auto missing = CheckAuditLogPresent(dir)) {
        findings.push_back(std::move(*missing));
      } else {
        findings.push_back(AuditNotVerifiedFinding());
      }
    }
    if (summary) {
      Append(findings, CheckSlots(summary->slots));
      Append(findings, CheckKeys(summary->keys, now));
    }
  } else {
    Finding f;
    f.id = "KH-KS-008";
    f.severity = Severity::kInfo;
    f.title = "no keystore: only the objects were checked";
    f.evidence = "no keystore at " + Printable(dir);
    f.remediation = "give --keystore DIR to check key states, recovery recipients and policy";
    findings.push_back(std::move(f));
  }

  uint64_t files = 0;
  if (!opts.paths.empty()) {
    std::vector<std::string> skipped;
    KH_ASSIGN_OR_RETURN(
        std::vector<ScanEntry> entries,
        ScanPaths(opts.paths, opts.jobs == 0 ? DefaultJobs() : opts.jobs, &skipped));
    for (const auto& s : skipped) Warn("skipped " + Printable(s));
    ScanReport report = BuildScanReport(entries, summary);
    files = report.files;
    CorpusPolicy policy;
    policy.keystore_known = summary.has_value();
    policy.require_context = opts.require_context;
    Append(findings, CheckCorpus(entries, report, policy));
  }

  Append(findings,
         CheckHygiene(CollectHygieneFacts(
             opts.swaps_file_for_testing.empty() ? "/proc/swaps" : opts.swaps_file_for_testing)));
  SortFindings(findings);
  bool failed = false;
  for (const auto& f : findings) failed = failed || f.severity >= fail_on;

  const std::optional<std::string> shown_dir = exists ? std::optional(dir) : std::nullopt;
  if (ctx.global.json) {
    std::printf("%s\n", DoctorReportToJson(findings, verified, shown_dir, fail_on, failed)
                            .dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
                            .c_str());
  } else if (!Quiet()) {
    PrintHuman(findings, shown_dir, verified, summary.has_value(), files);
  }
  if (std::fflush(stdout) != 0) return Error(ErrorCode::kIo, "cannot write to standard output");
  return failed ? kExitFindings : kExitOk;
}

}  // namespace

void RegisterDoctor(CLI::App& app, Context& ctx, Runner& run) {
  auto opts = std::make_shared<DoctorOptions>();
  CLI::App* cmd = AddCommand(app, "doctor",
                             "check the keystore, audit log, environment and objects against "
                             "docs/best-practices.md; exit 10 on findings at or above --fail-on");
  cmd->add_option("--fail-on", opts->fail_on,
                  "exit 10 if a finding has this severity or higher (default: high)")
      ->check(CLI::IsMember({"info", "low", "medium", "high"}));
  cmd->add_flag("--unlock", opts->unlock,
                "unlock the keystore (prompting if needed) to verify it and its audit log; "
                "implied by --passphrase-file, --passphrase-fd and --identity");
  cmd->add_flag("--require-context", opts->require_context,
                "report objects with an empty encryption context");
  cmd->add_option("-j,--jobs", opts->jobs, "files read in parallel (default: number of CPUs)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("PATH", opts->paths, "objects or directories to check (recursive)");
  cmd->add_option("--now-for-testing", opts->now_for_testing)->group("");
  cmd->add_option("--swaps-file-for-testing", opts->swaps_file_for_testing)->group("");
  cmd->add_option("--fs-type-for-testing", opts->fs_type_for_testing)->group("");
  cmd->callback([opts, &ctx, &run] { run = [opts, &ctx] { return RunDoctor(ctx, *opts); }; });
}

}  // namespace keyhold::cli
