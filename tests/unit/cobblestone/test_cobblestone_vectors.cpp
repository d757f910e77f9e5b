// Wycheproof / C2SP known-answer tests for Cobblestone-256: every case of
// tests/vectors/wycheproof/c2sp_chunked_encryption_aes_256_gcm_test.json, valid and invalid,
// through streaming decryption (serial and parallel), raw mode, salt injection, Derive and
// the random-access reader.
#include <zlib.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "cobblestone_test_util.h"
#include "keyhold/crypto/cobblestone.h"
#include "keyhold/crypto/encoding.h"
#include "keyhold/crypto/hash.h"

namespace cob = keyhold::cobblestone;
using cobtest::Bytes;
using keyhold::ErrorCode;

namespace {

const char* kVectorFile =
    KEYHOLD_SOURCE_DIR "/tests/vectors/wycheproof/c2sp_chunked_encryption_aes_256_gcm_test.json";

Bytes Hex(const std::string& s) {
  auto r = keyhold::HexDecode(s);
  REQUIRE(r.ok());
  return *r;
}

// The `ct` field is hex of zlib-compressed bytes.
Bytes Inflate(const Bytes& compressed) {
  z_stream zs{};
  REQUIRE(inflateInit(&zs) == Z_OK);
  zs.next_in = const_cast<Bytef*>(compressed.data());
  zs.avail_in = static_cast<uInt>(compressed.size());
  Bytes out;
  uint8_t buf[65536];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = buf;
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    REQUIRE((rc == Z_OK || rc == Z_STREAM_END));
    out.insert(out.end(), buf, buf + (sizeof(buf) - zs.avail_out));
  }
  inflateEnd(&zs);
  return out;
}

std::string Sha512Hex(std::span<const uint8_t> data) {
  return keyhold::HexEncode(keyhold::Sha512(data));
}

struct DecryptOutcome {
  bool ok = false;
  ErrorCode code = ErrorCode::kInternal;
  Bytes out;
  uint64_t stats_bytes = 0;
};

DecryptOutcome RunDecrypt(const keyhold::SecretBytes& key, const Bytes& ctx, const Bytes& ct,
                          unsigned threads) {
  cobtest::MemorySource src(ct);
  cobtest::VectorSink sink;
  auto r = cob::Decrypt(key, ctx, src, sink, {.threads = threads});
  DecryptOutcome o;
  o.ok = r.ok();
  if (r.ok()) {
    o.stats_bytes = r->plaintext_bytes;
  } else {
    o.code = r.error().code;
  }
  o.out = std::move(sink.bytes);
  return o;
}

DecryptOutcome RunDecryptRaw(const keyhold::SecretBytes& key, const Bytes& nonce,
                             std::span<const uint8_t> body, unsigned threads) {
  cobtest::MemorySource src(body);
  cobtest::VectorSink sink;
  auto r = cob::hazmat::DecryptRaw(key, nonce, src, sink, {.threads = threads});
  DecryptOutcome o;
  o.ok = r.ok();
  if (!r.ok()) o.code = r.error().code;
  o.out = std::move(sink.bytes);
  return o;
}

}  // namespace

TEST_CASE("cobblestone wycheproof vectors", "[cobblestone][kat]") {
  std::ifstream f(kVectorFile);
  REQUIRE(f.good());
  nlohmann::json doc = nlohmann::json::parse(f);
  REQUIRE(doc["algorithm"] == "Cobblestone-256");

  int run = 0, valid = 0, invalid = 0;
  std::set<std::string> flags_seen;
  for (const auto& group : doc["testGroups"]) {
    REQUIRE(group["aead"] == "AEAD_AES_256_GCM");
    REQUIRE(group["sha"] == "SHA-512");
    for (const auto& t : group["tests"]) {
      const int id = t["tcId"].get<int>();
      INFO("tcId " << id << ": " << t["comment"].get<std::string>());
      std::set<std::string> flags;
      for (const auto& fl : t["flags"]) flags.insert(fl.get<std::string>());
      flags_seen.insert(flags.begin(), flags.end());
      const bool is_valid = t["result"] == "valid";
      REQUIRE((is_valid || t["result"] == "invalid"));
      const Bytes key_bytes = Hex(t["key"]);
      const auto key = cobtest::KeyFrom(key_bytes);
      const Bytes ctx = Hex(t["ctx"]);
      const Bytes ct = Inflate(Hex(t["ct"]));
      const bool has_msg = t.contains("msgLength");
      const size_t msg_len = has_msg ? t["msgLength"].get<size_t>() : 0;
      const std::string msg_sha = has_msg ? t["msgSha512"].get<std::string>() : "";

      // Streaming decryption, serial then parallel: same bytes released, same error.
      DecryptOutcome serial = RunDecrypt(key, ctx, ct, 1);
      DecryptOutcome parallel = RunDecrypt(key, ctx, ct, 4);
      for (const DecryptOutcome* o : {&serial, &parallel}) {
        if (is_valid) {
          REQUIRE(o->ok);
          CHECK(o->out.size() == msg_len);
          CHECK(o->stats_bytes == msg_len);
          CHECK(Sha512Hex(o->out) == msg_sha);
        } else {
          REQUIRE_FALSE(o->ok);
          if (flags.count("HeaderFailure")) {
            CHECK(o->code ==
                  (flags.count("InvalidKeySize") ? ErrorCode::kMalformed : ErrorCode::kAuthFailed));
            CHECK(o->out.empty());
          } else {
            CHECK(o->code == ErrorCode::kPayloadAuthFailed);
            if (flags.count("PartialPlaintext")) {
              REQUIRE(has_msg);
              CHECK(o->out.size() == msg_len);
              CHECK(Sha512Hex(o->out) == msg_sha);
            } else {
              CHECK(o->out.empty());
            }
          }
        }
      }
      CHECK(serial.out == parallel.out);
      CHECK(serial.code == parallel.code);

      // Derive reproduces the vector's AEAD key and base nonce, and the commitment in ct.
      if (t.contains("aeadKey")) {
        REQUIRE(ct.size() >= cob::kPrefixSize);
        auto derived = cob::Derive(key, std::span(ct).first(cob::kSaltSize), ctx);
        REQUIRE(derived.ok());
        const auto dk = derived->key.ExposeSecret();
        CHECK(Bytes(dk.begin(), dk.end()) == Hex(t["aeadKey"]));
        CHECK(Bytes(derived->base_nonce.begin(), derived->base_nonce.end()) == Hex(t["baseNonce"]));
        CHECK(Bytes(derived->commitment.begin(), derived->commitment.end()) ==
              Bytes(ct.begin() + cob::kSaltSize, ct.begin() + cob::kPrefixSize));
      } else {
        CHECK(flags.count("HeaderFailure") == 1);
      }

      // Raw mode: the chunks alone under aeadKey/baseNonce.
      if (t.contains("aeadKey")) {
        const auto aead_key = cobtest::KeyFrom(Hex(t["aeadKey"]));
        const Bytes nonce = Hex(t["baseNonce"]);
        const auto body = std::span(ct).subspan(cob::kPrefixSize);
        for (unsigned threads : {1u, 4u}) {
          DecryptOutcome raw = RunDecryptRaw(aead_key, nonce, body, threads);
          CHECK(raw.ok == is_valid);
          CHECK(raw.out == serial.out);
          if (!is_valid) CHECK(raw.code == ErrorCode::kPayloadAuthFailed);
          if (is_valid) {
            cobtest::MemorySource src(serial.out);
            cobtest::VectorSink sink;
            REQUIRE(cob::hazmat::EncryptRaw(aead_key, nonce, src, sink, {.threads = threads}).ok());
            CHECK(sink.bytes == Bytes(body.begin(), body.end()));
          }
        }
      }

      // Salt injection reproduces a valid ciphertext byte for byte.
      if (is_valid) {
        for (unsigned threads : {1u, 4u}) {
          cobtest::MemorySource src(serial.out);
          cobtest::VectorSink sink;
          auto r = cob::testing::EncryptWithSaltForTesting(key, std::span(ct).first(cob::kSaltSize),
                                                           ctx, src, sink, {.threads = threads});
          REQUIRE(r.ok());
          CHECK(r->plaintext_bytes == msg_len);
          CHECK(sink.bytes == ct);
        }
      }

      // Random access, with the payload at a nonzero offset in the file.
      {
        Bytes file(13, 0xee);
        file.insert(file.end(), ct.begin(), ct.end());
        file.insert(file.end(), 9, 0xdd);  // bytes after the payload are not part of it
        cobtest::TempFile tmp(file);
        auto reader = cob::RandomAccessReader::Open(key, ctx, tmp.fd(), 13, ct.size());
        if (flags.count("HeaderFailure")) {
          REQUIRE_FALSE(reader.ok());
          CHECK(reader.error().code ==
                (flags.count("InvalidKeySize") ? ErrorCode::kMalformed : ErrorCode::kAuthFailed));
        } else {
          REQUIRE(reader.ok());
          auto size = reader->AuthenticatedSize();
          if (is_valid || flags.count("ValidFinalChunk")) {
            REQUIRE(size.ok());
            if (is_valid) CHECK(*size == msg_len);
          } else {
            REQUIRE_FALSE(size.ok());
            CHECK(size.error().code == ErrorCode::kPayloadAuthFailed);
          }
          if (is_valid) {
            Bytes all(msg_len + 10, 0xaa);
            auto n = reader->ReadAt(0, all);
            REQUIRE(n.ok());
            CHECK(*n == msg_len);
            CHECK(Bytes(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(msg_len)) ==
                  serial.out);
          }
        }
      }

      ++run;
      (is_valid ? valid : invalid) += 1;
    }
  }
  CHECK(run == doc["numberOfTests"].get<int>());
  CHECK(run == 35);
  // Every flag the notes define was exercised.
  for (const auto& [name, note] : doc["notes"].items()) {
    (void)note;
    CHECK(flags_seen.count(name) == 1);
  }
  std::cout << "KAT c2sp_chunked_encryption: " << run << " run (" << valid << " valid, " << invalid
            << " invalid)" << std::endl;
}
