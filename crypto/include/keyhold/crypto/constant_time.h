// Constant-time comparison.
#ifndef KEYHOLD_CRYPTO_CONSTANT_TIME_H_
#define KEYHOLD_CRYPTO_CONSTANT_TIME_H_

#include <cstdint>
#include <span>

namespace keyhold {

// True if a and b are equal. The time taken depends only on the lengths (which are not
// secret); spans of different lengths compare unequal.
bool ConstantTimeEquals(std::span<const uint8_t> a, std::span<const uint8_t> b);

// True if every byte is zero, in time depending only on the length.
bool ConstantTimeIsZero(std::span<const uint8_t> a);

}  // namespace keyhold

#endif  // KEYHOLD_CRYPTO_CONSTANT_TIME_H_
