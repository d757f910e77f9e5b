// keyhold decrypt: finds the stanza we can open (keystore key versions, identities), checks
// the header MAC, the expected context and the key commitment, then streams only
// authenticated plaintext.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "audit_hooks.h"
#include "commands/commands.h"
#include "exit_codes.h"
#include "keyhold/crypto/encoding.h"
#include "object_ops.h"
#include "paths.h"
#include "ui.h"

namespace keyhold::cli {
namespace {

struct DecryptOptions {
  std::vector<std::string> expect_context;
  std::vector<std::string> inputs;
  std::string output;
  std::string output_dir;
  bool force = false;
  unsigned threads = 0;
};

// Unlocks the keystore only when a kek stanza asks for it, so decrypting with an identity
// alone never prompts for a passphrase. An unlock failure is remembered and reported if no
// other stanza opens the object.
class LazyKeystoreResolver final : public envelope::KekResolver {
 public:
  explicit LazyKeystoreResolver(Context& ctx) : ctx_(ctx) {}
  Result<const SecretBytes*> ResolveForDecrypt(const envelope::KekStanza& stanza) override {
    if (unlock_error_) return Error(ErrorCode::kNotFound, "keystore unavailable");
    if (ctx_.LoadedKeystore() == nullptr && !ctx_.KeystoreExists()) {
      unlock_error_ =
          Error(ErrorCode::kNoMatchingKey, "no keystore to open key " + stanza.key_name + " with",
                "point to the keystore with --keystore DIR or KEYHOLD_HOME");
      return Error(ErrorCode::kNotFound, "no keystore");
    }
    auto ks = ctx_.UnlockedKeystore();
    if (!ks.ok()) {
      unlock_error_ = ks.error();
      return Error(ErrorCode::kNotFound, "keystore unavailable");
    }
    return (*ks)->Resolver().ResolveForDecrypt(stanza);
  }
  const std::optional<Error>& unlock_error() const { return unlock_error_; }

 private:
  Context& ctx_;
  std::optional<Error> unlock_error_;
};

std::string StripSuffix(const std::string& path) {
  const std::string suffix = kObjectSuffix;
  if (path.size() > suffix.size() &&
      path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0) {
    return path.substr(0, path.size() - suffix.size());
  }
  return {};
}

Result<int> RunDecrypt(Context& ctx, const DecryptOptions& opts) {
  if (!opts.output.empty() && !opts.output_dir.empty()) {
    return Error(ErrorCode::kInvalidArgument, "-o and -O cannot be used together");
  }
  KH_ASSIGN_OR_RETURN(envelope::EncryptionContext expected,
                      ParseContextArgs(opts.expect_context, "--expect-context"));
  std::vector<std::string> inputs =
      opts.inputs.empty() ? std::vector<std::string>{"-"} : opts.inputs;
  KH_ASSIGN_OR_RETURN(Expansion expansion,
                      ExpandInputs(inputs, /*skip_sidecars=*/true, /*hold_roots=*/true));
  const bool many = expansion.files.size() > 1 || expansion.had_directory;
  if (many && opts.output_dir.empty()) {
    return Error(ErrorCode::kInvalidArgument, "several inputs or a directory need -O DIR");
  }
  for (const auto& s : expansion.skipped) Warn("skipped " + s);

  KH_ASSIGN_OR_RETURN(auto identities, ctx.Identities());
  LazyKeystoreResolver resolver(ctx);
  envelope::Keyring keyring{&resolver, identities};

  std::vector<std::string> outputs;  // with -O DIR: each input's output
  if (!opts.output_dir.empty()) {
    for (const auto& in : expansion.files) {
      std::string rel = StripSuffix(in.relative);
      // "x.kh" -> "x"; a name that would strip to nothing, "." or ".." gets ".out" instead.
      const std::string base = BaseName(rel);
      if (rel.empty() || base == "." || base == "..") rel = in.relative + ".out";
      outputs.push_back(opts.output_dir + "/" + rel);
    }
    KH_RETURN_IF_ERROR(CheckDistinctOutputs(expansion.files, outputs));
  }
  // Into a new -O DIR no output can exist yet: no early check per file (as in encrypt).
  bool fresh_root = false;
  if (!opts.output_dir.empty()) {
    KH_ASSIGN_OR_RETURN(fresh_root, CreateOutputRoot(opts.output_dir));
  }

  size_t done = 0, failed = 0;
  bool wrote_stdout = false;
  // With several outputs (-O), they are committed in batches: one data sync per batch instead
  // of one fsync per file, and each file still appears only complete (see AtomicBatch).
  AtomicBatch batch;
  OutputDirs dirs(opts.output_dir);
  for (size_t i = 0; i < expansion.files.size(); ++i) {
    const auto& in = expansion.files[i];
    DecryptRequest req;
    req.input = in.path;
    req.walked = {in.root.get(), in.relative};
    req.force = opts.force;
    req.fresh_output_dir = fresh_root;
    req.expected = expected;
    req.threads = opts.threads;
    if (!opts.output_dir.empty()) {
      req.output = outputs[i];
      if (auto s = dirs.Prepare(req.output); !s.ok()) {
        batch.Flush();  // what was decrypted so far is complete: put it in place, then stop
        return std::move(s).error();
      }
    } else if (!opts.output.empty()) {
      req.output = opts.output;
    } else if (!IsStdio(in.path)) {
      req.output = StripSuffix(in.path);
      if (req.output.empty()) {
        return Error(ErrorCode::kInvalidArgument,
                     "cannot name the output: " + in.path + " does not end in .kh",
                     "give -o FILE, or -o - for standard output");
      }
    }
    wrote_stdout = wrote_stdout || IsStdio(req.output);
    auto report_failure = [&, path = in.path](const Error& err) {
      PrintError(Error(err.code, path + ": " + err.message, err.hint));
      ++failed;
    };
    if (many) {
      req.batch = &batch;
      req.on_commit = [&done, report_failure](const Status& s) {
        if (s.ok()) {
          ++done;
        } else {
          report_failure(s.error());
        }
      };
    }
    auto outcome = DecryptOne(req, keyring);
    if (!outcome.ok()) {
      Error err = std::move(outcome).error();
      if (err.code == ErrorCode::kNoMatchingKey && resolver.unlock_error()) {
        err = *resolver.unlock_error();  // e.g. a wrong passphrase is the real reason
      }
      if (!many) return err;
      report_failure(err);
      continue;
    }
    if (req.batch == nullptr) ++done;
    if (outcome->from_interrupted_reencrypt) {
      Warn(Printable(in.path) + ": an interrupted reencrypt left its old payload in " +
           Printable(ReencryptBackupPath(in.path)) +
           "; decrypted that one. Run `keyhold reencrypt` on it again to finish");
    }
    if (outcome->kek && ctx.LoadedKeystore() != nullptr) {
      // Log the keystore's own name for the key id that opened the object: the name in the
      // header is only a hint that anyone holding the data key could have rewritten.
      std::string name = "key-id:" + HexEncode(outcome->kek->key_id);
      for (const auto& k : ctx.LoadedKeystore()->ListKeys()) {
        if (k.key_id == outcome->kek->key_id) name = k.name;
      }
      AuditKeyUse(ctx, "decrypt", {name + " v" + std::to_string(outcome->kek->version)}, in.path);
    }
  }
  batch.Flush();
  if (ctx.global.json) {
    // When the plaintext went to stdout, the summary must not be appended to it.
    std::fprintf(wrote_stdout ? stderr : stdout, "%s\n",
                 nlohmann::json{{"done", done}, {"failed", failed}}.dump().c_str());
  } else if (many) {
    Note("decrypted " + std::to_string(done) + " file(s)" +
         (failed ? ", " + std::to_string(failed) + " failed" : ""));
  }
  return failed ? kExitPartialFailure : kExitOk;
}

}  // namespace

void RegisterDecrypt(CLI::App& app, Context& ctx, Runner& run) {
  auto opts = std::make_shared<DecryptOptions>();
  CLI::App* cmd = AddCommand(app, "decrypt", "decrypt objects or standard input");
  cmd->add_option("--expect-context", opts->expect_context,
                  "refuse the object unless its context has KEY=VALUE (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("-o,--output", opts->output, "output file (- for stdout)");
  cmd->add_option("-O,--output-dir", opts->output_dir, "output directory for several inputs");
  cmd->add_flag("-f,--force", opts->force, "overwrite existing output files");
  cmd->add_option("-j,--threads", opts->threads, "worker threads for chunks (0 = all cores)");
  cmd->add_option("INPUT", opts->inputs, "objects or directories (default or -: stdin)");
  cmd->callback([opts, &ctx, &run] { run = [opts, &ctx] { return RunDecrypt(ctx, *opts); }; });
}

}  // namespace keyhold::cli
