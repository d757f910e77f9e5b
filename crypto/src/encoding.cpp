#include "keyhold/crypto/encoding.h"

#include <sodium.h>

#include <cctype>

#include "keyhold/crypto/secret_bytes.h"

namespace keyhold {

std::string HexEncode(std::span<const uint8_t> data) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(data.size() * 2);
  for (uint8_t b : data) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

Result<std::vector<uint8_t>> HexDecode(std::string_view hex) {
  if (hex.size() % 2 != 0) return Error(ErrorCode::kMalformed, "hex string has odd length");
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::vector<uint8_t> out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return Error(ErrorCode::kMalformed, "invalid hex character");
    out[i] = static_cast<uint8_t>((hi << 4) | lo);
  }
  return out;
}

std::string Base64Encode(std::span<const uint8_t> data) {
  EnsureCryptoInitialized();
  const int variant = sodium_base64_VARIANT_ORIGINAL;
  std::string out(sodium_base64_ENCODED_LEN(data.size(), variant), '\0');
  sodium_bin2base64(out.data(), out.size(), data.data(), data.size(), variant);
  out.resize(out.size() - 1);  // drop the NUL terminator
  return out;
}

Result<std::vector<uint8_t>> Base64Decode(std::string_view text) {
  EnsureCryptoInitialized();
  std::vector<uint8_t> out(text.size() / 4 * 3 + 3);
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(out.data(), out.size(), text.data(), text.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != text.data() + text.size()) {
    return Error(ErrorCode::kMalformed, "invalid base64");
  }
  out.resize(len);
  // Canonical only: re-encoding must give back the same text (rejects non-zero pad bits).
  if (Base64Encode(out) != text) return Error(ErrorCode::kMalformed, "non-canonical base64");
  return out;
}

namespace {

constexpr char kBech32Charset[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

// Bech32 is used for identity strings, so its intermediate buffers can hold secret bits:
// they are WipingBuffers, sized up front so no reallocation leaves an unwiped copy behind.
uint32_t Bech32Polymod(const WipingBuffer& values) {
  static const uint32_t kGen[5] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3};
  uint32_t chk = 1;
  for (uint8_t v : values) {
    uint32_t top = chk >> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (int i = 0; i < 5; ++i) {
      if ((top >> i) & 1) chk ^= kGen[i];
    }
  }
  return chk;
}

WipingBuffer HrpExpand(std::string_view hrp, size_t extra) {
  WipingBuffer out;
  out.reserve(2 * hrp.size() + 1 + extra);
  for (char c : hrp) out.push_back(static_cast<uint8_t>(static_cast<uint8_t>(c) >> 5));
  out.push_back(0);
  for (char c : hrp) out.push_back(static_cast<uint8_t>(static_cast<uint8_t>(c) & 31));
  return out;
}

// Regroups bits; `pad` adds zero bits at the end (encoding), otherwise leftover bits must be
// fewer than `from` and zero (decoding).
template <typename Buffer>
bool ConvertBits(std::span<const uint8_t> in, int from, int to, bool pad, Buffer& out) {
  out.reserve(out.size() + (in.size() * static_cast<size_t>(from)) / static_cast<size_t>(to) + 1);
  uint32_t acc = 0;
  int bits = 0;
  const uint32_t maxv = (1u << to) - 1;
  for (uint8_t v : in) {
    if ((v >> from) != 0) return false;
    acc = (acc << from) | v;
    bits += from;
    while (bits >= to) {
      bits -= to;
      out.push_back(static_cast<uint8_t>((acc >> bits) & maxv));
    }
  }
  if (pad) {
    if (bits > 0) out.push_back(static_cast<uint8_t>((acc << (to - bits)) & maxv));
  } else if (bits >= from || ((acc << (to - bits)) & maxv) != 0) {
    return false;
  }
  return true;
}

}  // namespace

std::string Bech32Encode(std::string_view hrp, std::span<const uint8_t> data, bool upper) {
  std::string lower_hrp;
  for (char c : hrp)
    lower_hrp.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  WipingBuffer values;
  ConvertBits(data, 8, 5, true, values);
  WipingBuffer check = HrpExpand(lower_hrp, values.size() + 6);
  check.insert(check.end(), values.begin(), values.end());
  check.insert(check.end(), 6, 0);
  uint32_t mod = Bech32Polymod(check) ^ 1;
  std::string out = lower_hrp + "1";
  out.reserve(out.size() + values.size() + 6);
  for (uint8_t v : values) out.push_back(kBech32Charset[v]);
  for (int i = 0; i < 6; ++i) out.push_back(kBech32Charset[(mod >> (5 * (5 - i))) & 31]);
  if (upper) {
    for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

Result<Bech32Decoded> Bech32Decode(std::string_view text) {
  bool has_lower = false, has_upper = false;
  for (char c : text) {
    if (c < 33 || c > 126) return Error(ErrorCode::kMalformed, "bech32: invalid character");
    if (c >= 'a' && c <= 'z') has_lower = true;
    if (c >= 'A' && c <= 'Z') has_upper = true;
  }
  if (has_lower && has_upper) return Error(ErrorCode::kMalformed, "bech32: mixed case");
  size_t sep = text.rfind('1');
  if (sep == std::string_view::npos || sep == 0 || sep + 7 > text.size()) {
    return Error(ErrorCode::kMalformed, "bech32: missing separator or checksum");
  }
  std::string hrp;
  for (char c : text.substr(0, sep)) {
    hrp.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  WipingBuffer values;
  values.reserve(text.size() - sep - 1);
  for (char c : text.substr(sep + 1)) {
    char lc = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const char* p = nullptr;
    for (const char* q = kBech32Charset; *q; ++q) {
      if (*q == lc) p = q;
    }
    if (p == nullptr) return Error(ErrorCode::kMalformed, "bech32: invalid character");
    values.push_back(static_cast<uint8_t>(p - kBech32Charset));
  }
  WipingBuffer check = HrpExpand(hrp, values.size());
  check.insert(check.end(), values.begin(), values.end());
  if (Bech32Polymod(check) != 1) return Error(ErrorCode::kMalformed, "bech32: bad checksum");
  values.resize(values.size() - 6);
  Bech32Decoded out{hrp, {}};
  if (!ConvertBits(values, 5, 8, false, out.data)) {
    return Error(ErrorCode::kMalformed, "bech32: invalid padding");
  }
  return out;
}

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<uint8_t>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07u;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

}  // namespace keyhold
