// A keyless description of an object, shared by inspect, scan and doctor.
#ifndef KEYHOLD_CLI_INSPECT_MODEL_H_
#define KEYHOLD_CLI_INSPECT_MODEL_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "keyhold/crypto/envelope.h"
#include "keyhold/crypto/result.h"

namespace keyhold::cli {

struct ObjectSummary {
  std::string path;
  std::string header_path;
  bool detached = false;
  envelope::Header header;
  std::string object_id;  // hex
  size_t header_size = 0;
  uint64_t payload_size = 0;
  std::optional<uint64_t> plaintext_size;  // unset if the payload length is impossible
  std::optional<uint64_t> chunks;
};

Result<ObjectSummary> SummarizeObject(const std::string& path);
nlohmann::json SummaryToJson(const ObjectSummary& summary);
nlohmann::json StanzaToJson(const envelope::Stanza& stanza);
std::string DescribeStanzaLong(const envelope::Stanza& stanza);

// The plaintext length and chunk count implied by a Cobblestone-256 payload length.
bool PlaintextSizeFromPayload(uint64_t payload_size, uint64_t* plaintext, uint64_t* chunks);

}  // namespace keyhold::cli

#endif  // KEYHOLD_CLI_INSPECT_MODEL_H_
