// Reading passphrases and identities without ever taking them from argv.
#ifndef KEYHOLD_CLI_SECRET_INPUT_H_
#define KEYHOLD_CLI_SECRET_INPUT_H_

#include <string>
#include <vector>

#include "keyhold/crypto/envelope.h"
#include "keyhold/crypto/result.h"
#include "keyhold/crypto/secret_bytes.h"

namespace keyhold::cli {

constexpr size_t kMaxPassphraseSize = 1024;

// Where a passphrase comes from, in order of precedence.
struct PassphraseSource {
  std::string file;  // --passphrase-file
  int fd = -1;       // --passphrase-fd
};

// Reads a passphrase: from the file or fd if given (one trailing "\n" or "\r\n" removed),
// else from $KEYHOLD_PASSPHRASE (wiped from the environment once read), else from the
// terminal without echo (asked twice if `confirm`). kInvalidArgument if none is available
// (no terminal) or it is empty; kIo on read errors.
Result<SecretBytes> ReadPassphrase(const PassphraseSource& source, const char* prompt,
                                   bool confirm);

// Reads a passphrase from the terminal only (for a new passphrase when no file is given).
Result<SecretBytes> PromptPassphrase(const char* prompt, bool confirm);

// Removes KEYHOLD_PASSPHRASE from the environment after overwriting its bytes, so it is not
// visible in /proc/PID/environ of this process or inherited by children. Call at startup
// after it has been read (or not needed).
void ScrubPassphraseEnvironment();

// Takes KEYHOLD_PASSPHRASE's value (if set) into secure memory and scrubs the environment.
// Called once at startup so the variable never outlives it.
void CapturePassphraseEnvironment();

// Reads identity files ("KH-SECRET-KEY-1..." lines; '#' comments and blank lines ignored).
// kNotFound, kMalformed (line number named, the secret never shown).
Result<std::vector<envelope::Identity>> ReadIdentityFiles(const std::vector<std::string>& paths);

}  // namespace keyhold::cli

#endif  // KEYHOLD_CLI_SECRET_INPUT_H_
