// Fuzz target: the keystore loader. The input is written as keystore.json (0600) in a
// private directory (0700), then read with Peek and Open.
//
// Cost bound: a keystore may legitimately ask for up to 64 passes over 4 GiB of Argon2id
// per passphrase slot, so an arbitrary input could make Open(passphrase) run for minutes.
// The library's own bound check (kArgon2idMax*) is what stops anything beyond that, and it
// is exercised here: when any slot is out of bounds, Open(passphrase) is called and must
// fail with kUnsupported before deriving anything. Within bounds, the passphrase path runs
// only when every passphrase slot is cheap (the seeds use t=1, m=8 MiB); otherwise only the
// identity path runs, which costs one X25519 per matching slot and still reaches the slot
// unwrap, the MAC verification and the adoption of the parsed body. Peek's parse is the
// same as Open's (one ParseFile), so gating on Peek's slot list is exact.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>

#include "fuzz_util.h"
#include "keyhold/crypto/argon2id.h"
#include "keyhold/crypto/envelope.h"
#include "keyhold/keystore/keystore.h"

namespace {

using namespace keyhold;

// The seed keystores (scripts/fuzz-seed) use these: alice's identity from the format
// vectors opens the recipient slot, kPassphrase the passphrase slot.
constexpr char kIdentity[] =
    "KH-SECRET-KEY-1SPP2KTE06PLZWRZ9FZYV00G26JEKYL00424DEU5RF4EN7UJK4TNSM74LJX";
constexpr char kPassphrase[] = "fuzz passphrase";
constexpr uint32_t kMaxFuzzIterations = 2;
constexpr uint32_t kMaxFuzzMemoryKib = 8 * 1024;
constexpr size_t kMaxFuzzPassphraseSlots = 2;

std::string* g_dir = nullptr;
keystore::Unlocker* g_by_identity = nullptr;
keystore::Unlocker* g_by_passphrase = nullptr;

void CheckConsistent(const keystore::Keystore& ks, const keystore::UnverifiedSummary& peek) {
  FUZZ_CHECK(ks.generation() == peek.generation);
  FUZZ_CHECK(ks.ListKeys().size() == peek.keys.size());
  FUZZ_CHECK(ks.ListSlots().size() == peek.slots.size());
  FUZZ_CHECK(ks.ListRecipients().size() == peek.recipients.size());
  for (const auto& key : ks.ListKeys()) {
    if (key.primary_version == 0) continue;
    auto target = ks.PrimaryTarget(key.name);
    FUZZ_CHECK(target.ok());
    FUZZ_CHECK(target->secret != nullptr && target->secret->size() == 32);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_dir = new std::string(fuzz::MakePrivateTempDir("keystore"));
  auto identity = envelope::ParseIdentity(kIdentity);
  if (!identity.ok()) std::abort();
  g_by_identity = new keystore::Unlocker;
  g_by_identity->identities.push_back(std::move(identity).value());
  g_by_passphrase = new keystore::Unlocker;
  SecretBytes pass(std::strlen(kPassphrase));
  std::memcpy(pass.ExposeSecret().data(), kPassphrase, pass.size());
  g_by_passphrase->passphrase = std::move(pass);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::WritePrivateFile(*g_dir + "/" + std::string(keystore::kKeystoreFileName),
                         std::span<const uint8_t>(data, size));

  auto peek = keystore::Keystore::Peek(*g_dir);
  auto by_identity = keystore::Keystore::Open(*g_dir, *g_by_identity);
  if (!peek.ok()) {
    // Nothing Peek refuses may be opened.
    FUZZ_CHECK(!by_identity.ok());
    FUZZ_CHECK(by_identity.error().code == peek.error().code);
    return 0;
  }
  if (by_identity.ok()) CheckConsistent(*by_identity, *peek);

  bool out_of_bounds = false;
  bool cheap = true;
  size_t passphrase_slots = 0;
  for (const auto& slot : peek->slots) {
    if (slot.kind != keystore::SlotKind::kPassphrase) continue;
    ++passphrase_slots;
    if (!ValidateArgon2idParams(slot.kdf).ok()) out_of_bounds = true;
    if (slot.kdf.iterations > kMaxFuzzIterations || slot.kdf.memory_kib > kMaxFuzzMemoryKib) {
      cheap = false;
    }
  }
  if (out_of_bounds) {
    // Must be refused before any derivation (an unbounded Argon2id would hang or OOM here).
    FUZZ_CHECK(!by_identity.ok() && by_identity.error().code == ErrorCode::kUnsupported);
    auto by_passphrase = keystore::Keystore::Open(*g_dir, *g_by_passphrase);
    FUZZ_CHECK(!by_passphrase.ok() && by_passphrase.error().code == ErrorCode::kUnsupported);
    return 0;
  }
  if (by_identity.ok() || !cheap || passphrase_slots > kMaxFuzzPassphraseSlots) return 0;
  auto by_passphrase = keystore::Keystore::Open(*g_dir, *g_by_passphrase);
  if (by_passphrase.ok()) CheckConsistent(*by_passphrase, *peek);
  return 0;
}
