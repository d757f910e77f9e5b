#include "keyhold/crypto/secret_bytes.h"

#include <sodium.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "keyhold/crypto/random.h"

namespace keyhold {
namespace {

std::atomic<internal::SecretWipeHook> g_wipe_hook{nullptr};

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
  data_ = static_cast<uint8_t*>(sodium_malloc(size));
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
  sodium_free(data_);
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
