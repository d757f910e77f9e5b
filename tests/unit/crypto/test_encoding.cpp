// Hex, base64 (strict), Bech32 (BIP 173 vectors) and UTF-8 validation.
#include <catch2/catch.hpp>
#include <iostream>
#include <string>
#include <vector>

#include "keyhold/crypto/encoding.h"

using keyhold::ErrorCode;

namespace {

std::vector<uint8_t> B(std::string_view s) { return {s.begin(), s.end()}; }

std::string Lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

}  // namespace

TEST_CASE("hex round trip and bad input", "[crypto]") {
  std::vector<uint8_t> all(256);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint8_t>(i);
  const std::string hex = keyhold::HexEncode(all);
  CHECK(hex.substr(0, 8) == "00010203");
  CHECK(hex.substr(hex.size() - 4) == "feff");  // lowercase
  auto back = keyhold::HexDecode(hex);
  REQUIRE(back.ok());
  CHECK(*back == all);
  auto upper = keyhold::HexDecode("DEADbeef");
  REQUIRE(upper.ok());
  CHECK(*upper == std::vector<uint8_t>{0xde, 0xad, 0xbe, 0xef});
  CHECK(keyhold::HexEncode({}).empty());
  auto empty = keyhold::HexDecode("");
  REQUIRE(empty.ok());
  CHECK(empty->empty());

  for (const char* bad : {"0", "abc", "0g", "g0", "0x00", " 00", "00 ", "0-", "\xff\xff"}) {
    INFO("input " << bad);
    auto r = keyhold::HexDecode(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kMalformed);
  }
  // An embedded NUL is not a terminator.
  auto nul = keyhold::HexDecode(std::string{'0', '0', '\0', '0'});
  REQUIRE_FALSE(nul.ok());
  CHECK(nul.error().code == ErrorCode::kMalformed);
}

TEST_CASE("base64 rfc 4648 vectors and canonical strictness", "[crypto]") {
  // RFC 4648 section 10.
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : vectors) {
    INFO("vector " << encoded);
    CHECK(keyhold::Base64Encode(B(plain)) == encoded);
    auto d = keyhold::Base64Decode(encoded);
    REQUIRE(d.ok());
    CHECK(*d == B(plain));
  }
  std::vector<uint8_t> all(256);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint8_t>(255 - i);
  auto rt = keyhold::Base64Decode(keyhold::Base64Encode(all));
  REQUIRE(rt.ok());
  CHECK(*rt == all);

  const char* bad[] = {
      "Zh==",      // non-zero padding bits (would decode to "f" leniently)
      "Zm9=",      // non-zero padding bits in a 2-byte group
      "Zg",        // missing padding
      "Zm8",       // missing padding
      "Zg=",       // short padding
      "Zg===",     // extra padding
      "Zm9v====",  // padding after a full group
      "Zg==Zg==",  // padding in the middle
      "Zm9v\n",    // whitespace is not ignored
      " Zm9v",     // leading whitespace
      "Zm 9v",     // inner whitespace
      "Z-8_",      // URL-safe alphabet
      "Zm9v*",     // not in the alphabet
      "=",         // padding alone
      "====",      // padding alone
      "Z",         // a lone sextet cannot encode a byte
  };
  for (const char* text : bad) {
    INFO("input '" << text << "'");
    auto r = keyhold::Base64Decode(text);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kMalformed);
  }
  auto nul = keyhold::Base64Decode(std::string_view("Zm9v\0", 5));
  REQUIRE_FALSE(nul.ok());
  CHECK(nul.error().code == ErrorCode::kMalformed);
}

TEST_CASE("bech32 bip 173 vectors", "[crypto]") {
  // BIP 173 "valid checksum" test vectors, all of which also have valid 5-to-8-bit padding.
  const char* valid[] = {
      "A12UEL5L",
      "a12uel5l",
      "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
      "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
      "11qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqc8247j",
      "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
      "?1ezyfcl",
  };
  int n_valid = 0, n_invalid = 0;
  for (const char* text : valid) {
    INFO("valid " << text);
    auto d = keyhold::Bech32Decode(text);
    REQUIRE(d.ok());
    const std::string s = text;
    const std::string hrp = Lower(s.substr(0, s.rfind('1')));
    CHECK(d->hrp == hrp);
    const bool upper = s != Lower(s);
    CHECK(keyhold::Bech32Encode(d->hrp, d->data, upper) == s);
    ++n_valid;
  }
  // abcdef's data part is the charset in order: 0..31 as 5-bit groups, 20 bytes.
  auto abc = keyhold::Bech32Decode("abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw");
  REQUIRE(abc.ok());
  CHECK(keyhold::HexEncode(abc->data) == "00443214c74254b635cf84653a56d7c675be77df");

  const std::string invalid[] = {
      std::string("\x20") + "1nwldj5",  // HRP character out of range
      std::string("\x7f") + "1axkwrx",
      std::string("\x80") + "1eym55h",
      "pzry9x0s0muk",                    // no separator
      "1pzry9x0s0muk",                   // empty HRP
      "x1b4n0q5v",                       // invalid data character
      "li1dgmt3",                        // checksum too short
      std::string("de1lg7wt") + "\xff",  // invalid character in checksum
      "A1G7SGD8",                        // checksum computed with the upper-case HRP
      "10a06t8",                         // empty HRP
      "1qzzfhee",                        // empty HRP
      // Our own additions.
      "A12uEL5L",      // mixed case
      "a12uel5m",      // bad checksum
      "a12uel5",       // truncated checksum
      "a1lqfn3a",      // a Bech32m (BIP 350) checksum, not Bech32
      "kh1qp02fuxm",   // valid checksum, non-zero padding bits
      "kh1qqq6eqqwl",  // valid checksum, 7 leftover bits (a whole extra group)
      "",
  };
  for (const auto& text : invalid) {
    INFO("invalid " << text);
    auto d = keyhold::Bech32Decode(text);
    REQUIRE_FALSE(d.ok());
    CHECK(d.error().code == ErrorCode::kMalformed);
    ++n_invalid;
  }
  // The canonical one-byte encodings next to the padding cases above, so those fail for the
  // padding alone: these have the same shape and valid checksums.
  auto one = keyhold::Bech32Decode("kh1qqjuafmf");
  REQUIRE(one.ok());
  CHECK(one->data == std::vector<uint8_t>{0});
  auto none = keyhold::Bech32Decode("kh15lt24p");
  REQUIRE(none.ok());
  CHECK(none->data.empty());

  // By design (as in age) there is no 90-character limit: BIP 173's "overall max length
  // exceeded" vector has a correct checksum and is accepted.
  auto long84 = keyhold::Bech32Decode(
      "an84characterslonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1569pv"
      "x");
  CHECK(long84.ok());
  std::cout << "KAT bech32_bip173: " << n_valid + n_invalid << " run (" << n_valid << " valid, "
            << n_invalid << " invalid)\n";
}

TEST_CASE("bech32 round trip of 32-byte keys with hrp kh", "[crypto]") {
  std::vector<uint8_t> data(32);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 37 + 11);
  const std::string enc = keyhold::Bech32Encode("kh", data);
  CHECK(enc.rfind("kh1", 0) == 0);
  CHECK(enc.size() == 3 + 52 + 6);  // 256 bits -> 52 five-bit groups, then the checksum
  auto dec = keyhold::Bech32Decode(enc);
  REQUIRE(dec.ok());
  CHECK(dec->hrp == "kh");
  CHECK(dec->data == data);
  const std::string enc_upper = keyhold::Bech32Encode("kh", data, true);
  CHECK(enc_upper == [&] {
    std::string u = enc;
    for (char& c : u) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return u;
  }());
  auto dec_upper = keyhold::Bech32Decode(enc_upper);
  REQUIRE(dec_upper.ok());
  CHECK(dec_upper->hrp == "kh");
  CHECK(dec_upper->data == data);
  // Every single-character substitution in the data and checksum is detected.
  const std::string charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
  for (size_t i = 3; i < enc.size(); ++i) {
    std::string forged = enc;
    forged[i] = charset[(charset.find(enc[i]) + 1) % 32];
    INFO("position " << i);
    REQUIRE_FALSE(keyhold::Bech32Decode(forged).ok());
  }
}

TEST_CASE("utf-8 validation", "[crypto]") {
  const std::string valid[] = {
      "",
      "plain ascii",
      "\xc3\xa9",              // U+00E9
      "\xe2\x82\xac",          // U+20AC
      "\xf0\x9f\x98\x80",      // U+1F600
      "\xf4\x8f\xbf\xbf",      // U+10FFFF, the last code point
      "\xed\x9f\xbf",          // U+D7FF, just below the surrogates
      "\xee\x80\x80",          // U+E000, just above
      "\xc2\x80",              // U+0080, smallest 2-byte
      "\xe0\xa0\x80",          // U+0800, smallest 3-byte
      "\xf0\x90\x80\x80",      // U+10000, smallest 4-byte
      std::string("a\0b", 3),  // NUL is a valid code point
  };
  for (const auto& s : valid) {
    INFO("valid " << keyhold::HexEncode(B(s)));
    CHECK(keyhold::IsValidUtf8(s));
  }
  const std::string invalid[] = {
      "\xc0\x80",
      "\xc1\xbf",
      "\xe0\x80\x80",
      "\xe0\x9f\xbf",  // overlong
      "\xf0\x80\x80\x80",
      "\xf0\x8f\xbf\xbf",  // overlong 4-byte
      "\xed\xa0\x80",
      "\xed\xbf\xbf",
      "\xed\xb0\x80",  // surrogates
      "\xf4\x90\x80\x80",
      "\xf5\x80\x80\x80",
      "\xf7\xbf\xbf\xbf",  // above U+10FFFF
      "\xf8\x88\x80\x80\x80",
      "\xfc\x84\x80\x80\x80\x80",  // 5- and 6-byte forms
      "\xc3",
      "\xe2\x82",
      "\xf0\x9f\x98",
      "a\xe2\x82",  // truncated
      "\x80",
      "\xbf",
      "a\x80z",  // lone continuation bytes
      "\xfe",
      "\xff",  // never valid
      "\xc3\x28",
      "\xe2\x28\xa1",
      "\xf0\x9f\x28\x80",  // bad continuation
  };
  for (const auto& s : invalid) {
    INFO("invalid " << keyhold::HexEncode(B(s)));
    CHECK_FALSE(keyhold::IsValidUtf8(s));
  }
}
