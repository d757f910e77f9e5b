// Secrets are wiped after use: every SecretBytes buffer released while a secret-handling
// operation runs (a DEK unwrapped by OpenHeader, derived keys, an Argon2id output) is all
// zero when it is freed. The wipe hook sees each buffer right after the wipe, before
// sodium_free.
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "keyhold/crypto/argon2id.h"
#include "keyhold/crypto/secret_bytes.h"

namespace keyhold {
namespace {

size_t g_wiped = 0;
size_t g_nonzero = 0;

void CountingHook(const uint8_t* data, size_t size) {
  ++g_wiped;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] != 0) {
      ++g_nonzero;
      break;
    }
  }
}

struct HookGuard {
  HookGuard() {
    g_wiped = 0;
    g_nonzero = 0;
    internal::SetSecretWipeHookForTesting(CountingHook);
  }
  ~HookGuard() { internal::SetSecretWipeHookForTesting(nullptr); }
};

TEST_CASE("a SecretBytes buffer is zero when it is freed", "[hygiene]") {
  HookGuard guard;
  {
    SecretBytes s(64);
    for (auto& b : s.ExposeSecret()) b = 0xA5;
  }
  CHECK(g_wiped == 1);
  CHECK(g_nonzero == 0);
}

TEST_CASE("moved-from and random secrets are wiped too", "[hygiene]") {
  HookGuard guard;
  {
    SecretBytes a = SecretBytes::Random(32);
    SecretBytes b = std::move(a);
    SecretBytes c = SecretBytes::Random(48);
    c = std::move(b);
  }
  CHECK(g_wiped >= 2);
  CHECK(g_nonzero == 0);
}

TEST_CASE("Argon2id intermediate and output secrets are wiped", "[hygiene]") {
  HookGuard guard;
  {
    const std::string pw = "hygiene passphrase";
    std::vector<uint8_t> salt(kArgon2idSaltSize, 7);
    auto key = Argon2id({reinterpret_cast<const uint8_t*>(pw.data()), pw.size()}, salt,
                        Argon2idParams{1, kArgon2idMinMemoryKib, 1}, 32);
    REQUIRE(key.ok());
    REQUIRE(key->size() == 32);
  }
  CHECK(g_wiped >= 1);
  CHECK(g_nonzero == 0);
}

}  // namespace
}  // namespace keyhold
