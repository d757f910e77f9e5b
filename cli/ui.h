// Terminal output conventions: errors and hints on stderr, progress only on a terminal.
#ifndef KEYHOLD_CLI_UI_H_
#define KEYHOLD_CLI_UI_H_

#include <string>
#include <string_view>

#include "keyhold/crypto/result.h"

namespace keyhold::cli {

// Set once from the global flags.
void SetQuiet(bool quiet);
bool Quiet();
bool StderrIsTerminal();
bool StdoutIsTerminal();

// "keyhold: error: <message>" and, if set, "keyhold: hint: <hint>" on stderr. Always shown,
// even with -q.
void PrintError(const Error& error);
void PrintError(std::string_view message, std::string_view hint = {});
// "keyhold: warning: ..." on stderr unless -q.
void Warn(std::string_view message);
// Informational line on stderr unless -q (never on stdout: stdout is for data).
void Note(std::string_view message);

// Quote a path for messages (paths are user data: shown, but control characters escaped so
// a file name cannot rewrite the terminal).
std::string Printable(std::string_view text);

}  // namespace keyhold::cli

#endif  // KEYHOLD_CLI_UI_H_
