// keyhold: the command-line tool. Parses global options and the subcommand, runs it, and maps
// its result to a documented exit code (exit_codes.h). Nothing secret is ever read from argv.
#include <sys/prctl.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <string>

#include "commands/commands.h"
#include "context.h"
#include "exit_codes.h"
#include "keyhold/crypto/file_io.h"
#include "keyhold/crypto/version.h"
#include "secret_input.h"
#include "ui.h"

namespace keyhold::cli {
namespace {

// Key material must not end up in a core dump: no dumps, and no ptrace attach by other
// processes of the same user (PR_SET_DUMPABLE 0 covers both).
void HardenProcess() {
  struct rlimit no_core {
    0, 0
  };
  setrlimit(RLIMIT_CORE, &no_core);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

void AddGlobalOptions(CLI::App& app, Context& ctx) {
  auto* g = "Global options";
  app.add_option("--keystore", ctx.global.keystore_dir,
                 "keystore directory (default: $KEYHOLD_HOME, else "
                 "${XDG_DATA_HOME:-~/.local/share}/keyhold)")
      ->group(g);
  auto* pf = app.add_option("--passphrase-file", ctx.global.passphrase.file,
                            "read the keystore passphrase from FILE")
                 ->group(g);
  app.add_option("--passphrase-fd", ctx.global.passphrase.fd,
                 "read the keystore passphrase from file descriptor N")
      ->group(g)
      ->excludes(pf)
      ->check(CLI::Range(0, 1 << 20));
  app.add_option("-i,--identity", ctx.global.identity_files,
                 "identity file (KH-SECRET-KEY-1...) for recipient stanzas and recipient "
                 "slots; repeatable")
      ->group(g)
      ->allow_extra_args(false);
  app.add_flag("--json", ctx.global.json, "machine-readable output on stdout")->group(g);
  app.add_flag("-q,--quiet", ctx.global.quiet, "print nothing but errors")->group(g);
}

int Main(int argc, char** argv) {
  HardenProcess();
  InstallTempFileCleanupHandlers();
  // Past the file size limit (ulimit -f) the default SIGXFSZ kills us mid-write and leaves
  // the temp file behind; ignored, the write fails with EFBIG and AtomicFile cleans up.
  signal(SIGXFSZ, SIG_IGN);
  CapturePassphraseEnvironment();

  Context ctx;
  Runner run;
  CLI::App app{"keyhold: client-side envelope encryption with customer-held keys", "keyhold"};
  app.fallthrough();
  app.require_subcommand(0, 1);
  app.footer(
      "Exit codes: 0 ok, 1 error, 2 usage, 3 integrity (tampered or malformed), 4 no matching "
      "key,\n5 policy refused, 6 wrong passphrase, 7 context mismatch, 8 insecure keystore "
      "permissions,\n9 some objects of a bulk job failed, 10 doctor findings, 130 interrupted.\n"
      "See `man keyhold` for everything.");
  bool version = false;
  app.add_flag("--version", version, "print the version and the crypto libraries in use");
  AddGlobalOptions(app, ctx);

  RegisterInit(app, ctx, run);
  RegisterSlot(app, ctx, run);
  RegisterKeygen(app, ctx, run);
  RegisterRecipient(app, ctx, run);
  RegisterKey(app, ctx, run);
  RegisterEncrypt(app, ctx, run);
  RegisterDecrypt(app, ctx, run);
  RegisterInspect(app, ctx, run);
  RegisterRewrap(app, ctx, run);
  RegisterReencrypt(app, ctx, run);
  RegisterScan(app, ctx, run);
  RegisterLog(app, ctx, run);
  RegisterDoctor(app, ctx, run);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::string what = e.what();
    for (auto& c : what) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    PrintError(what, "run `keyhold --help` or `keyhold COMMAND --help`");
    return kExitUsage;
  }
  SetQuiet(ctx.global.quiet);

  if (version) {
    std::printf("keyhold %s\n%s\nlibsodium %s\nhardware AES: %s\n", KEYHOLD_VERSION,
                OpenSslRuntimeVersion().c_str(), SodiumRuntimeVersion().c_str(),
                HardwareAesAvailable() ? "yes" : "no");
    return kExitOk;
  }
  if (!run) {
    std::fputs(app.help().c_str(), stdout);
    return kExitUsage;
  }
  Result<int> result = run();
  // Key uses are buffered (docs/audit-log.md): write them whatever the command's result.
  Status audit = ctx.FinishAudit();
  if (!audit.ok()) PrintError(audit.error());
  if (!result.ok()) {
    PrintError(result.error());
    return ExitCodeFor(result.error().code);
  }
  if (!audit.ok()) return ExitCodeFor(audit.error().code);
  return *result;
}

}  // namespace
}  // namespace keyhold::cli

int main(int argc, char** argv) { return keyhold::cli::Main(argc, argv); }
