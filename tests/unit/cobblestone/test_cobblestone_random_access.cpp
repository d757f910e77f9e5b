// RandomAccessReader: reads equal plaintext slices, touch only the chunks they need, fail
// exactly when a touched chunk is bad, and never report the end of a message whose final
// chunk does not authenticate.
#include <catch2/catch.hpp>
#include <random>

#include "cobblestone_test_util.h"
#include "keyhold/crypto/cobblestone.h"

namespace cob = keyhold::cobblestone;
using cobtest::Bytes;
using keyhold::ErrorCode;

namespace {

const Bytes kContext = {'r', 'a'};
constexpr size_t kOffset = 100;  // the payload sits after a header in the file

struct Fixture {
  keyhold::SecretBytes key = keyhold::SecretBytes::Random(32);
  Bytes pt;
  Bytes ct;
  explicit Fixture(size_t size) : pt(cobtest::RandomBytesForTest(size, 11)) {
    cobtest::MemorySource src(pt);
    cobtest::VectorSink sink;
    REQUIRE(cob::Encrypt(key, kContext, src, sink, {.threads = 2}).ok());
    ct = sink.bytes;
  }
  Bytes File(const Bytes& payload) const {
    Bytes file(kOffset, 0x11);
    file.insert(file.end(), payload.begin(), payload.end());
    file.insert(file.end(), 50, 0x22);
    return file;
  }
};

Bytes Slice(const Bytes& b, uint64_t off, size_t len) {
  return Bytes(b.begin() + static_cast<std::ptrdiff_t>(off),
               b.begin() + static_cast<std::ptrdiff_t>(off + len));
}

size_t ChunkOffset(size_t i) { return cob::kPrefixSize + i * cob::kEncryptedChunkSize; }

}  // namespace

TEST_CASE("cobblestone random access reads equal plaintext slices", "[cobblestone]") {
  // 150 full chunks and a short one: reads span more than one 64-chunk pread.
  Fixture fx(150 * cob::kChunkSize + 1234);
  cobtest::TempFile file(fx.File(fx.ct));
  auto reader = cob::RandomAccessReader::Open(fx.key, kContext, file.fd(), kOffset, fx.ct.size());
  REQUIRE(reader.ok());
  REQUIRE(reader->ClaimedSize().ok());
  CHECK(reader->ClaimedSize().value() == fx.pt.size());

  const uint64_t size = fx.pt.size();
  std::vector<std::pair<uint64_t, size_t>> ranges = {{0, 1},
                                                     {0, 16384},
                                                     {0, 16385},
                                                     {16383, 2},
                                                     {16384, 16384},
                                                     {5, 100000},
                                                     {1000000, 1024 * 1024},
                                                     {size - 1234, 1234},
                                                     {size - 1, 1},
                                                     {0, static_cast<size_t>(size)},
                                                     {size - 10, 10},
                                                     {17, 64 * 16384 + 3}};
  std::mt19937_64 rng(3);
  for (int i = 0; i < 40; ++i) {
    uint64_t off = rng() % size;
    size_t len = static_cast<size_t>(rng() % (size - off)) / (i % 3 == 0 ? 1 : 50) + 1;
    ranges.emplace_back(off, len);
  }
  for (auto [off, len] : ranges) {
    INFO("offset " << off << " length " << len);
    Bytes out(len, 0xaa);
    auto n = reader->ReadAt(off, out);
    REQUIRE(n.ok());
    CHECK(*n == len);
    CHECK(out == Slice(fx.pt, off, len));
  }
  // Reads past the end are clipped, and the end itself reads 0 bytes.
  Bytes out(5000, 0);
  auto n = reader->ReadAt(size - 100, out);
  REQUIRE(n.ok());
  CHECK(*n == 100);
  CHECK(Slice(out, 0, 100) == Slice(fx.pt, size - 100, 100));
  CHECK(reader->ReadAt(size, out).value() == 0);
  CHECK(reader->ReadAt(size + 12345, out).value() == 0);
  CHECK(reader->ReadAt(3, std::span<uint8_t>()).value() == 0);
  REQUIRE(reader->AuthenticatedSize().ok());
  CHECK(reader->AuthenticatedSize().value() == size);

  // The reader is movable and keeps working after a move.
  cob::RandomAccessReader moved = std::move(*reader);
  Bytes again(10);
  REQUIRE(moved.ReadAt(20000, again).ok());
  CHECK(again == Slice(fx.pt, 20000, 10));
}

TEST_CASE("cobblestone random access with an empty final chunk", "[cobblestone]") {
  Fixture fx(3 * cob::kChunkSize);
  cobtest::TempFile file(fx.File(fx.ct));
  auto reader = cob::RandomAccessReader::Open(fx.key, kContext, file.fd(), kOffset, fx.ct.size());
  REQUIRE(reader.ok());
  CHECK(reader->ClaimedSize().value() == 3 * cob::kChunkSize);
  Bytes out(cob::kChunkSize + 10);
  auto n = reader->ReadAt(2 * cob::kChunkSize, out);
  REQUIRE(n.ok());
  CHECK(*n == cob::kChunkSize);
  CHECK(Slice(out, 0, cob::kChunkSize) == Slice(fx.pt, 2 * cob::kChunkSize, cob::kChunkSize));
  CHECK(reader->AuthenticatedSize().value() == 3 * cob::kChunkSize);

  Fixture empty(0);
  cobtest::TempFile file0(empty.File(empty.ct));
  auto r0 =
      cob::RandomAccessReader::Open(empty.key, kContext, file0.fd(), kOffset, empty.ct.size());
  REQUIRE(r0.ok());
  CHECK(r0->AuthenticatedSize().value() == 0);
  CHECK(r0->ReadAt(0, out).value() == 0);
}

TEST_CASE("cobblestone random access: a bad chunk fails only the reads that touch it",
          "[cobblestone]") {
  Fixture fx(10 * cob::kChunkSize + 500);
  Bytes bad = fx.ct;
  bad[ChunkOffset(5) + 100] ^= 0x04;
  cobtest::TempFile file(fx.File(bad));
  auto reader = cob::RandomAccessReader::Open(fx.key, kContext, file.fd(), kOffset, bad.size());
  REQUIRE(reader.ok());

  auto expect_fail = [&](uint64_t off, size_t len) {
    INFO("offset " << off << " length " << len);
    Bytes out(len, 0xaa);
    auto n = reader->ReadAt(off, out);
    REQUIRE_FALSE(n.ok());
    CHECK(n.error().code == ErrorCode::kPayloadAuthFailed);
    CHECK(out == Bytes(len, 0));  // nothing of the failed read is left behind
  };
  auto expect_ok = [&](uint64_t off, size_t len) {
    INFO("offset " << off << " length " << len);
    Bytes out(len);
    auto n = reader->ReadAt(off, out);
    REQUIRE(n.ok());
    CHECK(out == Slice(fx.pt, off, len));
  };
  expect_fail(5 * cob::kChunkSize, 1);
  expect_fail(5 * cob::kChunkSize + 16383, 1);
  expect_fail(4 * cob::kChunkSize + 16000, 1000);  // chunks 4 and 5
  expect_fail(0, 10 * cob::kChunkSize);
  expect_ok(0, 5 * cob::kChunkSize);
  expect_ok(4 * cob::kChunkSize + 16000, 384);
  expect_ok(6 * cob::kChunkSize, 4 * cob::kChunkSize + 500);
  // Failing once does not break reads elsewhere (each chunk stands alone).
  expect_ok(100, 100);
  REQUIRE(reader->AuthenticatedSize().ok());
}

TEST_CASE("cobblestone random access rejects truncated and extended payloads", "[cobblestone]") {
  Fixture fx(4 * cob::kChunkSize + 700);
  const uint64_t full_size = fx.ct.size();

  SECTION("payload sizes no valid message has") {
    for (uint64_t size : {uint64_t{56}, uint64_t{56 + 15}, uint64_t{ChunkOffset(1)},
                          uint64_t{ChunkOffset(4)}, uint64_t{ChunkOffset(2) + 15}}) {
      INFO("payload size " << size);
      cobtest::TempFile file(fx.File(fx.ct));
      auto reader = cob::RandomAccessReader::Open(fx.key, kContext, file.fd(), kOffset, size);
      REQUIRE(reader.ok());  // the prefix is fine; the length is what is wrong
      CHECK(reader->ClaimedSize().error().code == ErrorCode::kPayloadAuthFailed);
      CHECK(reader->AuthenticatedSize().error().code == ErrorCode::kPayloadAuthFailed);
      Bytes out(10);
      CHECK(reader->ReadAt(0, out).error().code == ErrorCode::kPayloadAuthFailed);
    }
  }
  SECTION("truncated to a plausible length: the end never authenticates") {
    for (uint64_t size : {uint64_t{ChunkOffset(4) + 100}, uint64_t{ChunkOffset(3) + 16},
                          uint64_t{ChunkOffset(1) + 16399}, full_size - 1}) {
      INFO("payload size " << size);
      cobtest::TempFile file(fx.File(Slice(fx.ct, 0, static_cast<size_t>(size))));
      auto reader = cob::RandomAccessReader::Open(fx.key, kContext, file.fd(), kOffset, size);
      REQUIRE(reader.ok());
      REQUIRE(reader->ClaimedSize().ok());
      const uint64_t claimed = reader->ClaimedSize().value();
      auto auth = reader->AuthenticatedSize();
      REQUIRE_FALSE(auth.ok());
      CHECK(auth.error().code == ErrorCode::kPayloadAuthFailed);
      // A read that would report the end fails instead of returning a clean short count.
      Bytes out(100, 0xaa);
      auto at_end = reader->ReadAt(claimed, out);
      REQUIRE_FALSE(at_end.ok());
      CHECK(at_end.error().code == ErrorCode::kPayloadAuthFailed);
      auto over_end = reader->ReadAt(claimed - 1, out);
      REQUIRE_FALSE(over_end.ok());
      CHECK(out == Bytes(100, 0));
      // Chunks that are intact still read.
      Bytes first(1000);
      REQUIRE(reader->ReadAt(0, first).ok());
      CHECK(first == Slice(fx.pt, 0, 1000));
    }
  }
  SECTION("file shorter than the payload size it was opened with") {
    cobtest::TempFile file(Slice(fx.File(fx.ct), 0, kOffset + ChunkOffset(2)));
    auto reader = cob::RandomAccessReader::Open(fx.key, kContext, file.fd(), kOffset, full_size);
    REQUIRE(reader.ok());
    CHECK(reader->AuthenticatedSize().error().code == ErrorCode::kPayloadAuthFailed);
    Bytes out(10);
    CHECK(reader->ReadAt(3 * cob::kChunkSize, out).error().code == ErrorCode::kPayloadAuthFailed);
    REQUIRE(reader->ReadAt(cob::kChunkSize, out).ok());
  }
  SECTION("extended by a byte") {
    Bytes longer = fx.ct;
    longer.push_back(0);
    cobtest::TempFile file(fx.File(longer));
    auto reader =
        cob::RandomAccessReader::Open(fx.key, kContext, file.fd(), kOffset, longer.size());
    REQUIRE(reader.ok());
    CHECK(reader->AuthenticatedSize().error().code == ErrorCode::kPayloadAuthFailed);
  }
}

TEST_CASE("cobblestone random access Open checks the prefix", "[cobblestone]") {
  Fixture fx(1000);
  cobtest::TempFile file(fx.File(fx.ct));
  auto wrong_ctx =
      cob::RandomAccessReader::Open(fx.key, Bytes{'x'}, file.fd(), kOffset, fx.ct.size());
  CHECK(wrong_ctx.error().code == ErrorCode::kAuthFailed);
  auto wrong_key = cob::RandomAccessReader::Open(keyhold::SecretBytes::Random(32), kContext,
                                                 file.fd(), kOffset, fx.ct.size());
  CHECK(wrong_key.error().code == ErrorCode::kAuthFailed);
  auto short_key = cob::RandomAccessReader::Open(keyhold::SecretBytes::Random(31), kContext,
                                                 file.fd(), kOffset, fx.ct.size());
  CHECK(short_key.error().code == ErrorCode::kMalformed);
  auto too_short = cob::RandomAccessReader::Open(fx.key, kContext, file.fd(), kOffset, 55);
  CHECK(too_short.error().code == ErrorCode::kAuthFailed);
  auto past_eof = cob::RandomAccessReader::Open(fx.key, kContext, file.fd(), 1 << 20, 1000);
  CHECK(past_eof.error().code == ErrorCode::kAuthFailed);
  auto overflow =
      cob::RandomAccessReader::Open(fx.key, kContext, file.fd(), UINT64_MAX - 10, fx.ct.size());
  CHECK(overflow.error().code == ErrorCode::kInvalidArgument);
  auto shifted =
      cob::RandomAccessReader::Open(fx.key, kContext, file.fd(), kOffset + 1, fx.ct.size());
  CHECK(shifted.error().code == ErrorCode::kAuthFailed);
}
