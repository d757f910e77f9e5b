// Several processes appending at once, and processes killed in the middle of an append.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <set>

#include "audit_test_util.h"
#include "keyhold/keystore/audit_log.h"

namespace keyhold::keystore {
namespace {

using namespace audit_testing;

// Child body: no Catch2 assertions (they would run in the child); the exit code reports.
int AppendFromChild(const std::string& dir, int child, int events, int per_flush) {
  auto log = AuditLog::Open(dir, TestKey(), 0);
  if (!log.ok()) return 10;
  for (int i = 0; i < events; ++i) {
    std::string object = "child" + std::to_string(child) + "/" + std::to_string(i);
    if (!(*log)->RecordKeyUse("encrypt", {"k v1"}, object).ok()) return 11;
    if ((i + 1) % per_flush == 0 && !(*log)->Flush().ok()) return 12;
  }
  return (*log)->Flush().ok() ? 0 : 13;
}

TEST_CASE("processes appending at once: every entry present, the log verifies",
          "[audit][processes]") {
  TempDir dir;
  constexpr int kChildren = 6;
  constexpr int kEvents = 60;
  std::vector<pid_t> pids;
  for (int c = 0; c < kChildren; ++c) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) _exit(AppendFromChild(dir.path(), c, kEvents, 1 + c % 3));
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  auto r = VerifyOk(dir.path());
  CHECK(r.intact());
  CHECK(r.verified_entries == 1 + kChildren * kEvents);  // exactly one genesis
  SecretBytes key = TestKey();
  auto read = AuditLog::Read(dir.path(), key.ExposeSecret(), {});
  REQUIRE(read.ok());
  std::set<std::string> objects;
  for (const auto& e : read->entries) {
    if (e.entry.event == "use.encrypt") objects.insert(e.entry.fields.at(1).second);
  }
  CHECK(objects.size() == static_cast<size_t>(kChildren * kEvents));
  CHECK(objects.count("child5/59") == 1);
}

TEST_CASE("a process killed while appending leaves a log the next append repairs",
          "[audit][processes]") {
  TempDir dir;
  MakeLog(dir.path(), 0);
  // Children append big batches; each is SIGKILLed after a short, varying delay, so some die
  // inside write() or between the log's fsync and the head's rename.
  for (int round = 0; round < 6; ++round) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      auto log = AuditLog::Open(dir.path(), TestKey(), 0);
      if (!log.ok()) _exit(10);
      for (int i = 0;; ++i) {
        (void)(*log)->RecordKeyUse("rewrap", {"k v2"}, std::string(2000, 'x') + std::to_string(i));
      }
    }
    usleep(static_cast<useconds_t>(2000 + round * 3000));
    kill(pid, SIGKILL);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    // After each kill, an append must succeed (acknowledging any torn line) and the log must
    // verify up to its end, with torn lines as the only findings.
    auto log = AuditLog::Open(dir.path(), TestKey(), 0);
    REQUIRE((*log)->RecordKeyUse("decrypt", {"k v2"}, "after-kill-" + std::to_string(round)).ok());
    auto s = (*log)->Flush();
    INFO("round " << round << ": " << (s.ok() ? "" : s.error().message));
    REQUIRE(s.ok());
    auto r = VerifyOk(dir.path());
    CHECK_FALSE(r.first_bad);
    for (const auto& f : r.findings) CHECK(f.reason.find("torn line") != std::string::npos);
  }
}

}  // namespace
}  // namespace keyhold::keystore
