// Fuzz target: the audit log reader. The input is audit.log, optionally followed by a NUL
// byte and the contents of audit.head. Every line goes through the codec (what
// ParseAuditLine accepts re-encodes to the same bytes before the MAC, and to the same bytes
// exactly when its MAC is the fixed key's), then the whole file through Verify and Read
// with a fixed MAC key, which must never crash, hang or claim more than they read.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "fuzz_util.h"
#include "keyhold/keystore/audit_log.h"

namespace {

using namespace keyhold;

std::string* g_dir = nullptr;
SecretBytes* g_key = nullptr;

void CheckLine(std::string_view line) {
  auto parsed = keystore::internal::ParseAuditLine(line);
  if (!parsed.ok()) return;
  FUZZ_CHECK(line.size() <= keystore::kMaxAuditLineSize);
  FUZZ_CHECK(parsed->mac_offset < line.size());
  auto again =
      keystore::internal::EncodeAuditLine(parsed->entry, parsed->prev, g_key->ExposeSecret());
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->size() == line.size());
  FUZZ_CHECK(std::string_view(*again).substr(0, parsed->mac_offset) ==
             line.substr(0, parsed->mac_offset));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_dir = new std::string(fuzz::MakePrivateTempDir("audit"));
  // libFuzzer ends with exit(): remove the scratch directory then, not leave it in /tmp.
  std::atexit([] {
    std::error_code ec;
    std::filesystem::remove_all(*g_dir, ec);
  });
  // The key of the seed logs (scripts/fuzz-seed), as in tests/unit/audit: byte i = 1 + i.
  g_key = new SecretBytes(keystore::kAuditMacKeySize);
  for (size_t i = 0; i < g_key->size(); ++i) {
    g_key->ExposeSecret()[i] = static_cast<uint8_t>(1 + i);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t nul = input.find('\0');
  std::string_view log = input.substr(0, nul);
  const std::string head_path = *g_dir + "/" + std::string(keystore::kAuditHeadFileName);
  const std::string log_path = *g_dir + "/" + std::string(keystore::kAuditLogFileName);

  for (size_t start = 0; start < log.size();) {
    size_t end = log.find('\n', start);
    if (end == std::string_view::npos) end = log.size();
    CheckLine(log.substr(start, end - start));
    start = end + 1;
  }

  fuzz::WritePrivateFile(log_path, std::span<const uint8_t>(data, log.size()));
  if (nul != std::string_view::npos) {
    fuzz::WritePrivateFile(head_path, std::span<const uint8_t>(data + nul + 1, size - nul - 1));
  } else {
    ::unlink(head_path.c_str());
  }

  auto report = keystore::AuditLog::Verify(*g_dir, g_key->ExposeSecret());
  if (report.ok()) {
    FUZZ_CHECK(report->verified_entries <= report->lines);
    if (report->intact()) FUZZ_CHECK(!report->FirstProblem().has_value());
  }
  auto read = keystore::AuditLog::Read(*g_dir, g_key->ExposeSecret(), {});
  FUZZ_CHECK(read.ok() == report.ok());
  if (read.ok()) {
    FUZZ_CHECK(read->report.verified_entries == report->verified_entries);
    bool seen_unverified = false;
    uint64_t verified = 0;
    for (const auto& shown : read->entries) {
      if (!shown.verified) seen_unverified = true;
      FUZZ_CHECK(!(shown.verified && seen_unverified));  // verified entries come first
      if (shown.verified) ++verified;
    }
    FUZZ_CHECK(verified <= read->report.verified_entries);
  }
  return 0;
}
