#include "commands/commands.h"

namespace keyhold::cli {

CLI::App* AddCommand(CLI::App& parent, const std::string& name, const std::string& description) {
  CLI::App* cmd = parent.add_subcommand(name, description);
  cmd->fallthrough();  // global options may follow the command name
  return cmd;
}

}  // namespace keyhold::cli
