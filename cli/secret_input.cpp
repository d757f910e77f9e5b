#include "secret_input.h"

#include <fcntl.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "keyhold/crypto/constant_time.h"
#include "keyhold/crypto/file_io.h"
#include "ui.h"

namespace keyhold::cli {
namespace {

std::optional<SecretBytes> g_env_passphrase;

// Reads up to kMaxPassphraseSize bytes from fd into secure memory, stopping at EOF (or at the
// first newline when `line` is set). Strips one trailing "\n" or "\r\n".
Result<SecretBytes> ReadSecretFromFd(int fd, bool line) {
  SecretBytes buf(kMaxPassphraseSize + 1);
  auto data = buf.ExposeSecret();
  size_t n = 0;
  while (n < data.size()) {
    ssize_t r = read(fd, data.data() + n, line ? 1 : data.size() - n);
    if (r < 0) {
      if (errno == EINTR) continue;
      return Error(ErrorCode::kIo, std::string("cannot read passphrase: ") + std::strerror(errno));
    }
    if (r == 0) break;
    if (line && data[n] == '\n') break;
    n += static_cast<size_t>(r);
  }
  if (n > kMaxPassphraseSize) {
    return Error(ErrorCode::kInvalidArgument,
                 "passphrase longer than " + std::to_string(kMaxPassphraseSize) + " bytes");
  }
  if (n > 0 && data[n - 1] == '\n') --n;
  if (n > 0 && data[n - 1] == '\r') --n;
  if (n == 0) return Error(ErrorCode::kInvalidArgument, "the passphrase is empty");
  return SecretBytes::CopyOf(data.first(n));
}

// Terminal state saved while echo is off, readable from a signal handler: Ctrl-C at the
// prompt must give the terminal back with echo on before the process dies.
volatile sig_atomic_t g_tty_saved = 0;
int g_tty_fd = -1;
struct termios g_tty_termios {};
struct sigaction g_prev_actions[3];
constexpr int kPromptSignals[3] = {SIGINT, SIGTERM, SIGHUP};

extern "C" void RestoreTtyAndChain(int sig) {
  if (g_tty_saved) tcsetattr(g_tty_fd, TCSAFLUSH, &g_tty_termios);  // async-signal-safe
  for (int i = 0; i < 3; ++i) {
    if (kPromptSignals[i] != sig) continue;
    sigaction(sig, &g_prev_actions[i], nullptr);  // the temp-file cleanup handler, or default
  }
  raise(sig);
}

class TtyEchoOff {
 public:
  explicit TtyEchoOff(int fd) : fd_(fd) {
    if (tcgetattr(fd_, &g_tty_termios) != 0) return;
    g_tty_fd = fd_;
    struct sigaction sa {};
    sa.sa_handler = RestoreTtyAndChain;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 3; ++i) sigaction(kPromptSignals[i], &sa, &g_prev_actions[i]);
    g_tty_saved = 1;
    struct termios t = g_tty_termios;
    t.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    t.c_lflag |= ECHONL;
    active_ = tcsetattr(fd_, TCSAFLUSH, &t) == 0;
  }
  ~TtyEchoOff() {
    if (!g_tty_saved) return;
    if (active_) tcsetattr(fd_, TCSAFLUSH, &g_tty_termios);
    g_tty_saved = 0;
    for (int i = 0; i < 3; ++i) sigaction(kPromptSignals[i], &g_prev_actions[i], nullptr);
  }

 private:
  int fd_;
  bool active_ = false;
};

Result<SecretBytes> PromptOnce(int tty, const char* prompt) {
  std::string p = std::string(prompt) + ": ";
  KH_RETURN_IF_ERROR(
      WriteAll(tty, std::span(reinterpret_cast<const uint8_t*>(p.data()), p.size())));
  TtyEchoOff echo_off(tty);
  return ReadSecretFromFd(tty, /*line=*/true);
}

}  // namespace

Result<SecretBytes> PromptPassphrase(const char* prompt, bool confirm) {
  int tty = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (tty < 0) {
    return Error(ErrorCode::kInvalidArgument, "no passphrase given and no terminal to ask on",
                 "pass --passphrase-file FILE or --passphrase-fd N (or set KEYHOLD_PASSPHRASE)");
  }
  auto first = PromptOnce(tty, prompt);
  if (!first.ok() || !confirm) {
    close(tty);
    return first;
  }
  auto second = PromptOnce(tty, "Repeat passphrase");
  close(tty);
  if (!second.ok()) return second;
  if (!SecretEquals(*first, *second)) {
    return Error(ErrorCode::kInvalidArgument, "the passphrases do not match");
  }
  return first;
}

Result<SecretBytes> ReadPassphrase(const PassphraseSource& source, const char* prompt,
                                   bool confirm) {
  if (!source.file.empty()) {
    int fd = open(source.file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return Error(ErrorCode::kNotFound,
                   "cannot open passphrase file " + source.file + ": " + std::strerror(errno));
    }
    auto r = ReadSecretFromFd(fd, /*line=*/false);
    close(fd);
    return r;
  }
  if (source.fd >= 0) return ReadSecretFromFd(source.fd, /*line=*/false);
  if (g_env_passphrase.has_value()) return g_env_passphrase->Clone();
  return PromptPassphrase(prompt, confirm);
}

void CapturePassphraseEnvironment() {
  char* value = std::getenv("KEYHOLD_PASSPHRASE");
  if (value == nullptr) return;
  size_t len = std::strlen(value);
  if (len > 0 && len <= kMaxPassphraseSize) {
    g_env_passphrase = SecretBytes::CopyOf(std::span(reinterpret_cast<const uint8_t*>(value), len));
  }
  ScrubPassphraseEnvironment();
}

void ScrubPassphraseEnvironment() {
  char* value = std::getenv("KEYHOLD_PASSPHRASE");
  if (value != nullptr) WipeMemory(value, std::strlen(value));
  unsetenv("KEYHOLD_PASSPHRASE");
}

Result<std::vector<envelope::Identity>> ReadIdentityFiles(const std::vector<std::string>& paths) {
  std::vector<envelope::Identity> out;
  for (const auto& path : paths) {
    // Identity files are small; read them into a wiped buffer.
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      return Error(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                   "cannot open identity file " + path + ": " + std::strerror(err));
    }
    SecretBytes buf(64 * 1024);
    auto n = ReadFull(fd, buf.ExposeSecret());
    close(fd);
    if (!n.ok()) return std::move(n).error();
    if (*n == buf.size()) return Error(ErrorCode::kMalformed, path + ": identity file too large");
    std::string_view text(reinterpret_cast<const char*>(buf.ExposeSecret().data()), *n);
    size_t line_no = 0;
    size_t found = 0;
    while (!text.empty()) {
      ++line_no;
      size_t eol = text.find('\n');
      std::string_view line = text.substr(0, eol);
      text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
      if (line.empty() || line.front() == '#') continue;
      auto id = envelope::ParseIdentity(line);
      if (!id.ok()) {
        return Error(ErrorCode::kMalformed,
                     path + ": line " + std::to_string(line_no) + " is not a keyhold identity",
                     "identity lines start with KH-SECRET-KEY-1 (create one with keyhold keygen)");
      }
      out.push_back(std::move(id).value());
      ++found;
    }
    if (found == 0) return Error(ErrorCode::kMalformed, path + ": no identity found in the file");
  }
  return out;
}

}  // namespace keyhold::cli
