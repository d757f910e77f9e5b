// The entry codec: canonical form, robustness on arbitrary bytes, and dates.
#include <catch2/catch.hpp>
#include <random>

#include "audit_test_util.h"
#include "keyhold/keystore/audit_log.h"

namespace keyhold::keystore {
namespace {

using namespace audit_testing;

// Re-encoding what ParseAuditLine accepted gives the same bytes (no second spelling).
void CheckCanonical(std::string_view line) {
  auto p = internal::ParseAuditLine(line);
  if (!p.ok()) return;
  SecretBytes key = TestKey();
  auto again = internal::EncodeAuditLine(p->entry, p->prev, key.ExposeSecret());
  REQUIRE(again.ok());
  REQUIRE(again->substr(0, p->mac_offset) == line.substr(0, p->mac_offset));
}

TEST_CASE("parse then encode gives back the written bytes", "[audit]") {
  TempDir dir;
  MakeLog(dir.path(), 2);
  for (const auto& line : SplitLines(ReadAll(dir.Log()))) {
    auto p = internal::ParseAuditLine(line);
    REQUIRE(p.ok());
    SecretBytes key = TestKey();
    auto again = internal::EncodeAuditLine(p->entry, p->prev, key.ExposeSecret());
    REQUIRE(again.ok());
    CHECK(*again == line);  // MAC included: same key, same bytes
  }
}

TEST_CASE("non-canonical spellings of an entry are refused", "[audit]") {
  TempDir dir;
  MakeLog(dir.path(), 1);
  const std::string line = SplitLines(ReadAll(dir.Log()))[3];  // a use.encrypt entry
  REQUIRE(internal::ParseAuditLine(line).ok());
  auto replaced = [&](std::string_view from, std::string_view to) {
    std::string l = line;
    size_t pos = l.find(from);
    REQUIRE(pos != std::string::npos);
    l.replace(pos, from.size(), to);
    return l;
  };
  const std::vector<std::string> bad = {
      replaced("{\"seq\":4", "{\"seq\":04"),
      replaced("{\"seq\":4", "{ \"seq\":4"),
      replaced("\"event\":", "\"event\" :"),
      replaced("use.encrypt", "use.\\u0065ncrypt"),
      replaced("use.encrypt", "use\\/encrypt"),
      replaced("\"fields\":{", "\"fields\":{\"keys\":\"x\","),  // repeated field
      replaced("\"prev\":\"", "\"prev\":\"A"),
      replaced("Z\"", "+00:00\""),
      line + " ",
      line + "\r",
      line.substr(0, line.size() - 1),
      "{\"seq\":18446744073709551616" + line.substr(line.find(",\"time\"")),
      replaced("obj-0", "obj\x01"),
      replaced("obj-0", "obj\xc3"),
      replaced("obj-0", "\\u001F"),
  };
  for (const auto& b : bad) {
    INFO(b);
    CHECK_FALSE(internal::ParseAuditLine(b).ok());
  }
  CHECK(internal::ParseAuditLine(replaced("obj-0", "\\u001f")).ok());
}

TEST_CASE("the reader survives arbitrary bytes", "[audit]") {
  TempDir dir;
  MakeLog(dir.path(), 3);
  const std::string good = ReadAll(dir.Log());
  const std::string good_head = ReadAll(dir.HeadPath());
  std::mt19937_64 rng(20261128);
  auto byte = [&] { return static_cast<char>(rng() & 0xFF); };
  SecretBytes key = TestKey();

  // Random files, random mutations of a valid log (flips, cuts, splices, newlines), random
  // heads. Nothing may crash; the log must never verify once changed.
  for (int i = 0; i < 400; ++i) {
    std::string text;
    switch (i % 4) {
      case 0:
        for (size_t n = rng() % 3000; n > 0; --n) text += byte();
        break;
      case 1: {
        text = good;
        for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k) {
          text[rng() % text.size()] = byte();
        }
        break;
      }
      case 2: {
        text = good;
        size_t a = rng() % text.size();
        size_t b = rng() % text.size();
        if (a > b) std::swap(a, b);
        text.erase(a, b - a);
        text.insert(rng() % (text.size() + 1), good.substr(rng() % good.size(), 50));
        break;
      }
      case 3:
        text = good;
        text.insert(rng() % text.size(), std::string(1 + rng() % 3, '\n'));
        break;
    }
    WriteAllText(dir.Log(), text);
    std::string head = good_head;
    if (i % 7 == 0) head[rng() % head.size()] = byte();
    WriteAllText(dir.HeadPath(), head);
    auto r = AuditLog::Verify(dir.path(), key.ExposeSecret());
    REQUIRE(r.ok());
    if (text != good || head != good_head) CHECK_FALSE(r->intact());
    auto read = AuditLog::Read(dir.path(), key.ExposeSecret(), {});
    REQUIRE(read.ok());
    for (const auto& line : SplitLines(text)) CheckCanonical(line);
  }

  // Over-long lines, with and without a newline, and a huge file of one byte.
  WriteAllText(dir.Log(), good + std::string(kMaxAuditLineSize + 10, 'a') + "\n" + good);
  auto r = AuditLog::Verify(dir.path(), key.ExposeSecret());
  REQUIRE(r.ok());
  REQUIRE(r->first_bad);
  CHECK(r->first_bad->line == 8);
  CHECK(r->first_bad->reason.find("longer than") != std::string::npos);
  WriteAllText(dir.Log(), std::string(3 * kMaxAuditLineSize, '{'));
  r = AuditLog::Verify(dir.path(), key.ExposeSecret());
  REQUIRE(r.ok());
  CHECK(r->first_bad->line == 1);
  WriteAllText(dir.Log(), std::string(40 * 1024, '\n'));
  r = AuditLog::Verify(dir.path(), key.ExposeSecret());
  REQUIRE(r.ok());
  CHECK(r->first_bad->line == 1);
  // An appender refuses these too, rather than chain onto garbage.
  WriteAllText(dir.HeadPath(), good_head);
  auto log = AuditLog::Open(dir.path(), TestKey(), 0);
  REQUIRE((*log)->RecordKeyUse("decrypt", {"k v1"}, "x").ok());
  CHECK((*log)->Flush().error().code == ErrorCode::kAuthFailed);
}

TEST_CASE("dates for --since", "[audit]") {
  struct Case {
    const char* text;
    int64_t unix;  // -1: invalid
  };
  const Case cases[] = {
      {"1970-01-01", 0},
      {"2026-11-28", 1795824000},
      {"2024-02-29", 1709164800},
      {"2026-11-28T12:30:00Z", 1795869000},
      {"2026-11-28t12:30:00z", 1795869000},
      {"2026-11-28T12:30:00.123456Z", 1795869000},
      {"2026-11-28T14:30:00+02:00", 1795869000},
      {"2026-11-28T07:00:00-05:30", 1795869000},
      {"2023-02-29", -1},
      {"2026-13-01", -1},
      {"2026-11-31", -1},
      {"2026-1-01", -1},
      {"2026-11-28T25:00:00Z", -1},
      {"2026-11-28T12:30:00", -1},
      {"2026-11-28T12:30:00.Z", -1},
      {"2026-11-28T12:30:00+0200", -1},
      {"2026-11-28 12:30:00Z", -1},
      {"2026-11-28T12:30:00Zjunk", -1},
      {"yesterday", -1},
      {"", -1},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    auto t = ParseAuditTime(c.text);
    if (c.unix < 0) {
      CHECK_FALSE(t.ok());
      if (!t.ok()) CHECK(t.error().code == ErrorCode::kInvalidArgument);
    } else {
      REQUIRE(t.ok());
      CHECK(*t == c.unix);
    }
  }
}

}  // namespace
}  // namespace keyhold::keystore
