// Text encodings: hex, base64 (RFC 4648, padded), Bech32 (BIP 173) for recipient strings.
#ifndef KEYHOLD_CRYPTO_ENCODING_H_
#define KEYHOLD_CRYPTO_ENCODING_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "keyhold/crypto/result.h"

namespace keyhold {

std::string HexEncode(std::span<const uint8_t> data);  // lowercase
// Accepts upper or lower case; kMalformed for odd length or a non-hex character.
Result<std::vector<uint8_t>> HexDecode(std::string_view hex);

std::string Base64Encode(std::span<const uint8_t> data);  // standard alphabet, padded
// Strict: canonical padded standard base64 only; kMalformed otherwise.
Result<std::vector<uint8_t>> Base64Decode(std::string_view text);

// Bech32 (BIP 173, not Bech32m) with an arbitrary-length data part (no 90-character limit,
// as in age). The string is all lower case or, if `upper`, all upper case.
std::string Bech32Encode(std::string_view hrp, std::span<const uint8_t> data, bool upper = false);
struct Bech32Decoded {
  std::string hrp;  // lower case
  std::vector<uint8_t> data;
};
// kMalformed for mixed case, a bad checksum, bad characters or non-zero padding bits.
Result<Bech32Decoded> Bech32Decode(std::string_view text);

// True if `text` is valid UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
bool IsValidUtf8(std::string_view text);

}  // namespace keyhold

#endif  // KEYHOLD_CRYPTO_ENCODING_H_
