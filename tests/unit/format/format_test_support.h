// Shared by the format tests and the vector generator (tests/tools/gen_format_vectors.cpp).
#ifndef KEYHOLD_TESTS_UNIT_FORMAT_FORMAT_TEST_SUPPORT_H_
#define KEYHOLD_TESTS_UNIT_FORMAT_FORMAT_TEST_SUPPORT_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "keyhold/crypto/cobblestone.h"
#include "keyhold/crypto/envelope.h"
#include "keyhold/crypto/random.h"
#include "keyhold/crypto/secret_bytes.h"

namespace keyhold::format_test {

// An in-memory Source that hands out at most `max_read` bytes per call, to exercise short
// reads.
class MemorySource final : public cobblestone::Source {
 public:
  explicit MemorySource(std::span<const uint8_t> data, size_t max_read = SIZE_MAX)
      : data_(data), max_read_(max_read) {}
  Result<size_t> Read(std::span<uint8_t> out) override {
    size_t n = std::min({out.size(), data_.size() - pos_, max_read_});
    if (n > 0) std::memcpy(out.data(), data_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  size_t position() const { return pos_; }
  std::span<const uint8_t> rest() const { return data_.subspan(pos_); }

 private:
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
  size_t max_read_;
};

class VectorSink final : public cobblestone::Sink {
 public:
  Status Write(std::span<const uint8_t> data) override {
    bytes.insert(bytes.end(), data.begin(), data.end());
    return OkStatus();
  }
  std::vector<uint8_t> bytes;
};

// A keystore stand-in: versions it holds, some of them refused by policy.
class FakeResolver final : public envelope::KekResolver {
 public:
  void Add(const envelope::KekTarget& target, bool refused = false) {
    entries_.push_back({target.key_id, target.version, target.key_name, target.secret, refused});
  }
  Result<const SecretBytes*> ResolveForDecrypt(const envelope::KekStanza& stanza) override {
    ++calls;
    for (const auto& e : entries_) {
      if (e.key_id != stanza.key_id || e.version != stanza.version) continue;
      if (e.refused) {
        return Error(ErrorCode::kPolicyRefused,
                     "key " + e.name + " version " + std::to_string(e.version) + " is disabled",
                     "enable the version or rewrap the object");
      }
      return e.secret;
    }
    return Error(ErrorCode::kNotFound, "no such key");
  }
  int calls = 0;

 private:
  struct Entry {
    std::array<uint8_t, envelope::kKeyIdSize> key_id;
    uint32_t version;
    std::string name;
    const SecretBytes* secret;
    bool refused;
  };
  std::vector<Entry> entries_;
};

// Deterministic test material: SHA-256 based, so the vector file is reproducible.
std::vector<uint8_t> DetBytes(std::string_view label, size_t n);
SecretBytes DetSecret(std::string_view label, size_t n = 32);
// Plaintext of the vectors: byte i is i mod 251 (a period that is not a divisor of the
// chunk size, so a reordered chunk never decrypts to the expected bytes by accident).
std::vector<uint8_t> PatternPlaintext(size_t n);

// The contents of tests/vectors/keyhold/format_v1.json.
nlohmann::ordered_json GenerateFormatVectors();

// A KEK version for tests, with its secret at a stable address.
struct TestKey {
  envelope::KekTarget target;
  SecretBytes secret;
};
inline std::unique_ptr<TestKey> MakeKey(const std::string& name, uint32_t version = 1) {
  auto k = std::make_unique<TestKey>();
  k->secret = SecretBytes::Random(32);
  RandomBytes(k->target.key_id);
  k->target.version = version;
  k->target.key_name = name;
  k->target.secret = &k->secret;
  return k;
}

// What opening an object released: the error (if any) and the plaintext written to the sink.
struct Outcome {
  bool ok = false;
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  std::vector<uint8_t> released;
};

inline cobblestone::Options Serial() {
  cobblestone::Options o;
  o.threads = 1;
  return o;
}

// Opens an object the way the CLI does. In-file (payload empty span and detached false):
// ReadHeaderBytes from the file's stream, OpenHeader, then the rest of the same stream as
// payload. Detached: the whole sidecar is the header.
inline Outcome OpenObject(std::span<const uint8_t> file_or_header, const envelope::Keyring& keyring,
                          const envelope::EncryptionContext& expected = {}, bool detached = false,
                          std::span<const uint8_t> payload = {},
                          const cobblestone::Options& engine = Serial()) {
  Outcome out;
  MemorySource file(file_or_header);
  std::vector<uint8_t> header;
  if (detached) {
    header.assign(file_or_header.begin(), file_or_header.end());
  } else {
    auto read = envelope::ReadHeaderBytes(file);
    if (!read.ok()) {
      out.code = read.error().code;
      out.message = read.error().message;
      return out;
    }
    header = std::move(read).value();
  }
  auto opened = envelope::OpenHeader(header, keyring, expected);
  if (!opened.ok()) {
    out.code = opened.error().code;
    out.message = opened.error().message;
    return out;
  }
  MemorySource payload_src(detached ? payload : file.rest());
  VectorSink sink;
  auto stats = envelope::DecryptPayload(*opened, payload_src, sink, engine);
  out.released = std::move(sink.bytes);
  if (!stats.ok()) {
    out.code = stats.error().code;
    out.message = stats.error().message;
    return out;
  }
  out.ok = true;
  return out;
}

inline std::vector<uint8_t> Concat(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  std::vector<uint8_t> out(a.begin(), a.end());
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

// Encrypts `plaintext` to an in-file object (header then payload in one buffer).
inline Result<std::vector<uint8_t>> EncryptToBytes(const envelope::EncryptParams& params,
                                                   std::span<const uint8_t> plaintext) {
  MemorySource src(plaintext);
  VectorSink sink;
  KH_RETURN_IF_ERROR(envelope::EncryptObject(params, src, sink, sink));
  return std::move(sink.bytes);
}

}  // namespace keyhold::format_test

#endif  // KEYHOLD_TESTS_UNIT_FORMAT_FORMAT_TEST_SUPPORT_H_
