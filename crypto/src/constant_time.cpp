#include "keyhold/crypto/constant_time.h"

#include <openssl/crypto.h>

namespace keyhold {

bool ConstantTimeEquals(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool ConstantTimeIsZero(std::span<const uint8_t> a) {
  uint8_t acc = 0;
  for (uint8_t byte : a) acc = static_cast<uint8_t>(acc | byte);
  // Volatile read so the loop is not turned into an early-exit search.
  volatile uint8_t result = acc;
  return result == 0;
}

}  // namespace keyhold
