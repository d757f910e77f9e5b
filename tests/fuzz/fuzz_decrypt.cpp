// Fuzz target: full decryption of an in-file object with fixed, known keys (the KEKs and
// identities of tests/vectors/keyhold/format_v1.json). ReadHeaderBytes, OpenHeader and
// DecryptPayload run exactly as `keyhold decrypt` runs them. Properties:
//  - every byte released, on success or failure, is the vectors' plaintext (byte i is
//    i mod 251): nothing unauthenticated ever reaches the sink;
//  - on success the object id is one of the vectors' objects and the whole plaintext came
//    out (without the keys no other object can be made, so anything else is a forgery);
//  - the input that is byte-for-byte a valid vector decrypts, to its known size.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "keyhold/crypto/encoding.h"
#include "keyhold/crypto/envelope.h"

namespace {

using namespace keyhold;

std::vector<uint8_t> Hex(const std::string& text) {
  auto bytes = HexDecode(text);
  if (!bytes.ok()) std::abort();
  return std::move(bytes).value();
}

struct FixedKek {
  std::array<uint8_t, envelope::kKeyIdSize> key_id{};
  uint32_t version = 0;
  std::unique_ptr<SecretBytes> secret;
};

class FixedResolver final : public envelope::KekResolver {
 public:
  std::vector<FixedKek> keks;
  Result<const SecretBytes*> ResolveForDecrypt(const envelope::KekStanza& stanza) override {
    for (const FixedKek& k : keks) {
      if (k.key_id == stanza.key_id && k.version == stanza.version) return k.secret.get();
    }
    return Error(ErrorCode::kNotFound, "no such key");
  }
};

struct Fixture {
  FixedResolver resolver;
  std::vector<envelope::Identity> identities;
  std::map<std::array<uint8_t, envelope::kObjectIdSize>, uint64_t> plaintext_sizes;
  std::vector<std::pair<std::vector<uint8_t>, uint64_t>> valid_files;  // bytes, size
};

Fixture* g_fixture = nullptr;

void Load() {
  const std::string path =
      std::string(KEYHOLD_SOURCE_DIR) + "/tests/vectors/keyhold/format_v1.json";
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    std::abort();
  }
  nlohmann::json j = nlohmann::json::parse(in);
  auto* f = new Fixture;
  for (const auto& [name, kek] : j.at("keks").items()) {
    // "A-wrong-secret" shares A's id and version: the right secret must win the lookup.
    if (name.find("wrong") != std::string::npos) continue;
    FixedKek k;
    auto id = Hex(kek.at("key_id").get<std::string>());
    std::copy(id.begin(), id.end(), k.key_id.begin());
    k.version = kek.at("version").get<uint32_t>();
    auto secret = Hex(kek.at("secret").get<std::string>());
    k.secret = std::make_unique<SecretBytes>(secret.size());
    std::copy(secret.begin(), secret.end(), k.secret->ExposeSecret().begin());
    f->resolver.keks.push_back(std::move(k));
  }
  for (const auto& [name, id] : j.at("identities").items()) {
    auto parsed = envelope::ParseIdentity(id.at("identity").get<std::string>());
    if (!parsed.ok()) std::abort();
    f->identities.push_back(std::move(parsed).value());
  }
  for (const auto& v : j.at("valid")) {
    auto oid = Hex(v.at("inspect").at("object_id").get<std::string>());
    std::array<uint8_t, envelope::kObjectIdSize> key{};
    std::copy(oid.begin(), oid.end(), key.begin());
    uint64_t n = v.at("plaintext_size").get<uint64_t>();
    f->plaintext_sizes[key] = n;
    if (v.contains("file_hex") && !v.at("detached").get<bool>()) {
      f->valid_files.emplace_back(Hex(v.at("file_hex").get<std::string>()), n);
    }
  }
  g_fixture = f;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Load();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> input(data, size);
  Fixture& f = *g_fixture;

  // Short reads of an odd size, so chunk boundaries never line up with read boundaries.
  fuzz::SpanSource source(input, 4093);
  fuzz::VectorSink sink;
  bool opened_ok = false;
  bool decrypted_ok = false;
  std::array<uint8_t, envelope::kObjectIdSize> object_id{};

  auto header_bytes = envelope::ReadHeaderBytes(source);
  if (header_bytes.ok()) {
    envelope::Keyring keyring{&f.resolver, f.identities};
    auto opened = envelope::OpenHeader(*header_bytes, keyring);
    if (opened.ok()) {
      opened_ok = true;
      object_id = opened->header.object_id;
      FUZZ_CHECK(opened->dek.size() == envelope::kDekSize);
      cobblestone::Options serial;
      serial.threads = 1;
      auto stats = envelope::DecryptPayload(*opened, source, sink, serial);
      decrypted_ok = stats.ok();
      if (stats.ok()) FUZZ_CHECK(stats->plaintext_bytes == sink.bytes().size());
    } else {
      FUZZ_CHECK(opened.error().code != ErrorCode::kInternal);
    }
  }

  // Released bytes are authenticated plaintext, whatever happened afterwards.
  const std::vector<uint8_t>& out = sink.bytes();
  for (size_t i = 0; i < out.size(); ++i) FUZZ_CHECK(out[i] == static_cast<uint8_t>(i % 251));
  if (!opened_ok) FUZZ_CHECK(out.empty());

  if (decrypted_ok) {
    auto known = f.plaintext_sizes.find(object_id);
    FUZZ_CHECK(known != f.plaintext_sizes.end());
    FUZZ_CHECK(out.size() == known->second);
  }
  for (const auto& [bytes, plaintext_size] : f.valid_files) {
    if (bytes.size() == size && std::equal(bytes.begin(), bytes.end(), data)) {
      FUZZ_CHECK(decrypted_ok);
      FUZZ_CHECK(out.size() == plaintext_size);
    }
  }
  return 0;
}
