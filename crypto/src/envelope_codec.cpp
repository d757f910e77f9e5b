// The keyhold v1 header: canonical encoding and strict parsing (docs/FORMAT.md, "Header").
// The cryptography (wrapping, MAC, opening) is in envelope.cpp.
#include <algorithm>
#include <cstring>
#include <string>

#include "keyhold/crypto/encoding.h"
#include "keyhold/crypto/envelope.h"

namespace keyhold::envelope {
namespace {

constexpr size_t kKekBodyFixedSize = kKeyIdSize + 4 + 1 + kWrapSaltSize + kWrappedDekSize;  // 101
constexpr size_t kX25519BodySize = kFingerprintSize + kX25519KeySize + kWrappedDekSize;     // 96
constexpr uint8_t kReservedStanzaKind = 0x00;

Error Malformed(std::string message) { return Error(ErrorCode::kMalformed, std::move(message)); }

void PutU16(std::vector<uint8_t>& out, size_t v) {
  out.push_back(static_cast<uint8_t>((v >> 8) & 0xff));
  out.push_back(static_cast<uint8_t>(v & 0xff));
}
void PutU32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}
void PutBytes(std::vector<uint8_t>& out, std::span<const uint8_t> bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}
void PutString(std::vector<uint8_t>& out, std::string_view s) {
  out.insert(out.end(), s.begin(), s.end());
}

// Appends the context section without validating it (callers validated it, or it came from
// ParseHeader, which only returns valid contexts).
void AppendContext(std::vector<uint8_t>& out, const EncryptionContext& context) {
  PutU16(out, context.size());
  for (const auto& [key, value] : context) {
    PutU16(out, key.size());
    PutString(out, key);
    PutU16(out, value.size());
    PutString(out, value);
  }
}

std::vector<uint8_t> StanzaBody(const Stanza& stanza, uint8_t* kind) {
  std::vector<uint8_t> body;
  if (const auto* kek = std::get_if<KekStanza>(&stanza)) {
    *kind = kStanzaKek;
    PutBytes(body, kek->key_id);
    PutU32(body, kek->version);
    body.push_back(static_cast<uint8_t>(kek->key_name.size()));
    PutString(body, kek->key_name);
    PutBytes(body, kek->salt);
    PutBytes(body, kek->wrapped_dek);
  } else if (const auto* x = std::get_if<X25519Stanza>(&stanza)) {
    *kind = kStanzaX25519;
    PutBytes(body, x->fingerprint);
    PutBytes(body, x->ephemeral);
    PutBytes(body, x->wrapped_dek);
  } else {
    const auto& unknown = std::get<UnknownStanza>(stanza);
    *kind = unknown.kind;
    body = unknown.body;
  }
  return body;
}

// Where the parser's bytes come from: a span already in memory, or a Source read on demand.
// Take(n) never lets the header grow past kMaxHeaderSize, so a length field read from the
// input can never make us allocate or read more than that.
class ByteInput {
 public:
  virtual ~ByteInput() = default;
  virtual Result<std::span<const uint8_t>> Take(size_t n, std::string_view field) = 0;
  size_t consumed() const { return consumed_; }

 protected:
  Status CheckLimit(size_t n) const {
    if (n > kMaxHeaderSize - consumed_) {
      return Malformed("header exceeds the limit of " + std::to_string(kMaxHeaderSize) + " bytes");
    }
    return OkStatus();
  }
  size_t consumed_ = 0;
};

class SpanInput final : public ByteInput {
 public:
  explicit SpanInput(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  Result<std::span<const uint8_t>> Take(size_t n, std::string_view field) override {
    KH_RETURN_IF_ERROR(CheckLimit(n));
    if (n > bytes_.size() - consumed_) {
      return Malformed("truncated header: " + std::string(field) + " is cut off");
    }
    auto out = bytes_.subspan(consumed_, n);
    consumed_ += n;
    return out;
  }

 private:
  std::span<const uint8_t> bytes_;
};

class SourceInput final : public ByteInput {
 public:
  explicit SourceInput(cobblestone::Source& in) : in_(in) {
    // Reserved once so spans handed out stay valid; the limit check keeps us within it.
    buffer_.reserve(kMaxHeaderSize);
  }
  Result<std::span<const uint8_t>> Take(size_t n, std::string_view field) override {
    KH_RETURN_IF_ERROR(CheckLimit(n));
    const size_t start = buffer_.size();
    buffer_.resize(start + n);
    size_t got = 0;
    while (got < n) {
      KH_ASSIGN_OR_RETURN(size_t r, in_.Read(std::span<uint8_t>(buffer_).subspan(start + got)));
      if (r == 0) break;
      got += r;
    }
    if (got < n) {
      buffer_.resize(start + got);
      return Malformed("truncated header: " + std::string(field) + " is cut off");
    }
    consumed_ += n;
    return std::span<const uint8_t>(buffer_).subspan(start, n);
  }
  std::vector<uint8_t> TakeBuffer() { return std::move(buffer_); }

 private:
  cobblestone::Source& in_;
  std::vector<uint8_t> buffer_;
};

uint16_t U16(std::span<const uint8_t> b) { return static_cast<uint16_t>((b[0] << 8) | b[1]); }
uint32_t U32(std::span<const uint8_t> b) {
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
}

Result<uint16_t> TakeU16(ByteInput& in, std::string_view field) {
  KH_ASSIGN_OR_RETURN(auto b, in.Take(2, field));
  return U16(b);
}

// Parses the context section; the caller has already consumed nothing of it.
Result<EncryptionContext> ParseContextFrom(ByteInput& in) {
  const size_t start = in.consumed();
  KH_ASSIGN_OR_RETURN(uint16_t count, TakeU16(in, "context entry count"));
  if (count > kMaxContextEntries) {
    return Malformed("context has " + std::to_string(count) + " entries, more than the limit of " +
                     std::to_string(kMaxContextEntries));
  }
  EncryptionContext context;
  std::string previous;
  auto section_size_ok = [&](size_t more) {
    return in.consumed() - start + more <= kMaxContextSize;
  };
  auto too_big = [] {
    return Malformed("context section exceeds the limit of " + std::to_string(kMaxContextSize) +
                     " bytes");
  };
  for (size_t i = 0; i < count; ++i) {
    if (!section_size_ok(2)) return too_big();
    KH_ASSIGN_OR_RETURN(uint16_t key_len, TakeU16(in, "context key length"));
    if (key_len < 1 || key_len > kMaxContextKeySize) {
      return Malformed("context key length " + std::to_string(key_len) + " outside 1.." +
                       std::to_string(kMaxContextKeySize));
    }
    if (!section_size_ok(key_len)) return too_big();
    KH_ASSIGN_OR_RETURN(auto key_bytes, in.Take(key_len, "context key"));
    std::string key(key_bytes.begin(), key_bytes.end());
    if (!IsValidUtf8(key)) return Malformed("context key is not valid utf-8");
    // std::string compares as unsigned char, which is the format's byte order.
    if (i > 0 && key <= previous) {
      return Malformed(key == previous ? "context key \"" + key + "\" appears twice"
                                       : "context keys are not in increasing byte order");
    }
    if (!section_size_ok(2)) return too_big();
    KH_ASSIGN_OR_RETURN(uint16_t value_len, TakeU16(in, "context value length"));
    if (value_len > kMaxContextValueSize) {
      return Malformed("context value length " + std::to_string(value_len) +
                       " exceeds the limit of " + std::to_string(kMaxContextValueSize));
    }
    if (!section_size_ok(value_len)) return too_big();
    KH_ASSIGN_OR_RETURN(auto value_bytes, in.Take(value_len, "context value"));
    std::string value(value_bytes.begin(), value_bytes.end());
    if (!IsValidUtf8(value))
      return Malformed("context value of \"" + key + "\" is not valid utf-8");
    previous = key;
    context.emplace_hint(context.end(), std::move(key), std::move(value));
  }
  return context;
}

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

Result<Stanza> ParseStanzaBody(uint8_t kind, std::span<const uint8_t> body) {
  if (kind == kStanzaKek) {
    if (body.size() < kKekBodyFixedSize + 1) return Malformed("kek stanza body too short");
    KekStanza s;
    size_t pos = 0;
    std::memcpy(s.key_id.data(), body.data(), kKeyIdSize);
    pos += kKeyIdSize;
    s.version = U32(body.subspan(pos, 4));
    pos += 4;
    const size_t name_len = body[pos++];
    if (body.size() < kKekBodyFixedSize + name_len) return Malformed("kek stanza body too short");
    if (body.size() > kKekBodyFixedSize + name_len) return Malformed("kek stanza body too long");
    if (s.version < 1) return Malformed("kek stanza key version must be at least 1");
    s.key_name.assign(reinterpret_cast<const char*>(body.data() + pos), name_len);
    pos += name_len;
    if (auto st = ValidateKeyName(s.key_name); !st.ok()) {
      return Malformed("kek stanza: " + st.error().message);
    }
    std::memcpy(s.salt.data(), body.data() + pos, kWrapSaltSize);
    pos += kWrapSaltSize;
    std::memcpy(s.wrapped_dek.data(), body.data() + pos, kWrappedDekSize);
    return Stanza(std::move(s));
  }
  if (kind == kStanzaX25519) {
    if (body.size() < kX25519BodySize) return Malformed("x25519 stanza body too short");
    if (body.size() > kX25519BodySize) return Malformed("x25519 stanza body too long");
    X25519Stanza s;
    std::memcpy(s.fingerprint.data(), body.data(), kFingerprintSize);
    std::memcpy(s.ephemeral.data(), body.data() + kFingerprintSize, kX25519KeySize);
    std::memcpy(s.wrapped_dek.data(), body.data() + kFingerprintSize + kX25519KeySize,
                kWrappedDekSize);
    return Stanza(std::move(s));
  }
  return Stanza(UnknownStanza{kind, std::vector<uint8_t>(body.begin(), body.end())});
}

// The one header parser, shared by ParseHeader (bytes in memory) and ReadHeaderBytes (a
// stream): it pulls exactly as many bytes as the structure announces, in order.
Result<Header> ParseFrom(ByteInput& in) {
  Header h;
  {
    // A short or foreign file is "not a keyhold object", not a truncated one.
    auto magic = in.Take(kMagic.size(), "magic");
    if (!magic.ok() && magic.error().code != ErrorCode::kMalformed) return magic.error();
    if (!magic.ok() || !std::equal(magic->begin(), magic->end(), kMagic.begin())) {
      return Malformed("not a keyhold object");
    }
  }
  KH_ASSIGN_OR_RETURN(auto vs, in.Take(2, "version and suite"));
  h.version = vs[0];
  h.suite = vs[1];
  if (h.version != kFormatVersion) {
    return Error(ErrorCode::kUnsupported, "unsupported format version " + std::to_string(h.version),
                 "upgrade keyhold: this object was written by a newer version");
  }
  if (h.suite != kSuiteCobblestone256) {
    return Error(ErrorCode::kUnsupported, "unsupported cipher suite " + std::to_string(h.suite),
                 "upgrade keyhold: this object was written by a newer version");
  }
  KH_ASSIGN_OR_RETURN(auto id, in.Take(kObjectIdSize, "object id"));
  std::memcpy(h.object_id.data(), id.data(), kObjectIdSize);
  KH_ASSIGN_OR_RETURN(h.context, ParseContextFrom(in));

  KH_ASSIGN_OR_RETURN(uint16_t count, TakeU16(in, "stanza count"));
  if (count < 1 || count > kMaxStanzas) {
    return Malformed("stanza count " + std::to_string(count) + " outside 1.." +
                     std::to_string(kMaxStanzas));
  }
  h.stanzas.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    KH_ASSIGN_OR_RETURN(auto kb, in.Take(3, "stanza kind and length"));
    const uint8_t kind = kb[0];
    const uint16_t body_len = U16(kb.subspan(1));
    if (kind == kReservedStanzaKind) return Malformed("stanza kind 0 is reserved");
    if (body_len > kMaxStanzaBodySize) {
      return Malformed("stanza body length " + std::to_string(body_len) + " exceeds the limit of " +
                       std::to_string(kMaxStanzaBodySize));
    }
    KH_ASSIGN_OR_RETURN(auto body, in.Take(body_len, "stanza body"));
    KH_ASSIGN_OR_RETURN(Stanza s, ParseStanzaBody(kind, body));
    h.stanzas.push_back(std::move(s));
  }
  KH_ASSIGN_OR_RETURN(auto mac, in.Take(kHeaderMacSize, "header mac"));
  std::memcpy(h.mac.data(), mac.data(), kHeaderMacSize);
  return h;
}

}  // namespace

Status ValidateKeyName(std::string_view name) {
  if (name.empty() || name.size() > kMaxKeyNameSize) {
    return Error(ErrorCode::kInvalidArgument,
                 "key name must be 1.." + std::to_string(kMaxKeyNameSize) + " characters");
  }
  const char first = name[0];
  const bool alnum_first = (first >= 'a' && first <= 'z') || (first >= 'A' && first <= 'Z') ||
                           (first >= '0' && first <= '9');
  if (!alnum_first) {
    return Error(ErrorCode::kInvalidArgument, "key name must start with a letter or digit");
  }
  for (char c : name) {
    if (!IsNameChar(c)) {
      return Error(ErrorCode::kInvalidArgument,
                   "key name may contain only letters, digits, '.', '_' and '-'");
    }
  }
  return OkStatus();
}

Result<std::vector<uint8_t>> EncodeContext(const EncryptionContext& context) {
  if (context.size() > kMaxContextEntries) {
    return Error(ErrorCode::kInvalidArgument, "context has " + std::to_string(context.size()) +
                                                  " entries, more than the limit of " +
                                                  std::to_string(kMaxContextEntries));
  }
  size_t total = 2;
  for (const auto& [key, value] : context) {
    if (key.empty() || key.size() > kMaxContextKeySize) {
      return Error(ErrorCode::kInvalidArgument,
                   "context key length must be 1.." + std::to_string(kMaxContextKeySize));
    }
    if (value.size() > kMaxContextValueSize) {
      return Error(ErrorCode::kInvalidArgument,
                   "context value of \"" + key + "\" exceeds the limit of " +
                       std::to_string(kMaxContextValueSize) + " bytes");
    }
    if (!IsValidUtf8(key) || !IsValidUtf8(value)) {
      return Error(ErrorCode::kInvalidArgument, "context keys and values must be valid utf-8");
    }
    total += 4 + key.size() + value.size();
  }
  if (total > kMaxContextSize) {
    return Error(ErrorCode::kInvalidArgument, "context section exceeds the limit of " +
                                                  std::to_string(kMaxContextSize) + " bytes");
  }
  std::vector<uint8_t> out;
  out.reserve(total);
  AppendContext(out, context);
  return out;
}

Result<EncryptionContext> ParseContext(std::span<const uint8_t> bytes) {
  SpanInput in(bytes);
  KH_ASSIGN_OR_RETURN(EncryptionContext context, ParseContextFrom(in));
  if (in.consumed() != bytes.size()) return Malformed("trailing bytes after the context section");
  return context;
}

std::vector<uint8_t> EncodeImmutable(const Header& header) {
  std::vector<uint8_t> out;
  PutBytes(out, kMagic);
  out.push_back(header.version);
  out.push_back(header.suite);
  PutBytes(out, header.object_id);
  AppendContext(out, header.context);
  return out;
}

std::vector<uint8_t> EncodeHeader(const Header& header) {
  std::vector<uint8_t> out = EncodeImmutable(header);
  PutU16(out, header.stanzas.size());
  for (const Stanza& s : header.stanzas) {
    uint8_t kind = 0;
    std::vector<uint8_t> body = StanzaBody(s, &kind);
    out.push_back(kind);
    PutU16(out, body.size());
    PutBytes(out, body);
  }
  PutBytes(out, header.mac);
  return out;
}

Result<Header> ParseHeader(std::span<const uint8_t> bytes, size_t* header_size) {
  SpanInput in(bytes);
  KH_ASSIGN_OR_RETURN(Header h, ParseFrom(in));
  if (header_size != nullptr) *header_size = in.consumed();
  return h;
}

Result<std::vector<uint8_t>> ReadHeaderBytes(cobblestone::Source& in) {
  SourceInput input(in);
  KH_RETURN_IF_ERROR(ParseFrom(input));
  return input.TakeBuffer();
}

}  // namespace keyhold::envelope
