// keyhold log show | verify: read and check the keystore's tamper-evident audit log
// (docs/audit-log.md). Both need the unlocked keystore: the log's MAC key is derived from it.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands/commands.h"
#include "exit_codes.h"
#include "keyhold/keystore/audit_log.h"
#include "ui.h"

namespace keyhold::cli {
namespace {

struct LogOptions {
  std::string since;
  std::string key;
};

struct OpenedLog {
  std::string dir;
  SecretBytes mac_key;
  keystore::AuditVerifyOptions options;
};

Result<OpenedLog> OpenLog(Context& ctx) {
  KH_ASSIGN_OR_RETURN(keystore::Keystore * ks, ctx.UnlockedKeystore());
  OpenedLog out;
  out.dir = ks->dir();
  KH_ASSIGN_OR_RETURN(out.mac_key, ks->DeriveSubkey(keystore::kAuditSubkeyLabel));
  out.options.keystore_generation = ks->generation();
  return out;
}

std::string Where(const keystore::AuditFinding& f) {
  return f.line == 0 ? std::string() : "line " + std::to_string(f.line) + ": ";
}

nlohmann::json FindingJson(const keystore::AuditFinding& f) {
  return {{"line", f.line}, {"reason", f.reason}};
}

// A log with no audit.log and no audit.head: for an existing keystore, its history is gone.
Error NoLog(const Error& e) {
  return Error(ErrorCode::kAuthFailed, e.message,
               "keyhold starts the log at `keyhold init`; if it was deleted, its history is "
               "lost (see docs/audit-log.md)");
}

// Prints the first problem as the error and the rest as warnings; exit code 3.
int ReportProblems(const keystore::AuditVerifyReport& report) {
  auto first = report.FirstProblem();
  PrintError("audit log verification failed: " + Where(*first) + Printable(first->reason),
             "the log or audit.head was changed, or an append was interrupted; see "
             "docs/audit-log.md");
  for (const auto& f : report.findings) {
    if (f.line == first->line && f.reason == first->reason) continue;
    Warn(Where(f) + Printable(f.reason));
  }
  if (report.first_bad && first->line != report.first_bad->line) {
    Warn(Where(*report.first_bad) + Printable(report.first_bad->reason));
  }
  if (report.first_bad) {
    Warn("nothing after line " + std::to_string(report.first_bad->line) + " was verified");
  }
  return kExitIntegrity;
}

// k=v pairs for humans: control characters escaped, values with spaces quoted.
std::string FieldsText(const keystore::AuditEntry& e) {
  std::string out;
  for (const auto& [k, v] : e.fields) {
    if (!out.empty()) out += ' ';
    std::string value = Printable(v);
    if (value.empty() || value.find(' ') != std::string::npos) value = "\"" + value + "\"";
    out += Printable(k) + "=" + value;
  }
  return out;
}

Result<int> RunShow(Context& ctx, const LogOptions& opts) {
  keystore::AuditReadFilter filter;
  if (!opts.since.empty()) {
    KH_ASSIGN_OR_RETURN(int64_t since, keystore::ParseAuditTime(opts.since));
    filter.since_unix = since;
  }
  if (!opts.key.empty()) filter.key = opts.key;
  KH_ASSIGN_OR_RETURN(OpenedLog log, OpenLog(ctx));
  auto read = keystore::AuditLog::Read(log.dir, log.mac_key.ExposeSecret(), filter, log.options);
  if (!read.ok()) {
    if (read.error().code == ErrorCode::kNotFound) return NoLog(read.error());
    return std::move(read).error();
  }
  const bool intact = read->report.intact();
  if (ctx.global.json) {
    nlohmann::json entries = nlohmann::json::array();
    for (const auto& s : read->entries) {
      nlohmann::json fields = nlohmann::json::object();
      for (const auto& [k, v] : s.entry.fields) fields[k] = v;
      entries.push_back({{"line", s.line},
                         {"seq", s.entry.seq},
                         {"time", s.entry.time},
                         {"event", s.entry.event},
                         {"fields", fields},
                         {"verified", s.verified}});
    }
    nlohmann::json out = {{"intact", intact}, {"entries", entries}};
    std::printf("%s\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    for (const auto& s : read->entries) {
      std::printf("%6llu  %s  %s%s  %s\n", static_cast<unsigned long long>(s.entry.seq),
                  s.entry.time.c_str(), Printable(s.entry.event).c_str(),
                  s.verified ? "" : " (UNVERIFIED)", FieldsText(s.entry).c_str());
    }
  }
  if (std::fflush(stdout) != 0) return Error(ErrorCode::kIo, "cannot write to standard output");
  for (const auto& n : read->report.notes) Note("note: " + n);
  if (!intact) return ReportProblems(read->report);
  return kExitOk;
}

Result<int> RunVerify(Context& ctx) {
  KH_ASSIGN_OR_RETURN(OpenedLog log, OpenLog(ctx));
  auto report = keystore::AuditLog::Verify(log.dir, log.mac_key.ExposeSecret(), log.options);
  if (!report.ok()) {
    if (report.error().code == ErrorCode::kNotFound) return NoLog(report.error());
    return std::move(report).error();
  }
  const keystore::AuditVerifyReport& r = *report;
  if (ctx.global.json) {
    nlohmann::json findings = nlohmann::json::array();
    for (const auto& f : r.findings) findings.push_back(FindingJson(f));
    auto first = r.FirstProblem();
    nlohmann::json out = {{"intact", r.intact()},
                          {"lines", r.lines},
                          {"verified_entries", r.verified_entries},
                          {"last_seq", r.last_seq},
                          {"last_time", r.last_time},
                          {"first_problem", first ? FindingJson(*first) : nullptr},
                          {"stopped_at", r.first_bad ? FindingJson(*r.first_bad) : nullptr},
                          {"findings", findings},
                          {"notes", r.notes}};
    std::printf("%s\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else if (r.intact()) {
    std::printf("audit log intact: %llu entries, the last (%llu) at %s\n",
                static_cast<unsigned long long>(r.verified_entries),
                static_cast<unsigned long long>(r.last_seq), r.last_time.c_str());
  }
  if (std::fflush(stdout) != 0) return Error(ErrorCode::kIo, "cannot write to standard output");
  for (const auto& n : r.notes) Note("note: " + n);
  if (!r.intact()) return ReportProblems(r);
  return kExitOk;
}

}  // namespace

void RegisterLog(CLI::App& app, Context& ctx, Runner& run) {
  auto opts = std::make_shared<LogOptions>();
  CLI::App* log = AddCommand(app, "log", "show and verify the keystore's audit log");
  log->require_subcommand(1);

  auto* show = AddCommand(*log, "show", "print audit log entries (verifying them as it reads)");
  show->add_option("--since", opts->since,
                   "only entries at or after DATE (YYYY-MM-DD or RFC 3339)");
  show->add_option("--key", opts->key, "only entries about key NAME");
  show->callback([opts, &ctx, &run] { run = [opts, &ctx] { return RunShow(ctx, *opts); }; });

  AddCommand(*log, "verify", "check the whole log; exit 3 at the first bad entry")
      ->callback([&ctx, &run] { run = [&ctx] { return RunVerify(ctx); }; });
}

}  // namespace keyhold::cli
