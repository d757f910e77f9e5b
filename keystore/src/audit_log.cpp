// The audit log: codec, appender and verifier. docs/audit-log.md is the specification; the
// comments here say why the code does what the document requires.
#include "keyhold/keystore/audit_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <memory>
#include <set>

#include "keyhold/crypto/constant_time.h"
#include "keyhold/crypto/encoding.h"
#include "keyhold/crypto/file_io.h"
#include "keyhold/crypto/hash.h"

namespace keyhold::keystore {
namespace {

using Digest = std::array<uint8_t, 32>;

// Domain separation: entries and the head are MACed with the same key, so neither can be
// passed off as the other.
constexpr std::string_view kEntryMacContext = "keyhold audit entry v1";
constexpr std::string_view kHeadMacContext = "keyhold audit head v1";
constexpr std::string_view kMacMember = ",\"mac\":\"";
constexpr size_t kHexDigestSize = 64;
constexpr size_t kMaxHeadFileSize = 256;
constexpr size_t kMaxNameSize = 128;
// Consecutive non-entry lines a reader holds while looking for their acknowledgements, and
// that an appender acknowledges; more than this is not an interrupted write.
constexpr size_t kMaxTornLines = 16;
// How much of the end of audit.log an appender reads to find the last entry: first
// kFirstTailWindow, then, only if that holds no entry, kTailWindow.
constexpr size_t kTailWindow = (kMaxTornLines + 2) * (kMaxAuditLineSize + 1);
constexpr size_t kFirstTailWindow = 16 * 1024;
constexpr size_t kReadChunk = 256 * 1024;

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

Error IoError(const std::string& what, int err) {
  return Error(ErrorCode::kIo, what + ": " + std::strerror(err));
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

Status Lock(int fd, int op, const std::string& path) {
  while (flock(fd, op) != 0) {
    if (errno != EINTR) return IoError("cannot lock " + path, errno);
  }
  return OkStatus();
}

// --- Strings ----------------------------------------------------------------------------------

// Length of the valid UTF-8 sequence at s[i], or 0 if there is none (overlong forms,
// surrogates and code points above U+10FFFF are invalid).
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<uint8_t>(s[i + k]); };
  const uint8_t c = b(0);
  if (c < 0x80) return 1;
  size_t n = 0;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
  } else {
    return 0;
  }
  if (s.size() - i < n) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0;
  }
  if (c == 0xE0 && b(1) < 0xA0) return 0;  // overlong
  if (c == 0xED && b(1) > 0x9F) return 0;  // surrogate
  if (c == 0xF0 && b(1) < 0x90) return 0;  // overlong
  if (c == 0xF4 && b(1) > 0x8F) return 0;  // above U+10FFFF
  return n;
}

// Object paths are arbitrary bytes, JSON strings are UTF-8: each byte that is not part of a
// valid sequence is written as the four characters \xNN (documented as lossy: a name that
// really contains "\x41" reads the same).
std::string SanitizeUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < s.size();) {
    size_t n = Utf8SequenceLength(s, i);
    if (n == 0) {
      const auto c = static_cast<uint8_t>(s[i]);
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

// The one JSON string encoding the writer uses and the reader accepts: '"' and '\' as \" and
// \\, control characters and DEL as \u00xx (lower-case hex), every other character as its
// UTF-8 bytes.
void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    const auto c = static_cast<uint8_t>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7F) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    } else {
      out += ch;
    }
  }
  out += '"';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // upper case is not canonical
}

// A strict reader for exactly the grammar the writer produces (no whitespace, fixed member
// order, the string escapes above), so that a line has one valid spelling and a fuzzer can
// check parse-then-encode byte for byte. Nothing recurses; nothing allocates more than the
// line's size.
class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}
  size_t pos() const { return pos_; }
  bool AtEnd() const { return pos_ == s_.size(); }
  bool Peek(char c) const { return pos_ < s_.size() && s_[pos_] == c; }

  Status Expect(std::string_view lit) {
    if (s_.substr(pos_, lit.size()) != lit) {
      return Malformed("expected " + std::string(lit) + " at byte " + std::to_string(pos_));
    }
    pos_ += lit.size();
    return OkStatus();
  }

  Result<uint64_t> Uint() {
    size_t start = pos_;
    uint64_t v = 0;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      auto d = static_cast<uint64_t>(s_[pos_] - '0');
      if (v > (UINT64_MAX - d) / 10) return Malformed("number out of range");
      v = v * 10 + d;
      ++pos_;
    }
    if (pos_ == start) return Malformed("expected a number at byte " + std::to_string(start));
    if (s_[start] == '0' && pos_ - start > 1) return Malformed("number with a leading zero");
    return v;
  }

  Result<std::string> String() {
    KH_RETURN_IF_ERROR(Expect("\""));
    std::string out;
    while (true) {
      if (pos_ >= s_.size()) return Malformed("unterminated string");
      const char ch = s_[pos_];
      const auto c = static_cast<uint8_t>(ch);
      if (ch == '"') {
        ++pos_;
        break;
      }
      if (c < 0x20 || c == 0x7F) return Malformed("unescaped control character in a string");
      if (ch != '\\') {
        out += ch;
        ++pos_;
        continue;
      }
      if (pos_ + 1 >= s_.size()) return Malformed("unterminated escape");
      const char e = s_[pos_ + 1];
      if (e == '"' || e == '\\') {
        out += e;
        pos_ += 2;
        continue;
      }
      if (e != 'u' || s_.substr(pos_ + 2, 2) != "00" || pos_ + 6 > s_.size()) {
        return Malformed("non-canonical escape in a string");
      }
      int hi = HexValue(s_[pos_ + 4]);
      int lo = HexValue(s_[pos_ + 5]);
      if (hi < 0 || lo < 0) return Malformed("non-canonical escape in a string");
      const auto v = static_cast<uint8_t>(hi * 16 + lo);
      if (v >= 0x20 && v != 0x7F) return Malformed("non-canonical escape in a string");
      out += static_cast<char>(v);
      pos_ += 6;
    }
    if (!IsValidUtf8(out)) return Malformed("string is not valid UTF-8");
    return out;
  }

  Result<Digest> HexDigest() {
    if (s_.size() - pos_ < kHexDigestSize) return Malformed("truncated hash");
    Digest d{};
    for (size_t i = 0; i < d.size(); ++i) {
      int hi = HexValue(s_[pos_ + 2 * i]);
      int lo = HexValue(s_[pos_ + 2 * i + 1]);
      if (hi < 0 || lo < 0) return Malformed("hash is not lower-case hex");
      d[i] = static_cast<uint8_t>(hi * 16 + lo);
    }
    pos_ += kHexDigestSize;
    return d;
  }

 private:
  static Error Malformed(std::string m) { return Error(ErrorCode::kMalformed, std::move(m)); }
  std::string_view s_;
  size_t pos_ = 0;
};

// --- Time ---------------------------------------------------------------------------------

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil), so no
// time zone or locale is involved.
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned DaysInMonth(int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

std::string FormatTime(int64_t unix_seconds) {
  // Clamp to the four-digit years RFC 3339 can spell; a clock that far off is noted as is.
  constexpr int64_t kMax = 253402300799;  // 9999-12-31T23:59:59Z
  if (unix_seconds < 0) unix_seconds = 0;
  if (unix_seconds > kMax) unix_seconds = kMax;
  int64_t days = unix_seconds / 86400;
  int64_t secs = unix_seconds % 86400;
  // civil_from_days
  days += 719468;
  const int64_t era = days / 146097;
  const auto doe = static_cast<unsigned>(days - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400 + (m <= 2);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lldZ",
                static_cast<long long>(y), m, d, static_cast<long long>(secs / 3600),
                static_cast<long long>(secs / 60 % 60), static_cast<long long>(secs % 60));
  return buf;
}

// Fixed-width decimal digits at s[pos, pos+n).
bool Digits(std::string_view s, size_t pos, size_t n, unsigned& out) {
  if (s.size() < pos + n) return false;
  out = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    out = out * 10 + static_cast<unsigned>(c - '0');
  }
  return true;
}

// "YYYY-MM-DD" at the start of `s`; seconds of its midnight UTC.
std::optional<int64_t> ParseDate(std::string_view s) {
  unsigned y = 0, m = 0, d = 0;
  if (!Digits(s, 0, 4, y) || s.size() < 10 || s[4] != '-' || !Digits(s, 5, 2, m) || s[7] != '-' ||
      !Digits(s, 8, 2, d)) {
    return std::nullopt;
  }
  if (m < 1 || m > 12 || d < 1 || d > DaysInMonth(y, m)) return std::nullopt;
  return DaysFromCivil(y, m, d) * 86400;
}

// "HH:MM:SS" at s[pos]; seconds since midnight.
std::optional<int64_t> ParseClock(std::string_view s, size_t pos) {
  unsigned h = 0, mi = 0, se = 0;
  if (!Digits(s, pos, 2, h) || s.size() < pos + 8 || s[pos + 2] != ':' ||
      !Digits(s, pos + 3, 2, mi) || s[pos + 5] != ':' || !Digits(s, pos + 6, 2, se)) {
    return std::nullopt;
  }
  if (h > 23 || mi > 59 || se > 60) return std::nullopt;  // 60: a leap second, as RFC 3339
  return static_cast<int64_t>(h) * 3600 + mi * 60 + se;
}

// The entry's own time: exactly "YYYY-MM-DDTHH:MM:SSZ" as FormatTime writes it.
std::optional<int64_t> ParseEntryTime(std::string_view s) {
  if (s.size() != 20 || s[10] != 'T' || s[19] != 'Z') return std::nullopt;
  auto date = ParseDate(s);
  auto clock = ParseClock(s, 11);
  if (!date || !clock || *clock >= 86400) return std::nullopt;
  int64_t t = *date + *clock;
  if (FormatTime(t) != s) return std::nullopt;  // canonical: the writer's spelling only
  return t;
}

// --- Entries --------------------------------------------------------------------------------

Digest Sha(std::string_view line) { return Sha256(Bytes(line)); }

Result<Digest> Mac(std::span<const uint8_t> key, std::string_view context, std::string_view body) {
  KH_ASSIGN_OR_RETURN(Hmac h, Hmac::Create(HashAlg::kSha256, key));
  h.Update(Bytes(context));
  const uint8_t zero = 0;
  h.Update({&zero, 1});
  h.Update(Bytes(body));
  std::vector<uint8_t> tag = h.Finish();
  Digest d{};
  std::copy(tag.begin(), tag.end(), d.begin());
  return d;
}

bool MacMatches(std::span<const uint8_t> key, std::string_view context, std::string_view body,
                const Digest& tag) {
  auto expected = Mac(key, context, body);
  return expected.ok() && ConstantTimeEquals(*expected, tag);
}

std::optional<std::string_view> FieldValue(const AuditEntry& e, std::string_view name) {
  for (const auto& [k, v] : e.fields) {
    if (k == name) return std::string_view(v);
  }
  return std::nullopt;
}

std::optional<uint64_t> ParseDecimal(std::string_view s) {
  Cursor c(s);
  auto v = c.Uint();
  if (!v.ok() || !c.AtEnd()) return std::nullopt;
  return *v;
}

// --- Head -----------------------------------------------------------------------------------

struct Head {
  uint64_t seq = 0;
  Digest hash{};
};

std::string HeadBody(const Head& h) {
  return "{\"seq\":" + std::to_string(h.seq) + ",\"hash\":\"" + HexEncode(h.hash) + "\"";
}

Result<std::string> EncodeHead(const Head& h, std::span<const uint8_t> key) {
  std::string body = HeadBody(h);
  KH_ASSIGN_OR_RETURN(Digest mac, Mac(key, kHeadMacContext, body));
  return body + std::string(kMacMember) + HexEncode(mac) + "\"}\n";
}

// nullopt if the file does not exist; kAuthFailed if it is not a head written with `key`.
Result<std::optional<Head>> ReadHead(const std::string& dir, std::span<const uint8_t> key) {
  const std::string path = dir + "/" + std::string(kAuditHeadFileName);
  // O_NONBLOCK: a FIFO planted in place of the head must not hang keyhold in open().
  Fd fd(open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return std::optional<Head>();
    return Error(ErrorCode::kAuthFailed,
                 std::string(kAuditHeadFileName) + " cannot be opened: " + std::strerror(errno));
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Error(ErrorCode::kAuthFailed, std::string(kAuditHeadFileName) + " is not a file");
  }
  std::vector<uint8_t> buf(kMaxHeadFileSize + 1);
  KH_ASSIGN_OR_RETURN(size_t n, ReadFull(fd.get(), buf));
  std::string_view text(reinterpret_cast<const char*>(buf.data()), n);
  auto bad = [] {
    return Error(ErrorCode::kAuthFailed,
                 std::string(kAuditHeadFileName) +
                     " does not verify (it was modified, or belongs to another keystore)");
  };
  if (n > kMaxHeadFileSize || text.empty() || text.back() != '\n') return bad();
  text.remove_suffix(1);
  Cursor c(text);
  Head h;
  if (!c.Expect("{\"seq\":").ok()) return bad();
  auto seq = c.Uint();
  if (!seq.ok() || !c.Expect(",\"hash\":\"").ok()) return bad();
  h.seq = *seq;
  auto hash = c.HexDigest();
  if (!hash.ok() || !c.Expect("\"").ok()) return bad();
  h.hash = *hash;
  const size_t body_end = c.pos();
  if (!c.Expect(kMacMember).ok()) return bad();
  auto mac = c.HexDigest();
  if (!mac.ok() || !c.Expect("\"}").ok() || !c.AtEnd()) return bad();
  if (!MacMatches(key, kHeadMacContext, text.substr(0, body_end), *mac)) return bad();
  return std::optional<Head>(h);
}

Status WriteHead(const std::string& dir, const Head& h, std::span<const uint8_t> key) {
  KH_ASSIGN_OR_RETURN(std::string text, EncodeHead(h, key));
  return WriteFileAtomically(dir + "/" + std::string(kAuditHeadFileName), Bytes(text),
                             AtomicFile::Overwrite::kYes, 0600);
}

// --- Reading lines ----------------------------------------------------------------------------

struct Line {
  uint64_t number = 0;  // 1-based
  uint64_t offset = 0;  // of its first byte in the file
  std::string bytes;    // newline excluded; empty if too_long
  uint64_t length = 0;  // newline excluded
  bool terminated = false;
  bool too_long = false;
};

// Splits a file into lines without holding more than kMaxAuditLineSize of any one line.
class LineReader {
 public:
  explicit LineReader(int fd) : fd_(fd), buf_(kReadChunk) {}

  // False at end of file.
  Result<bool> Next(Line& line) {
    line = Line{};
    line.number = ++number_;
    line.offset = offset_;
    bool any = false;
    while (true) {
      if (pos_ == end_) {
        KH_ASSIGN_OR_RETURN(size_t n, ReadFull(fd_, buf_));
        pos_ = 0;
        end_ = n;
        if (n == 0) {
          if (!any) {
            --number_;
            return false;
          }
          return true;  // unterminated last line
        }
      }
      any = true;
      const char* start = reinterpret_cast<const char*>(buf_.data()) + pos_;
      const void* nl = std::memchr(start, '\n', end_ - pos_);
      const size_t take =
          nl ? static_cast<size_t>(static_cast<const char*>(nl) - start) : end_ - pos_;
      line.length += take;
      if (!line.too_long) {
        if (line.length > kMaxAuditLineSize) {
          line.too_long = true;
          line.bytes.clear();
          line.bytes.shrink_to_fit();
        } else {
          line.bytes.append(start, take);
        }
      }
      pos_ += take;
      offset_ += take;
      if (nl) {
        ++pos_;
        ++offset_;
        line.terminated = true;
        return true;
      }
    }
  }

 private:
  int fd_;
  std::vector<uint8_t> buf_;
  size_t pos_ = 0;
  size_t end_ = 0;
  uint64_t offset_ = 0;
  uint64_t number_ = 0;
};

// A line checked as an entry: parsed and MAC-verified, or the reason it is not an entry.
struct Checked {
  std::optional<internal::ParsedAuditLine> parsed;
  std::string problem;
};

Checked CheckLine(const Line& line, std::span<const uint8_t> key) {
  Checked out;
  if (line.too_long) {
    out.problem = "line longer than " + std::to_string(kMaxAuditLineSize) + " bytes";
    return out;
  }
  auto parsed = internal::ParseAuditLine(line.bytes);
  if (!parsed.ok()) {
    out.problem = "not an audit entry (" + parsed.error().message + ")";
    return out;
  }
  std::string_view body(line.bytes.data(), parsed->mac_offset);
  if (!MacMatches(key, kEntryMacContext, body, parsed->mac)) {
    out.problem = "entry " + std::to_string(parsed->entry.seq) +
                  " does not verify (it was modified, or written with another keystore's key)";
    return out;
  }
  out.parsed = std::move(parsed).value();
  return out;
}

bool MatchesFilter(const AuditEntry& e, const AuditReadFilter& f) {
  if (f.since_unix && e.time_unix < *f.since_unix) return false;
  if (!f.key) return true;
  if (auto k = FieldValue(e, "key"); k && *k == *f.key) return true;
  if (auto keys = FieldValue(e, "keys")) {
    // "NAME vN, NAME vN": compare each item's name part.
    std::string_view rest = *keys;
    while (!rest.empty()) {
      size_t comma = rest.find(", ");
      std::string_view item = rest.substr(0, comma);
      size_t v = item.rfind(" v");
      if (item.substr(0, v) == *f.key) return true;
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 2);
    }
  }
  return false;
}

// Verify and Read share this pass; `filter`/`out` are null for Verify.
Result<AuditVerifyReport> Scan(const std::string& dir, std::span<const uint8_t> key,
                               const AuditVerifyOptions& options, const AuditReadFilter* filter,
                               std::vector<AuditShownEntry>* out) {
  if (key.size() != kAuditMacKeySize) {
    return Error(ErrorCode::kInvalidArgument, "the audit log key must be 32 bytes");
  }
  AuditVerifyReport report;
  const std::string log_path = dir + "/" + std::string(kAuditLogFileName);
  Fd fd(open(log_path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0 && errno == ELOOP) {
    report.first_bad = AuditFinding{0, std::string(kAuditLogFileName) + " is a symbolic link"};
    return report;
  }
  if (fd.get() < 0 && errno != ENOENT) return IoError("cannot open " + log_path, errno);
  if (fd.get() >= 0) {
    struct stat st;
    if (fstat(fd.get(), &st) != 0) return IoError("cannot stat " + log_path, errno);
    if (!S_ISREG(st.st_mode)) {
      report.first_bad = AuditFinding{0, std::string(kAuditLogFileName) + " is not a file"};
      return report;
    }
    KH_RETURN_IF_ERROR(Lock(fd.get(), LOCK_SH, log_path));
  }
  // Read under the log's lock: appenders replace the head while holding it.
  auto head_result = ReadHead(dir, key);
  std::optional<Head> head;
  std::optional<std::string> head_problem;
  if (head_result.ok()) {
    head = *head_result;
  } else {
    head_problem = head_result.error().message;
  }
  if (fd.get() < 0) {
    if (!head && !head_problem) {
      return Error(ErrorCode::kNotFound, "no audit log in " + dir,
                   "keyhold starts it at `keyhold init` and appends to it on every change");
    }
    report.findings.push_back({0, std::string(kAuditLogFileName) + " is missing but " +
                                      std::string(kAuditHeadFileName) +
                                      " exists: the log was deleted"});
    return report;
  }

  struct Bad {
    uint64_t line;
    uint64_t offset;
    uint64_t length;
    Digest hash;
    std::string reason;
    std::string bytes;  // for Read, which shows what it can of unverified lines
  };
  std::deque<Bad> torn;  // non-entry lines waiting for their acknowledgement
  uint64_t expected_seq = 1;
  Digest prev{};
  std::optional<Digest> hash_at_head;
  if (head && head->seq == 0) hash_at_head = Digest{};
  std::optional<uint64_t> generation;  // of the last keystore change (or the log's start)
  uint64_t last_line = 0;
  bool stopped = false;
  bool unterminated_entry = false;
  auto show_unverified = [&](uint64_t number, const std::string& bytes) {
    if (!out) return;
    auto p = internal::ParseAuditLine(bytes);
    if (p.ok() && MatchesFilter(p->entry, *filter)) {
      out->push_back({number, false, std::move(p->entry)});
    }
  };
  // Verification ends at the first bad entry; Read still shows the lines held back so far
  // and `current`, unverified.
  auto stop = [&](uint64_t at, std::string reason, const Line* current) {
    report.first_bad = AuditFinding{at, std::move(reason)};
    stopped = true;
    for (const Bad& b : torn) show_unverified(b.line, b.bytes);
    if (current && !current->too_long) show_unverified(current->number, current->bytes);
  };

  LineReader reader(fd.get());
  Line line;
  while (true) {
    KH_ASSIGN_OR_RETURN(bool more, reader.Next(line));
    if (!more) break;
    report.lines = line.number;
    if (stopped) {
      if (!line.too_long) show_unverified(line.number, line.bytes);  // shown, not verified
      continue;
    }
    Checked c = CheckLine(line, key);
    if (!c.parsed) {
      Bad b{line.number, line.offset, line.length, {}, std::move(c.problem), {}};
      if (!line.too_long) {
        b.hash = Sha(line.bytes);
        if (out) b.bytes = line.bytes;
      }
      if (!line.terminated) {
        b.reason = "torn last line (" + std::to_string(line.length) +
                   " bytes without a newline): an append was interrupted, or the end of the "
                   "log was cut";
      }
      torn.push_back(std::move(b));
      if (torn.size() > kMaxTornLines) stop(torn.front().line, torn.front().reason, nullptr);
      continue;
    }
    const AuditEntry& e = c.parsed->entry;
    const bool is_ack = e.event == kAuditTornTailEvent;
    if (is_ack) {
      if (torn.empty()) {
        stop(line.number, "acknowledges a torn line that is not there (a line was removed)", &line);
        continue;
      }
      const Bad& b = torn.front();
      auto off = FieldValue(e, "offset");
      auto len = FieldValue(e, "bytes");
      auto sha = FieldValue(e, "sha256");
      if (!off || !len || !sha || ParseDecimal(*off) != b.offset ||
          ParseDecimal(*len) != b.length || *sha != HexEncode(b.hash)) {
        stop(b.line, b.reason, &line);
        continue;
      }
    } else if (!torn.empty() && !(expected_seq == 1 && e.event == kAuditGenesisEvent)) {
      // Torn lines are acknowledged by the entries right after them (after the genesis
      // entry when the very first append was torn).
      stop(torn.front().line, torn.front().reason, &line);
      continue;
    }
    if (e.seq != expected_seq) {
      stop(line.number,
           "entry " + std::to_string(e.seq) + " where entry " + std::to_string(expected_seq) +
               " was expected (entries were deleted, inserted or reordered)",
           &line);
      continue;
    }
    if (!ConstantTimeEquals(c.parsed->prev, prev)) {
      stop(line.number,
           "entry " + std::to_string(e.seq) +
               " does not chain to the entry before it (entries were replaced)",
           &line);
      continue;
    }
    const bool is_genesis = e.event == kAuditGenesisEvent;
    if (is_genesis != (e.seq == 1)) {
      stop(line.number,
           is_genesis ? "a genesis entry in the middle of the log"
                      : "the first entry is not the genesis entry",
           &line);
      continue;
    }
    if (is_ack) {
      const Bad& b = torn.front();
      report.findings.push_back(
          {b.line, "torn line (" + std::to_string(b.length) +
                       " bytes): an append was interrupted; recorded by entry " +
                       std::to_string(e.seq) + " on line " + std::to_string(line.number)});
      torn.pop_front();
    }
    if (is_genesis) {
      auto start = FieldValue(e, "start_generation");
      auto g = start ? ParseDecimal(*start) : std::nullopt;
      if (g) {
        generation = g;
        if (*g > 0) {
          report.notes.push_back("the log starts after keystore generation " + std::to_string(*g) +
                                 ": earlier keystore changes are not in this log");
        }
      }
    } else if (auto gtext = FieldValue(e, "generation")) {
      auto g = ParseDecimal(*gtext);
      if (!g) {
        report.findings.push_back({line.number, "unreadable keystore generation"});
      } else {
        if (generation && *g != *generation + 1) {
          report.findings.push_back(
              {line.number, "records keystore generation " + std::to_string(*g) + " after " +
                                std::to_string(*generation) +
                                (*g > *generation ? " (keystore changes are missing from the log)"
                                                  : " (the keystore went back)")});
        }
        generation = g;
      }
    }
    prev = Sha(line.bytes);
    if (head && e.seq == head->seq) hash_at_head = prev;
    ++expected_seq;
    ++report.verified_entries;
    report.last_seq = e.seq;
    report.last_time = e.time;
    last_line = line.number;
    unterminated_entry = !line.terminated;
    if (out && MatchesFilter(e, *filter)) out->push_back({line.number, true, e});
  }
  if (!stopped && !torn.empty()) stop(torn.front().line, torn.front().reason, nullptr);
  if (stopped) return report;  // the end cannot be judged past the first bad entry
  if (report.lines == 0 && !head && !head_problem) {
    // An appender killed between creating audit.log and writing the seq-0 head.
    return Error(ErrorCode::kNotFound, "no audit log in " + dir,
                 "keyhold starts it at `keyhold init` and appends to it on every change");
  }

  if (unterminated_entry) {
    report.notes.push_back(
        "the last line lacks its newline (an append was interrupted); the "
        "next append completes it");
  }
  if (head_problem) {
    report.findings.push_back({0, *head_problem});
  } else if (!head) {
    report.findings.push_back({0, std::string(kAuditHeadFileName) +
                                      " is missing: removal of entries from the end of the log "
                                      "cannot be ruled out"});
  } else if (head->seq > report.last_seq) {
    report.findings.push_back(
        {last_line, "the log ends at entry " + std::to_string(report.last_seq) + " but " +
                        std::string(kAuditHeadFileName) + " records entry " +
                        std::to_string(head->seq) + ": entries were removed from the end"});
  } else if (!hash_at_head || !ConstantTimeEquals(*hash_at_head, head->hash)) {
    report.findings.push_back({0, std::string(kAuditHeadFileName) + " records a different entry " +
                                      std::to_string(head->seq) + " (the log was rewritten)"});
  } else if (head->seq < report.last_seq) {
    report.notes.push_back(std::string(kAuditHeadFileName) + " lags " +
                           std::to_string(report.last_seq - head->seq) +
                           " entries behind (an append was interrupted before it was updated); "
                           "the next append updates it");
  }
  if (options.keystore_generation && generation && *options.keystore_generation != *generation) {
    report.findings.push_back(
        {0, "the keystore is at generation " + std::to_string(*options.keystore_generation) +
                " but the log's last keystore change is generation " + std::to_string(*generation) +
                (*options.keystore_generation > *generation
                     ? " (changes are missing from the end of the log)"
                     : " (the keystore was rolled back)")});
  }
  return report;
}

std::string JoinKeys(const std::vector<std::string>& keys) {
  std::string out;
  for (const auto& k : keys) {
    if (!out.empty()) out += ", ";
    out += k;
  }
  return out;
}

bool IsOperationName(std::string_view op) {
  if (op.empty() || op.size() > 32) return false;
  for (char c : op) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

}  // namespace

// --- Codec (internal) -----------------------------------------------------------------------

namespace internal {

Result<ParsedAuditLine> ParseAuditLine(std::string_view line) {
  if (line.size() > kMaxAuditLineSize) {
    return Error(ErrorCode::kMalformed, "line longer than the limit");
  }
  ParsedAuditLine out;
  Cursor c(line);
  KH_RETURN_IF_ERROR(c.Expect("{\"seq\":"));
  KH_ASSIGN_OR_RETURN(out.entry.seq, c.Uint());
  KH_RETURN_IF_ERROR(c.Expect(",\"time\":"));
  KH_ASSIGN_OR_RETURN(out.entry.time, c.String());
  auto t = ParseEntryTime(out.entry.time);
  if (!t) return Error(ErrorCode::kMalformed, "time is not YYYY-MM-DDTHH:MM:SSZ");
  out.entry.time_unix = *t;
  KH_RETURN_IF_ERROR(c.Expect(",\"event\":"));
  KH_ASSIGN_OR_RETURN(out.entry.event, c.String());
  if (out.entry.event.empty() || out.entry.event.size() > kMaxNameSize) {
    return Error(ErrorCode::kMalformed, "bad event name");
  }
  KH_RETURN_IF_ERROR(c.Expect(",\"fields\":{"));
  std::set<std::string> names;
  if (c.Peek('}')) {
    KH_RETURN_IF_ERROR(c.Expect("}"));
  } else {
    while (true) {
      KH_ASSIGN_OR_RETURN(std::string name, c.String());
      if (name.empty() || name.size() > kMaxNameSize || !names.insert(name).second) {
        return Error(ErrorCode::kMalformed, "empty, long or repeated field name");
      }
      KH_RETURN_IF_ERROR(c.Expect(":"));
      KH_ASSIGN_OR_RETURN(std::string value, c.String());
      out.entry.fields.emplace_back(std::move(name), std::move(value));
      if (c.Peek(',')) {
        KH_RETURN_IF_ERROR(c.Expect(","));
        continue;
      }
      KH_RETURN_IF_ERROR(c.Expect("}"));
      break;
    }
  }
  KH_RETURN_IF_ERROR(c.Expect(",\"prev\":\""));
  KH_ASSIGN_OR_RETURN(out.prev, c.HexDigest());
  KH_RETURN_IF_ERROR(c.Expect("\""));
  out.mac_offset = c.pos();
  KH_RETURN_IF_ERROR(c.Expect(kMacMember));
  KH_ASSIGN_OR_RETURN(out.mac, c.HexDigest());
  KH_RETURN_IF_ERROR(c.Expect("\"}"));
  if (!c.AtEnd()) return Error(ErrorCode::kMalformed, "bytes after the entry");
  return out;
}

Result<std::string> EncodeAuditLine(const AuditEntry& entry, std::span<const uint8_t> prev,
                                    std::span<const uint8_t> mac_key) {
  if (prev.size() != 32 || mac_key.size() != kAuditMacKeySize) {
    return Error(ErrorCode::kInvalidArgument, "bad hash or key size");
  }
  auto t = ParseEntryTime(entry.time);
  if (!t || entry.event.empty() || entry.event.size() > kMaxNameSize || !IsValidUtf8(entry.event)) {
    return Error(ErrorCode::kInvalidArgument, "bad audit entry time or event name");
  }
  std::string body = "{\"seq\":" + std::to_string(entry.seq) + ",\"time\":";
  AppendJsonString(body, entry.time);
  body += ",\"event\":";
  AppendJsonString(body, entry.event);
  body += ",\"fields\":{";
  std::set<std::string_view> names;
  bool first = true;
  for (const auto& [k, v] : entry.fields) {
    if (k.empty() || k.size() > kMaxNameSize || !IsValidUtf8(k) || !IsValidUtf8(v) ||
        !names.insert(k).second) {
      return Error(ErrorCode::kInvalidArgument, "bad audit field name or value");
    }
    if (!first) body += ',';
    first = false;
    AppendJsonString(body, k);
    body += ':';
    AppendJsonString(body, v);
  }
  body += "},\"prev\":\"" + HexEncode(prev) + "\"";
  KH_ASSIGN_OR_RETURN(Digest mac, Mac(mac_key, kEntryMacContext, body));
  body += std::string(kMacMember) + HexEncode(mac) + "\"}";
  if (body.size() > kMaxAuditLineSize) {
    return Error(ErrorCode::kInvalidArgument,
                 "audit entry of " + std::to_string(body.size()) + " bytes exceeds the limit");
  }
  return body;
}

}  // namespace internal

// --- Public ---------------------------------------------------------------------------------

std::optional<AuditFinding> AuditVerifyReport::FirstProblem() const {
  std::optional<AuditFinding> best = first_bad;
  for (const auto& f : findings) {
    // Line 0 (the head, the generation) is judged after every line, so it sorts last.
    auto key = [](const AuditFinding& x) { return x.line == 0 ? UINT64_MAX : x.line; };
    if (!best || key(f) < key(*best)) best = f;
  }
  return best;
}

Result<int64_t> ParseAuditTime(std::string_view text) {
  auto bad = [&] {
    return Error(ErrorCode::kInvalidArgument, "invalid date " + SanitizeUtf8(text),
                 "use YYYY-MM-DD or an RFC 3339 time such as 2026-01-31T12:00:00Z");
  };
  auto date = ParseDate(text);
  if (!date) return bad();
  if (text.size() == 10) return *date;
  if (text[10] != 'T' && text[10] != 't') return bad();
  auto clock = ParseClock(text, 11);
  if (!clock) return bad();
  size_t pos = 19;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    size_t digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos, ++digits;
    if (digits == 0) return bad();
  }
  if (pos >= text.size()) return bad();
  int64_t offset = 0;
  if (text[pos] == 'Z' || text[pos] == 'z') {
    ++pos;
  } else if (text[pos] == '+' || text[pos] == '-') {
    unsigned oh = 0, om = 0;
    if (!Digits(text, pos + 1, 2, oh) || text.size() < pos + 6 || text[pos + 3] != ':' ||
        !Digits(text, pos + 4, 2, om) || oh > 23 || om > 59) {
      return bad();
    }
    offset = (static_cast<int64_t>(oh) * 60 + om) * 60;
    if (text[pos] == '-') offset = -offset;
    pos += 6;
  } else {
    return bad();
  }
  if (pos != text.size()) return bad();
  return *date + *clock - offset;
}

AuditLog::AuditLog(std::string dir, SecretBytes mac_key, uint64_t start_generation)
    : dir_(std::move(dir)), mac_key_(std::move(mac_key)), start_generation_(start_generation) {}

namespace {

// The end of audit.log as an appender sees it: the lines of its last `window` bytes (the
// first one dropped if the window starts inside it), and the last of them that is a valid
// entry, lines[last_index - 1]; every line after it is a remnant of an interrupted write.
struct TailScan {
  uint64_t start = 0;       // the window's offset in the file
  bool has_newline = true;  // false: a window starting mid-file held no line start at all
  std::vector<Line> lines;
  std::optional<internal::ParsedAuditLine> last;
  size_t last_index = 0;  // lines before and including the last entry
};

Result<TailScan> ScanTail(int fd, const std::string& path, uint64_t size, size_t window,
                          std::span<const uint8_t> key) {
  TailScan scan;
  scan.start = size > window ? size - window : 0;
  const size_t tail_size = static_cast<size_t>(size - scan.start);
  std::unique_ptr<char[]> tail(new char[tail_size]);
  KH_ASSIGN_OR_RETURN(
      size_t got,
      PreadFull(fd, std::span<uint8_t>(reinterpret_cast<uint8_t*>(tail.get()), tail_size),
                scan.start));
  if (got != tail_size) return IoError("short read of " + path, EIO);
  size_t pos = 0;
  if (scan.start > 0) {
    const void* nl = std::memchr(tail.get(), '\n', tail_size);
    if (!nl) {
      scan.has_newline = false;
      return scan;
    }
    pos = static_cast<size_t>(static_cast<const char*>(nl) - tail.get()) + 1;
  }
  while (pos < tail_size) {
    Line l;
    l.offset = scan.start + pos;
    const void* nl = std::memchr(tail.get() + pos, '\n', tail_size - pos);
    size_t end = nl ? static_cast<size_t>(static_cast<const char*>(nl) - tail.get()) : tail_size;
    l.length = end - pos;
    l.terminated = nl != nullptr;
    l.too_long = l.length > kMaxAuditLineSize;
    if (!l.too_long) l.bytes.assign(tail.get() + pos, l.length);
    scan.lines.push_back(std::move(l));
    pos = end + 1;
  }
  for (size_t i = scan.lines.size(); i > 0; --i) {
    Checked c = CheckLine(scan.lines[i - 1], key);
    if (c.parsed) {
      scan.last = std::move(c.parsed);
      scan.last_index = i;
      break;
    }
  }
  return scan;
}

}  // namespace

Result<std::unique_ptr<AuditLog>> AuditLog::Open(const std::string& dir, SecretBytes mac_key,
                                                 uint64_t start_generation) {
  if (mac_key.size() != kAuditMacKeySize) {
    return Error(ErrorCode::kInvalidArgument, "the audit log key must be 32 bytes");
  }
  if (dir.empty()) return Error(ErrorCode::kInvalidArgument, "empty keystore directory");
  return std::unique_ptr<AuditLog>(new AuditLog(dir, std::move(mac_key), start_generation));
}

AuditLog::~AuditLog() {
  if (!pending_.empty()) (void)FlushNow();
}

Status AuditLog::Record(const AuditEvent& event) {
  Pending p;
  p.event = SanitizeUtf8(event.event);
  std::set<std::string> names;
  for (const auto& [k, v] : event.fields) {
    std::string name = SanitizeUtf8(k);
    // The codec refuses repeated names; keep every value rather than drop one.
    for (int n = 2; !names.insert(name).second; ++n)
      name = SanitizeUtf8(k) + "_" + std::to_string(n);
    p.fields.emplace_back(std::move(name), SanitizeUtf8(v));
  }
  if (names.insert("generation").second) {
    p.fields.emplace_back("generation", std::to_string(event.generation));
  }
  p.generation = event.generation;
  p.time_unix = event.time_unix != 0 ? event.time_unix : static_cast<int64_t>(std::time(nullptr));
  pending_.push_back(std::move(p));
  return Flush();
}

Status AuditLog::RecordKeyUse(std::string_view operation,
                              const std::vector<std::string>& key_versions,
                              std::string_view object) {
  if (!IsOperationName(operation)) {
    Error e(ErrorCode::kInvalidArgument, "invalid audit operation name");
    if (!deferred_error_) deferred_error_ = e;
    return e;
  }
  Pending p;
  p.event = "use." + std::string(operation);
  p.fields.emplace_back("keys", SanitizeUtf8(JoinKeys(key_versions)));
  p.fields.emplace_back("object", SanitizeUtf8(object));
  p.time_unix = static_cast<int64_t>(std::time(nullptr));
  pending_.push_back(std::move(p));
  if (pending_.size() < kAuditFlushThreshold) return OkStatus();
  Status s = FlushNow();
  if (!s.ok() && !deferred_error_) deferred_error_ = s.error();
  return s;
}

Status AuditLog::Flush() {
  Status s = FlushNow();
  if (deferred_error_) {
    Error e = std::move(*deferred_error_);
    deferred_error_.reset();
    return e;
  }
  return s;
}

Status AuditLog::FlushNow() {
  if (pending_.empty()) return OkStatus();
  const std::string path = dir_ + "/" + std::string(kAuditLogFileName);
  Fd fd(open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (fd.get() < 0) {
    if (errno == ELOOP) {
      return Error(ErrorCode::kInsecurePermissions, path + " is a symbolic link");
    }
    return IoError("cannot open " + path, errno);
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return IoError("cannot stat " + path, errno);
  if (!S_ISREG(st.st_mode)) return Error(ErrorCode::kInsecurePermissions, path + " is not a file");
  if (st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
    return Error(ErrorCode::kInsecurePermissions,
                 path + " is accessible to others or owned by another user", "chmod 600 " + path);
  }
  KH_RETURN_IF_ERROR(Lock(fd.get(), LOCK_EX, path));
  // Everything below decides from what is in the file now, under the lock.
  if (fstat(fd.get(), &st) != 0) return IoError("cannot stat " + path, errno);
  const auto size = static_cast<uint64_t>(st.st_size);
  auto key = mac_key_.ExposeSecret();
  auto refuse = [&](std::string why) {
    return Error(ErrorCode::kAuthFailed, "audit log not appended: " + why,
                 "run `keyhold log verify`; docs/audit-log.md says how to start a new log");
  };
  auto head_result = ReadHead(dir_, key);
  if (!head_result.ok()) return refuse(head_result.error().message);
  std::optional<Head> head = *head_result;

  std::string batch;
  uint64_t seq = 1;
  Digest prev{};
  std::vector<Line> remnants;  // torn lines after the last entry, oldest first
  bool needs_genesis = false;
  if (size == 0) {
    if (head && head->seq != 0) {
      return refuse("audit.log is empty but audit.head records entry " + std::to_string(head->seq));
    }
    needs_genesis = true;
    // The head exists before the first entry does, so a missing head next to a non-empty
    // log is never the trace of a crash, always of a deletion.
    if (!head) KH_RETURN_IF_ERROR(WriteHead(dir_, Head{}, key));
  } else {
    if (!head) return refuse("audit.head is missing");
    // The last entry is almost always in the last few KiB: read kFirstTailWindow first, and the
    // whole kTailWindow only when that holds no entry. A window that ends on the last entry
    // and its remnants gives the same result as a larger one; reading 1.2 MB for every flush
    // of a bulk job cost a quarter of encrypt -O's time on 10,000 small files.
    TailScan scan;
    for (const size_t window : {kFirstTailWindow, kTailWindow}) {
      const bool final_window = window == kTailWindow || size <= window;
      KH_ASSIGN_OR_RETURN(scan, ScanTail(fd.get(), path, size, window, key));
      if (scan.last || final_window) break;
    }
    if (!scan.has_newline) {
      return refuse("no entry in the last " + std::to_string(kTailWindow) + " bytes");
    }
    std::vector<Line>& lines = scan.lines;
    std::optional<internal::ParsedAuditLine>& last = scan.last;
    const size_t i = scan.last_index;
    const uint64_t start = scan.start;
    // Only a torn first append leaves a log with no entry at all: the head still says 0.
    const bool torn_first_append = !last && start == 0 && head->seq == 0;
    if (!last && !torn_first_append) return refuse("no valid entry at the end of audit.log");
    remnants.assign(std::make_move_iterator(lines.begin() + static_cast<ptrdiff_t>(i)),
                    std::make_move_iterator(lines.end()));
    if (remnants.size() > kMaxTornLines) {
      return refuse(std::to_string(remnants.size()) + " lines after the last entry");
    }
    for (const Line& r : remnants) {
      if (r.too_long) return refuse("an over-long line after the last entry");
    }
    bool ends_with_newline = true;
    if (torn_first_append) {
      needs_genesis = true;
      ends_with_newline = remnants.back().terminated;
    } else {
      const Line& anchor = lines[i - 1];
      seq = last->entry.seq + 1;
      prev = Sha(anchor.bytes);
      if (head->seq > last->entry.seq) {
        return refuse("the log ends at entry " + std::to_string(last->entry.seq) +
                      " but audit.head records entry " + std::to_string(head->seq));
      }
      if (head->seq == last->entry.seq && !ConstantTimeEquals(head->hash, prev)) {
        return refuse("audit.head records a different entry " + std::to_string(head->seq));
      }
      // head->seq < last: the head lags after an interrupted append; this append updates it.
      ends_with_newline = remnants.empty() ? anchor.terminated : remnants.back().terminated;
    }
    // Complete a line cut before its newline, so what follows starts on a line of its own.
    if (!ends_with_newline) batch += '\n';
  }

  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  auto add = [&](const std::string& event, std::vector<std::pair<std::string, std::string>> fields,
                 int64_t time_unix) -> Status {
    AuditEntry e;
    e.seq = seq;
    e.time = FormatTime(time_unix);
    e.event = event;
    e.fields = std::move(fields);
    KH_ASSIGN_OR_RETURN(std::string line, internal::EncodeAuditLine(e, prev, key));
    prev = Sha(line);
    ++seq;
    batch += line;
    batch += '\n';
    return OkStatus();
  };
  std::vector<Pending> pending = std::move(pending_);
  pending_.clear();
  if (needs_genesis) {
    uint64_t start = start_generation_;
    // A log created by a keystore change starts right before that change.
    if (!pending.empty() && pending.front().generation && *pending.front().generation > 0) {
      start = *pending.front().generation - 1;
    }
    KH_RETURN_IF_ERROR(add(std::string(kAuditGenesisEvent),
                           {{"format", "1"}, {"start_generation", std::to_string(start)}}, now));
  }
  for (const Line& r : remnants) {
    KH_RETURN_IF_ERROR(add(std::string(kAuditTornTailEvent),
                           {{"offset", std::to_string(r.offset)},
                            {"bytes", std::to_string(r.length)},
                            {"sha256", HexEncode(Sha(r.bytes))}},
                           now));
  }
  for (auto& p : pending) {
    Status s = add(p.event, std::move(p.fields), p.time_unix);
    if (!s.ok()) {
      // One unencodable event (over the line limit) must not lose the others.
      KH_RETURN_IF_ERROR(
          add("audit.dropped", {{"event", p.event}, {"reason", s.error().message}}, p.time_unix));
    }
  }
  KH_RETURN_IF_ERROR(WriteAll(fd.get(), Bytes(batch)));
  if (fsync(fd.get()) != 0) return IoError("cannot fsync " + path, errno);
  if (size == 0) KH_RETURN_IF_ERROR(FsyncDirectory(dir_));
  return WriteHead(dir_, Head{seq - 1, prev}, key);
}

Result<AuditVerifyReport> AuditLog::Verify(const std::string& dir, std::span<const uint8_t> mac_key,
                                           const AuditVerifyOptions& options) {
  return Scan(dir, mac_key, options, nullptr, nullptr);
}

Result<AuditReadResult> AuditLog::Read(const std::string& dir, std::span<const uint8_t> mac_key,
                                       const AuditReadFilter& filter,
                                       const AuditVerifyOptions& options) {
  AuditReadResult out;
  KH_ASSIGN_OR_RETURN(out.report, Scan(dir, mac_key, options, &filter, &out.entries));
  return out;
}

}  // namespace keyhold::keystore
