#include "keyhold/crypto/secret_bytes.h"

#include <sodium.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "keyhold/crypto/random.h"

namespace keyhold {
namespace {

std::atomic<internal::SecretWipeHook> g_wipe_hook{nullptr};

// Small secrets (keys, nonces, derived values: at most kSlotSize bytes) share locked pages.
// One sodium_malloc per secret costs about ten system calls (mmap, mprotect of the guard
// pages, mlock, and the reverse on free), which made key wrapping the slowest part of
// encrypting many small files. Instead, regions of kSlotsPerRegion slots are taken from
// sodium_malloc (so each region has guard pages, a canary and is mlocked, like any
// sodium_malloc buffer), and handed out slot by slot. A freed slot is wiped before it goes
// back on the free list. Regions are never returned: their number follows the peak count of
// live small secrets, which is small. What is lost compared with one sodium_malloc per secret
// is only the guard page between two neighbouring secrets (OpenSSL's secure heap makes the
// same trade). Larger secrets still get their own sodium_malloc.
constexpr size_t kSlotSize = 128;
constexpr size_t kSlotsPerRegion = 128;  // 16 KiB regions

class SmallSecretPool {
 public:
  static SmallSecretPool& Get() {
    static SmallSecretPool* pool = new SmallSecretPool();  // never destroyed: secrets may
    return *pool;                                          // outlive static destructors
  }
  uint8_t* Allocate() {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty()) {
      auto* region = static_cast<uint8_t*>(sodium_malloc(kSlotSize * kSlotsPerRegion));
      if (region == nullptr) return nullptr;
      for (size_t i = kSlotsPerRegion; i-- > 0;) free_.push_back(region + i * kSlotSize);
    }
    uint8_t* slot = free_.back();
    free_.pop_back();
    return slot;
  }
  void Free(uint8_t* slot) {  // the caller has wiped it
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(slot);
  }

 private:
  std::mutex mu_;
  std::vector<uint8_t*> free_;
};

}  // namespace

void EnsureCryptoInitialized() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0) {
      std::fputs("keyhold: fatal: libsodium could not be initialised\n", stderr);
      std::abort();
    }
  });
}

SecretBytes::SecretBytes(size_t size) : size_(size) {
  EnsureCryptoInitialized();
  if (size == 0) return;
  data_ = size <= kSlotSize ? SmallSecretPool::Get().Allocate()
                            : static_cast<uint8_t*>(sodium_malloc(size));
  if (data_ == nullptr) {
    std::fputs("keyhold: fatal: out of secure memory\n", stderr);
    std::abort();
  }
  sodium_memzero(data_, size);
}

SecretBytes::~SecretBytes() {
  if (data_ == nullptr) return;
  sodium_memzero(data_, size_);
  if (auto hook = g_wipe_hook.load(std::memory_order_acquire)) hook(data_, size_);
  if (size_ <= kSlotSize) {
    sodium_memzero(data_, kSlotSize);  // the whole slot, whatever size its last owner used
    SmallSecretPool::Get().Free(data_);
  } else {
    sodium_free(data_);
  }
}

SecretBytes::SecretBytes(SecretBytes&& other) noexcept : data_(other.data_), size_(other.size_) {
  other.data_ = nullptr;
  other.size_ = 0;
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    SecretBytes old(std::move(*this));  // wiped and freed at scope exit
    data_ = other.data_;
    size_ = other.size_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

SecretBytes SecretBytes::Random(size_t size) {
  SecretBytes s(size);
  RandomBytes(s.ExposeSecret());
  return s;
}

SecretBytes SecretBytes::CopyOf(std::span<const uint8_t> bytes) {
  SecretBytes s(bytes.size());
  if (!bytes.empty()) std::memcpy(s.data_, bytes.data(), bytes.size());
  return s;
}

SecretBytes SecretBytes::Clone() const { return CopyOf(ExposeSecret()); }

bool SecretEquals(const SecretBytes& a, const SecretBytes& b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return sodium_memcmp(a.ExposeSecret().data(), b.ExposeSecret().data(), a.size()) == 0;
}

void WipeMemory(void* data, size_t size) {
  if (data != nullptr && size != 0) sodium_memzero(data, size);
}

namespace internal {
void SetSecretWipeHookForTesting(SecretWipeHook hook) {
  g_wipe_hook.store(hook, std::memory_order_release);
}
}  // namespace internal

}  // namespace keyhold
