#include "keyhold/crypto/result.h"

namespace keyhold {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kAlreadyExists:
      return "already_exists";
    case ErrorCode::kIo:
      return "io";
    case ErrorCode::kUnsupported:
      return "unsupported";
    case ErrorCode::kMalformed:
      return "malformed";
    case ErrorCode::kNoMatchingKey:
      return "no_matching_key";
    case ErrorCode::kAuthFailed:
      return "auth_failed";
    case ErrorCode::kPayloadAuthFailed:
      return "payload_auth_failed";
    case ErrorCode::kContextMismatch:
      return "context_mismatch";
    case ErrorCode::kPolicyRefused:
      return "policy_refused";
    case ErrorCode::kWrongPassphrase:
      return "wrong_passphrase";
    case ErrorCode::kInsecurePermissions:
      return "insecure_permissions";
    case ErrorCode::kCancelled:
      return "cancelled";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "unknown";
}

}  // namespace keyhold
