// The chunk engine behind keyhold::cobblestone, internal to keyhold_crypto (and its tests).
//
// The public functions in cobblestone.h differ only in what precedes the chunks (a prefix
// with a commitment, or nothing in raw mode); the chunk loop, the batching and the worker
// threads live here, once, so the serial and parallel paths cannot drift apart.
#ifndef KEYHOLD_CRYPTO_INTERNAL_COBBLESTONE_ENGINE_H_
#define KEYHOLD_CRYPTO_INTERNAL_COBBLESTONE_ENGINE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "keyhold/crypto/cobblestone.h"
#include "keyhold/crypto/result.h"
#include "keyhold/crypto/secret_bytes.h"

namespace keyhold::cobblestone::internal {

// Chunks per stripe, the unit of work of one thread: it reads a stripe and seals or opens it
// while the stripe is still in its core's cache (512 KiB of plaintext and its sealed form,
// which the copy from the page cache and AES-GCM then find in L2); the stripe is then written
// in order, by that thread or by the one emitting. perf put 29%
// of encrypt's time in the kernel's copy to user space when one thread read 4 MiB batches for
// the others, 15% with stripes; interleaved runs on 1 GiB went from 4094 to 4820 MB/s
// (encrypt) and 4060 to 4812 (decrypt), and 16, 32 and 64 chunks differed by less than the
// noise (docs/performance.md). Stripe 0 is one chunk, so that a small message (most files in
// a tree) costs 32 KiB of buffers; stripes 0 and 1 run on the caller, so that a message of up
// to 33 chunks starts no thread.
constexpr size_t kStripeChunks = 32;
constexpr size_t StripeChunks(uint64_t stripe) { return stripe == 0 ? 1 : kStripeChunks; }
// The index of a stripe's first chunk.
constexpr uint64_t StripeFirstChunk(uint64_t stripe) {
  return stripe == 0 ? 0 : 1 + (stripe - 1) * kStripeChunks;
}
// Upper bound on Options::threads (more threads than this only cost memory and wakeups).
constexpr unsigned kMaxThreads = 64;
// What Options::threads = 0 means at most.
constexpr unsigned kMaxDefaultThreads = 8;

// The number of threads Options::threads asks for: 0 = online CPUs capped at
// kMaxDefaultThreads, otherwise the value capped at kMaxThreads.
unsigned ResolveThreads(unsigned requested);

// base_nonce XOR be96(index).
std::array<uint8_t, kNonceSize> ChunkNonce(std::span<const uint8_t, kNonceSize> base_nonce,
                                           uint64_t index);

// Fills `out` from `in`, calling Read until `out` is full or a Read returns 0, so that a
// Source that returns short reads early cannot make a middle chunk look final. Returns the
// number of bytes read (less than out.size() only at end of input).
Result<size_t> FillFromSource(Source& in, std::span<uint8_t> out);
// The same with Source::ReadAt, from `offset` on.
Result<size_t> FillAt(Source& in, uint64_t offset, std::span<uint8_t> out);

// Checks the input key size and derives the message keys, then compares the commitment
// with `commitment` in constant time. kMalformed for a key that is not 32 bytes, kAuthFailed
// for a mismatch.
Result<DerivedKeys> DeriveAndCheck(const SecretBytes& input_key, std::span<const uint8_t> salt,
                                   std::span<const uint8_t> context,
                                   std::span<const uint8_t> commitment);

// Encrypt with a salt the caller drew: it must be 24 fresh random bytes for every message
// (the derived key and nonce depend on it; kInvalidArgument for another size). For
// envelope.cpp, which draws it in the same call as the object's other random values; the
// public Encrypt draws its own, and tests use testing::EncryptWithSaltForTesting.
Result<StreamStats> EncryptWithSalt(const SecretBytes& input_key, std::span<const uint8_t> salt,
                                    std::span<const uint8_t> context, Source& in, Sink& out,
                                    const Options& options);

// Writes `prefix`, then encrypts everything `in` yields as chunks first_chunk, first_chunk+1,
// ... (first_chunk is 0 except in tests of the counter limit). kInvalidArgument before a
// chunk index would reach kMaxChunks.
Result<StreamStats> EncryptChunks(std::span<const uint8_t> key,
                                  std::span<const uint8_t, kNonceSize> base_nonce,
                                  std::span<const uint8_t> prefix, Source& in, Sink& out,
                                  const Options& options, uint64_t first_chunk = 0);

// Decrypts the chunks that `in` yields (the prefix already consumed). Only authenticated
// plaintext reaches `out`, in order; kPayloadAuthFailed for a chunk that fails, a missing
// final chunk, trailing data, or a chunk index that reaches kMaxChunks.
Result<StreamStats> DecryptChunks(std::span<const uint8_t> key,
                                  std::span<const uint8_t, kNonceSize> base_nonce, Source& in,
                                  Sink& out, const Options& options, uint64_t first_chunk = 0);

}  // namespace keyhold::cobblestone::internal

#endif  // KEYHOLD_CRYPTO_INTERNAL_COBBLESTONE_ENGINE_H_
