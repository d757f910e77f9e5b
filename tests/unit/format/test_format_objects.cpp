// Whole objects: round trips, derivations recomputed from the spec, every opening error,
// policy refusals, unknown stanzas, rewrap and random access.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <random>

#include "format_test_support.h"
#include "keyhold/crypto/aes_gcm.h"
#include "keyhold/crypto/file_io.h"
#include "keyhold/crypto/hash.h"
#include "keyhold/crypto/x25519.h"

using namespace keyhold;
using namespace keyhold::envelope;
using namespace keyhold::format_test;

namespace {

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::vector<uint8_t> RandomData(size_t n, std::mt19937& rng) {
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

EncryptionContext RandomContext(std::mt19937& rng) {
  static const std::vector<std::string> kPieces = {
      "a", "Z", "\xc3\xa9", "\xe2\x82\xac", "0", "\xf0\x9f\x94\x91", "-", " ", "key"};
  EncryptionContext c;
  const size_t n = rng() % 6;
  for (size_t i = 0; i < n; ++i) {
    std::string k, v;
    for (size_t j = 0, m = 1 + rng() % 4; j < m; ++j) k += kPieces[rng() % kPieces.size()];
    for (size_t j = 0, m = rng() % 6; j < m; ++j) v += kPieces[rng() % kPieces.size()];
    c[k] = v;
  }
  return c;
}

// Recomputes the header MAC from the spec (independently of envelope.cpp).
void Remac(std::vector<uint8_t>& header, const SecretBytes& dek) {
  auto key = HkdfExpand(HashAlg::kSha512, dek.ExposeSecret(), Bytes("keyhold/v1/header-mac"), 32);
  REQUIRE(key.ok());
  const size_t covered = header.size() - kHeaderMacSize;
  auto mac = HmacCompute(HashAlg::kSha256, key->ExposeSecret(),
                         std::span<const uint8_t>(header).first(covered));
  REQUIRE(mac.ok());
  std::copy(mac->begin(), mac->end(), header.begin() + static_cast<std::ptrdiff_t>(covered));
}

struct Fixture {
  std::unique_ptr<TestKey> kek_a = MakeKey("payroll", 1);
  std::unique_ptr<TestKey> kek_b = MakeKey("backups", 3);
  X25519KeyPair alice_kp = X25519Generate();
  X25519KeyPair bob_kp = X25519Generate();
  std::vector<Identity> alice, bob;
  FakeResolver resolver_a, resolver_b, resolver_ab;
  Fixture() {
    alice.push_back(Identity{alice_kp.secret.Clone(), alice_kp.public_key});
    bob.push_back(Identity{bob_kp.secret.Clone(), bob_kp.public_key});
    resolver_a.Add(kek_a->target);
    resolver_b.Add(kek_b->target);
    resolver_ab.Add(kek_a->target);
    resolver_ab.Add(kek_b->target);
  }
  Keyring KeyA() { return Keyring{&resolver_a, {}}; }
  Keyring KeyB() { return Keyring{&resolver_b, {}}; }
  Keyring Alice() { return Keyring{nullptr, alice}; }
  Keyring Bob() { return Keyring{nullptr, bob}; }
};

}  // namespace

TEST_CASE("round trip over sizes, contexts and stanza sets, in-file and detached", "[format]") {
  Fixture f;
  std::mt19937 rng(7);
  const std::vector<size_t> sizes = {0, 1, 16383, 16384, 16385, 3u << 20};
  int runs = 0;
  for (size_t size : sizes) {
    const auto plaintext = RandomData(size, rng);
    for (int set = 0; set < 4; ++set) {
      EncryptParams params;
      params.context = RandomContext(rng);
      std::vector<Keyring> openers;
      if (set == 0 || set == 2 || set == 3) {
        params.keks.push_back(f.kek_a->target);
        openers.push_back(f.KeyA());
      }
      if (set == 1 || set == 2 || set == 3) {
        params.recipients.push_back(f.alice_kp.public_key);
        openers.push_back(f.Alice());
      }
      if (set == 3) {
        params.keks.push_back(f.kek_b->target);
        params.recipients.push_back(f.bob_kp.public_key);
        openers.push_back(f.KeyB());
        openers.push_back(f.Bob());
      }
      params.engine.threads = (runs % 2 == 0) ? 1 : 0;
      for (bool detached : {false, true}) {
        MemorySource src(plaintext);
        VectorSink header_sink, payload_sink;
        auto stats = EncryptObject(params, src, header_sink, detached ? payload_sink : header_sink);
        REQUIRE(stats.ok());
        CHECK(stats->plaintext_bytes == size);
        const size_t chunks = size / cobblestone::kChunkSize + 1;
        CHECK(stats->chunks == chunks);
        if (!detached) {
          // The in-file object is the header immediately followed by the payload.
          size_t hsize = 0;
          REQUIRE(ParseHeader(header_sink.bytes, &hsize).ok());
          CHECK(header_sink.bytes.size() ==
                hsize + cobblestone::kPrefixSize + size + chunks * cobblestone::kTagSize);
        } else {
          CHECK(payload_sink.bytes.size() ==
                cobblestone::kPrefixSize + size + chunks * cobblestone::kTagSize);
        }
        for (const Keyring& k : openers) {
          Outcome o = OpenObject(header_sink.bytes, k, params.context, detached, payload_sink.bytes,
                                 params.engine);
          INFO("size " << size << " set " << set << " detached " << detached << ": " << o.message);
          REQUIRE(o.ok);
          REQUIRE(o.released == plaintext);
          ++runs;
        }
      }
    }
  }
  CHECK(runs == 6 * 2 * (1 + 1 + 2 + 4));
}

TEST_CASE("derivations match FORMAT.md when recomputed independently", "[format]") {
  Fixture f;
  EncryptParams params;
  params.context = {{"app", "demo"}};
  params.keks.push_back(f.kek_a->target);
  params.recipients.push_back(f.alice_kp.public_key);
  auto created = CreateHeader(params);
  REQUIRE(created.ok());
  const Header& h = created->header;
  const auto immutable = EncodeImmutable(h);
  REQUIRE(std::equal(immutable.begin(), immutable.end(), created->header_bytes.begin()));
  const std::array<uint8_t, 12> zero_nonce{};

  // kek: HKDF-SHA-256(secret, salt, "keyhold/v1/kek-wrap" || key_id || be32(version))
  const auto& k = std::get<KekStanza>(h.stanzas[0]);
  std::vector<uint8_t> info(Bytes("keyhold/v1/kek-wrap").begin(),
                            Bytes("keyhold/v1/kek-wrap").end());
  info.insert(info.end(), k.key_id.begin(), k.key_id.end());
  info.insert(info.end(), {0, 0, 0, 1});
  auto wrap = Hkdf(HashAlg::kSha256, f.kek_a->secret.ExposeSecret(), k.salt, info, 32);
  REQUIRE(wrap.ok());
  std::vector<uint8_t> expect(48);
  REQUIRE(
      AesGcmSeal(wrap->ExposeSecret(), zero_nonce, immutable, created->dek.ExposeSecret(), expect)
          .ok());
  CHECK(std::equal(expect.begin(), expect.end(), k.wrapped_dek.begin()));

  // x25519: HKDF-SHA-256(X25519(eph, recipient), eph_pub || recipient_pub, label)
  const auto& x = std::get<X25519Stanza>(h.stanzas[1]);
  auto shared = X25519SharedSecret(f.alice_kp.secret, x.ephemeral);
  REQUIRE(shared.ok());
  std::vector<uint8_t> salt(x.ephemeral.begin(), x.ephemeral.end());
  salt.insert(salt.end(), f.alice_kp.public_key.begin(), f.alice_kp.public_key.end());
  auto xwrap =
      Hkdf(HashAlg::kSha256, shared->ExposeSecret(), salt, Bytes("keyhold/v1/x25519-wrap"), 32);
  REQUIRE(xwrap.ok());
  REQUIRE(
      AesGcmSeal(xwrap->ExposeSecret(), zero_nonce, immutable, created->dek.ExposeSecret(), expect)
          .ok());
  CHECK(std::equal(expect.begin(), expect.end(), x.wrapped_dek.begin()));

  // fingerprint: SHA-256(label || pub)[0..16)
  std::vector<uint8_t> fp_in(Bytes("keyhold/v1/recipient-fingerprint").begin(),
                             Bytes("keyhold/v1/recipient-fingerprint").end());
  fp_in.insert(fp_in.end(), f.alice_kp.public_key.begin(), f.alice_kp.public_key.end());
  auto digest = Sha256(fp_in);
  CHECK(std::equal(x.fingerprint.begin(), x.fingerprint.end(), digest.begin()));

  // MAC: HMAC-SHA-256(HKDF-Expand-SHA-512(dek, "keyhold/v1/header-mac", 32), header - mac)
  auto remaced = created->header_bytes;
  std::fill(remaced.end() - 32, remaced.end(), 0);
  Remac(remaced, created->dek);
  CHECK(remaced == created->header_bytes);

  // Payload: Cobblestone with input key = DEK and context = the immutable bytes.
  const std::vector<uint8_t> pt = {1, 2, 3};
  MemorySource src(pt);
  VectorSink sink;
  REQUIRE(cobblestone::Encrypt(created->dek, immutable, src, sink).ok());
  auto opened = OpenHeader(created->header_bytes, f.KeyA());
  REQUIRE(opened.ok());
  CHECK(opened->immutable == immutable);
  CHECK(SecretEquals(opened->dek, created->dek));
  MemorySource back(sink.bytes);
  VectorSink out;
  REQUIRE(DecryptPayload(*opened, back, out).ok());
  CHECK(out.bytes == pt);

  // Fresh randomness per header: object id, DEK, salt and ephemeral all differ.
  auto again = CreateHeader(params);
  REQUIRE(again.ok());
  CHECK(again->header.object_id != h.object_id);
  CHECK_FALSE(SecretEquals(again->dek, created->dek));
  CHECK(std::get<KekStanza>(again->header.stanzas[0]).salt != k.salt);
  CHECK(std::get<X25519Stanza>(again->header.stanzas[1]).ephemeral != x.ephemeral);
}

TEST_CASE("an object's random values are all fresh and distinct", "[format]") {
  // EncryptObject draws the DEK, the object id, the wrap salts and the payload salt in one
  // call and cuts it up: no two of them may share bytes, within an object or across two.
  Fixture f;
  EncryptParams params;
  params.keks.push_back(f.kek_a->target);
  params.keks.push_back(f.kek_b->target);
  std::vector<std::vector<uint8_t>> seen;
  std::vector<SecretBytes> deks;
  for (int object = 0; object < 2; ++object) {
    const std::vector<uint8_t> pt = {1, 2, 3};
    MemorySource src(pt);
    VectorSink header_sink, payload_sink;
    REQUIRE(EncryptObject(params, src, header_sink, payload_sink).ok());
    size_t size = 0;
    auto header = ParseHeader(header_sink.bytes, &size);
    REQUIRE(header.ok());
    REQUIRE(payload_sink.bytes.size() > cobblestone::kSaltSize);
    seen.emplace_back(header->object_id.begin(), header->object_id.end());
    for (const auto& stanza : header->stanzas) {
      const auto& salt = std::get<KekStanza>(stanza).salt;
      seen.emplace_back(salt.begin(), salt.end());
    }
    seen.emplace_back(payload_sink.bytes.begin(),
                      payload_sink.bytes.begin() + cobblestone::kSaltSize);
    auto opened = OpenHeader(header_sink.bytes, f.KeyA());
    REQUIRE(opened.ok());
    deks.push_back(opened->dek.Clone());
    MemorySource back(payload_sink.bytes);
    VectorSink out;
    REQUIRE(DecryptPayload(*opened, back, out).ok());
    CHECK(out.bytes == pt);
  }
  REQUIRE(seen.size() == 2 * 4);
  const std::vector<uint8_t> zeros(8, 0);
  for (size_t i = 0; i < seen.size(); ++i) {
    INFO("value " << i);
    CHECK(seen[i].size() >= 16);
    CHECK_FALSE(std::equal(zeros.begin(), zeros.end(), seen[i].begin()));
    for (size_t j = 0; j < i; ++j) {
      // No 8-byte window of one value occurs in another: overlapping cuts would show here.
      for (size_t a = 0; a + 8 <= seen[i].size(); ++a) {
        auto hit = std::search(seen[j].begin(), seen[j].end(), seen[i].begin() + a,
                               seen[i].begin() + a + 8);
        CHECK(hit == seen[j].end());
      }
    }
    for (const SecretBytes& dek : deks) {
      auto d = dek.ExposeSecret();
      for (size_t a = 0; a + 8 <= seen[i].size(); ++a) {
        CHECK(std::search(d.begin(), d.end(), seen[i].begin() + a, seen[i].begin() + a + 8) ==
              d.end());
      }
    }
  }
  CHECK_FALSE(SecretEquals(deks[0], deks[1]));
}

TEST_CASE("CreateHeader refuses bad parameters", "[format]") {
  Fixture f;
  EncryptParams p;
  CHECK(CreateHeader(p).error().code == ErrorCode::kInvalidArgument);  // no target
  p.keks.push_back(f.kek_a->target);
  REQUIRE(CreateHeader(p).ok());
  SECTION("bad kek targets") {
    p.keks[0].key_name = "bad name";
    CHECK(CreateHeader(p).error().code == ErrorCode::kInvalidArgument);
    p.keks[0] = f.kek_a->target;
    p.keks[0].version = 0;
    CHECK(CreateHeader(p).error().code == ErrorCode::kInvalidArgument);
    p.keks[0] = f.kek_a->target;
    p.keks[0].secret = nullptr;
    CHECK(CreateHeader(p).error().code == ErrorCode::kInvalidArgument);
    SecretBytes short_secret(16);
    p.keks[0].secret = &short_secret;
    CHECK(CreateHeader(p).error().code == ErrorCode::kInvalidArgument);
  }
  SECTION("context limits") {
    p.context[std::string(129, 'k')] = "v";
    CHECK(CreateHeader(p).error().code == ErrorCode::kInvalidArgument);
  }
  SECTION("too many targets") {
    p.keks.assign(64, f.kek_a->target);
    CHECK(CreateHeader(p).ok());
    p.recipients.push_back(f.alice_kp.public_key);
    CHECK(CreateHeader(p).error().code == ErrorCode::kInvalidArgument);
  }
  SECTION("degenerate recipient keys") {
    X25519PublicKey zero{};
    p.recipients.push_back(zero);
    CHECK(CreateHeader(p).error().code == ErrorCode::kInvalidArgument);
    X25519PublicKey one{};
    one[0] = 1;  // the identity point: order 1
    p.recipients.back() = one;
    CHECK(CreateHeader(p).error().code == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("opening errors", "[format]") {
  Fixture f;
  EncryptParams params;
  params.context = {{"app", "billing"}, {"env", "prod"}};
  params.keks.push_back(f.kek_a->target);
  params.recipients.push_back(f.alice_kp.public_key);
  const auto pt = std::vector<uint8_t>(40000, 0x5a);
  auto file = EncryptToBytes(params, pt);
  REQUIRE(file.ok());

  SECTION("same key id and version, another secret: auth failed") {
    SecretBytes other = SecretBytes::Random(32);
    KekTarget impostor = f.kek_a->target;
    impostor.secret = &other;
    FakeResolver r;
    r.Add(impostor);
    // Even with alice present: the stanza we hold the key for did not open, which only a
    // modified header (or a corrupt keystore) explains, so we stop rather than go on.
    Outcome o = OpenObject(*file, Keyring{&r, f.alice});
    CHECK(o.code == ErrorCode::kAuthFailed);
    CHECK(o.message ==
          "key payroll version 1 did not open the header: the object was tampered with");
    CHECK(o.released.empty());
  }
  SECTION("a different keystore: no matching key, naming what would open it") {
    auto o = OpenObject(*file, f.KeyB());
    CHECK(o.code == ErrorCode::kNoMatchingKey);
    CHECK(o.message.find("key payroll version 1") != std::string::npos);
    CHECK(o.message.find("1 x25519 recipient") != std::string::npos);
  }
  SECTION("another version of the same key is not this version") {
    KekTarget v2 = f.kek_a->target;
    v2.version = 2;
    FakeResolver r;
    r.Add(v2);
    CHECK(OpenObject(*file, Keyring{&r, {}}).code == ErrorCode::kNoMatchingKey);
  }
  SECTION("wrong identity and empty keyring") {
    CHECK(OpenObject(*file, f.Bob()).code == ErrorCode::kNoMatchingKey);
    CHECK(OpenObject(*file, Keyring{}).code == ErrorCode::kNoMatchingKey);
  }
  SECTION("expected context") {
    auto o = OpenObject(*file, f.KeyA(), {{"env", "dev"}});
    CHECK(o.code == ErrorCode::kContextMismatch);
    CHECK(o.message.find("\"env\"") != std::string::npos);
    CHECK(o.message.find("\"prod\"") != std::string::npos);
    CHECK(o.released.empty());
    o = OpenObject(*file, f.KeyA(), {{"tenant", "acme"}});
    CHECK(o.code == ErrorCode::kContextMismatch);
    CHECK(o.message.find("\"tenant\"") != std::string::npos);
    CHECK(OpenObject(*file, f.KeyA(), {{"env", "prod"}}).ok);
    CHECK(OpenObject(*file, f.KeyA(), {{"app", "billing"}, {"env", "prod"}}).ok);
    o = OpenObject(*file, f.KeyA(), {{"env", "prod\n"}});
    CHECK(o.code == ErrorCode::kContextMismatch);
    CHECK(o.message.find('\n') == std::string::npos);  // control characters are escaped
  }
  SECTION("swapped headers between two objects of the same key") {
    // The other header is genuine, so it opens and yields the other object's DEK and
    // immutable part; the payload's key commitment then fails before any chunk is
    // decrypted: kAuthFailed, nothing released.
    auto other = EncryptToBytes(params, pt);
    REQUIRE(other.ok());
    MemorySource s1(*file), s2(*other);
    auto h1 = ReadHeaderBytes(s1);
    auto h2 = ReadHeaderBytes(s2);
    REQUIRE(h1.ok());
    REQUIRE(h2.ok());
    auto swapped = Concat(*h2, s1.rest());
    auto o = OpenObject(swapped, f.KeyA());
    CHECK(o.code == ErrorCode::kAuthFailed);
    CHECK(o.released.empty());
    o = OpenObject(swapped, f.Alice());
    CHECK(o.code == ErrorCode::kAuthFailed);
    // Same context or not, the object id differs, so the immutable parts always differ.
    CHECK(*h1 != *h2);
  }
  SECTION("trailing bytes after a detached header") {
    MemorySource s(*file);
    auto h = ReadHeaderBytes(s);
    REQUIRE(h.ok());
    auto hdr = *h;
    hdr.push_back(0);
    auto r = OpenHeader(hdr, f.KeyA());
    CHECK(r.error().code == ErrorCode::kMalformed);
  }
}

TEST_CASE("policy refusals propagate through a KekResolver", "[format]") {
  Fixture f;
  EncryptParams params;
  params.keks.push_back(f.kek_a->target);
  params.keks.push_back(f.kek_b->target);
  params.recipients.push_back(f.alice_kp.public_key);
  auto file = EncryptToBytes(params, std::vector<uint8_t>{1, 2, 3});
  REQUIRE(file.ok());

  FakeResolver refused_a;
  refused_a.Add(f.kek_a->target, /*refused=*/true);
  SECTION("the only key held is refused: the refusal, not no-matching-key") {
    auto o = OpenObject(*file, Keyring{&refused_a, {}});
    CHECK(o.code == ErrorCode::kPolicyRefused);
    CHECK(o.message == "key payroll version 1 is disabled");
  }
  SECTION("another stanza opens: success") {
    CHECK(OpenObject(*file, Keyring{&refused_a, f.alice}).ok);
    FakeResolver r;
    r.Add(f.kek_a->target, true);
    r.Add(f.kek_b->target);
    CHECK(OpenObject(*file, Keyring{&r, {}}).ok);
    CHECK(r.calls == 2);
  }
  SECTION("first success wins: later stanzas are not consulted") {
    FakeResolver r;
    r.Add(f.kek_a->target);
    r.Add(f.kek_b->target);
    MemorySource s(*file);
    auto h = ReadHeaderBytes(s);
    REQUIRE(h.ok());
    auto opened = OpenHeader(*h, Keyring{&r, f.alice});
    REQUIRE(opened.ok());
    CHECK(opened->opened_stanza == 0);
    CHECK(r.calls == 1);
  }
  SECTION("other resolver errors are returned as they are") {
    class IoResolver final : public KekResolver {
     public:
      Result<const SecretBytes*> ResolveForDecrypt(const KekStanza&) override {
        return Error(ErrorCode::kIo, "keystore unreadable");
      }
    } io;
    CHECK(OpenObject(*file, Keyring{&io, f.alice}).code == ErrorCode::kIo);
  }
}

TEST_CASE("unknown stanza kinds are skipped and survive a rewrap", "[format]") {
  Fixture f;
  EncryptParams params;
  params.keks.push_back(f.kek_a->target);
  auto created = CreateHeader(params);
  REQUIRE(created.ok());
  Header h = created->header;
  const UnknownStanza future{0x42, {0xfe, 0xed, 0xfa, 0xce}};
  h.stanzas.insert(h.stanzas.begin(), future);
  auto bytes = EncodeHeader(h);
  Remac(bytes, created->dek);

  auto opened = OpenHeader(bytes, f.KeyA());
  REQUIRE(opened.ok());
  CHECK(opened->opened_stanza == 1);
  // An object whose only stanza is unknown to us cannot be opened.
  Header only_unknown = h;
  only_unknown.stanzas.erase(only_unknown.stanzas.begin() + 1);
  auto ub = EncodeHeader(only_unknown);
  Remac(ub, created->dek);
  CHECK(OpenHeader(ub, f.KeyA()).error().code == ErrorCode::kNoMatchingKey);

  RewrapParams rp;
  rp.keep = {0};
  rp.recipients.push_back(f.alice_kp.public_key);
  auto rewrapped = Rewrap(*opened, rp);
  REQUIRE(rewrapped.ok());
  auto parsed = ParseHeader(*rewrapped, nullptr);
  REQUIRE(parsed.ok());
  REQUIRE(parsed->stanzas.size() == 2);
  const auto& kept = std::get<UnknownStanza>(parsed->stanzas[0]);
  CHECK(kept.kind == future.kind);
  CHECK(kept.body == future.body);
  CHECK(OpenHeader(*rewrapped, f.Alice()).ok());
  CHECK(OpenHeader(*rewrapped, f.KeyA()).error().code == ErrorCode::kNoMatchingKey);
}

TEST_CASE("rewrap replaces stanzas and the MAC, never the payload binding", "[format]") {
  Fixture f;
  EncryptParams params;
  params.context = {{"app", "x"}};
  params.keks.push_back(f.kek_a->target);
  params.recipients.push_back(f.alice_kp.public_key);
  const auto pt = std::vector<uint8_t>(20000, 3);
  auto file = EncryptToBytes(params, pt);
  REQUIRE(file.ok());
  MemorySource s(*file);
  auto header = ReadHeaderBytes(s);
  REQUIRE(header.ok());
  const std::vector<uint8_t> payload(s.rest().begin(), s.rest().end());
  auto opened = OpenHeader(*header, f.KeyA());
  REQUIRE(opened.ok());

  // Rotate: drop key A, keep alice, add key B.
  RewrapParams rp;
  rp.keep = {1};
  rp.keks.push_back(f.kek_b->target);
  auto rewrapped = Rewrap(*opened, rp);
  REQUIRE(rewrapped.ok());
  auto nh = ParseHeader(*rewrapped, nullptr);
  REQUIRE(nh.ok());
  CHECK(EncodeImmutable(*nh) == opened->immutable);
  CHECK(nh->mac != opened->header.mac);
  REQUIRE(nh->stanzas.size() == 2);
  // The kept stanza is byte-identical.
  Header one_old = opened->header, one_new = *nh;
  one_old.stanzas = {opened->header.stanzas[1]};
  one_new.stanzas = {nh->stanzas[0]};
  one_old.mac = one_new.mac = {};
  CHECK(EncodeHeader(one_old) == EncodeHeader(one_new));

  auto new_file = Concat(*rewrapped, payload);
  auto o = OpenObject(new_file, f.KeyB(), {{"app", "x"}});
  REQUIRE(o.ok);
  CHECK(o.released == pt);
  CHECK(OpenObject(new_file, f.Alice()).ok);
  auto removed = OpenObject(new_file, f.KeyA());
  CHECK(removed.code == ErrorCode::kNoMatchingKey);
  // The old header still opens the (untouched) payload: rewrap is not revocation of copies.
  CHECK(OpenObject(*file, f.KeyA()).ok);

  SECTION("rewrap twice to the same key gives fresh salts") {
    auto again = Rewrap(*opened, rp);
    REQUIRE(again.ok());
    auto h2 = ParseHeader(*again, nullptr);
    REQUIRE(h2.ok());
    CHECK(std::get<KekStanza>(h2->stanzas[1]).salt != std::get<KekStanza>(nh->stanzas[1]).salt);
    CHECK(std::get<KekStanza>(h2->stanzas[1]).wrapped_dek !=
          std::get<KekStanza>(nh->stanzas[1]).wrapped_dek);
  }
  SECTION("bad rewrap parameters") {
    RewrapParams bad;
    CHECK(Rewrap(*opened, bad).error().code == ErrorCode::kInvalidArgument);  // no stanza left
    bad.keep = {2};
    CHECK(Rewrap(*opened, bad).error().code == ErrorCode::kInvalidArgument);
    bad.keep = {0, 0};
    CHECK(Rewrap(*opened, bad).error().code == ErrorCode::kInvalidArgument);
    bad.keep = {0};
    bad.keks.push_back(f.kek_b->target);
    bad.keks.back().version = 0;
    CHECK(Rewrap(*opened, bad).error().code == ErrorCode::kInvalidArgument);
    OpenedHeader empty;
    CHECK(Rewrap(empty, rp).error().code == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("random access through OpenRandomAccess", "[format]") {
  Fixture f;
  EncryptParams params;
  params.keks.push_back(f.kek_a->target);
  std::mt19937 rng(99);
  const auto pt = RandomData(3 * 16384 + 1234, rng);
  auto file = EncryptToBytes(params, pt);
  REQUIRE(file.ok());
  MemorySource s(*file);
  auto header = ReadHeaderBytes(s);
  REQUIRE(header.ok());
  auto opened = OpenHeader(*header, f.KeyA());
  REQUIRE(opened.ok());

  char path[] = "/tmp/keyhold-format-ra-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  unlink(path);
  REQUIRE(WriteAll(fd, *file).ok());
  const uint64_t off = header->size();
  const uint64_t psize = file->size() - header->size();
  auto reader = OpenRandomAccess(*opened, fd, off, psize);
  REQUIRE(reader.ok());
  CHECK(reader->ClaimedSize().value() == pt.size());
  for (int i = 0; i < 200; ++i) {
    const uint64_t at = rng() % (pt.size() + 10);
    std::vector<uint8_t> buf(rng() % 40000);
    auto n = reader->ReadAt(at, buf);
    REQUIRE(n.ok());
    const size_t expect = at >= pt.size() ? 0 : std::min<size_t>(buf.size(), pt.size() - at);
    REQUIRE(*n == expect);
    REQUIRE(std::equal(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(expect),
                       pt.begin() + static_cast<std::ptrdiff_t>(at)));
  }
  // A wrong payload offset (the header's last byte included) fails the commitment.
  CHECK(OpenRandomAccess(*opened, fd, off - 1, psize + 1).error().code == ErrorCode::kAuthFailed);
  // Corrupt chunk 2: reads in chunk 0 still work; reads touching chunk 2 fail.
  const uint64_t chunk2 = off + cobblestone::kPrefixSize + 2 * cobblestone::kEncryptedChunkSize;
  uint8_t byte = 0;
  REQUIRE(pread(fd, &byte, 1, static_cast<off_t>(chunk2 + 5)) == 1);
  byte ^= 1;
  REQUIRE(pwrite(fd, &byte, 1, static_cast<off_t>(chunk2 + 5)) == 1);
  auto r2 = OpenRandomAccess(*opened, fd, off, psize);
  REQUIRE(r2.ok());
  std::vector<uint8_t> buf(100);
  CHECK(r2->ReadAt(10, buf).ok());
  auto bad = r2->ReadAt(2 * 16384 + 10, buf);
  CHECK(bad.error().code == ErrorCode::kPayloadAuthFailed);
  close(fd);
}
