// Key versions, states, policy, slots, recipients and the resolver.
#include <algorithm>
#include <set>

#include "keyhold/crypto/encoding.h"
#include "keystore_test_util.h"

namespace keyhold::keystore {
namespace {

using namespace keyhold::keystore::testing;

envelope::KekStanza StanzaFor(const KeyInfo& key, uint32_t version) {
  envelope::KekStanza stanza;
  stanza.key_id = key.key_id;
  stanza.version = version;
  stanza.key_name = key.name;
  return stanza;
}

KeyState StateOf(const Keystore& ks, std::string_view name, uint32_t version) {
  auto key = ks.GetKey(name);
  REQUIRE(key.ok());
  REQUIRE(version >= 1);
  REQUIRE(version <= key->versions.size());
  return key->versions[version - 1].state;
}

std::string SecretHex(const SecretBytes* s) { return HexEncode(s->ExposeSecret()); }

TEST_CASE("key state names round trip", "[keystore]") {
  for (KeyState s :
       {KeyState::kActive, KeyState::kDecryptOnly, KeyState::kDisabled, KeyState::kDestroyed}) {
    auto parsed = ParseKeyState(KeyStateName(s));
    REQUIRE(parsed.ok());
    CHECK(*parsed == s);
  }
  CHECK(KeyStateName(KeyState::kDecryptOnly) == "decrypt-only");
  auto bad = ParseKeyState("retired");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == ErrorCode::kInvalidArgument);
}

TEST_CASE("init creates a private keystore once", "[keystore]") {
  TempDir tmp;
  std::string dir = tmp.Sub("a/b/ks");
  CHECK_FALSE(Keystore::Exists(dir));
  InitCheap(dir);
  CHECK(Keystore::Exists(dir));
  struct stat st;
  REQUIRE(stat(dir.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  REQUIRE(stat(MainFile(dir).c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  InitOptions options;
  options.kdf = kCheapKdf;
  auto again = Keystore::Init(dir, Pass("other"), options);
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code == ErrorCode::kAlreadyExists);
  // The original still opens with the original passphrase.
  OpenOrDie(dir, WithPassphrase());

  auto empty = Keystore::Init(tmp.Sub("e"), SecretBytes(), options);
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.error().code == ErrorCode::kInvalidArgument);

  options.kdf = Argon2idParams{1, 1024, 1};  // below the memory floor
  auto weak = Keystore::Init(tmp.Sub("w"), Pass(), options);
  REQUIRE_FALSE(weak.ok());
  CHECK(weak.error().code == ErrorCode::kUnsupported);
  CHECK_FALSE(Keystore::Exists(tmp.Sub("w")));
}

TEST_CASE("missing and garbage keystores", "[keystore]") {
  TempDir tmp;
  auto missing = Keystore::Open(tmp.Sub("nope"), WithPassphrase());
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == ErrorCode::kNotFound);

  std::string dir = tmp.Sub("ks");
  REQUIRE(mkdir(dir.c_str(), 0700) == 0);
  auto empty_dir = Keystore::Open(dir, WithPassphrase());
  REQUIRE_FALSE(empty_dir.ok());
  CHECK(empty_dir.error().code == ErrorCode::kNotFound);

  for (std::string garbage : {std::string(), std::string("{}"), std::string("not json"),
                              std::string("{\"body\":\"{}\",\"mac\":\"00\",\"magic\":\"x\"}"),
                              std::string(100000, '[') + std::string(100000, ']')}) {
    WriteText(MainFile(dir), garbage);
    auto r = Keystore::Open(dir, WithPassphrase());
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kMalformed);
  }
}

TEST_CASE("wrong passphrase and recipient slots", "[keystore]") {
  TempDir tmp;
  std::string dir = tmp.Sub("ks");
  InitCheap(dir);

  auto wrong = Keystore::Open(dir, WithPassphrase("incorrect horse"));
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.error().code == ErrorCode::kWrongPassphrase);
  CHECK(wrong.error().message == "no unlock slot could be opened");

  auto nothing = Keystore::Open(dir, Unlocker{});
  REQUIRE_FALSE(nothing.ok());
  CHECK(nothing.error().code == ErrorCode::kWrongPassphrase);

  envelope::Identity alice = NewIdentity();
  envelope::Identity mallory = NewIdentity();
  std::string recipient_slot;
  std::string passphrase_slot;
  {
    Keystore ks = OpenOrDie(dir, WithPassphrase());
    REQUIRE(ks.ListSlots().size() == 1);
    passphrase_slot = ks.ListSlots()[0].id;
    CHECK(ks.ListSlots()[0].kind == SlotKind::kPassphrase);
    CHECK(ks.ListSlots()[0].kdf.memory_kib == kCheapKdf.memory_kib);
    auto id = ks.AddRecipientSlot(alice.public_key);
    REQUIRE(id.ok());
    recipient_slot = *id;
    auto dup = ks.AddRecipientSlot(alice.public_key);
    REQUIRE_FALSE(dup.ok());
    CHECK(dup.error().code == ErrorCode::kAlreadyExists);
    auto slots = ks.ListSlots();
    REQUIRE(slots.size() == 2);
    CHECK(slots[1].kind == SlotKind::kRecipient);
    CHECK(slots[1].recipient == envelope::EncodeRecipient(alice.public_key));
    // The recipient's identity is not stored in the keystore.
    std::string file = ReadText(MainFile(dir));
    CHECK(file.find(HexEncode(alice.secret.ExposeSecret())) == std::string::npos);
  }
  OpenOrDie(dir, WithIdentity(alice));
  auto other = Keystore::Open(dir, WithIdentity(mallory));
  REQUIRE_FALSE(other.ok());
  CHECK(other.error().code == ErrorCode::kWrongPassphrase);
  CHECK(other.error().message == "no unlock slot could be opened");

  // Removing slots never re-encrypts key material; the last slot cannot go.
  Keystore ks = OpenOrDie(dir, WithIdentity(alice));
  REQUIRE(ks.CreateKey("k", {}).ok());
  std::string sealed_before = ReadBody(MainFile(dir))["keys"][0]["versions"][0]["secret"];
  auto missing = ks.RemoveSlot("000000000000");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == ErrorCode::kNotFound);
  REQUIRE(ks.RemoveSlot(passphrase_slot).ok());
  auto last = ks.RemoveSlot(recipient_slot);
  REQUIRE_FALSE(last.ok());
  CHECK(last.error().code == ErrorCode::kPolicyRefused);
  CHECK(ks.ListSlots().size() == 1);
  std::string sealed_after = ReadBody(MainFile(dir))["keys"][0]["versions"][0]["secret"];
  CHECK(sealed_before == sealed_after);
  auto gone = Keystore::Open(dir, WithPassphrase());
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().code == ErrorCode::kWrongPassphrase);

  // A new passphrase slot opens the same master key (same key secrets).
  auto p2 = ks.AddPassphraseSlot(Pass("second passphrase"), kCheapKdf);
  REQUIRE(p2.ok());
  auto empty = ks.AddPassphraseSlot(SecretBytes(), kCheapKdf);
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.error().code == ErrorCode::kInvalidArgument);
  Keystore again = OpenOrDie(dir, WithPassphrase("second passphrase"));
  auto t1 = ks.PrimaryTarget("k");
  auto t2 = again.PrimaryTarget("k");
  REQUIRE(t1.ok());
  REQUIRE(t2.ok());
  CHECK(SecretEquals(*t1->secret, *t2->secret));
}

TEST_CASE("every version state transition", "[keystore]") {
  TempDir tmp;
  std::string dir = tmp.Sub("ks");
  InitCheap(dir);
  Keystore ks = OpenOrDie(dir, WithPassphrase());

  auto created = ks.CreateKey("payments", {});
  REQUIRE(created.ok());
  CHECK(created->primary_version == 1);
  CHECK(created->versions.size() == 1);
  KeyInfo key = *created;

  auto dup = ks.CreateKey("payments", {});
  REQUIRE_FALSE(dup.ok());
  CHECK(dup.error().code == ErrorCode::kAlreadyExists);
  auto bad_name = ks.CreateKey("no spaces", {});
  REQUIRE_FALSE(bad_name.ok());
  CHECK(bad_name.error().code == ErrorCode::kInvalidArgument);

  auto v2 = ks.RotateKey("payments");
  REQUIRE(v2.ok());
  CHECK(*v2 == 2);
  CHECK(ks.GetKey("payments")->primary_version == 2);
  auto primary = ks.PrimaryTarget("payments");
  REQUIRE(primary.ok());
  CHECK(primary->version == 2);
  CHECK(primary->key_id == key.key_id);
  CHECK(primary->key_name == "payments");
  auto v1_target = ks.TargetForVersion("payments", 1);
  REQUIRE(v1_target.ok());  // still active
  CHECK_FALSE(SecretEquals(*v1_target->secret, *primary->secret));

  envelope::KekResolver& resolver = ks.Resolver();

  // active -> decrypt-only: decrypts, refuses to encrypt.
  REQUIRE(ks.RetireVersion("payments", 1).ok());
  CHECK(StateOf(ks, "payments", 1) == KeyState::kDecryptOnly);
  auto enc_retired = ks.TargetForVersion("payments", 1);
  REQUIRE_FALSE(enc_retired.ok());
  CHECK(enc_retired.error().code == ErrorCode::kPolicyRefused);
  auto dec_retired = resolver.ResolveForDecrypt(StanzaFor(key, 1));
  REQUIRE(dec_retired.ok());
  CHECK(SecretEquals(**dec_retired, *v1_target->secret));
  // decrypt-only -> decrypt-only is not a transition.
  auto re_retire = ks.RetireVersion("payments", 1);
  REQUIRE_FALSE(re_retire.ok());
  CHECK(re_retire.error().code == ErrorCode::kPolicyRefused);
  CHECK(re_retire.error().message.find("decrypt-only") != std::string::npos);

  // decrypt-only -> disabled -> enable returns to decrypt-only.
  REQUIRE(ks.DisableVersion("payments", 1).ok());
  CHECK(StateOf(ks, "payments", 1) == KeyState::kDisabled);
  auto dec_disabled = resolver.ResolveForDecrypt(StanzaFor(key, 1));
  REQUIRE_FALSE(dec_disabled.ok());
  CHECK(dec_disabled.error().code == ErrorCode::kPolicyRefused);
  CHECK(dec_disabled.error().message == "key payments version 1 is disabled");
  CHECK(dec_disabled.error().hint == "enable it with `keyhold key enable payments 1`");
  auto disable_again = ks.DisableVersion("payments", 1);
  REQUIRE_FALSE(disable_again.ok());
  CHECK(disable_again.error().code == ErrorCode::kPolicyRefused);
  auto retire_disabled = ks.RetireVersion("payments", 1);
  REQUIRE_FALSE(retire_disabled.ok());
  CHECK(retire_disabled.error().code == ErrorCode::kPolicyRefused);
  REQUIRE(ks.EnableVersion("payments", 1).ok());
  CHECK(StateOf(ks, "payments", 1) == KeyState::kDecryptOnly);

  // active -> disabled: no primary left; enable returns to active.
  REQUIRE(ks.DisableVersion("payments", 2).ok());
  CHECK(ks.GetKey("payments")->primary_version == 0);
  auto no_primary = ks.PrimaryTarget("payments");
  REQUIRE_FALSE(no_primary.ok());
  CHECK(no_primary.error().code == ErrorCode::kPolicyRefused);
  auto enc_disabled = ks.TargetForVersion("payments", 2);
  REQUIRE_FALSE(enc_disabled.ok());
  CHECK(enc_disabled.error().code == ErrorCode::kPolicyRefused);
  REQUIRE(ks.EnableVersion("payments", 2).ok());
  CHECK(StateOf(ks, "payments", 2) == KeyState::kActive);
  CHECK(ks.GetKey("payments")->primary_version == 2);
  auto enable_active = ks.EnableVersion("payments", 2);
  REQUIRE_FALSE(enable_active.ok());
  CHECK(enable_active.error().code == ErrorCode::kPolicyRefused);

  // destroy needs confirmation; then nothing more is possible for that version.
  auto unconfirmed = ks.DestroyVersion("payments", 1, false);
  REQUIRE_FALSE(unconfirmed.ok());
  CHECK(unconfirmed.error().code == ErrorCode::kPolicyRefused);
  CHECK(StateOf(ks, "payments", 1) == KeyState::kDecryptOnly);
  REQUIRE(ks.DestroyVersion("payments", 1, true).ok());
  CHECK(StateOf(ks, "payments", 1) == KeyState::kDestroyed);
  auto dec_destroyed = resolver.ResolveForDecrypt(StanzaFor(key, 1));
  REQUIRE_FALSE(dec_destroyed.ok());
  CHECK(dec_destroyed.error().code == ErrorCode::kPolicyRefused);
  CHECK(dec_destroyed.error().message == "key payments version 1 is destroyed");
  for (auto op : {+[](Keystore& k) { return k.EnableVersion("payments", 1); },
                  +[](Keystore& k) { return k.DisableVersion("payments", 1); },
                  +[](Keystore& k) { return k.RetireVersion("payments", 1); },
                  +[](Keystore& k) { return k.DestroyVersion("payments", 1, true); }}) {
    Status s = op(ks);
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().code == ErrorCode::kPolicyRefused);
    CHECK(StateOf(ks, "payments", 1) == KeyState::kDestroyed);
  }
  auto enc_destroyed = ks.TargetForVersion("payments", 1);
  REQUIRE_FALSE(enc_destroyed.ok());
  CHECK(enc_destroyed.error().code == ErrorCode::kPolicyRefused);

  // A disabled version can be destroyed too; rotation always recovers the key.
  REQUIRE(ks.DisableVersion("payments", 2).ok());
  REQUIRE(ks.DestroyVersion("payments", 2, true).ok());
  CHECK(ks.GetKey("payments")->primary_version == 0);
  auto v3 = ks.RotateKey("payments");
  REQUIRE(v3.ok());
  CHECK(*v3 == 3);
  CHECK(ks.PrimaryTarget("payments")->version == 3);

  // Unknown things.
  auto unknown_version = ks.DisableVersion("payments", 9);
  REQUIRE_FALSE(unknown_version.ok());
  CHECK(unknown_version.error().code == ErrorCode::kNotFound);
  auto unknown_key = ks.RotateKey("nope");
  REQUIRE_FALSE(unknown_key.ok());
  CHECK(unknown_key.error().code == ErrorCode::kNotFound);
  CHECK(ks.PrimaryTarget("nope").error().code == ErrorCode::kNotFound);
  envelope::KekStanza stranger = StanzaFor(key, 1);
  stranger.key_id[0] ^= 1;
  auto not_ours = resolver.ResolveForDecrypt(stranger);
  REQUIRE_FALSE(not_ours.ok());
  CHECK(not_ours.error().code == ErrorCode::kNotFound);
  auto no_version = resolver.ResolveForDecrypt(StanzaFor(key, 7));
  REQUIRE_FALSE(no_version.ok());
  CHECK(no_version.error().code == ErrorCode::kNotFound);

  // The states survive a reopen, and the same secrets come back.
  Keystore reopened = OpenOrDie(dir, WithPassphrase());
  auto k = reopened.GetKey("payments");
  REQUIRE(k.ok());
  REQUIRE(k->versions.size() == 3);
  CHECK(k->versions[0].state == KeyState::kDestroyed);
  CHECK(k->versions[1].state == KeyState::kDestroyed);
  CHECK(k->versions[2].state == KeyState::kActive);
  CHECK(SecretEquals(*reopened.PrimaryTarget("payments")->secret,
                     *ks.PrimaryTarget("payments")->secret));
}

TEST_CASE("min_decryption_version and rotation policy", "[keystore]") {
  TempDir tmp;
  std::string dir = tmp.Sub("ks");
  InitCheap(dir);
  Keystore ks = OpenOrDie(dir, WithPassphrase());
  KeyPolicy policy;
  policy.rotation_days = 30;
  auto key = ks.CreateKey("k", policy);
  REQUIRE(key.ok());
  CHECK(key->policy.rotation_days == 30);
  CHECK_FALSE(key->rotation_overdue);  // just created
  REQUIRE(ks.RotateKey("k").ok());
  REQUIRE(ks.RotateKey("k").ok());

  auto too_high = ks.SetPolicy("k", std::nullopt, 4);
  REQUIRE_FALSE(too_high.ok());
  CHECK(too_high.error().code == ErrorCode::kInvalidArgument);
  auto zero = ks.SetPolicy("k", std::nullopt, 0);
  REQUIRE_FALSE(zero.ok());
  CHECK(zero.error().code == ErrorCode::kInvalidArgument);
  REQUIRE(ks.SetPolicy("k", std::nullopt, 2).ok());
  CHECK(ks.GetKey("k")->policy.min_decryption_version == 2);
  CHECK(ks.GetKey("k")->policy.rotation_days == 30);  // untouched

  auto below = ks.Resolver().ResolveForDecrypt(StanzaFor(*key, 1));
  REQUIRE_FALSE(below.ok());
  CHECK(below.error().code == ErrorCode::kPolicyRefused);
  CHECK(below.error().message == "key k version 1 is below min_decryption_version 2");
  CHECK(below.error().hint == "rewrap the object to an allowed version");
  CHECK(ks.Resolver().ResolveForDecrypt(StanzaFor(*key, 2)).ok());
  auto enc_below = ks.TargetForVersion("k", 1);
  REQUIRE_FALSE(enc_below.ok());
  CHECK(enc_below.error().code == ErrorCode::kPolicyRefused);

  // The primary is never below the minimum: retiring 3 leaves 2 as primary, raising the
  // minimum to 3 first leaves none.
  REQUIRE(ks.SetPolicy("k", std::nullopt, 3).ok());
  REQUIRE(ks.RetireVersion("k", 3).ok());
  CHECK(ks.GetKey("k")->primary_version == 0);
  REQUIRE(ks.SetPolicy("k", 0, 2).ok());
  CHECK(ks.GetKey("k")->primary_version == 2);
  CHECK(ks.GetKey("k")->policy.rotation_days == 0);
  auto unknown = ks.SetPolicy("nope", 1, std::nullopt);
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().code == ErrorCode::kNotFound);
  auto bad_new = ks.CreateKey("k2", KeyPolicy{0, 2});
  REQUIRE_FALSE(bad_new.ok());
  CHECK(bad_new.error().code == ErrorCode::kInvalidArgument);
}

TEST_CASE("recipients address book and default key", "[keystore]") {
  TempDir tmp;
  std::string dir = tmp.Sub("ks");
  InitCheap(dir);
  Keystore ks = OpenOrDie(dir, WithPassphrase());
  envelope::Identity bob = NewIdentity();
  REQUIRE(ks.AddRecipient("bob", bob.public_key).ok());
  auto dup = ks.AddRecipient("bob", NewIdentity().public_key);
  REQUIRE_FALSE(dup.ok());
  CHECK(dup.error().code == ErrorCode::kAlreadyExists);
  auto bad = ks.AddRecipient("bob smith", bob.public_key);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == ErrorCode::kInvalidArgument);
  X25519PublicKey zero{};  // a low-order point: shared secret all zero
  auto low_order = ks.AddRecipient("zero", zero);
  REQUIRE_FALSE(low_order.ok());
  CHECK(low_order.error().code == ErrorCode::kInvalidArgument);
  auto low_order_slot = ks.AddRecipientSlot(zero);
  REQUIRE_FALSE(low_order_slot.ok());
  CHECK(low_order_slot.error().code == ErrorCode::kInvalidArgument);
  auto found = ks.LookupRecipient("bob");
  REQUIRE(found.ok());
  CHECK(*found == bob.public_key);
  REQUIRE(ks.ListRecipients().size() == 1);
  CHECK(ks.ListRecipients()[0].recipient == envelope::EncodeRecipient(bob.public_key));
  CHECK(ks.LookupRecipient("carol").error().code == ErrorCode::kNotFound);

  CHECK_FALSE(ks.DefaultKey().has_value());
  auto no_key = ks.SetDefaultKey("k");
  REQUIRE_FALSE(no_key.ok());
  CHECK(no_key.error().code == ErrorCode::kNotFound);
  REQUIRE(ks.CreateKey("k", {}).ok());
  REQUIRE(ks.SetDefaultKey("k").ok());

  Keystore reopened = OpenOrDie(dir, WithPassphrase());
  CHECK(reopened.DefaultKey() == std::optional<std::string>("k"));
  CHECK(reopened.LookupRecipient("bob").value() == bob.public_key);
  REQUIRE(reopened.RemoveRecipient("bob").ok());
  CHECK(reopened.RemoveRecipient("bob").error().code == ErrorCode::kNotFound);
  REQUIRE(reopened.SetDefaultKey(std::nullopt).ok());
  CHECK_FALSE(reopened.DefaultKey().has_value());
}

TEST_CASE("a mutation re-reads the file under the lock", "[keystore]") {
  TempDir tmp;
  std::string dir = tmp.Sub("ks");
  InitCheap(dir);
  Keystore a = OpenOrDie(dir, WithPassphrase());
  Keystore b = OpenOrDie(dir, WithPassphrase());
  REQUIRE(a.CreateKey("k", {}).ok());
  CHECK(b.ListKeys().empty());  // b's snapshot predates the change
  auto v = b.RotateKey("k");    // b sees a's key because it re-reads under the lock
  REQUIRE(v.ok());
  CHECK(*v == 2);
  auto w = a.RotateKey("k");
  REQUIRE(w.ok());
  CHECK(*w == 3);
  CHECK(b.generation() + 1 == a.generation());
  Keystore c = OpenOrDie(dir, WithPassphrase());
  CHECK(c.GetKey("k")->versions.size() == 3);
  // Secrets of versions created by the other handle match.
  CHECK(SecretEquals(*a.TargetForVersion("k", 2)->secret, *c.TargetForVersion("k", 2)->secret));
}

TEST_CASE("peek lists without unlocking, unverified", "[keystore]") {
  TempDir tmp;
  std::string dir = tmp.Sub("ks");
  InitCheap(dir);
  {
    Keystore ks = OpenOrDie(dir, WithPassphrase());
    REQUIRE(ks.CreateKey("k", {}).ok());
    REQUIRE(ks.RotateKey("k").ok());
    REQUIRE(ks.RetireVersion("k", 1).ok());
  }
  auto peek = Keystore::Peek(dir);
  REQUIRE(peek.ok());
  CHECK_FALSE(peek->verified);
  REQUIRE(peek->keys.size() == 1);
  CHECK(peek->keys[0].name == "k");
  REQUIRE(peek->keys[0].versions.size() == 2);
  CHECK(peek->keys[0].versions[0].state == KeyState::kDecryptOnly);
  CHECK(peek->slots.size() == 1);
  CHECK(peek->generation == 4);
}

TEST_CASE("subkeys are stable per label and distinct across labels", "[keystore]") {
  TempDir tmp;
  std::string dir = tmp.Sub("ks");
  InitCheap(dir);
  Keystore a = OpenOrDie(dir, WithPassphrase());
  Keystore b = OpenOrDie(dir, WithPassphrase());
  auto a1 = a.DeriveSubkey("audit-log");
  auto b1 = b.DeriveSubkey("audit-log");
  auto a2 = a.DeriveSubkey("audit-log2");
  REQUIRE(a1.ok());
  REQUIRE(b1.ok());
  REQUIRE(a2.ok());
  CHECK(a1->size() == 32);
  CHECK(SecretEquals(*a1, *b1));
  CHECK_FALSE(SecretEquals(*a1, *a2));
  CHECK(a.DeriveSubkey("").error().code == ErrorCode::kInvalidArgument);

  TempDir other;
  InitCheap(other.Sub("ks"));
  Keystore c = OpenOrDie(other.Sub("ks"), WithPassphrase());
  CHECK_FALSE(SecretEquals(c.DeriveSubkey("audit-log").value(), *a1));
}

class RecordingSink : public AuditSink {
 public:
  Status Record(const AuditEvent& event) override {
    events.push_back(event);
    if (fail) return Error(ErrorCode::kIo, "disk full");
    return OkStatus();
  }
  std::vector<AuditEvent> events;
  bool fail = false;
};

TEST_CASE("every change reaches the audit sink, without secrets", "[keystore]") {
  TempDir tmp;
  std::string dir = tmp.Sub("ks");
  RecordingSink sink;
  InitOptions options;
  options.kdf = kCheapKdf;
  REQUIRE(Keystore::Init(dir, Pass(), options, &sink).ok());
  Keystore ks = OpenOrDie(dir, WithPassphrase());
  ks.SetAuditSink(&sink);
  envelope::Identity id = NewIdentity();
  REQUIRE(ks.CreateKey("k", {}).ok());
  REQUIRE(ks.RotateKey("k").ok());
  REQUIRE(ks.RetireVersion("k", 1).ok());
  REQUIRE(ks.DisableVersion("k", 1).ok());
  REQUIRE(ks.EnableVersion("k", 1).ok());
  REQUIRE(ks.DestroyVersion("k", 1, true).ok());
  REQUIRE(ks.SetPolicy("k", 7, std::nullopt).ok());
  REQUIRE(ks.SetDefaultKey("k").ok());
  auto slot = ks.AddRecipientSlot(id.public_key);
  REQUIRE(slot.ok());
  REQUIRE(ks.AddPassphraseSlot(Pass("p2"), kCheapKdf).ok());
  REQUIRE(ks.RemoveSlot(*slot).ok());
  REQUIRE(ks.AddRecipient("r", id.public_key).ok());
  REQUIRE(ks.RemoveRecipient("r").ok());
  // A refused change is not recorded.
  REQUIRE_FALSE(ks.DestroyVersion("k", 2, false).ok());

  std::vector<std::string> names;
  for (const AuditEvent& e : sink.events) names.push_back(e.event);
  std::vector<std::string> expected = {
      "keystore.init", "key.create",  "key.rotate",    "key.retire",           "key.disable",
      "key.enable",    "key.destroy", "key.policy",    "keystore.default-key", "slot.add",
      "slot.add",      "slot.remove", "recipient.add", "recipient.remove"};
  CHECK(names == expected);
  for (size_t i = 1; i < sink.events.size(); ++i) {
    CHECK(sink.events[i].generation == sink.events[i - 1].generation + 1);
  }
  // No event field carries any version secret.
  std::set<std::string> secrets;
  secrets.insert(HexEncode(ks.PrimaryTarget("k").value().secret->ExposeSecret()));
  for (const AuditEvent& e : sink.events) {
    for (const auto& [field, value] : e.fields) {
      for (const std::string& s : secrets) CHECK(value.find(s) == std::string::npos);
    }
  }
  // A failing sink: the change is saved and the caller told so.
  sink.fail = true;
  auto r = ks.RotateKey("k");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kIo);
  CHECK(r.error().message.find("the change was saved") != std::string::npos);
  ks.SetAuditSink(nullptr);
  CHECK(OpenOrDie(dir, WithPassphrase()).GetKey("k")->versions.size() == 3);
}

TEST_CASE("destroyed secrets are gone from both files", "[keystore]") {
  TempDir tmp;
  std::string dir = tmp.Sub("ks");
  InitCheap(dir);
  Keystore ks = OpenOrDie(dir, WithPassphrase());
  REQUIRE(ks.CreateKey("k", {}).ok());
  REQUIRE(ks.RotateKey("k").ok());
  std::string plain_hex = SecretHex(ks.TargetForVersion("k", 1)->secret);
  std::string plain_b64 = Base64Encode(ks.TargetForVersion("k", 1)->secret->ExposeSecret());
  std::string sealed = ReadBody(MainFile(dir))["keys"][0]["versions"][0]["secret"];
  std::string nonce = ReadBody(MainFile(dir))["keys"][0]["versions"][0]["nonce"];
  REQUIRE(sealed.size() == 96);
  REQUIRE(ks.RotateKey("k").ok());  // so the .bak also holds version 1's sealed secret
  for (const std::string& path : {MainFile(dir), BakFile(dir)}) {
    std::string text = ReadText(path);
    CHECK(text.find(sealed) != std::string::npos);     // the grep below can find it
    CHECK(text.find(plain_hex) == std::string::npos);  // never stored in the clear
    CHECK(text.find(plain_b64) == std::string::npos);
  }
  REQUIRE(ks.DestroyVersion("k", 1, true).ok());
  for (const std::string& path : {MainFile(dir), BakFile(dir)}) {
    std::string text = ReadText(path);
    CHECK(text.find(sealed) == std::string::npos);
    CHECK(text.find(sealed.substr(0, 32)) == std::string::npos);
    CHECK(text.find(nonce) == std::string::npos);
  }
  // Version 2's secret is still there (destroy touches only its version).
  CHECK(ks.TargetForVersion("k", 2).ok());
  CHECK(OpenOrDie(dir, WithPassphrase()).GetKey("k")->versions[0].state == KeyState::kDestroyed);
}

}  // namespace
}  // namespace keyhold::keystore
