// SecretBytes ownership and wiping, WipingAllocator, and the constant-time comparisons.
#include <catch2/catch.hpp>
#include <cstdint>
#include <new>
#include <utility>
#include <vector>

#include "keyhold/crypto/constant_time.h"
#include "keyhold/crypto/random.h"
#include "keyhold/crypto/secret_bytes.h"

using keyhold::SecretBytes;

namespace {

// What the wipe hook saw, for the most recent destruction.
struct WipeRecord {
  int calls = 0;
  size_t last_size = 0;
  bool last_all_zero = false;
};
WipeRecord g_wipes;

void RecordWipe(const uint8_t* data, size_t size) {
  ++g_wipes.calls;
  g_wipes.last_size = size;
  bool zero = true;
  for (size_t i = 0; i < size; ++i) zero = zero && data[i] == 0;
  g_wipes.last_all_zero = zero;
}

// Installs the hook for one test and always removes it, even when a REQUIRE fails.
struct ScopedWipeHook {
  ScopedWipeHook() {
    g_wipes = {};
    keyhold::internal::SetSecretWipeHookForTesting(&RecordWipe);
  }
  ~ScopedWipeHook() { keyhold::internal::SetSecretWipeHookForTesting(nullptr); }
};

bool AllByte(std::span<const uint8_t> s, uint8_t v) {
  for (uint8_t b : s) {
    if (b != v) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("secret bytes construction, copy and random", "[crypto]") {
  SecretBytes empty;
  CHECK(empty.empty());
  CHECK(empty.size() == 0);
  CHECK(empty.ExposeSecret().empty());

  SecretBytes zeros(40);
  CHECK(zeros.size() == 40);
  CHECK(AllByte(zeros.ExposeSecret(), 0));

  const std::vector<uint8_t> src = {1, 2, 3, 4, 5};
  SecretBytes copy = SecretBytes::CopyOf(src);
  REQUIRE(copy.size() == src.size());
  CHECK(std::vector<uint8_t>(copy.ExposeSecret().begin(), copy.ExposeSecret().end()) == src);
  // A copy, not a view: changing it leaves the source alone and vice versa.
  copy.ExposeSecret()[0] = 9;
  CHECK(src[0] == 1);

  SecretBytes clone = copy.Clone();
  CHECK(keyhold::SecretEquals(clone, copy));
  CHECK(clone.ExposeSecret().data() != copy.ExposeSecret().data());
  clone.ExposeSecret()[4] ^= 1;
  CHECK_FALSE(keyhold::SecretEquals(clone, copy));

  CHECK(SecretBytes::CopyOf({}).empty());
  CHECK(SecretBytes().Clone().empty());

  // Two 32-byte draws colliding has probability 2^-256; equal means the RNG is broken.
  SecretBytes r1 = SecretBytes::Random(32), r2 = SecretBytes::Random(32);
  CHECK(r1.size() == 32);
  CHECK_FALSE(keyhold::SecretEquals(r1, r2));
  CHECK_FALSE(AllByte(r1.ExposeSecret(), 0));
  std::vector<uint8_t> a(32), b(32);
  keyhold::RandomBytes(a);
  keyhold::RandomBytes(b);
  CHECK(a != b);
  keyhold::RandomBytes({});  // empty is a no-op, not a crash
}

TEST_CASE("secret equals compares size and content", "[crypto]") {
  const std::vector<uint8_t> x = {1, 2, 3}, y = {1, 2, 4}, z = {1, 2};
  CHECK(keyhold::SecretEquals(SecretBytes::CopyOf(x), SecretBytes::CopyOf(x)));
  CHECK_FALSE(keyhold::SecretEquals(SecretBytes::CopyOf(x), SecretBytes::CopyOf(y)));
  CHECK_FALSE(keyhold::SecretEquals(SecretBytes::CopyOf(x), SecretBytes::CopyOf(z)));
  CHECK(keyhold::SecretEquals(SecretBytes(), SecretBytes()));
  CHECK_FALSE(keyhold::SecretEquals(SecretBytes(), SecretBytes(1)));
}

TEST_CASE("secret bytes move semantics", "[crypto]") {
  SecretBytes a = SecretBytes::CopyOf(std::vector<uint8_t>{7, 7, 7});
  const uint8_t* where = a.ExposeSecret().data();
  SecretBytes b(std::move(a));
  CHECK(b.size() == 3);
  CHECK(b.ExposeSecret().data() == where);  // ownership moved, bytes not copied
  CHECK(a.empty());                         // NOLINT(bugprone-use-after-move): defined state
  CHECK(a.ExposeSecret().data() == nullptr);

  SecretBytes c = SecretBytes::Random(8);
  c = std::move(b);
  CHECK(c.size() == 3);
  CHECK(AllByte(c.ExposeSecret(), 7));
  CHECK(b.empty());  // NOLINT(bugprone-use-after-move)

  // Self-move leaves the object intact.
  SecretBytes& alias = c;
  c = std::move(alias);
  CHECK(c.size() == 3);
  CHECK(AllByte(c.ExposeSecret(), 7));
}

TEST_CASE("secret bytes are wiped before they are freed", "[crypto]") {
  ScopedWipeHook hook;
  {
    SecretBytes s = SecretBytes::Random(48);
    std::fill(s.ExposeSecret().begin(), s.ExposeSecret().end(), 0xAB);
  }
  CHECK(g_wipes.calls == 1);
  CHECK(g_wipes.last_size == 48);
  CHECK(g_wipes.last_all_zero);

  // A moved-from object owns nothing, so destroying it wipes nothing twice.
  g_wipes = {};
  {
    SecretBytes s = SecretBytes::Random(16);
    SecretBytes t(std::move(s));
  }
  CHECK(g_wipes.calls == 1);
  CHECK(g_wipes.last_size == 16);
  CHECK(g_wipes.last_all_zero);

  // Move assignment wipes the secret it replaces, at once.
  g_wipes = {};
  SecretBytes x = SecretBytes::Random(10);
  SecretBytes y = SecretBytes::Random(20);
  x = std::move(y);
  CHECK(g_wipes.calls == 1);
  CHECK(g_wipes.last_size == 10);
  CHECK(g_wipes.last_all_zero);

  // An empty secret has no buffer to wipe.
  g_wipes = {};
  { SecretBytes e; }
  CHECK(g_wipes.calls == 0);
}

TEST_CASE("wiping allocator and WipeMemory", "[crypto]") {
  std::vector<uint8_t> buf(64, 0x5A);
  keyhold::WipeMemory(buf.data(), buf.size());
  CHECK(AllByte(buf, 0));
  keyhold::WipeMemory(nullptr, 0);  // tolerated

  // Growth reallocates through the allocator (each old block is wiped in deallocate).
  keyhold::WipingBuffer wb;
  for (int i = 0; i < 5000; ++i) wb.push_back(static_cast<uint8_t>(i));
  CHECK(wb.size() == 5000);
  CHECK(wb[4999] == static_cast<uint8_t>(4999));
  wb.clear();
  wb.shrink_to_fit();

  keyhold::WipingAllocator<uint64_t> alloc;
  uint64_t* p = alloc.allocate(4);
  p[0] = ~0ull;
  alloc.deallocate(p, 4);
  CHECK_THROWS_AS(alloc.allocate(SIZE_MAX / 4), std::bad_array_new_length);
  CHECK(keyhold::WipingAllocator<int>() == keyhold::WipingAllocator<uint8_t>());
}

TEST_CASE("constant-time equals and is-zero", "[crypto]") {
  const std::vector<uint8_t> a = {1, 2, 3, 4}, b = {1, 2, 3, 4}, c = {1, 2, 3, 5}, d = {0, 2, 3, 4},
                             shorter = {1, 2, 3};
  CHECK(keyhold::ConstantTimeEquals(a, b));
  CHECK_FALSE(keyhold::ConstantTimeEquals(a, c));  // last byte differs
  CHECK_FALSE(keyhold::ConstantTimeEquals(a, d));  // first byte differs
  CHECK_FALSE(keyhold::ConstantTimeEquals(a, shorter));
  CHECK_FALSE(keyhold::ConstantTimeEquals(shorter, a));
  CHECK(keyhold::ConstantTimeEquals({}, {}));
  CHECK_FALSE(keyhold::ConstantTimeEquals({}, a));
  // Every single-bit difference anywhere is seen.
  std::vector<uint8_t> big(100, 0x33);
  for (size_t i = 0; i < big.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<uint8_t> other = big;
      other[i] = static_cast<uint8_t>(other[i] ^ (1u << bit));
      REQUIRE_FALSE(keyhold::ConstantTimeEquals(big, other));
    }
  }

  CHECK(keyhold::ConstantTimeIsZero({}));
  CHECK(keyhold::ConstantTimeIsZero(std::vector<uint8_t>(33, 0)));
  for (size_t i = 0; i < 33; ++i) {
    std::vector<uint8_t> v(33, 0);
    v[i] = 0x80;
    REQUIRE_FALSE(keyhold::ConstantTimeIsZero(v));
  }
}
