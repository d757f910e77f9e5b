#include "inspect_model.h"

#include "keyhold/crypto/cobblestone.h"
#include "keyhold/crypto/encoding.h"
#include "object_ops.h"

namespace keyhold::cli {

bool PlaintextSizeFromPayload(uint64_t payload_size, uint64_t* plaintext, uint64_t* chunks) {
  using namespace cobblestone;
  if (payload_size < kPrefixSize + kTagSize) return false;
  const uint64_t body = payload_size - kPrefixSize;
  const uint64_t full = body / kEncryptedChunkSize;
  const uint64_t rest = body % kEncryptedChunkSize;
  if (rest < kTagSize) return false;  // the final chunk must be short but present
  *plaintext = full * kChunkSize + (rest - kTagSize);
  *chunks = full + 1;
  return true;
}

Result<ObjectSummary> SummarizeObject(const std::string& path) {
  KH_ASSIGN_OR_RETURN(ObjectLocation loc, LocateObject(path));
  ObjectSummary s;
  s.path = path;
  s.header_path = loc.header_path;
  s.detached = loc.detached;
  size_t header_size = 0;
  auto header = envelope::ParseHeader(loc.header_bytes, &header_size);
  if (!header.ok()) {
    Error e = std::move(header).error();
    e.message = loc.header_path + ": " + e.message;
    return e;
  }
  s.header = std::move(header).value();
  s.header_size = header_size;
  s.object_id = HexEncode(s.header.object_id);
  s.payload_size = loc.payload_size;
  uint64_t pt = 0, chunks = 0;
  if (PlaintextSizeFromPayload(loc.payload_size, &pt, &chunks)) {
    s.plaintext_size = pt;
    s.chunks = chunks;
  }
  return s;
}

nlohmann::json StanzaToJson(const envelope::Stanza& stanza) {
  if (const auto* k = std::get_if<envelope::KekStanza>(&stanza)) {
    return {{"kind", "kek"},
            {"key_name", k->key_name},
            {"key_id", HexEncode(k->key_id)},
            {"version", k->version}};
  }
  if (const auto* x = std::get_if<envelope::X25519Stanza>(&stanza)) {
    return {{"kind", "x25519"}, {"fingerprint", HexEncode(x->fingerprint)}};
  }
  const auto& u = std::get<envelope::UnknownStanza>(stanza);
  return {{"kind", "unknown"}, {"type", u.kind}, {"body_bytes", u.body.size()}};
}

std::string DescribeStanzaLong(const envelope::Stanza& stanza) {
  if (const auto* k = std::get_if<envelope::KekStanza>(&stanza)) {
    return "kek     " + k->key_name + " v" + std::to_string(k->version) + " (key id " +
           HexEncode(k->key_id) + ")";
  }
  if (const auto* x = std::get_if<envelope::X25519Stanza>(&stanza)) {
    return "x25519  recipient fingerprint " + HexEncode(x->fingerprint);
  }
  const auto& u = std::get<envelope::UnknownStanza>(stanza);
  return "unknown kind " + std::to_string(u.kind) + " (" + std::to_string(u.body.size()) +
         " bytes, skipped)";
}

nlohmann::json SummaryToJson(const ObjectSummary& s) {
  nlohmann::json stanzas = nlohmann::json::array();
  for (const auto& st : s.header.stanzas) stanzas.push_back(StanzaToJson(st));
  nlohmann::json context = nlohmann::json::object();
  for (const auto& [k, v] : s.header.context) context[k] = v;
  nlohmann::json j = {{"path", s.path},
                      {"format_version", s.header.version},
                      {"suite", s.header.suite},
                      {"object_id", s.object_id},
                      {"layout", s.detached ? "detached" : "in-file"},
                      {"header_path", s.header_path},
                      {"header_bytes", s.header_size},
                      {"payload_bytes", s.payload_size},
                      {"context", context},
                      {"stanzas", stanzas}};
  j["plaintext_bytes"] = s.plaintext_size ? nlohmann::json(*s.plaintext_size) : nlohmann::json();
  j["chunks"] = s.chunks ? nlohmann::json(*s.chunks) : nlohmann::json();
  return j;
}

}  // namespace keyhold::cli
