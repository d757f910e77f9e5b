// Append, verify and every kind of tampering the audit log promises to detect.
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "audit_test_util.h"
#include "keyhold/crypto/encoding.h"
#include "keyhold/crypto/hash.h"
#include "keyhold/keystore/audit_log.h"

namespace keyhold::keystore {
namespace {

using namespace audit_testing;

TEST_CASE("append then verify: every entry verifies, in order", "[audit]") {
  TempDir dir;
  size_t n = MakeLog(dir.path());
  auto r = VerifyOk(dir.path(), 1, AuditVerifyOptions{3});
  CHECK(r.intact());
  CHECK(r.verified_entries == n);
  CHECK(r.lines == n);
  CHECK(r.last_seq == n);
  CHECK(r.notes.empty());
  auto lines = SplitLines(ReadAll(dir.Log()));
  REQUIRE(lines.size() == n);
  CHECK(lines[0].find("\"event\":\"audit.genesis\"") != std::string::npos);
  CHECK(lines[0].find("\"start_generation\":\"0\"") != std::string::npos);
  CHECK(lines[1].find("\"event\":\"keystore.init\"") != std::string::npos);
  CHECK(lines[1].find("\"generation\":\"1\"") != std::string::npos);
  CHECK(lines[3].find("\"event\":\"use.encrypt\"") != std::string::npos);
  CHECK(lines[3].find("\"keys\":\"backups v1\",\"object\":\"obj-0\"") != std::string::npos);
  CHECK(lines[1].rfind("{\"seq\":2,\"time\":\"2026-09-21T", 0) == 0);  // 1790000000
  // Files are private.
  struct stat st;
  REQUIRE(stat(dir.Log().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(stat(dir.HeadPath().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("verify compares the last keystore change with the keystore generation", "[audit]") {
  TempDir dir;
  MakeLog(dir.path());
  auto behind = VerifyOk(dir.path(), 1, AuditVerifyOptions{4});
  REQUIRE_FALSE(behind.intact());
  CHECK(behind.findings.at(0).reason.find("missing from the end") != std::string::npos);
  auto ahead = VerifyOk(dir.path(), 1, AuditVerifyOptions{2});
  REQUIRE_FALSE(ahead.intact());
  CHECK(ahead.findings.at(0).reason.find("rolled back") != std::string::npos);
}

TEST_CASE("a gap in keystore generations is a finding at that line", "[audit]") {
  TempDir dir;
  auto log = AuditLog::Open(dir.path(), TestKey(), 0);
  REQUIRE(log.ok());
  REQUIRE((*log)->Record(Change("keystore.init", 1)).ok());
  REQUIRE((*log)->Record(Change("key.create", 3)).ok());  // generation 2 was never recorded
  auto r = VerifyOk(dir.path());
  REQUIRE_FALSE(r.intact());
  CHECK_FALSE(r.first_bad);
  REQUIRE(r.findings.size() == 1);
  CHECK(r.findings[0].line == 3);
  CHECK(r.verified_entries == 3);
}

TEST_CASE("a log started late says so, and counts generations from its start", "[audit]") {
  TempDir dir;
  {
    auto log = AuditLog::Open(dir.path(), TestKey(), 7);
    REQUIRE(log.ok());
    REQUIRE((*log)->RecordKeyUse("decrypt", {"k v1"}, "x").ok());
    REQUIRE((*log)->Flush().ok());
    REQUIRE((*log)->Record(Change("key.rotate", 8)).ok());
  }
  auto r = VerifyOk(dir.path(), 1, AuditVerifyOptions{8});
  CHECK(r.intact());
  REQUIRE(r.notes.size() == 1);
  CHECK(r.notes[0].find("after keystore generation 7") != std::string::npos);
}

TEST_CASE("a log created by a keystore change starts right before it", "[audit]") {
  TempDir dir;
  {
    auto log = AuditLog::Open(dir.path(), TestKey(), 0);  // start_generation is stale
    REQUIRE(log.ok());
    REQUIRE((*log)->Record(Change("key.create", 5)).ok());
  }
  auto r = VerifyOk(dir.path(), 1, AuditVerifyOptions{5});
  CHECK(r.intact());
  CHECK(ReadAll(dir.Log()).find("\"start_generation\":\"4\"") != std::string::npos);
}

TEST_CASE("changing any byte of any entry fails verification at that line", "[audit]") {
  TempDir dir;
  size_t n = MakeLog(dir.path(), 2);
  const std::string original = ReadAll(dir.Log());
  auto lines = SplitLines(original);
  REQUIRE(lines.size() == n);
  size_t offset = 0;
  size_t checked = 0;
  for (size_t li = 0; li < lines.size(); ++li) {
    // Every byte of the line, its newline included.
    for (size_t b = 0; b <= lines[li].size(); ++b) {
      std::string text = original;
      text[offset + b] = static_cast<char>(text[offset + b] ^ 0x01);
      WriteAllText(dir.Log(), text);
      auto r = VerifyOk(dir.path());
      INFO("line " << li + 1 << " byte " << b);
      REQUIRE_FALSE(r.intact());
      REQUIRE(FirstBadLine(r) == li + 1);
      ++checked;
    }
    offset += lines[li].size() + 1;
  }
  CHECK(checked == original.size());
  WriteAllText(dir.Log(), original);
  CHECK(VerifyOk(dir.path()).intact());
}

TEST_CASE("deleted, inserted, reordered and cut entries are found at the right line", "[audit]") {
  TempDir dir;
  MakeLog(dir.path(), 3);  // 7 entries
  const auto lines = SplitLines(ReadAll(dir.Log()));
  REQUIRE(lines.size() == 7);

  SECTION("delete a middle entry") {
    auto l = lines;
    l.erase(l.begin() + 3);  // entry 4
    WriteAllText(dir.Log(), JoinLines(l));
    auto r = VerifyOk(dir.path());
    REQUIRE(r.first_bad);
    CHECK(r.first_bad->line == 4);
    CHECK(r.first_bad->reason.find("entry 5 where entry 4 was expected") != std::string::npos);
  }
  SECTION("delete the first entry") {
    auto l = lines;
    l.erase(l.begin());
    WriteAllText(dir.Log(), JoinLines(l));
    auto r = VerifyOk(dir.path());
    REQUIRE(r.first_bad);
    CHECK(r.first_bad->line == 1);
  }
  SECTION("insert a copy of an earlier entry") {
    auto l = lines;
    l.insert(l.begin() + 4, lines[2]);
    WriteAllText(dir.Log(), JoinLines(l));
    auto r = VerifyOk(dir.path());
    REQUIRE(r.first_bad);
    CHECK(r.first_bad->line == 5);
  }
  SECTION("insert a forged entry") {
    auto l = lines;
    std::string forged = lines[3];
    forged.replace(forged.find("obj-0"), 5, "obj-9");
    l.insert(l.begin() + 4, forged);
    WriteAllText(dir.Log(), JoinLines(l));
    auto r = VerifyOk(dir.path());
    REQUIRE(r.first_bad);
    CHECK(r.first_bad->line == 5);
    CHECK(r.first_bad->reason.find("does not verify") != std::string::npos);
  }
  SECTION("swap two entries") {
    auto l = lines;
    std::swap(l[2], l[3]);
    WriteAllText(dir.Log(), JoinLines(l));
    auto r = VerifyOk(dir.path());
    REQUIRE(r.first_bad);
    CHECK(r.first_bad->line == 3);
  }
  SECTION("cut a middle entry in half") {
    auto l = lines;
    l[2] = l[2].substr(0, l[2].size() / 2);
    WriteAllText(dir.Log(), JoinLines(l));
    auto r = VerifyOk(dir.path());
    REQUIRE(r.first_bad);
    CHECK(r.first_bad->line == 3);
  }
  SECTION("remove a range of bytes spanning two entries") {
    std::string text = JoinLines(lines);
    size_t start = text.find("obj-1");
    size_t end = text.find("obj-2");
    text.erase(start, end - start);
    WriteAllText(dir.Log(), text);
    auto r = VerifyOk(dir.path());
    CHECK(FirstBadLine(r) == 5);
  }
  SECTION("an empty line is not an entry") {
    auto l = lines;
    l.insert(l.begin() + 2, "");
    WriteAllText(dir.Log(), JoinLines(l));
    auto r = VerifyOk(dir.path());
    CHECK(FirstBadLine(r) == 3);
  }
}

TEST_CASE("removing entries from the end is found through the head", "[audit]") {
  TempDir dir;
  MakeLog(dir.path(), 3);
  const auto lines = SplitLines(ReadAll(dir.Log()));

  SECTION("the last entry") {
    auto l = lines;
    l.pop_back();
    WriteAllText(dir.Log(), JoinLines(l));
    auto r = VerifyOk(dir.path());
    REQUIRE_FALSE(r.intact());
    CHECK_FALSE(r.first_bad);
    REQUIRE(r.findings.size() == 1);
    CHECK(r.findings[0].line == 6);
    CHECK(r.findings[0].reason.find("removed from the end") != std::string::npos);
    // And nothing is appended on top of it.
    auto log = AuditLog::Open(dir.path(), TestKey(), 0);
    REQUIRE((*log)->RecordKeyUse("decrypt", {"backups v2"}, "later").ok());
    auto s = (*log)->Flush();
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().code == ErrorCode::kAuthFailed);
    CHECK(ReadAll(dir.Log()) == JoinLines(l));
  }
  SECTION("everything but the genesis entry") {
    WriteAllText(dir.Log(), lines[0] + "\n");
    auto r = VerifyOk(dir.path());
    REQUIRE_FALSE(r.intact());
    CHECK(r.findings.at(0).reason.find("removed from the end") != std::string::npos);
  }
  SECTION("the last entry and the head") {
    auto l = lines;
    l.pop_back();
    WriteAllText(dir.Log(), JoinLines(l));
    REQUIRE(unlink(dir.HeadPath().c_str()) == 0);
    auto r = VerifyOk(dir.path());
    REQUIRE_FALSE(r.intact());
    CHECK(r.findings.at(0).reason.find("audit.head is missing") != std::string::npos);
    auto log = AuditLog::Open(dir.path(), TestKey(), 0);
    REQUIRE((*log)->RecordKeyUse("decrypt", {"backups v2"}, "later").ok());
    CHECK((*log)->Flush().error().code == ErrorCode::kAuthFailed);
  }
  SECTION("the whole log, keeping the head") {
    WriteAllText(dir.Log(), "");
    auto r = VerifyOk(dir.path());
    REQUIRE_FALSE(r.intact());
    auto log = AuditLog::Open(dir.path(), TestKey(), 0);
    REQUIRE((*log)->RecordKeyUse("decrypt", {"backups v2"}, "later").ok());
    CHECK((*log)->Flush().error().code == ErrorCode::kAuthFailed);
    REQUIRE(unlink(dir.Log().c_str()) == 0);
    auto r2 = VerifyOk(dir.path());
    REQUIRE_FALSE(r2.intact());
    CHECK(r2.findings.at(0).reason.find("missing") != std::string::npos);
  }
  SECTION("log and head both deleted: not found, and a new log says where it starts") {
    REQUIRE(unlink(dir.Log().c_str()) == 0);
    REQUIRE(unlink(dir.HeadPath().c_str()) == 0);
    SecretBytes key = TestKey();
    auto r = AuditLog::Verify(dir.path(), key.ExposeSecret());
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kNotFound);
    auto log = AuditLog::Open(dir.path(), TestKey(), 3);
    REQUIRE((*log)->RecordKeyUse("decrypt", {"backups v2"}, "later").ok());
    REQUIRE((*log)->Flush().ok());
    auto r2 = VerifyOk(dir.path(), 1, AuditVerifyOptions{3});
    CHECK(r2.intact());
    REQUIRE(r2.notes.size() == 1);
    CHECK(r2.notes[0].find("after keystore generation 3") != std::string::npos);
  }
}

TEST_CASE("the head: modified, foreign, stale", "[audit]") {
  TempDir dir;
  MakeLog(dir.path(), 1);
  const std::string head = ReadAll(dir.HeadPath());

  SECTION("a changed byte") {
    for (size_t i = 0; i < head.size(); ++i) {
      std::string h = head;
      h[i] = static_cast<char>(h[i] ^ 0x01);
      WriteAllText(dir.HeadPath(), h);
      INFO("byte " << i);
      auto r = VerifyOk(dir.path());
      REQUIRE_FALSE(r.intact());
      REQUIRE(r.findings.size() == 1);
      CHECK(r.findings[0].line == 0);
    }
  }
  SECTION("written with another key") {
    TempDir other;
    MakeLog(other.path(), 1, 9);
    WriteAllText(dir.HeadPath(), ReadAll(other.HeadPath()));
    auto r = VerifyOk(dir.path());
    REQUIRE_FALSE(r.intact());
    CHECK(r.findings.at(0).reason.find("does not verify") != std::string::npos);
  }
  SECTION("an older head lags: a note, and the next append catches up") {
    auto log = AuditLog::Open(dir.path(), TestKey(), 0);
    REQUIRE((*log)->RecordKeyUse("decrypt", {"backups v2"}, "a").ok());
    REQUIRE((*log)->Flush().ok());
    WriteAllText(dir.HeadPath(), head);  // as if killed before the head was replaced
    auto r = VerifyOk(dir.path());
    CHECK(r.intact());
    REQUIRE(r.notes.size() == 1);
    CHECK(r.notes[0].find("lags 1 entries") != std::string::npos);
    REQUIRE((*log)->RecordKeyUse("decrypt", {"backups v2"}, "b").ok());
    REQUIRE((*log)->Flush().ok());
    auto r2 = VerifyOk(dir.path());
    CHECK(r2.intact());
    CHECK(r2.notes.empty());
  }
  SECTION("an older head with the log rewritten after it") {
    auto log = AuditLog::Open(dir.path(), TestKey(), 0);
    REQUIRE((*log)->RecordKeyUse("decrypt", {"backups v2"}, "a").ok());
    REQUIRE((*log)->Flush().ok());
    // Swap the head's entry for the one after it: the chain breaks there first.
    auto now = SplitLines(ReadAll(dir.Log()));
    std::swap(now[now.size() - 1], now[now.size() - 2]);
    WriteAllText(dir.Log(), JoinLines(now));
    auto r = VerifyOk(dir.path());
    CHECK(FirstBadLine(r) == now.size() - 1);
  }
}

TEST_CASE("wrong key: fails at the first entry", "[audit]") {
  TempDir dir;
  MakeLog(dir.path());
  auto r = VerifyOk(dir.path(), 2);
  REQUIRE(r.first_bad);
  CHECK(r.first_bad->line == 1);
  CHECK(r.verified_entries == 0);
  SecretBytes short_key(16);
  CHECK(AuditLog::Verify(dir.path(), short_key.ExposeSecret()).error().code ==
        ErrorCode::kInvalidArgument);
  CHECK(AuditLog::Open(dir.path(), SecretBytes(31), 0).error().code == ErrorCode::kInvalidArgument);
  // Nor does another key append to it.
  auto log = AuditLog::Open(dir.path(), TestKey(2), 0);
  REQUIRE((*log)->RecordKeyUse("decrypt", {"k v1"}, "x").ok());
  CHECK((*log)->Flush().error().code == ErrorCode::kAuthFailed);
}

TEST_CASE("a torn last line is reported, then acknowledged by the next append", "[audit]") {
  TempDir dir;
  size_t n = MakeLog(dir.path(), 2);
  const std::string before = ReadAll(dir.Log());
  // A half-written entry, as if killed inside write(): a prefix of a real next entry.
  TempDir scratch;
  MakeLog(scratch.path(), 3);
  std::string next = SplitLines(ReadAll(scratch.Log()))[n];
  std::string fragment = next.substr(0, next.size() / 2);
  WriteAllText(dir.Log(), before + fragment);

  auto r = VerifyOk(dir.path());
  REQUIRE(r.first_bad);
  CHECK(r.first_bad->line == n + 1);
  CHECK(r.first_bad->reason.find("torn last line") != std::string::npos);
  CHECK(r.verified_entries == n);

  auto log = AuditLog::Open(dir.path(), TestKey(), 0);
  REQUIRE((*log)->RecordKeyUse("decrypt", {"backups v2"}, "after-crash").ok());
  REQUIRE((*log)->Flush().ok());
  const std::string after = ReadAll(dir.Log());
  auto lines = SplitLines(after);
  REQUIRE(lines.size() == n + 3);
  CHECK(lines[n] == fragment);  // kept, now terminated
  CHECK(lines[n + 1].find("\"event\":\"audit.torn-tail\"") != std::string::npos);
  CHECK(lines[n + 1].find("\"offset\":\"" + std::to_string(before.size()) + "\"") !=
        std::string::npos);
  CHECK(lines[n + 2].find("after-crash") != std::string::npos);

  auto r2 = VerifyOk(dir.path());
  CHECK_FALSE(r2.intact());   // a record was lost: never silently accepted
  CHECK_FALSE(r2.first_bad);  // but everything else verified
  CHECK(r2.verified_entries == n + 2);
  REQUIRE(r2.findings.size() == 1);
  CHECK(r2.findings[0].line == n + 1);
  CHECK(r2.findings[0].reason.find("torn line") != std::string::npos);
  CHECK(FirstBadLine(r2) == n + 1);

  SECTION("the fragment cannot be changed afterwards") {
    auto l = lines;
    l[n][5] = static_cast<char>(l[n][5] ^ 0x01);
    WriteAllText(dir.Log(), JoinLines(l));
    auto r3 = VerifyOk(dir.path());
    REQUIRE(r3.first_bad);
    CHECK(r3.first_bad->line == n + 1);
  }
  SECTION("nor removed") {
    auto l = lines;
    l.erase(l.begin() + static_cast<ptrdiff_t>(n));
    WriteAllText(dir.Log(), JoinLines(l));
    auto r3 = VerifyOk(dir.path());
    REQUIRE(r3.first_bad);
    CHECK(r3.first_bad->line == n + 1);
    CHECK(r3.first_bad->reason.find("acknowledges a torn line") != std::string::npos);
  }
  SECTION("more appends keep it reported") {
    REQUIRE((*log)->RecordKeyUse("decrypt", {"backups v2"}, "more").ok());
    REQUIRE((*log)->Flush().ok());
    auto r3 = VerifyOk(dir.path());
    CHECK(FirstBadLine(r3) == n + 1);
    CHECK(r3.verified_entries == n + 3);
  }
}

TEST_CASE("a torn tail longer than the appender's first read is still acknowledged", "[audit]") {
  // An appender reads the last 16 KiB first and its whole window only when that holds no
  // entry: a window starting inside the last entry, or past it, must give the same result.
  const size_t size = GENERATE(size_t{16 * 1024 - 100}, size_t{16 * 1024}, size_t{40 * 1024});
  INFO("torn line of " << size << " bytes");
  TempDir dir;
  size_t n = MakeLog(dir.path(), 2);
  const std::string before = ReadAll(dir.Log());
  const std::string fragment(size, 'x');
  WriteAllText(dir.Log(), before + fragment);

  auto log = AuditLog::Open(dir.path(), TestKey(), 0);
  REQUIRE((*log)->RecordKeyUse("decrypt", {"backups v2"}, "after-crash").ok());
  REQUIRE((*log)->Flush().ok());
  auto lines = SplitLines(ReadAll(dir.Log()));
  REQUIRE(lines.size() == n + 3);
  CHECK(lines[n] == fragment);
  CHECK(lines[n + 1].find("\"event\":\"audit.torn-tail\"") != std::string::npos);
  CHECK(lines[n + 1].find("\"offset\":\"" + std::to_string(before.size()) + "\"") !=
        std::string::npos);
  CHECK(lines[n + 2].find("after-crash") != std::string::npos);
  auto r = VerifyOk(dir.path());
  CHECK_FALSE(r.first_bad);
  CHECK(r.verified_entries == n + 2);
  CHECK(FirstBadLine(r) == n + 1);
}

TEST_CASE("an entry cut just before its newline is completed, not reported", "[audit]") {
  TempDir dir;
  size_t n = MakeLog(dir.path(), 1);
  std::string text = ReadAll(dir.Log());
  text.pop_back();
  WriteAllText(dir.Log(), text);
  auto r = VerifyOk(dir.path());
  CHECK(r.intact());
  CHECK(r.notes.at(0).find("newline") != std::string::npos);
  auto log = AuditLog::Open(dir.path(), TestKey(), 0);
  REQUIRE((*log)->RecordKeyUse("decrypt", {"k v1"}, "x").ok());
  REQUIRE((*log)->Flush().ok());
  auto r2 = VerifyOk(dir.path());
  CHECK(r2.intact());
  CHECK(r2.verified_entries == n + 1);
}

TEST_CASE("a torn first append is acknowledged after the genesis entry", "[audit]") {
  TempDir scratch;
  MakeLog(scratch.path(), 0);
  const std::string genesis = SplitLines(ReadAll(scratch.Log()))[0];
  TempDir dir;
  // The seq-0 head an appender writes before the first entry, built here from the spec
  // (docs/audit-log.md): HMAC-SHA-256(key, "keyhold audit head v1" || 0x00 || body).
  const std::string body = "{\"seq\":0,\"hash\":\"" + std::string(64, '0') + "\"";
  const std::string msg = std::string("keyhold audit head v1") + '\0' + body;
  SecretBytes key = TestKey();
  auto mac = HmacCompute(HashAlg::kSha256, key.ExposeSecret(),
                         {reinterpret_cast<const uint8_t*>(msg.data()), msg.size()});
  REQUIRE(mac.ok());
  WriteAllText(dir.HeadPath(), body + ",\"mac\":\"" + HexEncode(*mac) + "\"}\n");
  WriteAllText(dir.Log(), genesis.substr(0, 40));
  REQUIRE(chmod(dir.Log().c_str(), 0600) == 0);

  auto r = VerifyOk(dir.path());
  REQUIRE(r.first_bad);
  CHECK(r.first_bad->line == 1);
  CHECK(r.first_bad->reason.find("torn last line") != std::string::npos);

  auto log = AuditLog::Open(dir.path(), TestKey(), 0);
  REQUIRE((*log)->Record(Change("keystore.init", 1)).ok());
  auto lines = SplitLines(ReadAll(dir.Log()));
  REQUIRE(lines.size() == 4);
  CHECK(lines[0] == genesis.substr(0, 40));
  CHECK(lines[1].find("audit.genesis") != std::string::npos);
  CHECK(lines[2].find("audit.torn-tail") != std::string::npos);
  auto r2 = VerifyOk(dir.path(), 1, AuditVerifyOptions{1});
  CHECK_FALSE(r2.first_bad);
  CHECK(r2.verified_entries == 3);
  REQUIRE(r2.findings.size() == 1);
  CHECK(r2.findings[0].line == 1);
}

TEST_CASE("a head written with another seq-0 spelling does not verify", "[audit]") {
  // The KAT above pins the head's MAC input; a head MACed without the context string must
  // fail, so the entry and head MACs cannot be swapped.
  TempDir dir;
  const std::string body = "{\"seq\":0,\"hash\":\"" + std::string(64, '0') + "\"";
  SecretBytes key = TestKey();
  auto mac = HmacCompute(HashAlg::kSha256, key.ExposeSecret(),
                         {reinterpret_cast<const uint8_t*>(body.data()), body.size()});
  REQUIRE(mac.ok());
  WriteAllText(dir.HeadPath(), body + ",\"mac\":\"" + HexEncode(*mac) + "\"}\n");
  auto log = AuditLog::Open(dir.path(), TestKey(), 0);
  CHECK((*log)->Record(Change("keystore.init", 1)).error().code == ErrorCode::kAuthFailed);
}

TEST_CASE("audit.log must be a private regular file", "[audit]") {
  TempDir dir;
  MakeLog(dir.path(), 0);
  SECTION("group-readable") {
    REQUIRE(chmod(dir.Log().c_str(), 0640) == 0);
    auto log = AuditLog::Open(dir.path(), TestKey(), 0);
    REQUIRE((*log)->RecordKeyUse("decrypt", {"k v1"}, "x").ok());
    CHECK((*log)->Flush().error().code == ErrorCode::kInsecurePermissions);
  }
  SECTION("a symbolic link") {
    TempDir elsewhere;
    std::string target = elsewhere.path() + "/victim";
    WriteAllText(target, "");
    REQUIRE(unlink(dir.Log().c_str()) == 0);
    REQUIRE(symlink(target.c_str(), dir.Log().c_str()) == 0);
    auto log = AuditLog::Open(dir.path(), TestKey(), 0);
    REQUIRE((*log)->RecordKeyUse("decrypt", {"k v1"}, "x").ok());
    CHECK((*log)->Flush().error().code == ErrorCode::kInsecurePermissions);
    CHECK(ReadAll(target).empty());
  }
}

TEST_CASE("planted FIFOs and symlinks neither hang nor pass", "[audit]") {
  TempDir dir;
  MakeLog(dir.path(), 0);
  SecretBytes key = TestKey();
  SECTION("a FIFO as the head") {
    REQUIRE(unlink(dir.HeadPath().c_str()) == 0);
    REQUIRE(mkfifo(dir.HeadPath().c_str(), 0600) == 0);
    auto r = VerifyOk(dir.path());
    REQUIRE_FALSE(r.intact());
    CHECK(r.findings.at(0).reason.find("not a file") != std::string::npos);
    auto log = AuditLog::Open(dir.path(), TestKey(), 0);
    REQUIRE((*log)->RecordKeyUse("decrypt", {"k v1"}, "x").ok());
    CHECK((*log)->Flush().error().code == ErrorCode::kAuthFailed);
  }
  SECTION("a FIFO as the log") {
    REQUIRE(unlink(dir.Log().c_str()) == 0);
    REQUIRE(mkfifo(dir.Log().c_str(), 0600) == 0);
    auto r = VerifyOk(dir.path());
    REQUIRE(r.first_bad);
    CHECK(r.first_bad->reason.find("not a file") != std::string::npos);
    auto log = AuditLog::Open(dir.path(), TestKey(), 0);
    REQUIRE((*log)->RecordKeyUse("decrypt", {"k v1"}, "x").ok());
    CHECK((*log)->Flush().error().code == ErrorCode::kInsecurePermissions);
  }
  SECTION("a symlink as the log") {
    std::string real = dir.path() + "/real.log";
    REQUIRE(rename(dir.Log().c_str(), real.c_str()) == 0);
    REQUIRE(symlink(real.c_str(), dir.Log().c_str()) == 0);
    auto r = VerifyOk(dir.path());
    REQUIRE(r.first_bad);
    CHECK(r.first_bad->reason.find("symbolic link") != std::string::npos);
  }
  SECTION("an empty log without a head is no log (a crash right after creating it)") {
    WriteAllText(dir.Log(), "");
    REQUIRE(unlink(dir.HeadPath().c_str()) == 0);
    CHECK(AuditLog::Verify(dir.path(), key.ExposeSecret()).error().code == ErrorCode::kNotFound);
    auto log = AuditLog::Open(dir.path(), TestKey(), 0);
    REQUIRE((*log)->RecordKeyUse("decrypt", {"k v1"}, "x").ok());
    REQUIRE((*log)->Flush().ok());
    CHECK(VerifyOk(dir.path()).intact());
  }
}

TEST_CASE("batches: one flush per 256 key uses, and Flush writes the rest", "[audit]") {
  TempDir dir;
  auto log = AuditLog::Open(dir.path(), TestKey(), 0);
  REQUIRE(log.ok());
  for (size_t i = 0; i < 1000; ++i) {
    REQUIRE((*log)->RecordKeyUse("rewrap", {"backups v2"}, "o/" + std::to_string(i)).ok());
    if (i == 254) CHECK_FALSE(std::filesystem::exists(dir.Log()));
  }
  CHECK((*log)->pending() == 1000 - 3 * kAuditFlushThreshold);
  CHECK(SplitLines(ReadAll(dir.Log())).size() == 1 + 3 * kAuditFlushThreshold);
  REQUIRE((*log)->Flush().ok());
  CHECK((*log)->pending() == 0);
  auto r = VerifyOk(dir.path());
  CHECK(r.intact());
  CHECK(r.verified_entries == 1001);
}

TEST_CASE("a keystore change is written after the key uses buffered before it", "[audit]") {
  TempDir dir;
  auto log = AuditLog::Open(dir.path(), TestKey(), 0);
  REQUIRE((*log)->Record(Change("keystore.init", 1)).ok());
  REQUIRE((*log)->RecordKeyUse("encrypt", {"k v1"}, "first").ok());
  REQUIRE((*log)->Record(Change("key.rotate", 2, {{"key", "k"}})).ok());
  auto lines = SplitLines(ReadAll(dir.Log()));
  REQUIRE(lines.size() == 4);
  CHECK(lines[2].find("first") != std::string::npos);
  CHECK(lines[3].find("key.rotate") != std::string::npos);
}

TEST_CASE("the destructor flushes what is buffered", "[audit]") {
  TempDir dir;
  {
    auto log = AuditLog::Open(dir.path(), TestKey(), 0);
    REQUIRE((*log)->RecordKeyUse("encrypt", {"k v1"}, "pending").ok());
  }
  CHECK(ReadAll(dir.Log()).find("pending") != std::string::npos);
  CHECK(VerifyOk(dir.path()).intact());
}

TEST_CASE("names and paths of any bytes are recorded without breaking the line", "[audit]") {
  TempDir dir;
  std::string path = "dir/\"quoted\"\\back\nnew\x01line\x7f/\xff\xfe/caf\xc3\xa9";
  auto log = AuditLog::Open(dir.path(), TestKey(), 0);
  REQUIRE((*log)->RecordKeyUse("decrypt", {"k v1"}, path).ok());
  REQUIRE((*log)->Record(Change("key.create\n", 1, {{"key\x80", "v"}, {"key\x80", "w"}})).ok());
  auto r = VerifyOk(dir.path());
  CHECK(r.intact());
  auto lines = SplitLines(ReadAll(dir.Log()));
  REQUIRE(lines.size() == 3);
  CHECK(lines[1].find(R"(dir/\"quoted\"\\back\u000anew\u0001line\u007f/\\xff\\xfe/café)") !=
        std::string::npos);
  SecretBytes key = TestKey();
  auto read = AuditLog::Read(dir.path(), key.ExposeSecret(), {});
  REQUIRE(read.ok());
  REQUIRE(read->entries.size() == 3);
  CHECK(read->entries[1].entry.fields[1].second ==
        "dir/\"quoted\"\\back\nnew\x01line\x7f/\\xff\\xfe/caf\xc3\xa9");
  CHECK(read->entries[2].entry.event == "key.create\n");
  CHECK(read->entries[2].entry.fields[0].first == "key\\x80");
  CHECK(read->entries[2].entry.fields[1].first == "key\\x80_2");
  CHECK(read->entries[2].entry.fields[2].first == "generation");
  CHECK((*log)->RecordKeyUse("Encrypt", {}, "x").error().code == ErrorCode::kInvalidArgument);
}

TEST_CASE("an entry over the line limit is replaced by a record that it was dropped", "[audit]") {
  TempDir dir;
  auto log = AuditLog::Open(dir.path(), TestKey(), 0);
  REQUIRE((*log)->RecordKeyUse("encrypt", {"k v1"}, std::string(kMaxAuditLineSize, 'a')).ok());
  REQUIRE((*log)->RecordKeyUse("encrypt", {"k v1"}, "small").ok());
  REQUIRE((*log)->Flush().ok());
  auto lines = SplitLines(ReadAll(dir.Log()));
  REQUIRE(lines.size() == 3);
  CHECK(lines[1].find("audit.dropped") != std::string::npos);
  CHECK(lines[2].find("small") != std::string::npos);
  CHECK(VerifyOk(dir.path()).intact());
}

TEST_CASE("Read filters by time and key, and marks what follows a bad entry", "[audit]") {
  TempDir dir;
  auto log = AuditLog::Open(dir.path(), TestKey(), 0);
  REQUIRE((*log)->Record(AuditEvent{"keystore.init", {}, 1, 1700000000}).ok());
  REQUIRE((*log)->Record(AuditEvent{"key.create", {{"key", "alpha"}}, 2, 1700086400}).ok());
  REQUIRE((*log)->Record(AuditEvent{"key.create", {{"key", "beta"}}, 3, 1800000000}).ok());
  REQUIRE((*log)->RecordKeyUse("encrypt", {"alpha v1", "beta v1"}, "both").ok());
  REQUIRE((*log)->RecordKeyUse("encrypt", {"alphabet v1"}, "neither").ok());
  REQUIRE((*log)->Flush().ok());
  SecretBytes key = TestKey();

  AuditReadFilter by_key;
  by_key.key = "alpha";
  auto r = AuditLog::Read(dir.path(), key.ExposeSecret(), by_key);
  REQUIRE(r.ok());
  REQUIRE(r->entries.size() == 2);
  CHECK(r->entries[0].entry.event == "key.create");
  CHECK(r->entries[1].entry.fields[1].second == "both");
  CHECK(r->entries[1].verified);

  AuditReadFilter since;
  since.since_unix = 1700086400;
  auto s = AuditLog::Read(dir.path(), key.ExposeSecret(), since);
  REQUIRE(s.ok());
  // The genesis entry is stamped with the time of writing, so it is after `since` too;
  // keystore.init (1700000000) is the only one before.
  CHECK(s->entries.size() == 5);
  CHECK(s->entries[0].entry.event == "audit.genesis");

  auto lines = SplitLines(ReadAll(dir.Log()));
  lines[2][lines[2].find("alpha")] = 'A';
  WriteAllText(dir.Log(), JoinLines(lines));
  auto t = AuditLog::Read(dir.path(), key.ExposeSecret(), {});
  REQUIRE(t.ok());
  REQUIRE(t->entries.size() == 6);
  CHECK(t->entries[0].verified);
  CHECK(t->entries[1].verified);
  CHECK_FALSE(t->entries[2].verified);  // the edited one, shown as written
  CHECK(t->entries[2].entry.fields[0].second == "Alpha");
  CHECK_FALSE(t->entries[5].verified);
  CHECK(t->report.first_bad->line == 3);
}

}  // namespace
}  // namespace keyhold::keystore
