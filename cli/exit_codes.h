// The one place that maps library errors to the documented exit codes (docs/keyhold.1).
#ifndef KEYHOLD_CLI_EXIT_CODES_H_
#define KEYHOLD_CLI_EXIT_CODES_H_

#include "keyhold/crypto/result.h"

namespace keyhold::cli {

enum ExitCode : int {
  kExitOk = 0,
  kExitGeneral = 1,              // I/O, missing file, existing output, internal error
  kExitUsage = 2,                // bad command line or invalid argument
  kExitIntegrity = 3,            // tampered or malformed object or keystore, wrong key for it
  kExitNoMatchingKey = 4,        // nothing we hold opens the object
  kExitPolicy = 5,               // key state or policy refused (disabled, destroyed, below min)
  kExitWrongPassphrase = 6,      // no unlock slot opened
  kExitContextMismatch = 7,      // --expect-context differs from the object's context
  kExitInsecurePermissions = 8,  // keystore readable or writable by others
  kExitPartialFailure = 9,       // a bulk job finished but some objects failed
  kExitFindings = 10,            // doctor found something at or above --fail-on
  kExitInterrupted = 130,        // SIGINT (128 + 2), from the shell's convention
};

int ExitCodeFor(ErrorCode code);

}  // namespace keyhold::cli

#endif  // KEYHOLD_CLI_EXIT_CODES_H_
