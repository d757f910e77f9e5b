// Streaming Cobblestone: round trips across chunk and batch boundaries in the serial and
// parallel paths, exact failure classes and released bytes for tampering, truncation and
// trailing data, the commitment-first rule, the chunk-counter limit, and I/O errors.
#include <stdlib.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "cobblestone_test_util.h"
#include "internal/cobblestone_engine.h"
#include "keyhold/crypto/aes_gcm.h"
#include "keyhold/crypto/cobblestone.h"

namespace cob = keyhold::cobblestone;
namespace internal = keyhold::cobblestone::internal;
using cobtest::Bytes;
using keyhold::ErrorCode;

namespace {

constexpr size_t kMiB = 1024 * 1024;
const Bytes kContext = {'o', 'b', 'j', 'e', 'c', 't', ' ', '1'};

Bytes EncryptWithSalt(const keyhold::SecretBytes& key, const Bytes& salt, const Bytes& ctx,
                      const Bytes& pt, unsigned threads) {
  cobtest::MemorySource src(pt);
  cobtest::VectorSink sink;
  auto r = cob::testing::EncryptWithSaltForTesting(key, salt, ctx, src, sink, {.threads = threads});
  REQUIRE(r.ok());
  CHECK(r->plaintext_bytes == pt.size());
  CHECK(r->chunks == pt.size() / cob::kChunkSize + 1);
  return sink.bytes;
}

struct Outcome {
  bool ok = false;
  ErrorCode code = ErrorCode::kInternal;
  Bytes out;
  int writes = 0;
};

Outcome Decrypt(const keyhold::SecretBytes& key, const Bytes& ctx, std::span<const uint8_t> ct,
                unsigned threads, size_t max_read = 0) {
  cobtest::MemorySource src(ct, max_read);
  cobtest::VectorSink sink;
  auto r = cob::Decrypt(key, ctx, src, sink, {.threads = threads});
  Outcome o;
  o.ok = r.ok();
  if (r.ok()) {
    CHECK(r->plaintext_bytes == sink.bytes.size());
  } else {
    o.code = r.error().code;
  }
  o.out = std::move(sink.bytes);
  o.writes = sink.writes;
  return o;
}

// Decrypts with threads = 1 and 4, checks both agree, returns the serial outcome.
Outcome DecryptBoth(const keyhold::SecretBytes& key, const Bytes& ctx,
                    std::span<const uint8_t> ct) {
  Outcome serial = Decrypt(key, ctx, ct, 1);
  Outcome parallel = Decrypt(key, ctx, ct, 4);
  CHECK(serial.ok == parallel.ok);
  CHECK(serial.code == parallel.code);
  CHECK(serial.out == parallel.out);
  return serial;
}

Bytes Prefix(const Bytes& pt, size_t n) {
  return Bytes(pt.begin(), pt.begin() + static_cast<std::ptrdiff_t>(n));
}

size_t ChunkOffset(size_t i) { return cob::kPrefixSize + i * cob::kEncryptedChunkSize; }

}  // namespace

TEST_CASE("cobblestone round trip at chunk and stripe boundaries, serial = parallel",
          "[cobblestone]") {
  const auto key = keyhold::SecretBytes::Random(32);
  const Bytes salt = cobtest::RandomBytesForTest(24, 1);
  // Stripe 0 is chunk 0; stripe s >= 1 holds chunks 1 + 32 (s - 1) .. 32 s.
  const size_t size =
      GENERATE(size_t{0}, size_t{1}, size_t{16383}, size_t{16384}, size_t{16385},
               32 * size_t{16384}, 33 * size_t{16384}, 33 * size_t{16384} + 1, 34 * size_t{16384},
               64 * size_t{16384}, 65 * size_t{16384}, 5 * kMiB + 7, 321 * size_t{16384},
               321 * size_t{16384} + 1, 12 * kMiB + 3);
  INFO("size " << size);
  const Bytes pt = cobtest::RandomBytesForTest(size, static_cast<uint32_t>(size));
  const Bytes ct1 = EncryptWithSalt(key, salt, kContext, pt, 1);
  const Bytes ct4 = EncryptWithSalt(key, salt, kContext, pt, 4);
  const Bytes ct0 = EncryptWithSalt(key, salt, kContext, pt, 0);
  CHECK(ct1 == ct4);
  CHECK(ct1 == ct0);
  // An empty chunk ends every message whose length is a multiple of 16 KiB.
  CHECK(ct1.size() == cob::kPrefixSize + size + cob::kTagSize * (size / cob::kChunkSize + 1));
  CHECK(Bytes(ct1.begin(), ct1.begin() + 24) == salt);

  for (unsigned threads : {1u, 2u, 4u, 0u}) {
    Outcome o = Decrypt(key, kContext, ct1, threads);
    REQUIRE(o.ok);
    CHECK(o.out == pt);
  }
  // A Source that returns short reads before the end (against its contract) changes nothing.
  Outcome chunky = Decrypt(key, kContext, ct1, 4, 1000);
  REQUIRE(chunky.ok);
  CHECK(chunky.out == pt);
  cobtest::MemorySource src(pt, 777);
  cobtest::VectorSink sink;
  REQUIRE(
      cob::testing::EncryptWithSaltForTesting(key, salt, kContext, src, sink, {.threads = 3}).ok());
  CHECK(sink.bytes == ct1);
}

// A Sink that sleeps in some of its writes, so that while one thread is writing, the others
// finish later stripes and leave them in the reorder window: the writing thread then writes
// several stripes in a row, stripes it did not read and seal or open itself. It records which
// thread made each write, as ReaderLog records which thread made each read that returned
// bytes. Sealing writes one stripe per write and reads one per read (the last stripe's read is
// followed by one returning 0), so write i and read i are the same stripe.
class SlowSink final : public cob::Sink {
 public:
  keyhold::Status Write(std::span<const uint8_t> data) override {
    threads.push_back(std::this_thread::get_id());
    if (threads.size() % 3 == 1) std::this_thread::sleep_for(std::chrono::milliseconds(3));
    bytes.insert(bytes.end(), data.begin(), data.end());
    return {};
  }
  Bytes bytes;
  std::vector<std::thread::id> threads;
};

class ReaderLog final : public cob::Source {
 public:
  explicit ReaderLog(std::span<const uint8_t> data) : inner_(data) {}
  keyhold::Result<size_t> Read(std::span<uint8_t> out) override {
    auto r = inner_.Read(out);
    if (r.ok() && *r != 0) threads.push_back(std::this_thread::get_id());
    return r;
  }
  std::vector<std::thread::id> threads;

 private:
  cobtest::MemorySource inner_;
};

TEST_CASE("cobblestone: a slow Sink gets the serial output, in order, from any thread",
          "[cobblestone]") {
  const auto key = keyhold::SecretBytes::Random(32);
  const Bytes salt = cobtest::RandomBytesForTest(24, 11);
  // 1 + 40 stripes: the helpers run well ahead of the writes.
  const Bytes pt = cobtest::RandomBytesForTest(1281 * cob::kChunkSize + 99, 12);
  const Bytes ct = EncryptWithSalt(key, salt, kContext, pt, 1);
  for (unsigned threads : {2u, 4u}) {
    INFO("threads " << threads);
    ReaderLog src(pt);
    SlowSink sealed;
    REQUIRE(cob::testing::EncryptWithSaltForTesting(key, salt, kContext, src, sealed,
                                                    {.threads = threads})
                .ok());
    CHECK(sealed.bytes == ct);
    // Some stripe was written by another thread than the one that read and sealed it: a
    // thread that finishes out of turn leaves its stripe to the writing thread.
    REQUIRE(src.threads.size() == 42);
    REQUIRE(sealed.threads.size() == 42);
    CHECK(src.threads != sealed.threads);

    cobtest::MemorySource in(ct);
    SlowSink opened;
    REQUIRE(cob::Decrypt(key, kContext, in, opened, {.threads = threads}).ok());
    CHECK(opened.bytes == pt);

    // A bad chunk deep in the message: exactly the chunks before it are released.
    Bytes bad = ct;
    bad[ChunkOffset(700) + 5] ^= 1;
    cobtest::MemorySource bad_in(bad);
    SlowSink partial;
    auto r = cob::Decrypt(key, kContext, bad_in, partial, {.threads = threads});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kPayloadAuthFailed);
    CHECK(partial.bytes == Prefix(pt, 700 * cob::kChunkSize));
  }
}

// A thread that waits for a free lane seals or opens chunks of the stripes other threads
// still hold (cobblestone_engine.cpp). Whether it gets any depends on scheduling, so each
// message is compared with the serial path whatever happened, and the test requires that some
// messages did share chunks: four threads on fewer cores are preempted in mid-stripe often.
TEST_CASE("cobblestone: chunks shared between threads give the serial output", "[cobblestone]") {
  const auto key = keyhold::SecretBytes::Random(32);
  const Bytes salt = cobtest::RandomBytesForTest(24, 21);
  // 1 + 16 stripes and a short one.
  const Bytes pt = cobtest::RandomBytesForTest(16 * 32 * cob::kChunkSize + 1 + 7000, 22);
  const Bytes ct = EncryptWithSalt(key, salt, kContext, pt, 1);
  Bytes bad = ct;
  const size_t bad_chunk = 1 + 5 * 32 + 17;  // in the middle of stripe 6
  bad[ChunkOffset(bad_chunk) + 100] ^= 4;
  // Even runs read under the lock, odd runs positionally (as a regular file is read).
  uint64_t shared_seal = 0, shared_open = 0, shared_positional = 0;
  for (int run = 0;
       run < 400 && (shared_seal == 0 || shared_open == 0 || shared_positional == 0 || run < 20);
       ++run) {
    INFO("run " << run);
    const bool positional = run % 2 == 1;
    cobtest::MemorySource mem_src(pt);
    cobtest::PositionalMemorySource pos_src(pt);
    cobtest::VectorSink sealed;
    auto e = cob::testing::EncryptWithSaltForTesting(
        key, salt, kContext, positional ? static_cast<cob::Source&>(pos_src) : mem_src, sealed,
        {.threads = 4});
    REQUIRE(e.ok());
    REQUIRE(sealed.bytes == ct);
    REQUIRE(pos_src.ended == positional);
    shared_seal += e->shared_chunks;

    // Decrypts `in` through the run's kind of Source.
    auto decrypt = [&](const Bytes& in, cobtest::VectorSink& out) {
      cobtest::MemorySource mem(in);
      cobtest::PositionalMemorySource pos(in);
      return cob::Decrypt(key, kContext, positional ? static_cast<cob::Source&>(pos) : mem, out,
                          {.threads = 4});
    };
    cobtest::VectorSink opened;
    auto d = decrypt(ct, opened);
    REQUIRE(d.ok());
    REQUIRE(opened.bytes == pt);
    shared_open += d->shared_chunks;
    if (positional) shared_positional += e->shared_chunks + d->shared_chunks;

    // A bad chunk whose stripe may be opened by two threads: still exactly the chunks before
    // it are released.
    cobtest::VectorSink partial;
    auto b = decrypt(bad, partial);
    REQUIRE_FALSE(b.ok());
    REQUIRE(b.error().code == ErrorCode::kPayloadAuthFailed);
    REQUIRE(partial.bytes == Prefix(pt, bad_chunk * cob::kChunkSize));
  }
  CHECK(shared_seal > 0);
  CHECK(shared_open > 0);
  CHECK(shared_positional > 0);
  // One thread never shares.
  cobtest::MemorySource src(pt);
  cobtest::VectorSink sink;
  auto one =
      cob::testing::EncryptWithSaltForTesting(key, salt, kContext, src, sink, {.threads = 1});
  REQUIRE(one.ok());
  CHECK(one->shared_chunks == 0);
}

TEST_CASE("cobblestone output is written in large writes", "[cobblestone]") {
  const auto key = keyhold::SecretBytes::Random(32);
  const Bytes pt = cobtest::RandomBytesForTest(6 * kMiB, 5);
  cobtest::MemorySource src(pt);
  cobtest::VectorSink sink;
  REQUIRE(cob::Encrypt(key, kContext, src, sink, {.threads = 2}).ok());
  // Stripe 0 is one chunk (with the prefix in front), so that small messages need small
  // buffers; then stripes of 32 chunks (512 KiB): 11 of them, and the last 31 chunks with the
  // empty final chunk. 13 writes for 385 chunks, whichever thread wrote each.
  CHECK(sink.writes == 13);
  Outcome o = Decrypt(key, kContext, sink.bytes, 2);
  REQUIRE(o.ok);
  CHECK(o.out == pt);
  CHECK(o.writes == 13);  // 1 + 11 x 32 + 31 chunks; the empty final chunk releases nothing
}

TEST_CASE("cobblestone Encrypt uses a fresh salt per message", "[cobblestone]") {
  const auto key = keyhold::SecretBytes::Random(32);
  const Bytes pt = {1, 2, 3};
  Bytes a, b;
  for (Bytes* out : {&a, &b}) {
    cobtest::MemorySource src(pt);
    cobtest::VectorSink sink;
    REQUIRE(cob::Encrypt(key, kContext, src, sink).ok());
    *out = sink.bytes;
  }
  CHECK(Bytes(a.begin(), a.begin() + 24) != Bytes(b.begin(), b.begin() + 24));
  CHECK(a != b);
  CHECK(DecryptBoth(key, kContext, a).out == pt);
  CHECK(DecryptBoth(key, kContext, b).out == pt);
}

TEST_CASE("cobblestone checks the commitment before reading any chunk", "[cobblestone]") {
  const auto key = keyhold::SecretBytes::Random(32);
  const Bytes pt = cobtest::RandomBytesForTest(100000, 2);
  const Bytes ct = EncryptWithSalt(key, cobtest::RandomBytesForTest(24, 3), kContext, pt, 1);

  SECTION("wrong context") {
    for (unsigned threads : {1u, 4u}) {
      cobtest::MemorySource src(ct);
      cobtest::VectorSink sink;
      auto r = cob::Decrypt(key, Bytes{'o', 't', 'h', 'e', 'r'}, src, sink, {.threads = threads});
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == ErrorCode::kAuthFailed);
      CHECK(sink.bytes.empty());
      CHECK(sink.writes == 0);
      // Only the prefix was consumed: no chunk was even read, let alone decrypted.
      CHECK(src.consumed() == cob::kPrefixSize);
    }
  }
  SECTION("wrong key") {
    Outcome o = DecryptBoth(keyhold::SecretBytes::Random(32), kContext, ct);
    CHECK(o.code == ErrorCode::kAuthFailed);
    CHECK(o.writes == 0);
  }
  SECTION("any byte of the salt or commitment modified") {
    for (size_t i : {size_t{0}, size_t{23}, size_t{24}, size_t{55}}) {
      Bytes bad = ct;
      bad[i] ^= 0x01;
      Outcome o = DecryptBoth(key, kContext, bad);
      CHECK_FALSE(o.ok);
      CHECK(o.code == ErrorCode::kAuthFailed);
      CHECK(o.writes == 0);
    }
  }
  SECTION("prefix truncated") {
    for (size_t n : {size_t{0}, size_t{24}, size_t{55}}) {
      Outcome o = DecryptBoth(key, kContext, std::span(ct).first(n));
      CHECK(o.code == ErrorCode::kAuthFailed);
      CHECK(o.writes == 0);
    }
  }
  SECTION("key sizes") {
    for (size_t n : {size_t{0}, size_t{16}, size_t{31}, size_t{33}, size_t{64}}) {
      auto bad_key = keyhold::SecretBytes::Random(n);
      cobtest::MemorySource src(ct);
      cobtest::VectorSink sink;
      auto d = cob::Decrypt(bad_key, kContext, src, sink);
      REQUIRE_FALSE(d.ok());
      CHECK(d.error().code == ErrorCode::kMalformed);
      auto e = cob::Encrypt(bad_key, kContext, src, sink);
      REQUIRE_FALSE(e.ok());
      CHECK(e.error().code == ErrorCode::kInvalidArgument);
      CHECK(sink.writes == 0);
      CHECK_FALSE(cob::Derive(bad_key, Bytes(24), kContext).ok());
    }
    CHECK(cob::Derive(key, Bytes(23), kContext).error().code == ErrorCode::kInvalidArgument);
    CHECK(cob::Derive(key, Bytes(25), kContext).error().code == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("cobblestone releases exactly the chunks before a bad one", "[cobblestone]") {
  const auto key = keyhold::SecretBytes::Random(32);
  // 100 full chunks and a short one: stripe 0 (chunk 0), stripes of 32 (chunks 1-32, 33-64,
  // 65-96), and chunks 97-100 in the last, short stripe.
  const Bytes pt = cobtest::RandomBytesForTest(100 * cob::kChunkSize + 500, 4);
  const Bytes ct = EncryptWithSalt(key, cobtest::RandomBytesForTest(24, 5), kContext, pt, 4);
  const size_t final_index = 100;

  SECTION("a modified chunk, anywhere in a stripe") {
    for (size_t k :
         {size_t{0}, size_t{1}, size_t{2}, size_t{32}, size_t{33}, size_t{37}, size_t{63},
          size_t{64}, size_t{65}, size_t{70}, size_t{96}, size_t{97}, size_t{99}, final_index}) {
      for (size_t where : {size_t{0}, size_t{16383}, size_t{16399}}) {
        if (k == final_index && where >= 516) continue;
        INFO("chunk " << k << " byte " << where);
        Bytes bad = ct;
        bad[ChunkOffset(k) + where] ^= 0x80;
        Outcome o = DecryptBoth(key, kContext, bad);
        CHECK_FALSE(o.ok);
        CHECK(o.code == ErrorCode::kPayloadAuthFailed);
        CHECK(o.out == Prefix(pt, k * cob::kChunkSize));
      }
    }
  }
  SECTION("two modified chunks, in one stripe or in two: the first one counts") {
    for (size_t second : {size_t{30}, size_t{50}, size_t{90}}) {
      Bytes bad = ct;
      bad[ChunkOffset(second) + 7] ^= 1;
      bad[ChunkOffset(20) + 7] ^= 1;
      Outcome o = DecryptBoth(key, kContext, bad);
      CHECK(o.code == ErrorCode::kPayloadAuthFailed);
      CHECK(o.out == Prefix(pt, 20 * cob::kChunkSize));
    }
  }
  SECTION("swapped chunks") {
    Bytes bad = ct;
    std::swap_ranges(bad.begin() + static_cast<std::ptrdiff_t>(ChunkOffset(3)),
                     bad.begin() + static_cast<std::ptrdiff_t>(ChunkOffset(4)),
                     bad.begin() + static_cast<std::ptrdiff_t>(ChunkOffset(4)));
    Outcome o = DecryptBoth(key, kContext, bad);
    CHECK(o.code == ErrorCode::kPayloadAuthFailed);
    CHECK(o.out == Prefix(pt, 3 * cob::kChunkSize));
  }
  SECTION("truncated at every chunk boundary, in mid chunk, and in the final chunk") {
    for (size_t k : {size_t{0}, size_t{1}, size_t{32}, size_t{33}, size_t{34}, size_t{63},
                     size_t{64}, size_t{65}, size_t{97}, size_t{100}}) {
      INFO("cut after " << k << " chunks");
      Outcome o = DecryptBoth(key, kContext, std::span(ct).first(ChunkOffset(k)));
      CHECK_FALSE(o.ok);
      CHECK(o.code == ErrorCode::kPayloadAuthFailed);
      // Full chunks are authenticated as non-final, so those before the cut are released.
      CHECK(o.out == Prefix(pt, k * cob::kChunkSize));
    }
    for (size_t cut : {size_t{1}, size_t{15}, size_t{16}, size_t{8000}, size_t{16399}}) {
      Outcome o = DecryptBoth(key, kContext, std::span(ct).first(ChunkOffset(64) + cut));
      CHECK(o.code == ErrorCode::kPayloadAuthFailed);
      CHECK(o.out == Prefix(pt, 64 * cob::kChunkSize));
    }
    Outcome o = DecryptBoth(key, kContext, std::span(ct).first(ct.size() - 1));
    CHECK(o.code == ErrorCode::kPayloadAuthFailed);
    CHECK(o.out == Prefix(pt, 100 * cob::kChunkSize));
  }
  SECTION("trailing data") {
    for (size_t extra : {size_t{1}, size_t{16}, size_t{20000}}) {
      Bytes bad = ct;
      bad.insert(bad.end(), extra, 0);
      Outcome o = DecryptBoth(key, kContext, bad);
      CHECK(o.code == ErrorCode::kPayloadAuthFailed);
      CHECK(o.out == Prefix(pt, 100 * cob::kChunkSize));
    }
  }
}

TEST_CASE("cobblestone message of whole stripes needs its empty final chunk", "[cobblestone]") {
  const auto key = keyhold::SecretBytes::Random(32);
  // 33 and 65 chunks fill stripes exactly: the empty final chunk is a stripe of its own.
  const size_t chunks = GENERATE(size_t{1}, size_t{33}, size_t{64}, size_t{65});
  INFO(chunks << " chunks");
  const Bytes pt = cobtest::RandomBytesForTest(chunks * cob::kChunkSize, 6);
  const Bytes ct = EncryptWithSalt(key, cobtest::RandomBytesForTest(24, 7), kContext, pt, 2);
  REQUIRE(ct.size() == ChunkOffset(chunks) + cob::kTagSize);
  CHECK(DecryptBoth(key, kContext, ct).out == pt);
  Outcome o = DecryptBoth(key, kContext, std::span(ct).first(ChunkOffset(chunks)));
  CHECK(o.code == ErrorCode::kPayloadAuthFailed);
  CHECK(o.out == pt);  // every chunk authenticated, but the end did not
}

TEST_CASE("cobblestone propagates source and sink errors", "[cobblestone]") {
  const auto key = keyhold::SecretBytes::Random(32);
  const Bytes pt = cobtest::RandomBytesForTest(3 * kMiB, 8);
  const Bytes ct = EncryptWithSalt(key, cobtest::RandomBytesForTest(24, 9), kContext, pt, 2);
  for (unsigned threads : {1u, 2u}) {
    {
      cobtest::FailingSource src(pt, kMiB + 5);
      cobtest::VectorSink sink;
      auto r = cob::Encrypt(key, kContext, src, sink, {.threads = threads});
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == ErrorCode::kIo);
    }
    {
      cobtest::MemorySource src(pt);
      cobtest::VectorSink sink;
      sink.fail_after_writes = 1;
      auto r = cob::Encrypt(key, kContext, src, sink, {.threads = threads});
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == ErrorCode::kIo);
    }
    {
      cobtest::FailingSource src(ct, kMiB);
      cobtest::VectorSink sink;
      auto r = cob::Decrypt(key, kContext, src, sink, {.threads = threads});
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == ErrorCode::kIo);
    }
    {
      cobtest::MemorySource src(ct);
      cobtest::VectorSink sink;
      sink.fail_after_writes = 1;
      auto r = cob::Decrypt(key, kContext, src, sink, {.threads = threads});
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == ErrorCode::kIo);
      CHECK(sink.bytes == Prefix(pt, 16384));  // stripe 0: one chunk
    }
  }
}

TEST_CASE("cobblestone: output before a source error is the serial path's", "[cobblestone]") {
  // Read and Write run on whichever thread holds the stripe; what was written before the
  // failure must not depend on it.
  const auto key = keyhold::SecretBytes::Random(32);
  const Bytes pt = cobtest::RandomBytesForTest(3 * kMiB, 12);
  const Bytes ct = EncryptWithSalt(key, cobtest::RandomBytesForTest(24, 13), kContext, pt, 2);
  for (size_t ok_bytes : {size_t{0}, size_t{16384}, size_t{16385}, kMiB, kMiB + 5, 2 * kMiB + 1}) {
    INFO("fails after " << ok_bytes << " bytes");
    std::vector<size_t> enc_written;
    std::vector<Bytes> dec_out;
    for (unsigned threads : {1u, 2u, 4u}) {
      cobtest::FailingSource src(pt, ok_bytes);
      cobtest::VectorSink sink;
      auto r = cob::Encrypt(key, kContext, src, sink, {.threads = threads});
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == ErrorCode::kIo);
      enc_written.push_back(sink.bytes.size());
      cobtest::FailingSource csrc(ct, ok_bytes);
      cobtest::VectorSink csink;
      auto d = cob::Decrypt(key, kContext, csrc, csink, {.threads = threads});
      REQUIRE_FALSE(d.ok());
      CHECK(d.error().code == ErrorCode::kIo);
      dec_out.push_back(csink.bytes);
    }
    // Encrypt draws a fresh salt each time: compare how much was written, not the bytes.
    CHECK(enc_written[0] == enc_written[1]);
    CHECK(enc_written[0] == enc_written[2]);
    CHECK(dec_out[0] == dec_out[1]);
    CHECK(dec_out[0] == dec_out[2]);
    CHECK(dec_out[0] == Prefix(pt, dec_out[0].size()));
  }
}

namespace {

class ThrowingSink final : public cob::Sink {
 public:
  explicit ThrowingSink(int nth) : nth_(nth) {}
  keyhold::Status Write(std::span<const uint8_t>) override {
    if (++writes_ == nth_) throw std::runtime_error("sink: test");
    return {};
  }

 private:
  int nth_;
  int writes_ = 0;
};

class ThrowingSource final : public cob::Source {
 public:
  ThrowingSource(std::span<const uint8_t> data, int nth) : inner_(data), nth_(nth) {}
  keyhold::Result<size_t> Read(std::span<uint8_t> out) override {
    if (++reads_ == nth_) throw std::runtime_error("source: test");
    return inner_.Read(out);
  }

 private:
  cobtest::MemorySource inner_;
  int nth_;
  int reads_ = 0;
};

}  // namespace

TEST_CASE("cobblestone: an exception thrown by a Source or Sink reaches the caller",
          "[cobblestone]") {
  // On any thread: the others stop and the exception is rethrown to the caller, instead of
  // std::terminate ending the process.
  const auto key = keyhold::SecretBytes::Random(32);
  const Bytes pt = cobtest::RandomBytesForTest(3 * kMiB, 14);
  const Bytes ct = EncryptWithSalt(key, cobtest::RandomBytesForTest(24, 15), kContext, pt, 2);
  for (unsigned threads : {1u, 2u, 4u}) {
    for (int nth : {1, 2, 3, 6}) {
      INFO(threads << " threads, call " << nth);
      {
        cobtest::MemorySource src(pt);
        ThrowingSink sink(nth);
        CHECK_THROWS_AS(cob::Encrypt(key, kContext, src, sink, {.threads = threads}),
                        std::runtime_error);
      }
      {
        ThrowingSource src(pt, nth);
        cobtest::VectorSink sink;
        CHECK_THROWS_AS(cob::Encrypt(key, kContext, src, sink, {.threads = threads}),
                        std::runtime_error);
      }
      {
        cobtest::MemorySource src(ct);
        ThrowingSink sink(nth);
        CHECK_THROWS_AS(cob::Decrypt(key, kContext, src, sink, {.threads = threads}),
                        std::runtime_error);
      }
      {
        // Decrypt's first Read is the prefix (on the caller's thread); the stripes follow.
        ThrowingSource src(ct, nth + 1);
        cobtest::VectorSink sink;
        CHECK_THROWS_AS(cob::Decrypt(key, kContext, src, sink, {.threads = threads}),
                        std::runtime_error);
      }
    }
  }
}

TEST_CASE("cobblestone: an error in a stripe wins over an exception in a later one",
          "[cobblestone]") {
  // A thread may read stripe k+1 before stripe k has failed; the serial path never reads it,
  // so an exception from that read must not replace stripe k's error.
  const auto key = keyhold::SecretBytes::Random(32);
  const Bytes pt = cobtest::RandomBytesForTest(200 * cob::kChunkSize, 16);
  const Bytes ct = EncryptWithSalt(key, cobtest::RandomBytesForTest(24, 17), kContext, pt, 2);
  Bytes bad = ct;
  bad[ChunkOffset(40) + 9] ^= 4;  // stripe 2 (chunks 33-64)
  for (unsigned threads : {1u, 2u, 4u}) {
    INFO(threads << " threads");
    for (int round = 0; round < 20; ++round) {
      // Decrypt reads the prefix, then one stripe per call: call 5 asks for stripe 3.
      ThrowingSource src(bad, 5);
      cobtest::VectorSink sink;
      auto r = cob::Decrypt(key, kContext, src, sink, {.threads = threads});
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == ErrorCode::kPayloadAuthFailed);
      CHECK(sink.bytes == Prefix(pt, 40 * cob::kChunkSize));

      // Encrypt: the Sink fails on stripe 2, the Source throws when asked for stripe 3.
      ThrowingSource psrc(pt, 4);
      cobtest::VectorSink psink;
      psink.fail_after_writes = 2;
      auto e = cob::Encrypt(key, kContext, psrc, psink, {.threads = threads});
      REQUIRE_FALSE(e.ok());
      CHECK(e.error().code == ErrorCode::kIo);
    }
  }
}

TEST_CASE("cobblestone raw mode argument checks", "[cobblestone]") {
  const auto key = keyhold::SecretBytes::Random(32);
  const Bytes pt = {1, 2, 3};
  cobtest::MemorySource src(pt);
  cobtest::VectorSink sink;
  CHECK(cob::hazmat::EncryptRaw(key, Bytes(11), src, sink).error().code ==
        ErrorCode::kInvalidArgument);
  CHECK(cob::hazmat::EncryptRaw(keyhold::SecretBytes::Random(16), Bytes(12), src, sink)
            .error()
            .code == ErrorCode::kInvalidArgument);
  CHECK(cob::hazmat::DecryptRaw(key, Bytes(13), src, sink).error().code ==
        ErrorCode::kInvalidArgument);
  CHECK(cob::hazmat::DecryptRaw(keyhold::SecretBytes::Random(31), Bytes(12), src, sink)
            .error()
            .code == ErrorCode::kMalformed);
  CHECK(sink.writes == 0);
}

TEST_CASE("cobblestone chunk nonce is base XOR be96(index)", "[cobblestone]") {
  std::array<uint8_t, 12> base{};
  for (size_t i = 0; i < 12; ++i) base[i] = static_cast<uint8_t>(0xa0 + i);
  auto n = internal::ChunkNonce(base, 0);
  CHECK(n == base);
  n = internal::ChunkNonce(base, 0x0102);
  auto expect = base;
  expect[10] ^= 0x01;
  expect[11] ^= 0x02;
  CHECK(n == expect);
  n = internal::ChunkNonce(base, cob::kMaxChunks - 1);  // 0x3f_ffff_ffff
  expect = base;
  expect[7] ^= 0x3f;
  for (size_t i = 8; i < 12; ++i) expect[i] ^= 0xff;
  CHECK(n == expect);
}

TEST_CASE("cobblestone stops at 2^38 chunks", "[cobblestone]") {
  const auto key = keyhold::SecretBytes::Random(32);
  std::array<uint8_t, 12> nonce{};
  nonce[0] = 9;
  const uint64_t last = cob::kMaxChunks - 1;

  for (unsigned threads : {1u, 4u}) {
    // The last allowed index holds a final chunk...
    const Bytes small = {1, 2, 3};
    cobtest::MemorySource src(small);
    cobtest::VectorSink sink;
    auto r = internal::EncryptChunks(key.ExposeSecret(), nonce, {}, src, sink, {.threads = threads},
                                     last);
    REQUIRE(r.ok());
    cobtest::MemorySource back_src(sink.bytes);
    cobtest::VectorSink back;
    REQUIRE(internal::DecryptChunks(key.ExposeSecret(), nonce, back_src, back, {.threads = threads},
                                    last)
                .ok());
    CHECK(back.bytes == small);

    // ...but a full chunk there would need a final chunk at index 2^38: refused up front.
    for (size_t size : {cob::kChunkSize, 3 * cob::kChunkSize, 2 * kMiB}) {
      const Bytes pt(size, 7);
      cobtest::MemorySource big_src(pt);
      cobtest::VectorSink big_sink;
      auto e = internal::EncryptChunks(key.ExposeSecret(), nonce, {}, big_src, big_sink,
                                       {.threads = threads}, last - (size > kMiB ? 10 : 0));
      REQUIRE_FALSE(e.ok());
      CHECK(e.error().code == ErrorCode::kInvalidArgument);
    }
  }

  // A payload that continues past index 2^38 - 1 is rejected even if its chunks are
  // correctly sealed (built here with AesGcm directly, at indices 2^38 - 1 and 2^38).
  auto gcm = keyhold::AesGcm::Create(key.ExposeSecret());
  REQUIRE(gcm.ok());
  const Bytes full(cob::kChunkSize, 5);
  Bytes ct(cob::kEncryptedChunkSize + cob::kTagSize);
  REQUIRE(gcm->Seal(internal::ChunkNonce(nonce, last), {}, full,
                    std::span(ct).first(cob::kEncryptedChunkSize))
              .ok());
  REQUIRE(gcm->Seal(internal::ChunkNonce(nonce, cob::kMaxChunks), {}, {},
                    std::span(ct).subspan(cob::kEncryptedChunkSize))
              .ok());
  for (unsigned threads : {1u, 4u}) {
    cobtest::MemorySource src(ct);
    cobtest::VectorSink sink;
    auto d =
        internal::DecryptChunks(key.ExposeSecret(), nonce, src, sink, {.threads = threads}, last);
    REQUIRE_FALSE(d.ok());
    CHECK(d.error().code == ErrorCode::kPayloadAuthFailed);
    CHECK(sink.bytes == full);
  }
}

TEST_CASE("cobblestone thread count resolution", "[cobblestone]") {
  CHECK(internal::ResolveThreads(1) == 1);
  CHECK(internal::ResolveThreads(3) == 3);
  CHECK(internal::ResolveThreads(1000) == internal::kMaxThreads);
  const unsigned def = internal::ResolveThreads(0);
  CHECK(def >= 1);
  CHECK(def <= internal::kMaxDefaultThreads);
}

TEST_CASE("FdSource: end of file is final", "[cobblestone]") {
  // A file that grows after a short read (someone appends while we encrypt) must not make a
  // later Read return data: the message ended at the first end of file the engine saw.
  char path[] = "/tmp/keyhold-fdsource-XXXXXX";
  const int wfd = mkstemp(path);
  REQUIRE(wfd >= 0);
  unlink(path);
  const int rfd = dup(wfd);
  REQUIRE(rfd >= 0);
  REQUIRE(write(wfd, "hello", 5) == 5);
  REQUIRE(lseek(rfd, 0, SEEK_SET) == 0);
  cob::FdSource src(rfd);
  std::array<uint8_t, 10> buf{};
  auto first = src.Read(buf);
  REQUIRE(first.ok());
  CHECK(*first == 5);
  REQUIRE(pwrite(wfd, "world", 5, 5) == 5);  // the file grows behind the source
  auto second = src.Read(buf);
  REQUIRE(second.ok());
  CHECK(*second == 0);
  std::array<uint8_t, 5> exact{};
  cob::FdSource fresh(rfd);  // a full read is not an end of file
  REQUIRE(lseek(rfd, 0, SEEK_SET) == 0);
  for (size_t expected : {5u, 5u, 0u}) {
    auto r = fresh.Read(exact);
    REQUIRE(r.ok());
    CHECK(*r == expected);
  }
  close(rfd);
  close(wfd);
}

namespace {

// An unlinked temp file holding `junk` bytes and then `data`, positioned at `data`.
int FileAt(size_t junk, const Bytes& data) {
  char path[] = "/tmp/keyhold-positional-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  unlink(path);
  const Bytes pad(junk, 0xee);
  REQUIRE(write(fd, pad.data(), pad.size()) == static_cast<ssize_t>(pad.size()));
  REQUIRE(write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()));
  REQUIRE(lseek(fd, static_cast<off_t>(junk), SEEK_SET) == static_cast<off_t>(junk));
  return fd;
}

// Forwards to an FdSource and counts the positional reads.
class CountingFdSource final : public cob::Source {
 public:
  explicit CountingFdSource(int fd) : inner_(fd) {}
  keyhold::Result<size_t> Read(std::span<uint8_t> out) override { return inner_.Read(out); }
  bool StartPositional() override { return inner_.StartPositional(); }
  void EndPositional() override { inner_.EndPositional(); }
  keyhold::Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> out) override {
    read_at.fetch_add(1);
    return inner_.ReadAt(offset, out);
  }
  std::atomic<int> read_at{0};

 private:
  cob::FdSource inner_;
};

}  // namespace

TEST_CASE("FdSource: positional reads only for a regular file, from where it stands",
          "[cobblestone]") {
  const Bytes data = cobtest::RandomBytesForTest(5000, 31);
  const int fd = FileAt(123, data);
  cob::FdSource src(fd);
  std::array<uint8_t, 8> buf{};
  CHECK_FALSE(src.ReadAt(0, buf).ok());  // not before StartPositional
  auto first = src.Read(std::span<uint8_t>(buf).first(4));
  REQUIRE(first.ok());
  REQUIRE(*first == 4);
  REQUIRE(src.StartPositional());
  auto at = src.ReadAt(10, buf);  // offset 10 from where the Reads stopped: data[14..22)
  REQUIRE(at.ok());
  REQUIRE(*at == 8);
  CHECK(Bytes(buf.begin(), buf.end()) == Bytes(data.begin() + 14, data.begin() + 22));
  auto end = src.ReadAt(4990, buf);  // short at the end of the file, then nothing
  REQUIRE(end.ok());
  CHECK(*end == 6);
  auto past = src.ReadAt(1u << 30, buf);
  REQUIRE(past.ok());
  CHECK(*past == 0);
  close(fd);

  int p[2];
  REQUIRE(pipe(p) == 0);
  cob::FdSource pipe_src(p[0]);
  CHECK_FALSE(pipe_src.StartPositional());
  close(p[0]);
  close(p[1]);
}

TEST_CASE("cobblestone: a file read positionally gives the serial output", "[cobblestone]") {
  // Several threads read their stripes with pread at once; the input does not start at
  // offset 0 (a payload after its header), and the tests above read from memory only.
  const auto key = keyhold::SecretBytes::Random(32);
  const Bytes salt = cobtest::RandomBytesForTest(24, 32);
  const Bytes pt = cobtest::RandomBytesForTest(300 * cob::kChunkSize + 77, 33);
  const Bytes ct = EncryptWithSalt(key, salt, kContext, pt, 1);
  for (unsigned threads : {2u, 3u, 4u}) {
    INFO("threads " << threads);
    const int in = FileAt(4097, pt);
    CountingFdSource src(in);
    cobtest::VectorSink sealed;
    REQUIRE(cob::testing::EncryptWithSaltForTesting(key, salt, kContext, src, sealed,
                                                    {.threads = threads})
                .ok());
    CHECK(sealed.bytes == ct);
    CHECK(src.read_at.load() >= 9);  // stripes 2-9 and the short one, after two Reads
    close(in);

    const int cin = FileAt(100, ct);
    cob::FdSource csrc(cin);
    cobtest::VectorSink opened;
    REQUIRE(cob::Decrypt(key, kContext, csrc, opened, {.threads = threads}).ok());
    CHECK(opened.bytes == pt);
    // The file offset ends where serial reads leave it: at the end (the fd may be a shell's).
    CHECK(lseek(cin, 0, SEEK_CUR) == static_cast<off_t>(100 + ct.size()));
    close(cin);

    // A bad chunk, a truncation and trailing data, read positionally: the serial outcome.
    for (int tamper = 0; tamper < 3; ++tamper) {
      Bytes bad = ct;
      if (tamper == 0) bad[ChunkOffset(200) + 9] ^= 1;
      if (tamper == 1) bad.resize(ChunkOffset(150));
      if (tamper == 2) bad.push_back(0);
      const Outcome serial = Decrypt(key, kContext, bad, 1);
      const int bfd = FileAt(7, bad);
      cob::FdSource bsrc(bfd);
      cobtest::VectorSink partial;
      auto r = cob::Decrypt(key, kContext, bsrc, partial, {.threads = threads});
      close(bfd);
      INFO("tamper " << tamper);
      REQUIRE_FALSE(r.ok());
      CHECK_FALSE(serial.ok);
      CHECK(r.error().code == serial.code);
      CHECK(partial.bytes == serial.out);
    }
  }
}

TEST_CASE("cobblestone: positional reads at stripe boundaries give the serial outcome",
          "[cobblestone]") {
  // 33 chunks: the first positional read is at the end of the input; 65 and 97: the input
  // ends with a whole stripe, and the final empty chunk is in a stripe of its own.
  const auto key = keyhold::SecretBytes::Random(32);
  const Bytes salt = cobtest::RandomBytesForTest(24, 41);
  for (size_t chunks : {size_t{33}, size_t{65}, size_t{97}}) {
    for (size_t extra : {size_t{0}, size_t{1}}) {
      const Bytes pt = cobtest::RandomBytesForTest(chunks * cob::kChunkSize + extra, 42);
      const Bytes ct = EncryptWithSalt(key, salt, kContext, pt, 1);
      for (unsigned threads : {2u, 4u}) {
        INFO(chunks << " chunks + " << extra << ", threads " << threads);
        cobtest::PositionalMemorySource src(pt);
        cobtest::VectorSink sealed;
        REQUIRE(cob::testing::EncryptWithSaltForTesting(key, salt, kContext, src, sealed,
                                                        {.threads = threads})
                    .ok());
        CHECK(sealed.bytes == ct);
        CHECK(src.started);
        const int fd = FileAt(3, ct);
        cob::FdSource fsrc(fd);
        cobtest::VectorSink opened;
        REQUIRE(cob::Decrypt(key, kContext, fsrc, opened, {.threads = threads}).ok());
        CHECK(opened.bytes == pt);
        close(fd);
        // Cut at each stripe boundary, and one byte short of the end.
        for (size_t cut : {ChunkOffset(33), ChunkOffset(65), ct.size() - 1}) {
          if (cut >= ct.size()) continue;
          const Bytes shortened(ct.begin(), ct.begin() + static_cast<std::ptrdiff_t>(cut));
          INFO("cut at " << cut);
          const Outcome serial = Decrypt(key, kContext, shortened, 1);
          cobtest::PositionalMemorySource psrc(shortened);
          cobtest::VectorSink partial;
          auto r = cob::Decrypt(key, kContext, psrc, partial, {.threads = threads});
          REQUIRE_FALSE(serial.ok);
          REQUIRE_FALSE(r.ok());
          CHECK(r.error().code == serial.code);
          CHECK(partial.bytes == serial.out);
        }
      }
    }
  }
}

TEST_CASE("cobblestone: a failing positional read is reported in its stripe's turn",
          "[cobblestone]") {
  const auto key = keyhold::SecretBytes::Random(32);
  const Bytes pt = cobtest::RandomBytesForTest(200 * cob::kChunkSize + 5, 43);
  const Bytes ct = EncryptWithSalt(key, cobtest::RandomBytesForTest(24, 44), kContext, pt, 1);
  // Positional reads start at stripe 2 (chunk 33); stripe 3 (chunks 65-96) is 32 sealed
  // chunks further on.
  const uint64_t stripe3 = 32 * cob::kEncryptedChunkSize;
  Bytes bad = ct;
  bad[ChunkOffset(40) + 3] ^= 1;  // in stripe 2
  for (unsigned threads : {2u, 4u}) {
    INFO("threads " << threads);
    for (bool throws : {false, true}) {
      INFO("throws " << throws);
      // A bad chunk before the failing read: the authentication failure wins.
      cobtest::PositionalMemorySource bad_src(bad, stripe3, throws);
      cobtest::VectorSink partial;
      auto r = cob::Decrypt(key, kContext, bad_src, partial, {.threads = threads});
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == ErrorCode::kPayloadAuthFailed);
      CHECK(partial.bytes == Prefix(pt, 40 * cob::kChunkSize));
      // Nothing bad before it: the read's own failure, after every chunk before its stripe.
      cobtest::PositionalMemorySource src(ct, stripe3, throws);
      cobtest::VectorSink out;
      if (throws) {
        CHECK_THROWS_AS(cob::Decrypt(key, kContext, src, out, {.threads = threads}),
                        std::runtime_error);
      } else {
        auto e = cob::Decrypt(key, kContext, src, out, {.threads = threads});
        REQUIRE_FALSE(e.ok());
        CHECK(e.error().code == ErrorCode::kIo);
      }
      CHECK(out.bytes == Prefix(pt, 65 * cob::kChunkSize));
    }
  }
}
