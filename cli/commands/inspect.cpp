// keyhold inspect FILE...: what an object says about itself, without any key.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands/commands.h"
#include "exit_codes.h"
#include "inspect_model.h"
#include "object_ops.h"
#include "ui.h"

namespace keyhold::cli {
namespace {

struct InspectOptions {
  std::vector<std::string> files;
};

void PrintHuman(const ObjectSummary& s) {
  std::printf("%s\n", Printable(s.path).c_str());
  std::printf(
      "  format:     keyhold v%u, suite %u (Cobblestone-256: AES-256-GCM, HKDF-SHA-512, "
      "16 KiB chunks)\n",
      s.header.version, s.header.suite);
  std::printf("  object id:  %s\n", s.object_id.c_str());
  if (s.detached) {
    std::printf("  layout:     detached (header in %s)\n", Printable(s.header_path).c_str());
  } else {
    std::printf("  layout:     in-file\n");
  }
  std::printf("  header:     %zu bytes\n", s.header_size);
  if (s.plaintext_size) {
    std::printf(
        "  payload:    %llu bytes (%llu bytes of plaintext in %llu chunk%s, "
        "not authenticated until decrypted)\n",
        static_cast<unsigned long long>(s.payload_size),
        static_cast<unsigned long long>(*s.plaintext_size),
        static_cast<unsigned long long>(*s.chunks), *s.chunks == 1 ? "" : "s");
  } else {
    std::printf(
        "  payload:    %llu bytes (not a valid Cobblestone-256 length: truncated or "
        "extended)\n",
        static_cast<unsigned long long>(s.payload_size));
  }
  if (s.header.context.empty()) {
    std::printf("  context:    (empty)\n");
  } else {
    bool first = true;
    for (const auto& [k, v] : s.header.context) {
      std::printf("  %s%s=%s\n", first ? "context:    " : "            ", Printable(k).c_str(),
                  Printable(v).c_str());
      first = false;
    }
  }
  bool first = true;
  for (const auto& st : s.header.stanzas) {
    std::printf("  %s%s\n", first ? "stanzas:    " : "            ",
                DescribeStanzaLong(st).c_str());
    first = false;
  }
}

Result<int> RunInspect(Context& ctx, const InspectOptions& opts) {
  nlohmann::json objects = nlohmann::json::array();
  int exit_code = kExitOk;
  bool first = true;
  for (const auto& f : opts.files) {
    auto summary = SummarizeObject(f);
    if (!summary.ok()) {
      if (ctx.global.json) {
        objects.push_back({{"path", f},
                           {"error",
                            {{"code", std::string(ErrorCodeName(summary.error().code))},
                             {"message", summary.error().message}}}});
      } else {
        PrintError(summary.error());
      }
      if (exit_code == kExitOk) exit_code = ExitCodeFor(summary.error().code);
      continue;
    }
    if (ctx.global.json) {
      objects.push_back(SummaryToJson(*summary));
    } else {
      if (!first) std::printf("\n");
      PrintHuman(*summary);
      first = false;
    }
  }
  if (ctx.global.json) std::printf("%s\n", nlohmann::json{{"objects", objects}}.dump(2).c_str());
  return exit_code;
}

}  // namespace

void RegisterInspect(CLI::App& app, Context& ctx, Runner& run) {
  auto opts = std::make_shared<InspectOptions>();
  CLI::App* cmd =
      AddCommand(app, "inspect", "show an object's format, context and recipients without any key");
  cmd->add_option("FILE", opts->files, "encrypted objects (NAME.hdr beside NAME is used)")
      ->required();
  cmd->callback([opts, &ctx, &run] { run = [opts, &ctx] { return RunInspect(ctx, *opts); }; });
}

}  // namespace keyhold::cli
