// Every subcommand registers itself on the CLI11 app and, when selected, stores the action
// to run in `run`. One file per command (commands/<name>.cpp).
#ifndef KEYHOLD_CLI_COMMANDS_COMMANDS_H_
#define KEYHOLD_CLI_COMMANDS_COMMANDS_H_

#include <CLI/CLI.hpp>
#include <functional>

#include "context.h"
#include "keyhold/crypto/result.h"

namespace keyhold::cli {

// Returns the process exit code on success (0, or e.g. kExitPartialFailure for bulk jobs),
// or an Error that main maps to an exit code.
using Runner = std::function<Result<int>()>;

// Makes a subcommand accept the global options after its own name too.
CLI::App* AddCommand(CLI::App& parent, const std::string& name, const std::string& description);

void RegisterInit(CLI::App& app, Context& ctx, Runner& run);
void RegisterSlot(CLI::App& app, Context& ctx, Runner& run);
void RegisterKeygen(CLI::App& app, Context& ctx, Runner& run);
void RegisterRecipient(CLI::App& app, Context& ctx, Runner& run);
void RegisterKey(CLI::App& app, Context& ctx, Runner& run);
void RegisterEncrypt(CLI::App& app, Context& ctx, Runner& run);
void RegisterDecrypt(CLI::App& app, Context& ctx, Runner& run);
void RegisterInspect(CLI::App& app, Context& ctx, Runner& run);
void RegisterRewrap(CLI::App& app, Context& ctx, Runner& run);
void RegisterReencrypt(CLI::App& app, Context& ctx, Runner& run);
void RegisterScan(CLI::App& app, Context& ctx, Runner& run);
void RegisterLog(CLI::App& app, Context& ctx, Runner& run);
void RegisterDoctor(CLI::App& app, Context& ctx, Runner& run);

}  // namespace keyhold::cli

#endif  // KEYHOLD_CLI_COMMANDS_COMMANDS_H_
