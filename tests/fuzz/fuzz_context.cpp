// Fuzz target: the encryption-context parser. An accepted context section re-encodes to the
// same bytes (one representation per context, so the AAD cannot be malleated), and an
// accepted context respects every documented limit.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "fuzz_util.h"
#include "keyhold/crypto/envelope.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace keyhold;
  std::span<const uint8_t> input(data, size);
  auto parsed = envelope::ParseContext(input);
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.error().code != ErrorCode::kInternal);
    return 0;
  }
  FUZZ_CHECK(size <= envelope::kMaxContextSize);
  FUZZ_CHECK(parsed->size() <= envelope::kMaxContextEntries);
  for (const auto& [key, value] : *parsed) {
    FUZZ_CHECK(!key.empty() && key.size() <= envelope::kMaxContextKeySize);
    FUZZ_CHECK(value.size() <= envelope::kMaxContextValueSize);
  }
  auto encoded = envelope::EncodeContext(*parsed);
  FUZZ_CHECK(encoded.ok());
  FUZZ_CHECK(encoded->size() == size);
  FUZZ_CHECK(std::equal(encoded->begin(), encoded->end(), data));
  return 0;
}
