// Helpers for the audit log tests: a temporary keystore-like directory, a fixed MAC key, and
// line-level edits of audit.log.
#ifndef KEYHOLD_TESTS_UNIT_AUDIT_AUDIT_TEST_UTIL_H_
#define KEYHOLD_TESTS_UNIT_AUDIT_AUDIT_TEST_UTIL_H_

#include <stdlib.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "keyhold/keystore/audit_log.h"

namespace keyhold::keystore::audit_testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kh-audit-XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    REQUIRE(mkdtemp(buf.data()) != nullptr);
    path_ = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Log() const { return path_ + "/audit.log"; }
  std::string HeadPath() const { return path_ + "/audit.head"; }

 private:
  std::string path_;
};

inline SecretBytes TestKey(uint8_t seed = 1) {
  SecretBytes k(kAuditMacKeySize);
  for (size_t i = 0; i < k.size(); ++i) k.ExposeSecret()[i] = static_cast<uint8_t>(seed + i);
  return k;
}

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void WriteAllText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  REQUIRE(out.good());
}

// Lines without their newlines; a final unterminated line is kept.
inline std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) {
      lines.push_back(text.substr(pos));
      break;
    }
    lines.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return lines;
}

inline std::string JoinLines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

inline AuditEvent Change(std::string event, uint64_t generation,
                         std::vector<std::pair<std::string, std::string>> fields = {}) {
  return AuditEvent{std::move(event), std::move(fields), generation, 1790000000};
}

// A log with: genesis, keystore.init (generation 1), key.create (2), `uses` key uses,
// key.rotate (3). Returns the number of entries.
inline size_t MakeLog(const std::string& dir, size_t uses = 3, uint8_t seed = 1) {
  auto log = AuditLog::Open(dir, TestKey(seed), 0);
  REQUIRE(log.ok());
  REQUIRE((*log)->Record(Change("keystore.init", 1, {{"slot", "s1"}})).ok());
  REQUIRE((*log)->Record(Change("key.create", 2, {{"key", "backups"}})).ok());
  for (size_t i = 0; i < uses; ++i) {
    REQUIRE((*log)->RecordKeyUse("encrypt", {"backups v1"}, "obj-" + std::to_string(i)).ok());
  }
  REQUIRE((*log)->Record(Change("key.rotate", 3, {{"key", "backups"}, {"version", "2"}})).ok());
  return uses + 4;
}

inline AuditVerifyReport VerifyOk(const std::string& dir, uint8_t seed = 1,
                                  AuditVerifyOptions options = {}) {
  SecretBytes key = TestKey(seed);
  auto r = AuditLog::Verify(dir, key.ExposeSecret(), options);
  REQUIRE(r.ok());
  return *r;
}

// The line of the first problem, 0 if intact (or if the problem has no line).
inline uint64_t FirstBadLine(const AuditVerifyReport& r) {
  auto p = r.FirstProblem();
  return p ? p->line : 0;
}

}  // namespace keyhold::keystore::audit_testing

#endif  // KEYHOLD_TESTS_UNIT_AUDIT_AUDIT_TEST_UTIL_H_
