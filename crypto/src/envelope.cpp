// The keyhold v1 envelope: wrapping the DEK to KEKs and X25519 recipients, the header MAC,
// opening, rewrapping, and the payload glue (docs/FORMAT.md). Encoding is in
// envelope_codec.cpp.
#include "keyhold/crypto/envelope.h"

#include <algorithm>
#include <optional>
#include <set>
#include <string>

#include "internal/cobblestone_engine.h"
#include "keyhold/crypto/aes_gcm.h"
#include "keyhold/crypto/constant_time.h"
#include "keyhold/crypto/encoding.h"
#include "keyhold/crypto/hash.h"
#include "keyhold/crypto/random.h"

namespace keyhold::envelope {
namespace {

constexpr std::string_view kKekWrapLabel = "keyhold/v1/kek-wrap";
constexpr std::string_view kX25519WrapLabel = "keyhold/v1/x25519-wrap";
constexpr std::string_view kFingerprintLabel = "keyhold/v1/recipient-fingerprint";
constexpr std::string_view kHeaderMacLabel = "keyhold/v1/header-mac";
constexpr std::string_view kRecipientHrp = "kh";
constexpr std::string_view kIdentityHrp = "kh-secret-key-";  // written in upper case
// Every wrap key is used exactly once (fresh salt or fresh ephemeral per stanza), so a fixed
// nonce never repeats under a key.
constexpr std::array<uint8_t, kAesGcmNonceSize> kZeroNonce{};

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string KeyLabel(const KekStanza& s) {
  return "key " + s.key_name + " version " + std::to_string(s.version);
}

Result<SecretBytes> KekWrapKey(std::span<const uint8_t> kek_secret, const KekStanza& s) {
  std::vector<uint8_t> info(kKekWrapLabel.begin(), kKekWrapLabel.end());
  info.insert(info.end(), s.key_id.begin(), s.key_id.end());
  for (int shift = 24; shift >= 0; shift -= 8) {
    info.push_back(static_cast<uint8_t>(s.version >> shift));
  }
  return Hkdf(HashAlg::kSha256, kek_secret, s.salt, info, kAesGcmKeySize);
}

Result<SecretBytes> X25519WrapKey(const SecretBytes& shared, const X25519PublicKey& ephemeral,
                                  const X25519PublicKey& recipient) {
  std::array<uint8_t, 2 * kX25519KeySize> salt{};
  std::copy(ephemeral.begin(), ephemeral.end(), salt.begin());
  std::copy(recipient.begin(), recipient.end(), salt.begin() + kX25519KeySize);
  return Hkdf(HashAlg::kSha256, shared.ExposeSecret(), salt, Bytes(kX25519WrapLabel),
              kAesGcmKeySize);
}

Result<std::vector<uint8_t>> HeaderMac(const SecretBytes& dek, std::span<const uint8_t> covered) {
  KH_ASSIGN_OR_RETURN(SecretBytes mac_key, HkdfExpand(HashAlg::kSha512, dek.ExposeSecret(),
                                                      Bytes(kHeaderMacLabel), kHeaderMacSize));
  return HmacCompute(HashAlg::kSha256, mac_key.ExposeSecret(), covered);
}

Status CheckKekTarget(const KekTarget& t) {
  KH_RETURN_IF_ERROR(ValidateKeyName(t.key_name));
  if (t.version < 1) return Error(ErrorCode::kInvalidArgument, "key version must be at least 1");
  if (t.secret == nullptr || t.secret->size() != kDekSize) {
    return Error(ErrorCode::kInvalidArgument, "key " + t.key_name + " version " +
                                                  std::to_string(t.version) +
                                                  ": secret must be 32 bytes");
  }
  return OkStatus();
}

Result<KekStanza> WrapToKek(const KekTarget& t, std::span<const uint8_t> salt,
                            const SecretBytes& dek, std::span<const uint8_t> immutable) {
  KekStanza s;
  s.key_id = t.key_id;
  s.version = t.version;
  s.key_name = t.key_name;
  std::copy(salt.begin(), salt.end(), s.salt.begin());
  KH_ASSIGN_OR_RETURN(SecretBytes wrap_key, KekWrapKey(t.secret->ExposeSecret(), s));
  KH_RETURN_IF_ERROR(AesGcmSeal(wrap_key.ExposeSecret(), kZeroNonce, immutable, dek.ExposeSecret(),
                                s.wrapped_dek));
  return s;
}

Result<X25519Stanza> WrapToRecipient(const X25519PublicKey& recipient,
                                     const SecretBytes& ephemeral_secret, const SecretBytes& dek,
                                     std::span<const uint8_t> immutable) {
  X25519Stanza s;
  s.fingerprint = RecipientFingerprint(recipient);
  KH_ASSIGN_OR_RETURN(s.ephemeral, X25519PublicFromSecret(ephemeral_secret));
  auto shared = X25519SharedSecret(ephemeral_secret, recipient);
  if (!shared.ok()) {
    return Error(ErrorCode::kInvalidArgument,
                 "recipient " + EncodeRecipient(recipient) + " is not a usable x25519 public key");
  }
  KH_ASSIGN_OR_RETURN(SecretBytes wrap_key, X25519WrapKey(*shared, s.ephemeral, recipient));
  KH_RETURN_IF_ERROR(AesGcmSeal(wrap_key.ExposeSecret(), kZeroNonce, immutable, dek.ExposeSecret(),
                                s.wrapped_dek));
  return s;
}

// Appends the MAC to a header whose stanzas are final, checks the size limit, and returns
// the encoding.
Result<std::vector<uint8_t>> Seal(Header& header, const SecretBytes& dek) {
  if (header.stanzas.empty() || header.stanzas.size() > kMaxStanzas) {
    return Error(ErrorCode::kInvalidArgument,
                 "an object needs 1.." + std::to_string(kMaxStanzas) + " recipients and keys");
  }
  for (const Stanza& s : header.stanzas) {
    if (const auto* u = std::get_if<UnknownStanza>(&s);
        u != nullptr && (u->kind == 0 || u->body.size() > kMaxStanzaBodySize)) {
      return Error(ErrorCode::kInvalidArgument, "invalid stanza to keep");
    }
  }
  std::vector<uint8_t> bytes = EncodeHeader(header);
  if (bytes.size() > kMaxHeaderSize) {
    return Error(ErrorCode::kInvalidArgument,
                 "header would exceed the limit of " + std::to_string(kMaxHeaderSize) + " bytes");
  }
  const auto covered = std::span<const uint8_t>(bytes).first(bytes.size() - kHeaderMacSize);
  KH_ASSIGN_OR_RETURN(std::vector<uint8_t> mac, HeaderMac(dek, covered));
  std::copy(mac.begin(), mac.end(), header.mac.begin());
  std::copy(mac.begin(), mac.end(), bytes.end() - static_cast<std::ptrdiff_t>(kHeaderMacSize));
  return bytes;
}

Result<NewHeader> BuildHeader(const EncryptParams& params, const SecretBytes& dek,
                              const std::array<uint8_t, kObjectIdSize>& object_id,
                              std::span<const std::array<uint8_t, kWrapSaltSize>> salts,
                              std::span<const SecretBytes* const> ephemerals) {
  if (params.keks.empty() && params.recipients.empty()) {
    return Error(ErrorCode::kInvalidArgument, "an object needs at least one key or recipient");
  }
  if (dek.size() != kDekSize) return Error(ErrorCode::kInvalidArgument, "dek must be 32 bytes");
  for (const KekTarget& t : params.keks) KH_RETURN_IF_ERROR(CheckKekTarget(t));
  KH_RETURN_IF_ERROR(EncodeContext(params.context));  // validates every context limit

  NewHeader out;
  out.header.object_id = object_id;
  out.header.context = params.context;
  const std::vector<uint8_t> immutable = EncodeImmutable(out.header);
  for (size_t i = 0; i < params.keks.size(); ++i) {
    KH_ASSIGN_OR_RETURN(KekStanza s, WrapToKek(params.keks[i], salts[i], dek, immutable));
    out.header.stanzas.emplace_back(std::move(s));
  }
  for (size_t i = 0; i < params.recipients.size(); ++i) {
    KH_ASSIGN_OR_RETURN(X25519Stanza s,
                        WrapToRecipient(params.recipients[i], *ephemerals[i], dek, immutable));
    out.header.stanzas.emplace_back(std::move(s));
  }
  KH_ASSIGN_OR_RETURN(out.header_bytes, Seal(out.header, dek));
  out.dek = dek.Clone();
  return out;
}

// The display form of a context value in an error message: context is not secret, but it is
// attacker-chosen text, so control characters are escaped before it reaches a terminal.
std::string Printable(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '"' || c == '\\') {
      out += "\\x";
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}

Status CheckExpectedContext(const EncryptionContext& actual, const EncryptionContext& expected) {
  for (const auto& [key, value] : expected) {
    auto it = actual.find(key);
    if (it == actual.end()) {
      return Error(ErrorCode::kContextMismatch,
                   "encryption context has no key " + Printable(key) + " (expected " +
                       Printable(key) + " = " + Printable(value) + ")",
                   "the object was encrypted with a different context: check the expected values");
    }
    if (it->second != value) {
      return Error(ErrorCode::kContextMismatch,
                   "encryption context key " + Printable(key) + " is " + Printable(it->second) +
                       ", expected " + Printable(value),
                   "the object was encrypted with a different context: check the expected values");
    }
  }
  return OkStatus();
}

Error NoMatchingKey(const Header& h) {
  std::string keys;
  size_t recipients = 0;
  for (const Stanza& s : h.stanzas) {
    if (const auto* k = std::get_if<KekStanza>(&s)) {
      keys += (keys.empty() ? "" : ", ") + KeyLabel(*k);
    } else if (std::holds_alternative<X25519Stanza>(s)) {
      ++recipients;
    }
  }
  std::string message = "no key opens this object: it is encrypted to ";
  message += keys.empty() ? "no keystore key" : keys;
  message +=
      " and " + std::to_string(recipients) + " x25519 recipient" + (recipients == 1 ? "" : "s");
  return Error(ErrorCode::kNoMatchingKey, std::move(message),
               "use the keystore that holds one of these keys, or the identity of one of the "
               "recipients");
}

// Tries the identities on one x25519 stanza; an empty SecretBytes means none of them is a
// recipient of it. A matching identity that fails to unwrap is kAuthFailed.
Result<SecretBytes> TryX25519(const X25519Stanza& s, std::span<const Identity> identities,
                              std::span<const uint8_t> immutable) {
  for (const Identity& id : identities) {
    if (RecipientFingerprint(id.public_key) != s.fingerprint) continue;
    const std::string who = "identity for recipient " + EncodeRecipient(id.public_key);
    auto shared = X25519SharedSecret(id.secret, s.ephemeral);
    if (!shared.ok()) {
      return Error(ErrorCode::kAuthFailed,
                   who + " did not open the header: the object was tampered with");
    }
    KH_ASSIGN_OR_RETURN(SecretBytes wrap_key, X25519WrapKey(*shared, s.ephemeral, id.public_key));
    SecretBytes dek(kDekSize);
    if (!AesGcmOpen(wrap_key.ExposeSecret(), kZeroNonce, immutable, s.wrapped_dek,
                    dek.ExposeSecret())
             .ok()) {
      return Error(ErrorCode::kAuthFailed,
                   who + " did not open the header: the object was tampered with");
    }
    return dek;
  }
  return SecretBytes();
}

}  // namespace

// --- Recipients and identities ------------------------------------------------------------

std::string EncodeRecipient(const X25519PublicKey& public_key) {
  return Bech32Encode(kRecipientHrp, public_key);
}

Result<X25519PublicKey> ParseRecipient(std::string_view text) {
  auto decoded = Bech32Decode(text);
  if (!decoded.ok() || decoded->hrp != kRecipientHrp || decoded->data.size() != kX25519KeySize ||
      text.substr(0, 3) != "kh1") {
    return Error(ErrorCode::kMalformed, "not a keyhold recipient (expected kh1...)");
  }
  X25519PublicKey key{};
  std::copy(decoded->data.begin(), decoded->data.end(), key.begin());
  return key;
}

std::string EncodeIdentity(const SecretBytes& secret) {
  return Bech32Encode(kIdentityHrp, secret.ExposeSecret(), /*upper=*/true);
}

Result<Identity> ParseIdentity(std::string_view text) {
  auto decoded = Bech32Decode(text);
  const bool ok = decoded.ok() && decoded->hrp == kIdentityHrp &&
                  decoded->data.size() == kX25519KeySize && text.substr(0, 15) == "KH-SECRET-KEY-1";
  if (decoded.ok()) {
    // The decoded bytes are the secret: move them into SecretBytes, wipe the vector.
    Identity id{SecretBytes::CopyOf(decoded->data), {}};
    WipeMemory(decoded->data.data(), decoded->data.size());
    if (!ok) {
      return Error(ErrorCode::kMalformed, "not a keyhold identity (expected KH-SECRET-KEY-1...)");
    }
    KH_ASSIGN_OR_RETURN(id.public_key, X25519PublicFromSecret(id.secret));
    return id;
  }
  return Error(ErrorCode::kMalformed, "not a keyhold identity (expected KH-SECRET-KEY-1...)");
}

std::array<uint8_t, kFingerprintSize> RecipientFingerprint(const X25519PublicKey& public_key) {
  std::vector<uint8_t> input(kFingerprintLabel.begin(), kFingerprintLabel.end());
  input.insert(input.end(), public_key.begin(), public_key.end());
  const Sha256Digest digest = Sha256(input);
  std::array<uint8_t, kFingerprintSize> out{};
  std::copy_n(digest.begin(), kFingerprintSize, out.begin());
  return out;
}

// --- Objects --------------------------------------------------------------------------------

namespace {

// A new header, its random values drawn in one call: the DEK, the object id, a wrap salt per
// KEK target, and `extra` (EncryptObject's payload salt). One system call per object instead
// of three, which a tree of small files feels. The draw is made into locked memory, wiped on
// return; the public values are copied out of it.
Result<NewHeader> CreateHeaderDrawing(const EncryptParams& params, std::span<uint8_t> extra) {
  const SecretBytes drawn = SecretBytes::Random(kDekSize + kObjectIdSize +
                                                params.keks.size() * kWrapSaltSize + extra.size());
  std::span<const uint8_t> rest = drawn.ExposeSecret();
  auto take = [&rest](size_t n) {
    std::span<const uint8_t> out = rest.first(n);
    rest = rest.subspan(n);
    return out;
  };
  const SecretBytes dek = SecretBytes::CopyOf(take(kDekSize));
  std::array<uint8_t, kObjectIdSize> object_id{};
  std::ranges::copy(take(kObjectIdSize), object_id.begin());
  std::vector<std::array<uint8_t, kWrapSaltSize>> salts(params.keks.size());
  for (auto& salt : salts) std::ranges::copy(take(kWrapSaltSize), salt.begin());
  std::ranges::copy(take(extra.size()), extra.begin());
  std::vector<X25519KeyPair> ephemerals;
  std::vector<const SecretBytes*> ephemeral_secrets;
  ephemerals.reserve(params.recipients.size());
  for (size_t i = 0; i < params.recipients.size(); ++i) {
    ephemerals.push_back(X25519Generate());
    ephemeral_secrets.push_back(&ephemerals.back().secret);
  }
  return BuildHeader(params, dek, object_id, salts, ephemeral_secrets);
}

}  // namespace

Result<NewHeader> CreateHeader(const EncryptParams& params) {
  return CreateHeaderDrawing(params, {});
}

namespace {

// For an in-file object: holds the header back so that it goes out in the same write as the
// payload's first stripe (at most one chunk and the prefix, copied once). One system call
// fewer per object, which a tree of small files feels; the bytes written are the same. The
// first stripe always comes: it carries the payload prefix, even for an empty message.
class HeaderFirstSink final : public cobblestone::Sink {
 public:
  HeaderFirstSink(cobblestone::Sink& out, std::span<const uint8_t> header)
      : out_(out), header_(header) {}
  Status Write(std::span<const uint8_t> data) override {
    if (sent_) return out_.Write(data);
    sent_ = true;
    std::vector<uint8_t> first(header_.begin(), header_.end());
    first.insert(first.end(), data.begin(), data.end());
    return out_.Write(first);
  }

 private:
  cobblestone::Sink& out_;
  std::span<const uint8_t> header_;
  bool sent_ = false;
};

}  // namespace

Result<cobblestone::StreamStats> EncryptObject(const EncryptParams& params, cobblestone::Source& in,
                                               cobblestone::Sink& header_out,
                                               cobblestone::Sink& payload_out) {
  // The payload's salt comes from the header's draw (see CreateHeaderDrawing); Cobblestone
  // needs only that it be fresh and random, as cobblestone::Encrypt's own would be.
  std::array<uint8_t, cobblestone::kSaltSize> salt{};
  KH_ASSIGN_OR_RETURN(NewHeader created, CreateHeaderDrawing(params, salt));
  const std::vector<uint8_t> immutable = EncodeImmutable(created.header);
  if (&header_out != &payload_out) {
    KH_RETURN_IF_ERROR(header_out.Write(created.header_bytes));
    return cobblestone::internal::EncryptWithSalt(created.dek, salt, immutable, in, payload_out,
                                                  params.engine);
  }
  HeaderFirstSink out(payload_out, created.header_bytes);
  return cobblestone::internal::EncryptWithSalt(created.dek, salt, immutable, in, out,
                                                params.engine);
}

Result<OpenedHeader> OpenHeader(std::span<const uint8_t> header_bytes, const Keyring& keyring,
                                const EncryptionContext& expected) {
  size_t size = 0;
  KH_ASSIGN_OR_RETURN(Header header, ParseHeader(header_bytes, &size));
  if (size != header_bytes.size()) {
    return Error(ErrorCode::kMalformed, "trailing bytes after the header");
  }
  OpenedHeader opened;
  // The parser accepts only canonical encodings, so re-encoding gives the exact file bytes.
  opened.immutable = EncodeImmutable(header);
  std::optional<Error> refusal;
  bool found = false;
  for (size_t i = 0; i < header.stanzas.size() && !found; ++i) {
    const Stanza& stanza = header.stanzas[i];
    if (const auto* kek = std::get_if<KekStanza>(&stanza)) {
      if (keyring.keks == nullptr) continue;
      auto resolved = keyring.keks->ResolveForDecrypt(*kek);
      if (!resolved.ok()) {
        const ErrorCode code = resolved.error().code;
        if (code == ErrorCode::kNotFound) continue;
        if (code == ErrorCode::kPolicyRefused) {
          if (!refusal) refusal = resolved.error();
          continue;
        }
        return std::move(resolved).error();
      }
      const SecretBytes* secret = *resolved;
      if (secret == nullptr || secret->size() != kDekSize) {
        return Error(ErrorCode::kInternal,
                     KeyLabel(*kek) + ": resolver returned no 32-byte secret");
      }
      KH_ASSIGN_OR_RETURN(SecretBytes wrap_key, KekWrapKey(secret->ExposeSecret(), *kek));
      SecretBytes dek(kDekSize);
      if (!AesGcmOpen(wrap_key.ExposeSecret(), kZeroNonce, opened.immutable, kek->wrapped_dek,
                      dek.ExposeSecret())
               .ok()) {
        return Error(ErrorCode::kAuthFailed,
                     KeyLabel(*kek) + " did not open the header: the object was tampered with",
                     "if the object is genuine, the keystore's copy of this key differs from the "
                     "one it was encrypted with");
      }
      opened.dek = std::move(dek);
      opened.opened_stanza = i;
      found = true;
    } else if (const auto* x = std::get_if<X25519Stanza>(&stanza)) {
      KH_ASSIGN_OR_RETURN(SecretBytes dek, TryX25519(*x, keyring.identities, opened.immutable));
      if (!dek.empty()) {
        opened.dek = std::move(dek);
        opened.opened_stanza = i;
        found = true;
      }
    }
    // UnknownStanza: a later format's recipient type; skipped, kept verbatim by Rewrap.
  }
  if (!found) {
    if (refusal) return *std::move(refusal);
    return NoMatchingKey(header);
  }

  KH_ASSIGN_OR_RETURN(SecretBytes mac_key, HkdfExpand(HashAlg::kSha512, opened.dek.ExposeSecret(),
                                                      Bytes(kHeaderMacLabel), kHeaderMacSize));
  if (!HmacVerify(HashAlg::kSha256, mac_key.ExposeSecret(),
                  header_bytes.first(size - kHeaderMacSize), header.mac)
           .ok()) {
    return Error(ErrorCode::kAuthFailed, "header authentication failed");
  }
  KH_RETURN_IF_ERROR(CheckExpectedContext(header.context, expected));
  opened.header = std::move(header);
  opened.header_bytes.assign(header_bytes.begin(), header_bytes.end());
  return opened;
}

Result<cobblestone::StreamStats> DecryptPayload(const OpenedHeader& opened,
                                                cobblestone::Source& payload_in,
                                                cobblestone::Sink& out,
                                                const cobblestone::Options& engine) {
  return cobblestone::Decrypt(opened.dek, opened.immutable, payload_in, out, engine);
}

Result<cobblestone::RandomAccessReader> OpenRandomAccess(const OpenedHeader& opened, int fd,
                                                         uint64_t payload_offset,
                                                         uint64_t payload_size) {
  return cobblestone::RandomAccessReader::Open(opened.dek, opened.immutable, fd, payload_offset,
                                               payload_size);
}

Result<std::vector<uint8_t>> Rewrap(const OpenedHeader& opened, const RewrapParams& params) {
  if (opened.dek.size() != kDekSize) {
    return Error(ErrorCode::kInvalidArgument, "rewrap needs an opened header");
  }
  for (const KekTarget& t : params.keks) KH_RETURN_IF_ERROR(CheckKekTarget(t));
  Header header;
  header.version = opened.header.version;
  header.suite = opened.header.suite;
  header.object_id = opened.header.object_id;
  header.context = opened.header.context;
  std::set<size_t> seen;
  for (size_t index : params.keep) {
    if (index >= opened.header.stanzas.size() || !seen.insert(index).second) {
      return Error(ErrorCode::kInvalidArgument,
                   "stanza " + std::to_string(index) + " does not exist or is kept twice");
    }
    header.stanzas.push_back(opened.header.stanzas[index]);
  }
  if (header.stanzas.size() + params.keks.size() + params.recipients.size() > kMaxStanzas) {
    return Error(ErrorCode::kInvalidArgument,
                 "an object holds at most " + std::to_string(kMaxStanzas) + " keys and recipients");
  }
  // The immutable part is what every stanza and the payload are bound to: it must not change.
  if (EncodeImmutable(header) != opened.immutable) {
    return Error(ErrorCode::kInternal, "opened header is inconsistent");
  }
  for (const KekTarget& t : params.keks) {
    std::array<uint8_t, kWrapSaltSize> salt{};
    RandomBytes(salt);
    KH_ASSIGN_OR_RETURN(KekStanza s, WrapToKek(t, salt, opened.dek, opened.immutable));
    header.stanzas.emplace_back(std::move(s));
  }
  for (const X25519PublicKey& r : params.recipients) {
    X25519KeyPair ephemeral = X25519Generate();
    KH_ASSIGN_OR_RETURN(X25519Stanza s,
                        WrapToRecipient(r, ephemeral.secret, opened.dek, opened.immutable));
    header.stanzas.emplace_back(std::move(s));
  }
  return Seal(header, opened.dek);
}

namespace testing {

Result<NewHeader> CreateHeaderDeterministicForTesting(const EncryptParams& params,
                                                      const FixedHeaderInputs& inputs) {
  if (inputs.dek == nullptr || inputs.kek_salts.size() != params.keks.size() ||
      inputs.ephemeral_secrets.size() != params.recipients.size()) {
    return Error(ErrorCode::kInvalidArgument, "fixed inputs do not match the params");
  }
  for (const SecretBytes* e : inputs.ephemeral_secrets) {
    if (e == nullptr || e->size() != kX25519KeySize) {
      return Error(ErrorCode::kInvalidArgument, "ephemeral secrets must be 32 bytes");
    }
  }
  return BuildHeader(params, *inputs.dek, inputs.object_id, inputs.kek_salts,
                     inputs.ephemeral_secrets);
}

}  // namespace testing
}  // namespace keyhold::envelope
