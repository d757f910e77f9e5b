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

namespace keyhold::cobblestone::internal {

// Chunks per batch. The first batch of a message is one chunk, so a small message (most
// files in a tree) costs 32 KiB of buffers; the second is 64 chunks (1 MiB); every later one
// kBatchChunks, 4 MiB of plaintext: large enough that waking the workers and the Sink's write
// cost little per byte (4 MiB measured 8% faster than 1 MiB, 8 MiB slower again as the
// buffers leave the cache: docs/performance.md), small enough to keep memory constant.
constexpr size_t kBatchChunks = 256;
constexpr size_t BatchChunks(uint64_t batch_number) {
  return batch_number == 0 ? 1 : batch_number == 1 ? 64 : kBatchChunks;
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

// Checks the input key size and derives the message keys, then compares the commitment
// with `commitment` in constant time. kMalformed for a key that is not 32 bytes, kAuthFailed
// for a mismatch.
Result<DerivedKeys> DeriveAndCheck(const SecretBytes& input_key, std::span<const uint8_t> salt,
                                   std::span<const uint8_t> context,
                                   std::span<const uint8_t> commitment);

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
