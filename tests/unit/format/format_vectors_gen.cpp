// Generates tests/vectors/keyhold/format_v1.json (see scripts/gen-vectors). Every random input
// of the format (object id, DEK, KEK salts, ephemeral secrets, payload salt) is replaced by a
// SHA-256 of a fixed label, so the output is byte-for-byte reproducible; test_format_vectors
// checks that the checked-in file equals this output.
//
// Invalid vectors are files assembled from segments (hex, or a range of a valid vector's
// file), so the large multi-chunk cases do not repeat 80 KB of hex each. Each names the
// error class an implementation must return and how many plaintext bytes it may release.
#include <map>
#include <stdexcept>

#include "format_test_support.h"
#include "keyhold/crypto/encoding.h"
#include "keyhold/crypto/hash.h"
#include "keyhold/crypto/x25519.h"

namespace keyhold::format_test {

using json = nlohmann::ordered_json;
using envelope::Header;
using envelope::KekTarget;

std::vector<uint8_t> DetBytes(std::string_view label, size_t n) {
  std::vector<uint8_t> out;
  for (uint32_t counter = 0; out.size() < n; ++counter) {
    std::string input =
        "keyhold format v1 test vector/" + std::string(label) + "/" + std::to_string(counter);
    Sha256Digest d = Sha256({reinterpret_cast<const uint8_t*>(input.data()), input.size()});
    out.insert(out.end(), d.begin(), d.end());
  }
  out.resize(n);
  return out;
}

SecretBytes DetSecret(std::string_view label, size_t n) {
  return SecretBytes::CopyOf(DetBytes(label, n));
}

std::vector<uint8_t> PatternPlaintext(size_t n) {
  std::vector<uint8_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(i % 251);
  return out;
}

namespace {

[[noreturn]] void Fail(const std::string& what) { throw std::runtime_error(what); }

template <typename T>
T Must(Result<T> r, const std::string& what) {
  if (!r.ok()) Fail(what + ": " + r.error().message);
  return std::move(r).value();
}

struct TestKek {
  std::string label;
  KekTarget target;
  SecretBytes secret;
};

struct TestIdentity {
  std::string label;
  envelope::Identity id;
};

struct Object {
  std::string name;
  std::vector<uint8_t> header;
  std::vector<uint8_t> payload;
  std::vector<uint8_t> file() const {
    std::vector<uint8_t> f = header;
    f.insert(f.end(), payload.begin(), payload.end());
    return f;
  }
};

class Generator {
 public:
  Generator() {
    AddKek("A", "payroll", 1, "kek/A");
    AddKek("A-v2", "payroll", 2, "kek/A-v2", /*same_id_as=*/"A");
    // The same key id and version as A with a different secret: a keystore whose copy of
    // the key differs (or an attacker's guess).
    AddKek("A-wrong-secret", "payroll", 1, "kek/A-wrong-secret", "A");
    AddKek("B", "backups.2026", 1, "kek/B");
    AddIdentity("alice");
    AddIdentity("bob");
  }

  json Run() {
    json out;
    out["name"] = "keyhold_format_v1";
    out["description"] =
        "keyhold object format v1 (docs/FORMAT.md). valid: open with every keyring in "
        "open_with, check dek, inspect data and plaintext. invalid: assemble the file from "
        "its segments, open with open_with[0] and expected_context, expect `error` and exactly "
        "`released_plaintext_size` bytes of plaintext (a prefix of the original).";
    out["plaintext_rule"] = "byte i of a plaintext of n bytes is i mod 251";
    out["segment_rule"] =
        "a file is the concatenation of its segments: {hex, repeat?} or {from: valid vector "
        "name, offset, length} (a range of that vector's in-file bytes)";
    json keks = json::object();
    for (const auto& k : keks_) {
      keks[k.label] = {{"key_id", HexEncode(k.target.key_id)},
                       {"version", k.target.version},
                       {"name", k.target.key_name},
                       {"secret", HexEncode(k.secret.ExposeSecret())}};
    }
    out["keks"] = keks;
    json ids = json::object();
    for (const auto& i : ids_) {
      ids[i.label] = {{"identity", envelope::EncodeIdentity(i.id.secret)},
                      {"secret", HexEncode(i.id.secret.ExposeSecret())},
                      {"public_key", HexEncode(i.id.public_key)},
                      {"recipient", envelope::EncodeRecipient(i.id.public_key)},
                      {"fingerprint", HexEncode(envelope::RecipientFingerprint(i.id.public_key))}};
    }
    out["identities"] = ids;
    Valid();
    Invalid();
    out["valid"] = valid_;
    out["invalid"] = invalid_;
    return out;
  }

 private:
  void AddKek(const std::string& label, const std::string& name, uint32_t version,
              const std::string& secret_label, const std::string& same_id_as = "") {
    TestKek k{label, {}, DetSecret(secret_label)};
    auto id = DetBytes("key-id/" + (same_id_as.empty() ? label : same_id_as), envelope::kKeyIdSize);
    std::copy(id.begin(), id.end(), k.target.key_id.begin());
    k.target.version = version;
    k.target.key_name = name;
    keks_.push_back(std::move(k));
    for (auto& kk : keks_) kk.target.secret = &kk.secret;  // the vector may have moved
  }
  void AddIdentity(const std::string& label) {
    envelope::Identity id{DetSecret("identity/" + label), {}};
    id.public_key = Must(X25519PublicFromSecret(id.secret), "public key");
    ids_.push_back({label, std::move(id)});
  }
  const TestKek& Kek(const std::string& label) const {
    for (const auto& k : keks_) {
      if (k.label == label) return k;
    }
    Fail("no kek " + label);
  }
  const TestIdentity& Id(const std::string& label) const {
    for (const auto& i : ids_) {
      if (i.label == label) return i;
    }
    Fail("no identity " + label);
  }
  const Object& Obj(const std::string& name) const {
    auto it = objects_.find(name);
    if (it == objects_.end()) Fail("no object " + name);
    return it->second;
  }

  // Builds an object with fixed randomness, derived from its name.
  Object Build(const std::string& name, const envelope::EncryptionContext& context,
               const std::vector<std::string>& kek_labels,
               const std::vector<std::string>& recipient_labels, size_t plaintext_size,
               SecretBytes* dek_out, const std::vector<envelope::UnknownStanza>& extra = {}) {
    envelope::EncryptParams params;
    params.context = context;
    envelope::testing::FixedHeaderInputs fixed;
    auto oid = DetBytes(name + "/object-id", envelope::kObjectIdSize);
    std::copy(oid.begin(), oid.end(), fixed.object_id.begin());
    SecretBytes dek = DetSecret(name + "/dek");
    fixed.dek = &dek;
    for (size_t i = 0; i < kek_labels.size(); ++i) {
      params.keks.push_back(Kek(kek_labels[i]).target);
      auto salt = DetBytes(name + "/kek-salt/" + std::to_string(i), envelope::kWrapSaltSize);
      fixed.kek_salts.emplace_back();
      std::copy(salt.begin(), salt.end(), fixed.kek_salts.back().begin());
    }
    std::vector<SecretBytes> eph;
    eph.reserve(recipient_labels.size());
    for (size_t i = 0; i < recipient_labels.size(); ++i) {
      params.recipients.push_back(Id(recipient_labels[i]).id.public_key);
      eph.push_back(DetSecret(name + "/ephemeral/" + std::to_string(i)));
    }
    for (const auto& e : eph) fixed.ephemeral_secrets.push_back(&e);
    auto created = Must(envelope::testing::CreateHeaderDeterministicForTesting(params, fixed),
                        "create " + name);
    Object obj{name, created.header_bytes, {}};
    if (!extra.empty()) {
      // Unknown stanzas cannot be created through the API (nothing writes them in v1), so
      // the generator appends them and recomputes the MAC from the spec's derivation.
      Header h = created.header;
      for (const auto& u : extra) h.stanzas.emplace_back(u);
      obj.header = envelope::EncodeHeader(h);
      Remac(obj.header, dek);
    }
    const auto immutable = envelope::EncodeImmutable(created.header);
    auto pt = PatternPlaintext(plaintext_size);
    MemorySource src(pt);
    VectorSink sink;
    cobblestone::Options serial;
    serial.threads = 1;
    Must(cobblestone::testing::EncryptWithSaltForTesting(
             dek, DetBytes(name + "/payload-salt", cobblestone::kSaltSize), immutable, src, sink,
             serial),
         "payload " + name);
    obj.payload = std::move(sink.bytes);
    if (dek_out != nullptr) *dek_out = std::move(dek);
    objects_[name] = obj;
    return obj;
  }

  static void Remac(std::vector<uint8_t>& header, const SecretBytes& dek) {
    const std::string label = "keyhold/v1/header-mac";
    auto key = Must(HkdfExpand(HashAlg::kSha512, dek.ExposeSecret(),
                               {reinterpret_cast<const uint8_t*>(label.data()), label.size()}, 32),
                    "mac key");
    const size_t covered = header.size() - envelope::kHeaderMacSize;
    auto mac = Must(HmacCompute(HashAlg::kSha256, key.ExposeSecret(),
                                std::span<const uint8_t>(header).first(covered)),
                    "mac");
    std::copy(mac.begin(), mac.end(), header.begin() + static_cast<std::ptrdiff_t>(covered));
  }

  static json Inspect(const std::vector<uint8_t>& header_bytes) {
    size_t size = 0;
    Header h = Must(envelope::ParseHeader(header_bytes, &size), "inspect");
    json stanzas = json::array();
    for (const auto& s : h.stanzas) {
      if (const auto* k = std::get_if<envelope::KekStanza>(&s)) {
        stanzas.push_back({{"kind", 1},
                           {"type", "kek"},
                           {"key_id", HexEncode(k->key_id)},
                           {"version", k->version},
                           {"name", k->key_name},
                           {"salt", HexEncode(k->salt)},
                           {"wrapped_dek", HexEncode(k->wrapped_dek)}});
      } else if (const auto* x = std::get_if<envelope::X25519Stanza>(&s)) {
        stanzas.push_back({{"kind", 2},
                           {"type", "x25519"},
                           {"fingerprint", HexEncode(x->fingerprint)},
                           {"ephemeral", HexEncode(x->ephemeral)},
                           {"wrapped_dek", HexEncode(x->wrapped_dek)}});
      } else {
        const auto& u = std::get<envelope::UnknownStanza>(s);
        stanzas.push_back({{"kind", u.kind}, {"type", "unknown"}, {"body", HexEncode(u.body)}});
      }
    }
    json context = json::object();
    for (const auto& [k, v] : h.context) context[k] = v;
    return {{"version", h.version},
            {"suite", h.suite},
            {"object_id", HexEncode(h.object_id)},
            {"context", context},
            {"stanzas", stanzas},
            {"header_mac", HexEncode(h.mac)},
            {"immutable_size", envelope::EncodeImmutable(h).size()},
            {"header_size", size}};
  }

  static json Keyring(const std::vector<std::string>& keks, const std::vector<std::string>& ids) {
    return {{"keks", keks}, {"identities", ids}};
  }

  static json Ctx(const envelope::EncryptionContext& c) {
    json j = json::object();
    for (const auto& [k, v] : c) j[k] = v;
    return j;
  }

  void AddValid(const std::string& name, const std::string& comment,
                const envelope::EncryptionContext& context, const std::vector<std::string>& keks,
                const std::vector<std::string>& ids, size_t size, json open_with,
                bool detached = false, const std::vector<envelope::UnknownStanza>& extra = {}) {
    SecretBytes dek;
    Object o = Build(name, context, keks, ids, size, &dek, extra);
    json v;
    v["name"] = name;
    v["comment"] = comment;
    v["detached"] = detached;
    if (detached) {
      v["header_hex"] = HexEncode(o.header);
      v["payload_hex"] = HexEncode(o.payload);
    } else {
      v["file_hex"] = HexEncode(o.file());
    }
    v["header_size"] = o.header.size();
    v["payload_size"] = o.payload.size();
    v["dek"] = HexEncode(dek.ExposeSecret());
    v["open_with"] = std::move(open_with);
    v["expected_context"] = Ctx(context);
    auto pt = PatternPlaintext(size);
    v["plaintext_size"] = size;
    v["plaintext_sha256"] = HexEncode(Sha256(pt));
    v["inspect"] = Inspect(o.header);
    valid_.push_back(std::move(v));
  }

  static json Hex(const std::vector<uint8_t>& b) { return {{"hex", HexEncode(b)}}; }
  json From(const std::string& name, size_t offset, size_t length) const {
    if (offset + length > Obj(name).file().size()) Fail("range outside " + name);
    return {{"from", name}, {"offset", offset}, {"length", length}};
  }

  void AddInvalid(const std::string& name, const std::string& comment, json segments,
                  const std::string& error, json open_with, size_t released = 0,
                  const envelope::EncryptionContext& expected = {}, bool detached = false,
                  json payload_segments = json::array()) {
    json v;
    v["name"] = name;
    v["comment"] = comment;
    v["detached"] = detached;
    if (detached) {
      v["header"] = std::move(segments);
      v["payload"] = std::move(payload_segments);
    } else {
      v["file"] = std::move(segments);
    }
    v["open_with"] = std::move(open_with);
    v["expected_context"] = Ctx(expected);
    v["error"] = error;
    v["released_plaintext_size"] = released;
    invalid_.push_back(std::move(v));
  }

  // `name`'s file with `edit` (which keeps the length) applied: the unchanged head and tail
  // as ranges of the original, the changed bytes as hex.
  template <typename Edit>
  json Edited(const std::string& name, Edit edit) const {
    const std::vector<uint8_t> original = Obj(name).file();
    std::vector<uint8_t> f = original;
    edit(f);
    if (f.size() != original.size()) Fail("an edit must keep the length");
    size_t first = 0;
    while (first < f.size() && f[first] == original[first]) ++first;
    if (first == f.size()) Fail("an edit must change something");
    size_t last = f.size() - 1;
    while (f[last] == original[last]) --last;
    json segments = json::array();
    if (first > 0) segments.push_back(From(name, 0, first));
    segments.push_back(
        Hex(std::vector<uint8_t>(f.begin() + static_cast<std::ptrdiff_t>(first),
                                 f.begin() + static_cast<std::ptrdiff_t>(last + 1))));
    if (last + 1 < f.size()) segments.push_back(From(name, last + 1, f.size() - last - 1));
    return segments;
  }

  void Valid() {
    AddValid("kek-small", "one kek stanza, a short plaintext: the worked example of FORMAT.md",
             {{"app", "demo"}}, {"A"}, {}, 13, json::array({Keyring({"A"}, {})}));
    AddValid("x25519-empty", "one x25519 stanza, empty plaintext (one empty final chunk)", {}, {},
             {"alice"}, 0, json::array({Keyring({}, {"alice"})}));
    AddValid("kek-x25519-3chunk", "a kek and an x25519 stanza, 40000 bytes = 3 chunks",
             {{"app", "billing"}, {"env", "prod"}}, {"A"}, {"alice"}, 40000,
             json::array({Keyring({"A"}, {}), Keyring({}, {"alice"}), Keyring({"B"}, {"alice"})}));
    AddValid("one-full-chunk", "16384 bytes: a full chunk then an empty final chunk", {{"k", ""}},
             {"B"}, {}, 16384, json::array({Keyring({"B"}, {})}));
    AddValid("several-stanzas", "two keks and two recipients; each opens it alone",
             {{"a", "1"}, {"b", "2"}, {"\xc3\xa9t\xc3\xa9", "\xe2\x82\xac"}}, {"A", "B"},
             {"alice", "bob"}, 1,
             json::array({Keyring({"A"}, {}), Keyring({"B"}, {}), Keyring({}, {"alice"}),
                          Keyring({}, {"bob"})}));
    AddValid("unknown-stanza",
             "a kek stanza, then an unknown stanza of kind 0x7f: skipped when opening", {}, {"A"},
             {}, 100, json::array({Keyring({"A"}, {})}), false,
             {envelope::UnknownStanza{0x7f, {0xde, 0xad, 0xbe, 0xef}}});
    AddValid("detached", "detached mode: the header (NAME.hdr) and the payload (NAME) apart",
             {{"file", "report.pdf"}}, {"A"}, {"alice"}, 20000,
             json::array({Keyring({"A"}, {}), Keyring({}, {"alice"})}), true);
    AddValid("kek-ctx2", "two context entries of equal lengths (base for order/duplicate cases)",
             {{"app", "demo"}, {"env", "prod"}}, {"A"}, {}, 5, json::array({Keyring({"A"}, {})}));
  }

  void Invalid() {
    const json A = json::array({Keyring({"A"}, {})});
    const json alice = json::array({Keyring({}, {"alice"})});
    const std::string s = "kek-small";
    const Object& small = Obj(s);
    // Offsets in kek-small: magic 0..7, version 8, suite 9, object id 10..25, context from
    // 26: count(2) "app" entry: 26..27 count, 28..29 key_len, 30..32 key, 33..34 value_len,
    // 35..38 value; stanza count 39..40; stanza at 41: kind 41, body_len 42..43, body 44...
    const size_t stanza = 41, body = 44;
    const size_t name_len_at = body + 16 + 4;
    const size_t name_at = name_len_at + 1;
    const size_t salt_at = name_at + 7;  // "payroll"
    const size_t wrapped_at = salt_at + 32;
    const size_t mac_at = small.header.size() - 32;
    auto flip = [&](size_t at, uint8_t mask) {
      return Edited(s, [=](std::vector<uint8_t>& f) { f[at] ^= mask; });
    };
    auto set = [&](size_t at, uint8_t value) {
      return Edited(s, [=](std::vector<uint8_t>& f) { f[at] = value; });
    };
    AddInvalid("magic-first-byte", "0x89 -> 0x88", flip(0, 1), "malformed", A);
    AddInvalid("magic-last-byte", "'d' -> 'e'", set(7, 'e'), "malformed", A);
    AddInvalid("version-2", "unknown format version", set(8, 2), "unsupported", A);
    AddInvalid("version-0", "unknown format version", set(8, 0), "unsupported", A);
    AddInvalid("suite-2", "unknown suite", set(9, 2), "unsupported", A);
    AddInvalid("object-id", "object id is in the wrap AAD: the unwrap fails", flip(10, 0x80),
               "auth_failed", A);
    AddInvalid("context-count-65", "more entries than the limit", set(27, 65), "malformed", A);
    AddInvalid("context-key-len-0", "empty key", set(29, 0), "malformed", A);
    AddInvalid("context-key-len-129", "key longer than 128",
               Edited(s,
                      [](auto& f) {
                        f[28] = 0;
                        f[29] = 129;
                      }),
               "malformed", A);
    AddInvalid("context-value-len-1025", "value longer than 1024",
               Edited(s,
                      [](auto& f) {
                        f[33] = 0x04;
                        f[34] = 0x01;
                      }),
               "malformed", A);
    AddInvalid("context-key-byte", "'app' -> 'apq': the context is in the wrap AAD", set(32, 'q'),
               "auth_failed", A);
    AddInvalid("context-value-byte", "'demo' -> 'demp'", set(38, 'p'), "auth_failed", A);
    AddInvalid("context-key-bad-utf8", "0xff is never valid utf-8", set(30, 0xff), "malformed", A);
    AddInvalid("context-value-overlong-utf8", "c0 80 is an overlong NUL",
               Edited(s,
                      [](auto& f) {
                        f[35] = 0xc0;
                        f[36] = 0x80;
                      }),
               "malformed", A);
    {
      const std::string c2 = "kek-ctx2";
      // entries at 28..38 ("app"="demo") and 39..49 ("env"="prod"), 11 bytes each.
      AddInvalid("context-unsorted", "the two entries swapped",
                 Edited(c2,
                        [](auto& f) {
                          std::vector<uint8_t> a(f.begin() + 28, f.begin() + 39);
                          std::copy(f.begin() + 39, f.begin() + 50, f.begin() + 28);
                          std::copy(a.begin(), a.end(), f.begin() + 39);
                        }),
                 "malformed", A);
      AddInvalid("context-duplicate", "second key 'env' -> 'app'",
                 Edited(c2,
                        [](auto& f) {
                          f[41] = 'a';
                          f[42] = 'p';
                          f[43] = 'p';
                        }),
                 "malformed", A);
    }
    {
      // A context section over 16384 bytes: 16 entries of a 1-byte key and a 1024-byte
      // value (16 * 1029 + 2 = 16466). Rejected before the header MAC could be checked.
      std::vector<uint8_t> f(small.header.begin(), small.header.begin() + 26);
      f.push_back(0);
      f.push_back(16);
      for (int i = 0; i < 16; ++i) {
        f.insert(f.end(), {0, 1, static_cast<uint8_t>('a' + i), 0x04, 0x00});
        f.insert(f.end(), 1024, 'x');
      }
      AddInvalid("context-section-too-large", "16466-byte context section", json::array({Hex(f)}),
                 "malformed", A);
    }
    AddInvalid("stanza-count-0", "no stanza", set(40, 0), "malformed", A);
    AddInvalid("stanza-count-65", "more stanzas than the limit", set(40, 65), "malformed", A);
    AddInvalid("stanza-kind-0", "kind 0 is reserved", set(stanza, 0), "malformed", A);
    AddInvalid("stanza-kind-kek-to-x25519", "a kek body is not 96 bytes", set(stanza, 2),
               "malformed", A);
    AddInvalid("stanza-kind-unknown", "the only stanza becomes an unknown kind: skipped",
               set(stanza, 0x42), "no_matching_key", A);
    AddInvalid("kek-body-too-long", "body_len + 1 (swallows the first MAC byte)", flip(43, 0x01),
               "malformed", A);
    AddInvalid("kek-body-too-short", "body_len - 1",
               Edited(s, [](auto& f) { f[43] = static_cast<uint8_t>(f[43] - 1); }), "malformed", A);
    AddInvalid("stanza-body-over-limit", "body_len 4097",
               Edited(s,
                      [](auto& f) {
                        f[42] = 0x10;
                        f[43] = 0x01;
                      }),
               "malformed", A);
    AddInvalid("kek-key-id", "another key id: this keyring has no such key", flip(body, 1),
               "no_matching_key", A);
    AddInvalid("kek-version-2", "version 1 -> 2: not in this keyring", set(body + 19, 2),
               "no_matching_key", A);
    AddInvalid("kek-version-0", "versions start at 1", set(body + 19, 0), "malformed", A);
    AddInvalid("kek-name-len", "name_len 7 -> 8", set(name_len_at, 8), "malformed", A);
    AddInvalid("kek-name-char", "'payroll' -> 'paxroll': only the header MAC covers the name",
               set(name_at + 2, 'x'), "auth_failed", A);
    AddInvalid("kek-name-bad-char", "'/' is not allowed in a key name", set(name_at + 2, '/'),
               "malformed", A);
    AddInvalid("kek-name-first-char", "a name starts with a letter or digit", set(name_at, '.'),
               "malformed", A);
    AddInvalid("kek-salt", "another wrap key", flip(salt_at + 5, 0x10), "auth_failed", A);
    AddInvalid("kek-wrapped-dek", "ciphertext bit", flip(wrapped_at, 0x01), "auth_failed", A);
    AddInvalid("kek-wrapped-tag", "tag bit", flip(wrapped_at + 47, 0x80), "auth_failed", A);
    AddInvalid("header-mac", "MAC bit", flip(mac_at + 31, 0x01), "auth_failed", A);
    AddInvalid("header-truncated", "the file ends inside the header",
               json::array({From(s, 0, small.header.size() - 1)}), "malformed", A);
    AddInvalid("empty-file", "", json::array({json{{"hex", ""}}}), "malformed", A);
    {
      // A header growing past 65536 bytes through 16 unknown stanzas of 4096 bytes: rejected
      // as soon as the limit is crossed, without reading further.
      std::vector<uint8_t> prefix(small.header.begin(), small.header.begin() + 39);
      prefix.push_back(0);
      prefix.push_back(17);
      std::vector<uint8_t> stanza_bytes = {0x7f, 0x10, 0x00};
      stanza_bytes.insert(stanza_bytes.end(), 4096, 0xaa);
      AddInvalid("header-over-limit",
                 "17 unknown stanzas of 4096-byte bodies: 69,724 bytes before the MAC",
                 json::array({Hex(prefix), json{{"hex", HexEncode(stanza_bytes)}, {"repeat", 17}},
                              Hex(std::vector<uint8_t>(32, 0))}),
                 "malformed", A);
    }
    // x25519 stanza of kek-x25519-3chunk, opened with alice only.
    {
      const std::string b = "kek-x25519-3chunk";
      const Object& o = Obj(b);
      Header h = Must(envelope::ParseHeader(o.header, nullptr), "parse");
      const size_t imm = envelope::EncodeImmutable(h).size();
      const size_t kek_len = 3 + 16 + 4 + 1 + 7 + 32 + 48;
      const size_t x = imm + 2 + kek_len;  // x25519 stanza kind byte
      auto xflip = [&](size_t at, uint8_t m) {
        return Edited(b, [=](std::vector<uint8_t>& f) { f[at] ^= m; });
      };
      AddInvalid("x25519-fingerprint", "the identity no longer matches", xflip(x + 3, 1),
                 "no_matching_key", alice);
      AddInvalid("x25519-ephemeral", "another shared secret", xflip(x + 3 + 16 + 4, 2),
                 "auth_failed", alice);
      AddInvalid("x25519-wrapped-dek", "", xflip(x + 3 + 48 + 10, 4), "auth_failed", alice);
      AddInvalid("x25519-body-too-long", "body_len 97", xflip(x + 2, 96 ^ 97), "malformed", alice);
      AddInvalid("x25519-body-too-short", "body_len 95", xflip(x + 2, 96 ^ 95), "malformed", alice);

      // Keys, identities, context.
      AddInvalid("wrong-kek-secret", "same key id and version, another secret",
                 json::array({From(b, 0, o.header.size() + o.payload.size())}), "auth_failed",
                 json::array({Keyring({"A-wrong-secret"}, {})}));
      AddInvalid("other-keystore", "a keystore without key A",
                 json::array({From(b, 0, o.header.size() + o.payload.size())}), "no_matching_key",
                 json::array({Keyring({"B", "A-v2"}, {})}));
      AddInvalid("wrong-identity", "bob is not a recipient",
                 json::array({From(b, 0, o.header.size() + o.payload.size())}), "no_matching_key",
                 json::array({Keyring({}, {"bob"})}));
      AddInvalid("wrong-expected-context", "env=prod demanded as env=dev",
                 json::array({From(b, 0, o.header.size() + o.payload.size())}), "context_mismatch",
                 A, 0, {{"env", "dev"}});
      AddInvalid("missing-expected-context", "a demanded key the object lacks",
                 json::array({From(b, 0, o.header.size() + o.payload.size())}), "context_mismatch",
                 A, 0, {{"tenant", "x"}});

      // Payload: offsets relative to the payload start P.
      const size_t P = o.header.size();
      const size_t c0 = P + 56, c1 = c0 + 16400, c2 = c1 + 16400, end = P + o.payload.size();
      auto trunc = [&](const std::string& n, size_t len, const std::string& err, size_t rel,
                       const std::string& why) {
        AddInvalid(n, why, json::array({From(b, 0, len)}), err, A, rel);
      };
      trunc("truncated-at-payload-start", P, "auth_failed", 0, "no payload prefix");
      trunc("truncated-in-prefix", P + 30, "auth_failed", 0, "half a salt and commitment");
      trunc("truncated-after-prefix", c0, "payload_auth_failed", 0, "no chunk at all");
      // A full chunk is never final, so the complete chunks before a cut authenticate and
      // are released; the missing final chunk is the error.
      trunc("truncated-after-chunk-0", c1, "payload_auth_failed", 16384,
            "chunk 0 authenticates as a non-final chunk; the final chunk is missing");
      trunc("truncated-after-chunk-1", c2, "payload_auth_failed", 32768,
            "chunks 0 and 1 authenticate; the final chunk is missing");
      trunc("truncated-in-chunk-1", c1 + 1000, "payload_auth_failed", 16384, "");
      trunc("truncated-last-byte", end - 1, "payload_auth_failed", 32768, "");
      AddInvalid("chunks-0-1-swapped", "",
                 json::array({From(b, 0, c0), From(b, c1, 16400), From(b, c0, 16400),
                              From(b, c2, end - c2)}),
                 "payload_auth_failed", A, 0);
      AddInvalid("chunk-1-dropped", "chunk 2 at index 1",
                 json::array({From(b, 0, c1), From(b, c2, end - c2)}), "payload_auth_failed", A,
                 16384);
      AddInvalid("chunk-0-duplicated", "", json::array({From(b, 0, c1), From(b, c0, end - c0)}),
                 "payload_auth_failed", A, 16384);
      AddInvalid("trailing-byte", "one byte after the final chunk",
                 json::array({From(b, 0, end), json{{"hex", "00"}}}), "payload_auth_failed", A,
                 32768);
      AddInvalid("trailing-chunk", "a copy of chunk 0 after the final chunk",
                 json::array({From(b, 0, end), From(b, c0, 16400)}), "payload_auth_failed", A,
                 32768);
      AddInvalid("payload-salt", "changes the derived key: commitment mismatch", xflip(P + 3, 1),
                 "auth_failed", A);
      AddInvalid("payload-commitment", "", xflip(P + 24 + 31, 0x40), "auth_failed", A);
      AddInvalid("chunk-1-bit", "", xflip(c1 + 500, 8), "payload_auth_failed", A, 16384);
      AddInvalid("chunk-2-tag", "", xflip(end - 1, 1), "payload_auth_failed", A, 32768);

      // Another object for the same key: its header and our payload. The header opens (it is
      // a genuine header) and yields the other DEK and immutable part, so the payload's key
      // commitment fails before any chunk: auth_failed, nothing released.
      Build("swap-partner", {{"app", "billing"}, {"env", "prod"}}, {"A"}, {"alice"}, 40000,
            nullptr);
      const Object& partner = Obj("swap-partner");
      AddInvalid("swapped-header", "swap-partner's header on kek-x25519-3chunk's payload",
                 json::array({json{{"hex", HexEncode(partner.header)}}, From(b, P, end - P)}),
                 "auth_failed", A);
    }
    {
      const std::string e = "x25519-empty";
      const Object& o = Obj(e);
      const size_t P = o.header.size();
      AddInvalid("empty-payload-final-chunk-dropped", "the 16-byte empty final chunk removed",
                 json::array({From(e, 0, P + 56)}), "payload_auth_failed", alice);
      AddInvalid("empty-payload-trailing", "",
                 json::array({From(e, 0, P + 72), json{{"hex", "ff"}}}), "payload_auth_failed",
                 alice);
    }
    {
      const std::string c = "one-full-chunk";
      const Object& o = Obj(c);
      AddInvalid("full-chunk-final-chunk-dropped",
                 "the empty final chunk after a full chunk removed: the full chunk is released, "
                 "the truncation is still an error",
                 json::array({From(c, 0, o.header.size() + 56 + 16400)}), "payload_auth_failed",
                 json::array({Keyring({"B"}, {})}), 16384);
      AddInvalid("full-chunk-final-chunk-cut", "the 16-byte empty final chunk cut to 15 bytes",
                 json::array({From(c, 0, o.header.size() + 56 + 16400 + 16 - 1)}),
                 "payload_auth_failed", json::array({Keyring({"B"}, {})}), 16384);
    }
    {
      const std::string d = "detached";
      const Object& o = Obj(d);
      AddInvalid("detached-header-trailing-byte", "a sidecar header must hold exactly a header",
                 json::array({From(d, 0, o.header.size()), json{{"hex", "00"}}}), "malformed", A, 0,
                 {}, true, json::array({From(d, o.header.size(), o.payload.size())}));
      AddInvalid("detached-payload-truncated", "", json::array({From(d, 0, o.header.size())}),
                 "payload_auth_failed", A, 16384, {}, true,
                 json::array({From(d, o.header.size(), o.payload.size() - 16)}));
    }
  }

  std::vector<TestKek> keks_;
  std::vector<TestIdentity> ids_;
  std::map<std::string, Object> objects_;
  json valid_ = json::array();
  json invalid_ = json::array();
};

}  // namespace

json GenerateFormatVectors() {
  Generator g;
  return g.Run();
}

}  // namespace keyhold::format_test
