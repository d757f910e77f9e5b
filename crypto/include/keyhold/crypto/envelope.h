// The keyhold object format v1: an envelope header (encryption context, wrapped copies of a
// per-object data key, header MAC) followed by a Cobblestone-256 payload. docs/FORMAT.md is
// the byte-exact specification; this is its implementation.
#ifndef KEYHOLD_CRYPTO_ENVELOPE_H_
#define KEYHOLD_CRYPTO_ENVELOPE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "keyhold/crypto/cobblestone.h"
#include "keyhold/crypto/result.h"
#include "keyhold/crypto/secret_bytes.h"
#include "keyhold/crypto/x25519.h"

namespace keyhold::envelope {

// "\x89keyhold": a non-ASCII first byte so no text file starts like a keyhold object.
constexpr std::array<uint8_t, 8> kMagic = {0x89, 'k', 'e', 'y', 'h', 'o', 'l', 'd'};
constexpr uint8_t kFormatVersion = 1;
constexpr uint8_t kSuiteCobblestone256 = 1;  // Cobblestone-256 payload, HKDF-SHA-256 wraps

constexpr size_t kObjectIdSize = 16;
constexpr size_t kKeyIdSize = 16;
constexpr size_t kDekSize = 32;
constexpr size_t kWrappedDekSize = kDekSize + 16;  // AES-256-GCM ciphertext || tag
constexpr size_t kWrapSaltSize = 32;
constexpr size_t kFingerprintSize = 16;
constexpr size_t kHeaderMacSize = 32;

constexpr uint8_t kStanzaKek = 0x01;
constexpr uint8_t kStanzaX25519 = 0x02;

// Limits, checked while parsing before anything is allocated from an input-supplied size.
constexpr size_t kMaxHeaderSize = 65536;
constexpr size_t kMaxContextEntries = 64;
constexpr size_t kMaxContextKeySize = 128;     // bytes, at least 1
constexpr size_t kMaxContextValueSize = 1024;  // bytes, may be 0
constexpr size_t kMaxContextSize = 16384;      // encoded context section, bytes
constexpr size_t kMaxStanzas = 64;             // at least 1
constexpr size_t kMaxStanzaBodySize = 4096;
constexpr size_t kMaxKeyNameSize = 64;

// Sorted by key bytes (std::string compares as unsigned char), keys unique.
using EncryptionContext = std::map<std::string, std::string>;

struct KekStanza {
  std::array<uint8_t, kKeyIdSize> key_id{};
  uint32_t version = 0;
  std::string key_name;  // lookup hint and display; [A-Za-z0-9._-], 1..64 bytes
  std::array<uint8_t, kWrapSaltSize> salt{};
  std::array<uint8_t, kWrappedDekSize> wrapped_dek{};
};

struct X25519Stanza {
  std::array<uint8_t, kFingerprintSize> fingerprint{};  // of the recipient's public key
  X25519PublicKey ephemeral{};
  std::array<uint8_t, kWrappedDekSize> wrapped_dek{};
};

struct UnknownStanza {  // a kind this version does not know: kept verbatim, never opened
  uint8_t kind = 0;
  std::vector<uint8_t> body;
};

using Stanza = std::variant<KekStanza, X25519Stanza, UnknownStanza>;

struct Header {
  uint8_t version = kFormatVersion;
  uint8_t suite = kSuiteCobblestone256;
  std::array<uint8_t, kObjectIdSize> object_id{};
  EncryptionContext context;
  std::vector<Stanza> stanzas;
  std::array<uint8_t, kHeaderMacSize> mac{};
};

// --- Encoding ------------------------------------------------------------------------------

// Validates a key name (charset and length). kInvalidArgument with the rule in the message.
Status ValidateKeyName(std::string_view name);
// Validates and canonically encodes a context (the context section, count included).
Result<std::vector<uint8_t>> EncodeContext(const EncryptionContext& context);
// Parses exactly one context section occupying all of `bytes`.
Result<EncryptionContext> ParseContext(std::span<const uint8_t> bytes);

// The immutable part: magic, version, suite, object id, context. It is the Cobblestone
// context and the AAD of every wrap, so neither can move to another header or context.
std::vector<uint8_t> EncodeImmutable(const Header& header);
std::vector<uint8_t> EncodeHeader(const Header& header);

// Parses a header at the start of `bytes`; `*header_size` receives its length. Accepts only
// the canonical encoding (EncodeHeader(ParseHeader(b)) == b's first *header_size bytes).
// kMalformed (with the field or limit named) or kUnsupported (version, suite).
Result<Header> ParseHeader(std::span<const uint8_t> bytes, size_t* header_size);

// Reads exactly one header's bytes from `in`, never more (so the payload follows unread).
// kMalformed on a short read or a limit exceeded; "not a keyhold object" for a bad magic.
Result<std::vector<uint8_t>> ReadHeaderBytes(cobblestone::Source& in);

// --- Recipients and identities ------------------------------------------------------------

// "kh1..." (Bech32, hrp "kh") and "KH-SECRET-KEY-1..." (Bech32, upper case).
std::string EncodeRecipient(const X25519PublicKey& public_key);
Result<X25519PublicKey> ParseRecipient(std::string_view text);
std::string EncodeIdentity(const SecretBytes& secret);  // the returned string is secret too
struct Identity {
  SecretBytes secret;
  X25519PublicKey public_key{};
};
Result<Identity> ParseIdentity(std::string_view text);
std::array<uint8_t, kFingerprintSize> RecipientFingerprint(const X25519PublicKey& public_key);

// --- Keys -----------------------------------------------------------------------------------

// A key-encryption key version to wrap a new DEK to.
struct KekTarget {
  std::array<uint8_t, kKeyIdSize> key_id{};
  uint32_t version = 0;
  std::string key_name;
  const SecretBytes* secret = nullptr;  // 32 bytes, borrowed
};

// What the keystore provides to decryption: the secret of a key version, subject to policy.
class KekResolver {
 public:
  virtual ~KekResolver() = default;
  // kNotFound if this resolver has no such key (a different keystore's key);
  // kPolicyRefused (message names the version, hint names the remedy) if the version is
  // disabled, destroyed or below the key's min_decryption_version.
  virtual Result<const SecretBytes*> ResolveForDecrypt(const KekStanza& stanza) = 0;
};

struct Keyring {
  KekResolver* keks = nullptr;           // may be null
  std::span<const Identity> identities;  // may be empty
};

// --- Objects --------------------------------------------------------------------------------

struct EncryptParams {
  EncryptionContext context;
  std::vector<KekTarget> keks;
  std::vector<X25519PublicKey> recipients;
  cobblestone::Options engine;
};

struct NewHeader {
  Header header;
  std::vector<uint8_t> header_bytes;
  SecretBytes dek;
};

// A fresh object id and DEK, one stanza per target, and the header MAC.
// kInvalidArgument if there is no target or a limit would be exceeded.
Result<NewHeader> CreateHeader(const EncryptParams& params);

// Encrypts `in`: writes the header to `header_out`, then the payload to `payload_out` (pass
// the same sink twice for an in-file object, two sinks for a detached header). In-file, the
// header goes out in the same Write as the payload's first bytes.
Result<cobblestone::StreamStats> EncryptObject(const EncryptParams& params, cobblestone::Source& in,
                                               cobblestone::Sink& header_out,
                                               cobblestone::Sink& payload_out);

struct OpenedHeader {
  Header header;
  std::vector<uint8_t> header_bytes;
  std::vector<uint8_t> immutable;
  SecretBytes dek;
  size_t opened_stanza = 0;  // index into header.stanzas
};

// Unwraps the DEK with the first stanza the keyring can open, verifies the header MAC, then
// checks that every entry of `expected` is present in the context with the same value.
// Errors: kMalformed/kUnsupported (header), kNoMatchingKey, kPolicyRefused (the only stanzas
// the keyring holds are refused by policy), kAuthFailed (a stanza for a key we hold does not
// open, or the MAC is wrong), kContextMismatch.
Result<OpenedHeader> OpenHeader(std::span<const uint8_t> header_bytes, const Keyring& keyring,
                                const EncryptionContext& expected = {});

// Streams the payload of an opened object into `out` (see cobblestone::Decrypt for errors).
Result<cobblestone::StreamStats> DecryptPayload(const OpenedHeader& opened,
                                                cobblestone::Source& payload_in,
                                                cobblestone::Sink& out,
                                                const cobblestone::Options& engine = {});

// Random access to an opened object's payload stored at [offset, offset + size) of fd.
Result<cobblestone::RandomAccessReader> OpenRandomAccess(const OpenedHeader& opened, int fd,
                                                         uint64_t payload_offset,
                                                         uint64_t payload_size);

struct RewrapParams {
  std::vector<size_t> keep;  // indices of existing stanzas to keep verbatim, in this order
  std::vector<KekTarget> keks;
  std::vector<X25519PublicKey> recipients;
};

// A new header for the same object: same immutable part and DEK, the kept stanzas followed by
// fresh stanzas for the new targets, and a new MAC. The payload is untouched.
Result<std::vector<uint8_t>> Rewrap(const OpenedHeader& opened, const RewrapParams& params);

namespace testing {
// Fixed per-object randomness for CreateHeader, to reproduce test vectors byte for byte.
// Never use outside tests: a repeated DEK, salt or ephemeral secret breaks the format's
// security argument (the zero wrap nonce is safe only because every wrap key is fresh).
struct FixedHeaderInputs {
  std::array<uint8_t, kObjectIdSize> object_id{};
  const SecretBytes* dek = nullptr;                           // 32 bytes, borrowed
  std::vector<std::array<uint8_t, kWrapSaltSize>> kek_salts;  // one per EncryptParams::keks
  std::vector<const SecretBytes*> ephemeral_secrets;          // one per recipient, borrowed
};
// CreateHeader with the inputs above instead of fresh randomness. kInvalidArgument if the
// counts or sizes do not match the params.
Result<NewHeader> CreateHeaderDeterministicForTesting(const EncryptParams& params,
                                                      const FixedHeaderInputs& inputs);
}  // namespace testing

}  // namespace keyhold::envelope

#endif  // KEYHOLD_CRYPTO_ENVELOPE_H_
