#include "exit_codes.h"

namespace keyhold::cli {

int ExitCodeFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return kExitUsage;
    case ErrorCode::kMalformed:
    case ErrorCode::kAuthFailed:
    case ErrorCode::kPayloadAuthFailed:
      return kExitIntegrity;
    case ErrorCode::kNoMatchingKey:
      return kExitNoMatchingKey;
    case ErrorCode::kPolicyRefused:
      return kExitPolicy;
    case ErrorCode::kWrongPassphrase:
      return kExitWrongPassphrase;
    case ErrorCode::kContextMismatch:
      return kExitContextMismatch;
    case ErrorCode::kInsecurePermissions:
      return kExitInsecurePermissions;
    case ErrorCode::kCancelled:
      return kExitInterrupted;
    case ErrorCode::kNotFound:
    case ErrorCode::kAlreadyExists:
    case ErrorCode::kIo:
    case ErrorCode::kUnsupported:
    case ErrorCode::kInternal:
      return kExitGeneral;
  }
  return kExitGeneral;
}

}  // namespace keyhold::cli
