// Fuzz target: the envelope header parser. Whatever ParseHeader accepts must be the
// canonical encoding (EncodeHeader(ParseHeader(b)) == b[0:n]), and ReadHeaderBytes must
// delimit exactly the same n bytes, so a header has one byte representation and the
// streaming reader and the parser never disagree on where the payload starts.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "fuzz_util.h"
#include "keyhold/crypto/envelope.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace keyhold;
  std::span<const uint8_t> input(data, size);

  size_t header_size = 0;
  auto parsed = envelope::ParseHeader(input, &header_size);

  // The streaming reader, fed 7 bytes at a time to exercise short reads.
  fuzz::SpanSource source(input, 7);
  auto read = envelope::ReadHeaderBytes(source);
  if (read.ok()) {
    FUZZ_CHECK(read->size() <= size);
    FUZZ_CHECK(source.position() == read->size());  // never reads into the payload
    FUZZ_CHECK(read->size() <= envelope::kMaxHeaderSize);
  }

  if (!parsed.ok()) return 0;
  FUZZ_CHECK(header_size > 0 && header_size <= size);
  FUZZ_CHECK(header_size <= envelope::kMaxHeaderSize);
  std::vector<uint8_t> encoded = envelope::EncodeHeader(*parsed);
  FUZZ_CHECK(encoded.size() == header_size);
  FUZZ_CHECK(std::equal(encoded.begin(), encoded.end(), data));

  FUZZ_CHECK(read.ok());
  FUZZ_CHECK(*read == encoded);

  // The context section re-encodes canonically on its own too.
  auto context = envelope::EncodeContext(parsed->context);
  FUZZ_CHECK(context.ok());
  auto reparsed = envelope::ParseContext(*context);
  FUZZ_CHECK(reparsed.ok() && *reparsed == parsed->context);
  return 0;
}
