#include "ui.h"

#include <unistd.h>

#include <cstdio>

namespace keyhold::cli {
namespace {
bool g_quiet = false;

void Line(std::string_view prefix, std::string_view text) {
  std::string out(prefix);
  out += Printable(text);
  out += '\n';
  std::fwrite(out.data(), 1, out.size(), stderr);
  std::fflush(stderr);
}
}  // namespace

void SetQuiet(bool quiet) { g_quiet = quiet; }
bool Quiet() { return g_quiet; }
bool StderrIsTerminal() { return isatty(STDERR_FILENO) == 1; }
bool StdoutIsTerminal() { return isatty(STDOUT_FILENO) == 1; }

void PrintError(const Error& error) { PrintError(error.message, error.hint); }

void PrintError(std::string_view message, std::string_view hint) {
  Line("keyhold: error: ", message);
  if (!hint.empty()) Line("keyhold: hint: ", hint);
}

void Warn(std::string_view message) {
  if (!g_quiet) Line("keyhold: warning: ", message);
}

void Note(std::string_view message) {
  if (!g_quiet) Line("keyhold: ", message);
}

std::string Printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace keyhold::cli
