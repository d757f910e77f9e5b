// Runs every case of tests/vectors/keyhold/format_v1.json, valid and invalid, and checks that
// the checked-in file is exactly what the generator produces (so it cannot drift from the
// code that documents how it was made).
#include <catch2/catch.hpp>
#include <fstream>
#include <iostream>
#include <sstream>

#include "format_test_support.h"
#include "keyhold/crypto/encoding.h"
#include "keyhold/crypto/hash.h"

using namespace keyhold;
using namespace keyhold::envelope;
using namespace keyhold::format_test;
using json = nlohmann::ordered_json;

namespace {

const char kVectorPath[] = KEYHOLD_SOURCE_DIR "/tests/vectors/keyhold/format_v1.json";

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<uint8_t> Hex(const json& j) { return HexDecode(j.get<std::string>()).value(); }

struct Material {
  std::map<std::string, std::unique_ptr<TestKey>> keks;
  std::map<std::string, Identity> identities;
  std::map<std::string, std::vector<uint8_t>> files;  // valid vectors' in-file bytes

  explicit Material(const json& doc) {
    for (const auto& [label, k] : doc["keks"].items()) {
      auto key = std::make_unique<TestKey>();
      key->secret = SecretBytes::CopyOf(Hex(k["secret"]));
      auto id = Hex(k["key_id"]);
      std::copy(id.begin(), id.end(), key->target.key_id.begin());
      key->target.version = k["version"].get<uint32_t>();
      key->target.key_name = k["name"].get<std::string>();
      key->target.secret = &key->secret;
      keks[label] = std::move(key);
    }
    for (const auto& [label, i] : doc["identities"].items()) {
      auto parsed = ParseIdentity(i["identity"].get<std::string>());
      REQUIRE(parsed.ok());
      CHECK(HexEncode(parsed->secret.ExposeSecret()) == i["secret"].get<std::string>());
      CHECK(HexEncode(parsed->public_key) == i["public_key"].get<std::string>());
      CHECK(EncodeRecipient(parsed->public_key) == i["recipient"].get<std::string>());
      CHECK(ParseRecipient(i["recipient"].get<std::string>()).value() == parsed->public_key);
      CHECK(HexEncode(RecipientFingerprint(parsed->public_key)) ==
            i["fingerprint"].get<std::string>());
      identities.emplace(label, std::move(parsed).value());
    }
    for (const auto& v : doc["valid"]) {
      auto name = v["name"].get<std::string>();
      if (v["detached"].get<bool>()) {
        files[name] = Concat(Hex(v["header_hex"]), Hex(v["payload_hex"]));
      } else {
        files[name] = Hex(v["file_hex"]);
      }
    }
  }

  // One keyring description: {"keks": [...], "identities": [...]}.
  struct Ring {
    FakeResolver resolver;
    std::vector<Identity> ids;
    Keyring keyring() { return Keyring{&resolver, ids}; }
  };
  std::unique_ptr<Ring> MakeRing(const json& j) {
    auto r = std::make_unique<Ring>();
    for (const auto& k : j["keks"]) r->resolver.Add(keks.at(k.get<std::string>())->target);
    for (const auto& i : j["identities"]) {
      const Identity& id = identities.at(i.get<std::string>());
      r->ids.push_back(Identity{id.secret.Clone(), id.public_key});
    }
    return r;
  }

  std::vector<uint8_t> Assemble(const json& segments) {
    std::vector<uint8_t> out;
    for (const auto& seg : segments) {
      if (seg.contains("hex")) {
        auto bytes = Hex(seg["hex"]);
        const size_t repeat = seg.contains("repeat") ? seg["repeat"].get<size_t>() : 1;
        for (size_t i = 0; i < repeat; ++i) out.insert(out.end(), bytes.begin(), bytes.end());
      } else {
        const auto& base = files.at(seg["from"].get<std::string>());
        const size_t off = seg["offset"].get<size_t>(), len = seg["length"].get<size_t>();
        REQUIRE(off + len <= base.size());
        out.insert(out.end(), base.begin() + static_cast<std::ptrdiff_t>(off),
                   base.begin() + static_cast<std::ptrdiff_t>(off + len));
      }
    }
    return out;
  }
};

EncryptionContext ContextOf(const json& j) {
  EncryptionContext c;
  for (const auto& [k, v] : j.items()) c[k] = v.get<std::string>();
  return c;
}

ErrorCode CodeByName(const std::string& name) {
  for (int c = static_cast<int>(ErrorCode::kInvalidArgument);
       c <= static_cast<int>(ErrorCode::kInternal); ++c) {
    if (ErrorCodeName(static_cast<ErrorCode>(c)) == name) return static_cast<ErrorCode>(c);
  }
  FAIL("unknown error class " << name);
  return ErrorCode::kInternal;
}

}  // namespace

TEST_CASE("keyhold format v1 vectors", "[format][kat]") {
  const std::string text = ReadText(kVectorPath);
  REQUIRE_FALSE(text.empty());
  const json doc = json::parse(text);
  Material m(doc);
  size_t valid = 0, invalid = 0;

  for (const auto& v : doc["valid"]) {
    const std::string name = v["name"].get<std::string>();
    INFO("valid vector " << name);
    const bool detached = v["detached"].get<bool>();
    const auto& file = m.files.at(name);
    const size_t header_size = v["header_size"].get<size_t>();
    std::vector<uint8_t> header(file.begin(),
                                file.begin() + static_cast<std::ptrdiff_t>(header_size));
    std::vector<uint8_t> payload(file.begin() + static_cast<std::ptrdiff_t>(header_size),
                                 file.end());
    REQUIRE(payload.size() == v["payload_size"].get<size_t>());

    // The streaming reader stops exactly at the header's end.
    MemorySource src(file, 5);
    auto read = ReadHeaderBytes(src);
    REQUIRE(read.ok());
    CHECK(*read == header);
    size_t size = 0;
    auto h = ParseHeader(header, &size);
    REQUIRE(h.ok());
    CHECK(size == header_size);
    CHECK(EncodeHeader(*h) == header);

    const json& ins = v["inspect"];
    CHECK(h->version == ins["version"].get<int>());
    CHECK(h->suite == ins["suite"].get<int>());
    CHECK(HexEncode(h->object_id) == ins["object_id"].get<std::string>());
    CHECK(h->context == ContextOf(ins["context"]));
    CHECK(HexEncode(h->mac) == ins["header_mac"].get<std::string>());
    CHECK(EncodeImmutable(*h).size() == ins["immutable_size"].get<size_t>());
    REQUIRE(h->stanzas.size() == ins["stanzas"].size());
    for (size_t i = 0; i < h->stanzas.size(); ++i) {
      const json& js = ins["stanzas"][i];
      const std::string type = js["type"].get<std::string>();
      if (const auto* k = std::get_if<KekStanza>(&h->stanzas[i])) {
        CHECK(type == "kek");
        CHECK(HexEncode(k->key_id) == js["key_id"].get<std::string>());
        CHECK(k->version == js["version"].get<uint32_t>());
        CHECK(k->key_name == js["name"].get<std::string>());
        CHECK(HexEncode(k->salt) == js["salt"].get<std::string>());
        CHECK(HexEncode(k->wrapped_dek) == js["wrapped_dek"].get<std::string>());
      } else if (const auto* x = std::get_if<X25519Stanza>(&h->stanzas[i])) {
        CHECK(type == "x25519");
        CHECK(HexEncode(x->fingerprint) == js["fingerprint"].get<std::string>());
        CHECK(HexEncode(x->ephemeral) == js["ephemeral"].get<std::string>());
        CHECK(HexEncode(x->wrapped_dek) == js["wrapped_dek"].get<std::string>());
      } else {
        const auto& u = std::get<UnknownStanza>(h->stanzas[i]);
        CHECK(type == "unknown");
        CHECK(u.kind == js["kind"].get<int>());
        CHECK(HexEncode(u.body) == js["body"].get<std::string>());
      }
    }

    const auto expected = ContextOf(v["expected_context"]);
    for (const auto& ring_json : v["open_with"]) {
      auto ring = m.MakeRing(ring_json);
      auto opened = OpenHeader(header, ring->keyring(), expected);
      INFO("keyring " << ring_json.dump());
      REQUIRE(opened.ok());
      CHECK(HexEncode(opened->dek.ExposeSecret()) == v["dek"].get<std::string>());
      Outcome o =
          OpenObject(detached ? header : file, ring->keyring(), expected, detached, payload);
      REQUIRE(o.ok);
      CHECK(o.released.size() == v["plaintext_size"].get<size_t>());
      CHECK(HexEncode(Sha256(o.released)) == v["plaintext_sha256"].get<std::string>());
      CHECK(o.released == PatternPlaintext(o.released.size()));
    }
    ++valid;
  }

  for (const auto& v : doc["invalid"]) {
    const std::string name = v["name"].get<std::string>();
    INFO("invalid vector " << name << ": " << v["comment"].get<std::string>());
    const bool detached = v["detached"].get<bool>();
    auto ring = m.MakeRing(v["open_with"][0]);
    const auto expected = ContextOf(v["expected_context"]);
    Outcome o;
    if (detached) {
      auto header = m.Assemble(v["header"]);
      auto payload = m.Assemble(v["payload"]);
      o = OpenObject(header, ring->keyring(), expected, true, payload);
    } else {
      auto file = m.Assemble(v["file"]);
      o = OpenObject(file, ring->keyring(), expected);
    }
    INFO("got " << ErrorCodeName(o.code) << ": " << o.message);
    REQUIRE_FALSE(o.ok);
    CHECK(o.code == CodeByName(v["error"].get<std::string>()));
    CHECK(o.released.size() == v["released_plaintext_size"].get<size_t>());
    CHECK(o.released == PatternPlaintext(o.released.size()));
    ++invalid;
  }

  CHECK(valid >= 8);
  CHECK(invalid >= 60);
  std::cout << "KAT keyhold_format_v1: " << valid + invalid << " run (" << valid << " valid, "
            << invalid << " invalid)" << std::endl;
}

TEST_CASE("format_v1.json is exactly what the generator writes", "[format][kat]") {
  const std::string generated = GenerateFormatVectors().dump(1) + "\n";
  const std::string checked_in = ReadText(kVectorPath);
  // On failure: run scripts/gen-vectors and review the diff.
  REQUIRE(generated.size() == checked_in.size());
  CHECK(generated == checked_in);
}
