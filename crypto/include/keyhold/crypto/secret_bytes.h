// SecretBytes: the only container for key material, and WipingAllocator for bulk buffers.
#ifndef KEYHOLD_CRYPTO_SECRET_BYTES_H_
#define KEYHOLD_CRYPTO_SECRET_BYTES_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <span>
#include <vector>

namespace keyhold {

// Initialises libsodium exactly once; aborts the process if it cannot (no randomness source).
// Every function in keyhold_crypto that needs libsodium calls it; callers never need to.
void EnsureCryptoInitialized();

// A fixed-size buffer of secret bytes in locked memory from sodium_malloc (guard pages,
// best-effort mlock; secrets of up to 128 bytes share such pages, one 128-byte slot each),
// wiped with sodium_memzero and freed when destroyed. Move-only: a secret has one
// owner. The bytes come out only through ExposeSecret(), so every use of raw key material is
// one grep away. Allocation failure aborts (as new would, without throwing across the API).
class SecretBytes {
 public:
  SecretBytes() noexcept = default;
  explicit SecretBytes(size_t size);  // zero-filled
  ~SecretBytes();
  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  // A new secret holding `size` bytes from the CSPRNG.
  static SecretBytes Random(size_t size);
  // A new secret holding a copy of `bytes`. The caller remains responsible for its own copy.
  static SecretBytes CopyOf(std::span<const uint8_t> bytes);

  // An explicit copy (never implicit, so that copies of secrets are visible in review).
  SecretBytes Clone() const;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // The raw secret. Keep the span's lifetime within this object's.
  std::span<uint8_t> ExposeSecret() { return {data_, size_}; }
  std::span<const uint8_t> ExposeSecret() const { return {data_, size_}; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Constant-time equality of two secrets (different sizes compare unequal).
bool SecretEquals(const SecretBytes& a, const SecretBytes& b);

namespace internal {
// Test seam: called with the address and size of a SecretBytes buffer right after it was
// wiped and before it is freed, so a test can check the bytes are zero. Not thread-safe to
// set while secrets are being destroyed; tests set it once.
using SecretWipeHook = void (*)(const uint8_t* data, size_t size);
void SetSecretWipeHookForTesting(SecretWipeHook hook);
}  // namespace internal

// Allocator for bulk buffers (plaintext chunks, decrypted output) that wipes memory before
// releasing it. Cheap (plain operator new), unlike sodium_malloc's guard pages.
void WipeMemory(void* data, size_t size);

template <typename T>
struct WipingAllocator {
  using value_type = T;
  WipingAllocator() noexcept = default;
  template <typename U>
  WipingAllocator(const WipingAllocator<U>&) noexcept {}  // NOLINT: implicit
  T* allocate(size_t n) {
    if (n > std::numeric_limits<size_t>::max() / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* p, size_t n) noexcept {
    WipeMemory(p, n * sizeof(T));
    ::operator delete(p);
  }
  template <typename U>
  bool operator==(const WipingAllocator<U>&) const noexcept {
    return true;
  }
};

using WipingBuffer = std::vector<uint8_t, WipingAllocator<uint8_t>>;

}  // namespace keyhold

#endif  // KEYHOLD_CRYPTO_SECRET_BYTES_H_
