// Encrypting, decrypting, inspecting and rewrapping one object on disk or on a pipe, with the
// file-safety rules: named outputs are atomic, never a partial file under the final name.
#ifndef KEYHOLD_CLI_OBJECT_OPS_H_
#define KEYHOLD_CLI_OBJECT_OPS_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "keyhold/crypto/cobblestone.h"
#include "keyhold/crypto/envelope.h"
#include "keyhold/crypto/result.h"

namespace keyhold::cli {

constexpr const char* kObjectSuffix = ".kh";
constexpr const char* kSidecarSuffix = ".hdr";

inline bool IsStdio(const std::string& path) { return path.empty() || path == "-"; }
std::string SidecarPath(const std::string& object_path);

// Mode for new ciphertext files (0666 & ~umask); plaintext outputs are always 0600.
mode_t CiphertextMode();

// Where an object's header and payload are. `detached` when NAME.hdr exists beside NAME.
struct ObjectLocation {
  std::string path;
  bool detached = false;
  std::string header_path;  // == path unless detached
  std::vector<uint8_t> header_bytes;
  uint64_t payload_offset = 0;  // in `path`
  uint64_t payload_size = 0;
};
// Reads the header of a file object (in-file or detached). kNotFound, kIo, kMalformed.
Result<ObjectLocation> LocateObject(const std::string& path);

struct EncryptRequest {
  std::string input;   // "-" or empty: stdin
  std::string output;  // "-" or empty: stdout
  bool detached = false;
  bool force = false;
};
Result<cobblestone::StreamStats> EncryptOne(const envelope::EncryptParams& params,
                                            const EncryptRequest& request);

struct DecryptRequest {
  std::string input;
  std::string output;
  bool force = false;
  envelope::EncryptionContext expected;
  unsigned threads = 0;
};
struct DecryptOutcome {
  cobblestone::StreamStats stats;
  std::string opened_with;  // "key NAME vN" or "recipient FINGERPRINT"
  std::string object_id;    // hex
};
Result<DecryptOutcome> DecryptOne(const DecryptRequest& request, const envelope::Keyring& keyring);

// Describes the stanza that opened a header, for messages and the audit log.
std::string DescribeStanza(const envelope::Stanza& stanza);

}  // namespace keyhold::cli

#endif  // KEYHOLD_CLI_OBJECT_OPS_H_
