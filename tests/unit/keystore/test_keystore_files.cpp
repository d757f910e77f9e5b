// Permissions, tampering, KDF bounds, rollback and calibration.
#include <chrono>
#include <map>

#include "keyhold/crypto/encoding.h"
#include "keystore_test_util.h"

namespace keyhold::keystore {
namespace {

using namespace keyhold::keystore::testing;

TEST_CASE("permissions: only the owner may read or write", "[keystore]") {
  TempDir tmp;
  std::string dir = tmp.Sub("ks");
  InitCheap(dir);
  {
    Keystore ks = OpenOrDie(dir, WithPassphrase());
    REQUIRE(ks.CreateKey("k", {}).ok());  // creates lock and .bak too
  }
  OpenOrDie(dir, WithPassphrase());  // 0700 / 0600 accepted

  struct Case {
    std::string path;
    mode_t bad;
    mode_t good;
  };
  for (const Case& c : {Case{MainFile(dir), 0644, 0600}, Case{MainFile(dir), 0620, 0600},
                        Case{BakFile(dir), 0640, 0600}, Case{dir + "/lock", 0604, 0600},
                        Case{dir, 0755, 0700}, Case{dir, 0710, 0700}}) {
    INFO(c.path);
    REQUIRE(chmod(c.path.c_str(), c.bad) == 0);
    auto r = Keystore::Open(dir, WithPassphrase());
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kInsecurePermissions);
    CHECK(r.error().hint == "chmod 700 " + dir + "; chmod 600 " + dir + "/*");
    auto p = Keystore::Peek(dir);
    REQUIRE_FALSE(p.ok());
    CHECK(p.error().code == ErrorCode::kInsecurePermissions);
    REQUIRE(chmod(c.path.c_str(), c.good) == 0);
    OpenOrDie(dir, WithPassphrase());
  }

  // A mutation checks again: permissions loosened after Open are caught before writing.
  Keystore ks = OpenOrDie(dir, WithPassphrase());
  REQUIRE(chmod(MainFile(dir).c_str(), 0644) == 0);
  auto r = ks.RotateKey("k");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kInsecurePermissions);
  REQUIRE(chmod(MainFile(dir).c_str(), 0600) == 0);

  // Init refuses an existing directory open to others.
  std::string open_dir = tmp.Sub("open");
  REQUIRE(mkdir(open_dir.c_str(), 0755) == 0);
  REQUIRE(chmod(open_dir.c_str(), 0755) == 0);
  InitOptions options;
  options.kdf = kCheapKdf;
  auto init = Keystore::Init(open_dir, Pass(), options);
  REQUIRE_FALSE(init.ok());
  CHECK(init.error().code == ErrorCode::kInsecurePermissions);
}

TEST_CASE("non-regular keystore files are refused without blocking", "[keystore]") {
  TempDir tmp;
  std::string dir = tmp.Sub("ks");
  InitCheap(dir);
  std::string saved = ReadText(MainFile(dir));
  REQUIRE(unlink(MainFile(dir).c_str()) == 0);
  REQUIRE(mkfifo(MainFile(dir).c_str(), 0600) == 0);  // open(O_RDONLY) would block without a writer
  auto r = Keystore::Open(dir, WithPassphrase());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kMalformed);
  REQUIRE(unlink(MainFile(dir).c_str()) == 0);
  WriteText(MainFile(dir), saved);
  OpenOrDie(dir, WithPassphrase());

  std::string file = tmp.Sub("plain");
  WriteText(file, "x");
  auto not_dir = Keystore::Open(file, WithPassphrase());
  REQUIRE_FALSE(not_dir.ok());
  CHECK(not_dir.error().code == ErrorCode::kInvalidArgument);
}

TEST_CASE("permissions: symlinks and other owners", "[keystore]") {
  TempDir tmp;
  std::string dir = tmp.Sub("ks");
  InitCheap(dir);
  std::string link = tmp.Sub("link");
  REQUIRE(symlink(dir.c_str(), link.c_str()) == 0);
  OpenOrDie(link, WithPassphrase());  // our own symlink to our own directory

  // A keystore file that is a symlink is refused even if it points at a good file.
  std::string moved = tmp.Sub("real.json");
  REQUIRE(rename(MainFile(dir).c_str(), moved.c_str()) == 0);
  REQUIRE(symlink(moved.c_str(), MainFile(dir).c_str()) == 0);
  auto via_link = Keystore::Open(dir, WithPassphrase());
  REQUIRE_FALSE(via_link.ok());
  CHECK(via_link.error().code == ErrorCode::kInsecurePermissions);
  REQUIRE(unlink(MainFile(dir).c_str()) == 0);
  REQUIRE(rename(moved.c_str(), MainFile(dir).c_str()) == 0);
  OpenOrDie(dir, WithPassphrase());

  if (geteuid() != 0) {
    WARN("not root: cannot test keystores owned by another user");
    return;
  }
  constexpr uid_t kOther = 4242;
  REQUIRE(lchown(link.c_str(), kOther, kOther) == 0);
  auto foreign_link = Keystore::Open(link, WithPassphrase());
  REQUIRE_FALSE(foreign_link.ok());
  CHECK(foreign_link.error().code == ErrorCode::kInsecurePermissions);
  CHECK(foreign_link.error().message.find("symlink owned by another user") != std::string::npos);

  REQUIRE(chown(MainFile(dir).c_str(), kOther, kOther) == 0);
  auto foreign_file = Keystore::Open(dir, WithPassphrase());
  REQUIRE_FALSE(foreign_file.ok());
  CHECK(foreign_file.error().code == ErrorCode::kInsecurePermissions);
  REQUIRE(chown(MainFile(dir).c_str(), 0, 0) == 0);

  REQUIRE(chown(dir.c_str(), kOther, kOther) == 0);
  auto foreign_dir = Keystore::Open(dir, WithPassphrase());
  REQUIRE_FALSE(foreign_dir.ok());
  CHECK(foreign_dir.error().code == ErrorCode::kInsecurePermissions);
  REQUIRE(chown(dir.c_str(), 0, 0) == 0);
  OpenOrDie(dir, WithPassphrase());
}

// A small keystore with every kind of field: two slots, a key with versions in several
// states (one destroyed), a recipient and a default key. Opened with the identity, so a
// thousand opens cost no Argon2id.
struct SmallKeystore {
  TempDir tmp;
  std::string dir = tmp.Sub("ks");
  envelope::Identity id = NewIdentity();
  SmallKeystore() {
    InitCheap(dir);
    Keystore ks = OpenOrDie(dir, WithPassphrase());
    REQUIRE(ks.AddRecipientSlot(id.public_key).ok());
    REQUIRE(ks.CreateKey("k", KeyPolicy{30, 1}).ok());
    REQUIRE(ks.RotateKey("k").ok());
    REQUIRE(ks.RotateKey("k").ok());
    REQUIRE(ks.RetireVersion("k", 2).ok());
    REQUIRE(ks.DestroyVersion("k", 1, true).ok());
    REQUIRE(ks.AddRecipient("bob", NewIdentity().public_key).ok());
    REQUIRE(ks.SetDefaultKey("k").ok());
  }
};

TEST_CASE("tamper: every byte flip of the keystore file is refused", "[keystore]") {
  SmallKeystore small;
  const std::string original = ReadText(MainFile(small.dir));
  OpenOrDie(small.dir, WithIdentity(small.id));
  Unlocker unlocker = WithIdentity(small.id);

  std::map<ErrorCode, size_t> codes;
  size_t tried = 0;
  for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x20}, uint8_t{0x80}}) {
    for (size_t i = 0; i < original.size(); ++i) {
      std::string altered = original;
      altered[i] = static_cast<char>(static_cast<uint8_t>(altered[i]) ^ mask);
      WriteText(MainFile(small.dir), altered);
      auto r = Keystore::Open(small.dir, unlocker);
      ++tried;
      if (r.ok()) FAIL("byte " << i << " ^ " << int(mask) << " accepted");
      ErrorCode c = r.error().code;
      codes[c]++;
      // Integrity failure, malformed file, out-of-bounds KDF parameters (a digit of t/m/p),
      // or the recipient's own slot no longer naming this identity.
      bool expected = c == ErrorCode::kAuthFailed || c == ErrorCode::kMalformed ||
                      c == ErrorCode::kUnsupported || c == ErrorCode::kWrongPassphrase;
      if (!expected) FAIL("byte " << i << ": unexpected " << ErrorCodeName(c));
    }
  }
  INFO("flips tried: " << tried);
  CHECK(tried == 3 * original.size());
  // The body is parsed strictly before the MAC is checked, so many flips are kMalformed;
  // the rest of the body (values that stay well formed) and the MAC give kAuthFailed.
  CHECK(codes[ErrorCode::kAuthFailed] > 100);
  CHECK(codes[ErrorCode::kMalformed] > 100);
  WriteText(MainFile(small.dir), original);
  OpenOrDie(small.dir, unlocker);
}

TEST_CASE("tamper: edits that keep the file well formed are caught by the MAC", "[keystore]") {
  SmallKeystore small;
  const std::string original = ReadText(MainFile(small.dir));
  Unlocker unlocker = WithIdentity(small.id);
  using Edit = void (*)(nlohmann::json&);
  struct Case {
    const char* name;
    Edit edit;
  };
  const Case cases[] = {
      {"re-enable a disabled state",
       [](nlohmann::json& b) { b["keys"][0]["versions"][1]["state"] = "active"; }},
      {"lower min_decryption_version",
       [](nlohmann::json& b) {
         b["keys"][0]["policy"]["min_decryption_version"] = 1;
         b["keys"][0]["policy"]["rotation_days"] = 0;
       }},
      {"swap version secrets",
       [](nlohmann::json& b) {
         std::swap(b["keys"][0]["versions"][1]["secret"], b["keys"][0]["versions"][2]["secret"]);
         std::swap(b["keys"][0]["versions"][1]["nonce"], b["keys"][0]["versions"][2]["nonce"]);
       }},
      {"drop a slot", [](nlohmann::json& b) { b["slots"].erase(0); }},
      {"duplicate a slot",
       [](nlohmann::json& b) {
         nlohmann::json s = b["slots"][1];
         s["id"] = "0123456789ab";
         b["slots"].push_back(s);
       }},
      {"swap wrapped keys between slots",
       [](nlohmann::json& b) { std::swap(b["slots"][0]["wrapped"], b["slots"][1]["wrapped"]); }},
      {"change a recipient",
       [](nlohmann::json& b) { b["recipients"][0]["public_key"] = std::string(64, 'a'); }},
      {"raise the generation", [](nlohmann::json& b) { b["generation"] = 1000; }},
      {"clear the default key", [](nlohmann::json& b) { b["default_key"] = nullptr; }},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    nlohmann::json body = ReadBody(MainFile(small.dir));
    c.edit(body);
    WriteBodyKeepMac(MainFile(small.dir), body);
    auto r = Keystore::Open(small.dir, unlocker);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kAuthFailed);
    CHECK(r.error().message.find("integrity") != std::string::npos);
    WriteText(MainFile(small.dir), original);
  }

  // A slot from another keystore that opens with the same identity, prepended: it unwraps
  // to the other keystore's master key, under which this file's MAC fails.
  TempDir other;
  std::string other_dir = other.Sub("ks");
  InitCheap(other_dir);
  REQUIRE(OpenOrDie(other_dir, WithPassphrase()).AddRecipientSlot(small.id.public_key).ok());
  nlohmann::json foreign_slot = ReadBody(MainFile(other_dir))["slots"][1];
  nlohmann::json body = ReadBody(MainFile(small.dir));
  body["slots"].insert(body["slots"].begin(), foreign_slot);
  WriteBodyKeepMac(MainFile(small.dir), body);
  auto r = Keystore::Open(small.dir, unlocker);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kAuthFailed);

  // The other keystore's whole file, MAC and all, is a valid keystore of its own; its keys
  // are not ours (documented: substitution with a fully valid file is detected only by key
  // ids not matching).
  WriteText(MainFile(small.dir), original);
  OpenOrDie(small.dir, unlocker);
}

TEST_CASE("out-of-bounds KDF parameters are refused before any derivation", "[keystore]") {
  TempDir tmp;
  std::string dir = tmp.Sub("ks");
  InitCheap(dir);
  struct Case {
    const char* field;
    uint64_t value;
  };
  for (const Case& c : {Case{"m", 64ull * 1024 * 1024} /* 64 GiB in KiB */, Case{"m", 1024},
                        Case{"t", 0}, Case{"t", 1000000}, Case{"p", 4}}) {
    INFO(c.field << "=" << c.value);
    nlohmann::json body = ReadBody(MainFile(dir));
    std::string saved = ReadText(MainFile(dir));
    body["slots"][0]["kdf"][c.field] = c.value;
    WriteBodyKeepMac(MainFile(dir), body);
    auto start = std::chrono::steady_clock::now();
    auto r = Keystore::Open(dir, WithPassphrase());
    double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kUnsupported);
    CHECK(elapsed < 1.0);
    WriteText(MainFile(dir), saved);
  }
  OpenOrDie(dir, WithPassphrase());
}

TEST_CASE("rollback: detected while open, not across a fresh open", "[keystore]") {
  TempDir tmp;
  std::string dir = tmp.Sub("ks");
  InitCheap(dir);
  Keystore ks = OpenOrDie(dir, WithPassphrase());
  REQUIRE(ks.CreateKey("k", {}).ok());
  std::string old_copy = ReadText(MainFile(dir));
  REQUIRE(ks.RotateKey("k").ok());
  REQUIRE(ks.generation() == 3);
  // The .bak is the previous generation, verified like the main file.
  CHECK(ReadText(BakFile(dir)) == old_copy);

  WriteText(MainFile(dir), old_copy);
  auto r = ks.RotateKey("k");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kAuthFailed);
  CHECK(r.error().message.find("went back from generation 3 to 2") != std::string::npos);

  // Without an external anchor a fresh Open cannot tell (docs/keystore.md says so).
  Keystore fresh = OpenOrDie(dir, WithPassphrase());
  CHECK(fresh.generation() == 2);
  CHECK(fresh.GetKey("k")->versions.size() == 1);
}

TEST_CASE("calibration never goes below the recommended parameters", "[keystore]") {
  TempDir tmp;
  std::string dir = tmp.Sub("ks");
  InitOptions options;  // no kdf: calibrate
  options.calibrate_seconds = 0.05;
  REQUIRE(Keystore::Init(dir, Pass(), options).ok());
  auto peek = Keystore::Peek(dir);
  REQUIRE(peek.ok());
  REQUIRE(peek->slots.size() == 1);
  Argon2idParams kdf = peek->slots[0].kdf;
  CHECK(kdf.iterations >= 3);
  CHECK(kdf.iterations <= kMaxCalibratedIterations);
  CHECK(kdf.memory_kib >= 65536);
  CHECK(kdf.parallelism == 1);
  auto start = std::chrono::steady_clock::now();
  OpenOrDie(dir, WithPassphrase());
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(elapsed < 5.0);
}

}  // namespace
}  // namespace keyhold::keystore
