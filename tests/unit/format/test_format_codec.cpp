// Header encoding: canonical parsing, every limit, streaming reads, recipient strings.
#include <catch2/catch.hpp>
#include <random>

#include "format_test_support.h"
#include "keyhold/crypto/encoding.h"
#include "keyhold/crypto/x25519.h"

using namespace keyhold;
using namespace keyhold::envelope;
using namespace keyhold::format_test;

namespace {

// A syntactically valid header with the given stanzas (the MAC is not checked by the parser).
Header BaseHeader() {
  Header h;
  for (size_t i = 0; i < kObjectIdSize; ++i) h.object_id[i] = static_cast<uint8_t>(i);
  h.context = {{"app", "demo"}};
  KekStanza k;
  k.key_id.fill(0x11);
  k.version = 1;
  k.key_name = "payroll";
  k.salt.fill(0x22);
  k.wrapped_dek.fill(0x33);
  h.stanzas.emplace_back(k);
  X25519Stanza x;
  x.fingerprint.fill(0x44);
  x.ephemeral.fill(0x55);
  x.wrapped_dek.fill(0x66);
  h.stanzas.emplace_back(x);
  h.mac.fill(0x77);
  return h;
}

ErrorCode ParseCode(std::span<const uint8_t> bytes) {
  size_t size = 0;
  auto r = ParseHeader(bytes, &size);
  REQUIRE_FALSE(r.ok());
  return r.error().code;
}

std::string ParseMessage(std::span<const uint8_t> bytes) {
  size_t size = 0;
  auto r = ParseHeader(bytes, &size);
  REQUIRE_FALSE(r.ok());
  return r.error().message;
}

// Offset of the stanza count in an encoding of h.
size_t StanzaCountOffset(const Header& h) { return EncodeImmutable(h).size(); }

void PutU16(std::vector<uint8_t>& v, size_t n) {
  v.push_back(static_cast<uint8_t>(n >> 8));
  v.push_back(static_cast<uint8_t>(n));
}

std::vector<uint8_t> RawContext(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::vector<uint8_t> out;
  PutU16(out, entries.size());
  for (const auto& [k, v] : entries) {
    PutU16(out, k.size());
    out.insert(out.end(), k.begin(), k.end());
    PutU16(out, v.size());
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

}  // namespace

TEST_CASE("header encodes and parses canonically", "[format]") {
  Header h = BaseHeader();
  h.stanzas.emplace_back(UnknownStanza{0xee, {1, 2, 3}});
  h.stanzas.emplace_back(UnknownStanza{0x03, {}});
  auto bytes = EncodeHeader(h);
  // magic, version, suite, id, context(2+2+3+2+4), count, kek(3+108), x25519(3+96),
  // unknown(3+3), unknown(3), mac
  CHECK(bytes.size() == 8 + 1 + 1 + 16 + 13 + 2 + 111 + 99 + 6 + 3 + 32);
  std::vector<uint8_t> with_payload = bytes;
  with_payload.insert(with_payload.end(), 100, 0xab);
  size_t size = 0;
  auto parsed = ParseHeader(with_payload, &size);
  REQUIRE(parsed.ok());
  CHECK(size == bytes.size());
  CHECK(EncodeHeader(*parsed) == bytes);
  REQUIRE(parsed->stanzas.size() == 4);
  CHECK(std::get<KekStanza>(parsed->stanzas[0]).key_name == "payroll");
  CHECK(std::get<UnknownStanza>(parsed->stanzas[2]).kind == 0xee);
  CHECK(std::get<UnknownStanza>(parsed->stanzas[2]).body == std::vector<uint8_t>{1, 2, 3});
  CHECK(parsed->context == h.context);
}

TEST_CASE("every header that parses re-encodes to the same bytes (mutation sweep)", "[format]") {
  std::mt19937 rng(20261128);
  Header h = BaseHeader();
  h.context = {{"a", ""}, {"bb", "x"}, {"c\xc3\xa9", "\xe2\x82\xac"}};
  h.stanzas.emplace_back(UnknownStanza{0x09, {9, 9}});
  const auto base = EncodeHeader(h);
  int parsed_ok = 0, rejected = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<uint8_t> b = base;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % b.size();
      switch (rng() % 4) {
        case 0:
          b[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
          break;
        case 1:
          b[at] = static_cast<uint8_t>(rng());
          break;
        case 2:
          b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), static_cast<uint8_t>(rng()));
          break;
        default:
          b.erase(b.begin() + static_cast<std::ptrdiff_t>(at));
          break;
      }
    }
    size_t size = 0;
    auto r = ParseHeader(b, &size);
    if (r.ok()) {
      ++parsed_ok;
      REQUIRE(size <= b.size());
      REQUIRE(EncodeHeader(*r) ==
              std::vector<uint8_t>(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(size)));
    } else {
      ++rejected;
      const auto c = r.error().code;
      REQUIRE((c == ErrorCode::kMalformed || c == ErrorCode::kUnsupported));
    }
  }
  // Both outcomes must actually occur, or the sweep proves nothing.
  CHECK(parsed_ok > 1000);
  CHECK(rejected > 1000);
}

TEST_CASE("magic, version and suite", "[format]") {
  auto bytes = EncodeHeader(BaseHeader());
  SECTION("bad magic") {
    bytes[1] = 'K';
    CHECK(ParseCode(bytes) == ErrorCode::kMalformed);
    CHECK(ParseMessage(bytes) == "not a keyhold object");
  }
  SECTION("short input") {
    CHECK(ParseMessage(std::span<const uint8_t>(bytes).first(5)) == "not a keyhold object");
    CHECK(ParseMessage(std::span<const uint8_t>()) == "not a keyhold object");
    CHECK(ParseCode(std::span<const uint8_t>(bytes).first(bytes.size() - 1)) ==
          ErrorCode::kMalformed);
  }
  SECTION("unknown version") {
    bytes[8] = 2;
    size_t size = 0;
    auto r = ParseHeader(bytes, &size);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kUnsupported);
    CHECK(r.error().message == "unsupported format version 2");
    CHECK(r.error().hint.find("upgrade keyhold") != std::string::npos);
  }
  SECTION("unknown suite") {
    bytes[9] = 0;
    CHECK(ParseCode(bytes) == ErrorCode::kUnsupported);
    CHECK(ParseMessage(bytes) == "unsupported cipher suite 0");
  }
}

TEST_CASE("context section rules", "[format]") {
  SECTION("round trip and trailing bytes") {
    EncryptionContext c = {{"b", "2"}, {"a", "1"}};
    auto enc = EncodeContext(c);
    REQUIRE(enc.ok());
    CHECK(*enc == RawContext({{"a", "1"}, {"b", "2"}}));
    auto back = ParseContext(*enc);
    REQUIRE(back.ok());
    CHECK(*back == c);
    auto trailing = *enc;
    trailing.push_back(0);
    auto r = ParseContext(trailing);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kMalformed);
    CHECK(r.error().message.find("trailing") != std::string::npos);
    auto shorter = std::span<const uint8_t>(*enc).first(enc->size() - 1);
    CHECK(ParseContext(shorter).error().code == ErrorCode::kMalformed);
  }
  SECTION("keys order by unsigned bytes") {
    // 0xc3 (in "é") sorts after 'z' as an unsigned byte; a signed comparison would differ.
    EncryptionContext c = {{"z", ""}, {"\xc3\xa9", ""}};
    auto enc = EncodeContext(c);
    REQUIRE(enc.ok());
    CHECK(*enc == RawContext({{"z", ""}, {"\xc3\xa9", ""}}));
    CHECK(ParseContext(RawContext({{"\xc3\xa9", ""}, {"z", ""}})).error().code ==
          ErrorCode::kMalformed);
  }
  SECTION("unsorted and duplicate keys") {
    auto r = ParseContext(RawContext({{"b", "1"}, {"a", "2"}}));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kMalformed);
    CHECK(r.error().message.find("order") != std::string::npos);
    r = ParseContext(RawContext({{"a", "1"}, {"a", "1"}}));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("twice") != std::string::npos);
    // A key that is a prefix of the previous one is smaller: unsorted.
    CHECK(ParseContext(RawContext({{"ab", ""}, {"a", ""}})).error().code == ErrorCode::kMalformed);
    CHECK(ParseContext(RawContext({{"a", ""}, {"ab", ""}})).ok());
  }
  SECTION("utf-8") {
    CHECK(ParseContext(RawContext({{"\xff", "v"}})).error().code == ErrorCode::kMalformed);
    CHECK(ParseContext(RawContext({{"k", "\xc0\x80"}})).error().code == ErrorCode::kMalformed);
    CHECK(ParseContext(RawContext({{"k", "\xed\xa0\x80"}})).error().code == ErrorCode::kMalformed);
    CHECK(EncodeContext({{"k", "\xff"}}).error().code == ErrorCode::kInvalidArgument);
    CHECK(ParseContext(RawContext({{"k", "\xf0\x9f\x94\x91"}})).ok());
  }
  SECTION("entry count limit") {
    std::vector<std::pair<std::string, std::string>> entries;
    EncryptionContext c;
    for (int i = 0; i < 64; ++i) {
      char key[8];
      std::snprintf(key, sizeof key, "k%03d", i);
      entries.emplace_back(key, "");
      c[key] = "";
    }
    CHECK(ParseContext(RawContext(entries)).ok());
    CHECK(EncodeContext(c).ok());
    entries.emplace_back("k999", "");
    c["k999"] = "";
    auto r = ParseContext(RawContext(entries));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kMalformed);
    CHECK(r.error().message.find("65 entries") != std::string::npos);
    CHECK(EncodeContext(c).error().code == ErrorCode::kInvalidArgument);
  }
  SECTION("key and value length limits") {
    CHECK(ParseContext(RawContext({{std::string(128, 'k'), std::string(1024, 'v')}})).ok());
    auto r = ParseContext(RawContext({{std::string(129, 'k'), ""}}));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("key length 129") != std::string::npos);
    r = ParseContext(RawContext({{"k", std::string(1025, 'v')}}));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("value length 1025") != std::string::npos);
    r = ParseContext(RawContext({{"", "v"}}));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("key length 0") != std::string::npos);
    CHECK(EncodeContext({{"", "v"}}).error().code == ErrorCode::kInvalidArgument);
    CHECK(EncodeContext({{std::string(129, 'k'), ""}}).error().code == ErrorCode::kInvalidArgument);
    CHECK(EncodeContext({{"k", std::string(1025, 'v')}}).error().code ==
          ErrorCode::kInvalidArgument);
  }
  SECTION("section size limit") {
    // 15 entries of 1 + 1024 bytes: 2 + 15 * 1029 = 15437 (fits); one more entry with a 942-byte
    // value makes exactly 16384; one more byte exceeds it.
    std::vector<std::pair<std::string, std::string>> entries;
    EncryptionContext c;
    for (int i = 0; i < 15; ++i) {
      std::string k(1, static_cast<char>('a' + i));
      entries.emplace_back(k, std::string(1024, 'v'));
      c[k] = std::string(1024, 'v');
    }
    entries.emplace_back("z", std::string(16384 - 15437 - 5, 'v'));
    c["z"] = entries.back().second;
    auto exact = RawContext(entries);
    CHECK(exact.size() == 16384);
    CHECK(ParseContext(exact).ok());
    CHECK(EncodeContext(c).ok());
    entries.back().second.push_back('v');
    c["z"].push_back('v');
    auto r = ParseContext(RawContext(entries));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kMalformed);
    CHECK(r.error().message.find("16384") != std::string::npos);
    CHECK(EncodeContext(c).error().code == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("stanza rules", "[format]") {
  Header h = BaseHeader();
  const size_t count_at = StanzaCountOffset(h);
  SECTION("zero stanzas") {
    h.stanzas.clear();
    auto r = ParseHeader(EncodeHeader(h), nullptr);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kMalformed);
    CHECK(r.error().message.find("stanza count 0") != std::string::npos);
  }
  SECTION("64 stanzas parse, 65 do not") {
    h.stanzas.assign(64, UnknownStanza{0x10, {1}});
    CHECK(ParseHeader(EncodeHeader(h), nullptr).ok());
    h.stanzas.push_back(UnknownStanza{0x10, {1}});
    auto r = ParseHeader(EncodeHeader(h), nullptr);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("stanza count 65") != std::string::npos);
  }
  SECTION("kind 0 is reserved") {
    auto b = EncodeHeader(h);
    b[count_at + 2] = 0;
    CHECK(ParseMessage(b) == "stanza kind 0 is reserved");
  }
  SECTION("body length limit") {
    h.stanzas.assign(1, UnknownStanza{0x10, std::vector<uint8_t>(4096, 1)});
    CHECK(ParseHeader(EncodeHeader(h), nullptr).ok());
    h.stanzas.assign(1, UnknownStanza{0x10, std::vector<uint8_t>(4097, 1)});
    auto r = ParseHeader(EncodeHeader(h), nullptr);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("4097") != std::string::npos);
  }
  SECTION("kek body too long and too short") {
    auto b = EncodeHeader(h);
    const size_t len_at = count_at + 4;  // low byte of the kek stanza's body_len
    REQUIRE(b[len_at] == 108);
    b[len_at] = 109;
    CHECK(ParseMessage(b) == "kek stanza body too long");
    b[len_at] = 107;
    CHECK(ParseMessage(b) == "kek stanza body too short");
    b[len_at] = 20;  // shorter than the fixed part
    CHECK(ParseMessage(b) == "kek stanza body too short");
    // name_len disagreeing with body_len, both ways
    b[len_at] = 108;
    b[count_at + 5 + 20] = 8;
    CHECK(ParseMessage(b) == "kek stanza body too short");
    b[count_at + 5 + 20] = 6;
    CHECK(ParseMessage(b) == "kek stanza body too long");
    b[count_at + 5 + 20] = 0;
    CHECK(ParseCode(b) == ErrorCode::kMalformed);
  }
  SECTION("kek fields") {
    auto& k = std::get<KekStanza>(h.stanzas[0]);
    k.version = 0;
    CHECK(ParseMessage(EncodeHeader(h)).find("version") != std::string::npos);
    k.version = 0xffffffff;
    CHECK(ParseHeader(EncodeHeader(h), nullptr).ok());
    for (const char* bad : {"pay roll", "pay/roll", ".payroll", "-x", "_x", "caf\xc3\xa9"}) {
      k.key_name = bad;
      CHECK(ParseCode(EncodeHeader(h)) == ErrorCode::kMalformed);
    }
    k.key_name = std::string(64, 'a');
    CHECK(ParseHeader(EncodeHeader(h), nullptr).ok());
    k.key_name = "A.b_c-9";
    CHECK(ParseHeader(EncodeHeader(h), nullptr).ok());
  }
  SECTION("x25519 body must be 96 bytes") {
    auto b = EncodeHeader(h);
    const size_t len_at = count_at + 2 + 111 + 2;
    REQUIRE(b[len_at] == 96);
    b[len_at] = 97;
    CHECK(ParseMessage(b) == "x25519 stanza body too long");
    b[len_at] = 95;
    CHECK(ParseMessage(b) == "x25519 stanza body too short");
  }
}

TEST_CASE("header size limit", "[format]") {
  Header h = BaseHeader();
  h.context.clear();
  // 26 + 2 (empty context) + 2 (count) + 32 (mac) = 62 fixed bytes; 15 stanzas of 4099 bytes
  // and one of 3989 make exactly 65536.
  h.stanzas.assign(15, UnknownStanza{0x10, std::vector<uint8_t>(4096, 1)});
  h.stanzas.push_back(UnknownStanza{0x10, std::vector<uint8_t>(3986, 1)});
  auto exact = EncodeHeader(h);
  REQUIRE(exact.size() == kMaxHeaderSize);
  size_t size = 0;
  CHECK(ParseHeader(exact, &size).ok());
  CHECK(size == kMaxHeaderSize);
  std::get<UnknownStanza>(h.stanzas.back()).body.push_back(1);
  auto over = EncodeHeader(h);
  auto r = ParseHeader(over, &size);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kMalformed);
  CHECK(r.error().message == "header exceeds the limit of 65536 bytes");
  MemorySource src(over);
  CHECK(ReadHeaderBytes(src).error().message == "header exceeds the limit of 65536 bytes");
  // Nothing past the limit was read: the last stanza's body stops being read before it.
  CHECK(src.position() <= kMaxHeaderSize);
}

namespace {
// An endless stream of valid-looking unknown stanzas after a header start: a reader that
// trusted the input would read forever.
class EndlessSource final : public cobblestone::Source {
 public:
  explicit EndlessSource(std::vector<uint8_t> prefix) : prefix_(std::move(prefix)) {}
  Result<size_t> Read(std::span<uint8_t> out) override {
    for (auto& b : out) {
      if (pos_ < prefix_.size()) {
        b = prefix_[pos_];
      } else {
        const size_t k = (pos_ - prefix_.size()) % 4099;
        b = k == 0 ? 0x10 : k == 1 ? 0x10 : k == 2 ? 0x00 : 0x5a;
      }
      ++pos_;
    }
    return out.size();
  }
  size_t pos_ = 0;

 private:
  std::vector<uint8_t> prefix_;
};
}  // namespace

TEST_CASE("ReadHeaderBytes reads exactly the header and enforces limits while reading",
          "[format]") {
  Header h = BaseHeader();
  auto header = EncodeHeader(h);
  auto file = header;
  file.insert(file.end(), 1000, 0xcd);
  for (size_t max_read : {size_t{1}, size_t{7}, size_t{4096}, SIZE_MAX}) {
    MemorySource src(file, max_read);
    auto r = ReadHeaderBytes(src);
    REQUIRE(r.ok());
    CHECK(*r == header);
    CHECK(src.position() == header.size());
  }
  SECTION("bad magic") {
    file[0] = 'P';
    MemorySource src(file);
    auto r = ReadHeaderBytes(src);
    CHECK(r.error().code == ErrorCode::kMalformed);
    CHECK(r.error().message == "not a keyhold object");
    CHECK(src.position() == kMagic.size());
  }
  SECTION("every truncation is malformed") {
    for (size_t n = 0; n < header.size(); ++n) {
      MemorySource src(std::span<const uint8_t>(header).first(n));
      auto r = ReadHeaderBytes(src);
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == ErrorCode::kMalformed);
    }
  }
  SECTION("unbounded input stops at the limit") {
    auto prefix = EncodeImmutable(h);
    prefix.push_back(0);
    prefix.push_back(64);
    EndlessSource src(prefix);
    auto r = ReadHeaderBytes(src);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kMalformed);
    CHECK(src.pos_ <= kMaxHeaderSize);
  }
  SECTION("a lying stanza body length is bounded") {
    auto b = EncodeImmutable(h);
    b.insert(b.end(), {0, 1, 0x10, 0xff, 0xff});
    MemorySource src(b);
    auto r = ReadHeaderBytes(src);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("65535") != std::string::npos);
    CHECK(src.position() == b.size());
  }
}

TEST_CASE("recipient and identity strings", "[format]") {
  auto kp = X25519Generate();
  const std::string recipient = EncodeRecipient(kp.public_key);
  CHECK(recipient.rfind("kh1", 0) == 0);
  auto parsed = ParseRecipient(recipient);
  REQUIRE(parsed.ok());
  CHECK(*parsed == kp.public_key);

  const std::string identity = EncodeIdentity(kp.secret);
  CHECK(identity.rfind("KH-SECRET-KEY-1", 0) == 0);
  auto id = ParseIdentity(identity);
  REQUIRE(id.ok());
  CHECK(id->public_key == kp.public_key);
  CHECK(SecretEquals(id->secret, kp.secret));

  std::string upper = recipient;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  CHECK(ParseRecipient(upper).error().code == ErrorCode::kMalformed);
  std::string lower = identity;
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  CHECK(ParseIdentity(lower).error().code == ErrorCode::kMalformed);
  CHECK(ParseRecipient(identity).error().code == ErrorCode::kMalformed);
  CHECK(ParseIdentity(recipient).error().code == ErrorCode::kMalformed);
  std::vector<uint8_t> short_key(31, 7);
  CHECK(ParseRecipient(Bech32Encode("kh", short_key)).error().code == ErrorCode::kMalformed);
  std::vector<uint8_t> long_key(33, 7);
  CHECK(ParseRecipient(Bech32Encode("kh", long_key)).error().code == ErrorCode::kMalformed);
  CHECK(ParseRecipient(Bech32Encode("age", kp.public_key)).error().code == ErrorCode::kMalformed);
  std::string bad = recipient;
  bad.back() = bad.back() == 'q' ? 'p' : 'q';
  CHECK(ParseRecipient(bad).error().code == ErrorCode::kMalformed);
  CHECK(ParseRecipient("").error().code == ErrorCode::kMalformed);
  CHECK(ParseIdentity("KH-SECRET-KEY-1").error().code == ErrorCode::kMalformed);
  // The error never echoes the secret text.
  std::string bad_id = identity;
  bad_id[20] = bad_id[20] == 'Q' ? 'P' : 'Q';
  auto r = ParseIdentity(bad_id);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find(bad_id.substr(15)) == std::string::npos);

  // Fingerprints differ per key and are 16 bytes of SHA-256 over the label and key.
  auto other = X25519Generate();
  CHECK(RecipientFingerprint(kp.public_key) != RecipientFingerprint(other.public_key));
}

TEST_CASE("key names", "[format]") {
  for (const char* good : {"a", "payroll", "backups.2026", "A_b-c.d", "9lives"}) {
    CHECK(ValidateKeyName(good).ok());
  }
  CHECK(ValidateKeyName(std::string(64, 'x')).ok());
  for (const char* bad :
       {"", ".hidden", "-flag", "_x", "a b", "a/b", "a\\b", "caf\xc3\xa9", "a\n"}) {
    auto s = ValidateKeyName(bad);
    CHECK_FALSE(s.ok());
    if (!s.ok()) CHECK(s.error().code == ErrorCode::kInvalidArgument);
  }
  CHECK_FALSE(ValidateKeyName(std::string(65, 'x')).ok());
}
