#include "keyhold/crypto/random.h"

#include <sodium.h>

#include "keyhold/crypto/secret_bytes.h"

namespace keyhold {

void RandomBytes(std::span<uint8_t> out) {
  EnsureCryptoInitialized();
  if (!out.empty()) randombytes_buf(out.data(), out.size());
}

}  // namespace keyhold
