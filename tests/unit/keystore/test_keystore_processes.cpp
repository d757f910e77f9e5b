// Crash consistency (SIGKILL at random moments, including between write, fsync and rename)
// and concurrency (several processes rotating one key) with real processes.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "keyhold/crypto/encoding.h"
#include "keystore_test_util.h"

namespace keyhold::keystore {
namespace {

using namespace keyhold::keystore::testing;

// A keystore with key "k" (version 1) and a recipient slot, plus the identity in a file the
// torture tool reads.
struct ProcessFixture {
  TempDir tmp;
  std::string dir = tmp.Sub("ks");
  std::string identity_file = tmp.Sub("identity");
  envelope::Identity id = NewIdentity();
  ProcessFixture() {
    InitCheap(dir);
    Keystore ks = OpenOrDie(dir, WithPassphrase());
    REQUIRE(ks.AddRecipientSlot(id.public_key).ok());
    REQUIRE(ks.CreateKey("k", {}).ok());
    auto secret = id.secret.ExposeSecret();
    WriteText(identity_file,
              std::string(reinterpret_cast<const char*>(secret.data()), secret.size()));
  }
};

pid_t Spawn(const ProcessFixture& f, const std::string& count, bool slow,
            const std::string& stderr_path) {
  std::vector<std::string> args = {KEYHOLD_TORTURE_BINARY, f.dir, f.identity_file, "k", count};
  if (slow) args.emplace_back("slow");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  REQUIRE((unlink(stderr_path.c_str()) == 0 || errno == ENOENT));
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int fd = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || dup2(fd, 2) < 0) _exit(126);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

int WaitExit(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return status;
}

std::string LastLine(const std::string& text) {
  if (text.empty()) return "(started)";
  size_t end = text.size() - (text.back() == '\n' ? 1 : 0);
  size_t start = text.rfind('\n', end - 1);
  return text.substr(start == std::string::npos ? 0 : start + 1,
                     end - (start == std::string::npos ? 0 : start + 1));
}

// Every version of "k" is active, numbered 1..n, with pairwise distinct secrets.
size_t CheckVersions(const Keystore& ks) {
  auto key = ks.GetKey("k");
  REQUIRE(key.ok());
  std::set<std::string> secrets;
  for (size_t i = 0; i < key->versions.size(); ++i) {
    REQUIRE(key->versions[i].version == i + 1);
    REQUIRE(key->versions[i].state == KeyState::kActive);
    auto t = ks.TargetForVersion("k", static_cast<uint32_t>(i + 1));
    REQUIRE(t.ok());
    secrets.insert(HexEncode(t->secret->ExposeSecret()));
  }
  REQUIRE(secrets.size() == key->versions.size());
  return key->versions.size();
}

// Waits until the torture tool, started with "slow", has opened the keystore (its log says
// "opened"). Spawn removes the log first, so a previous child's line is never seen. A child
// that has already exited (the probe can open, rotate and exit between two polls) has been
// reaped here: its status is kept for Reap.
struct Opened {
  pid_t pid;
  std::chrono::steady_clock::time_point at;
  std::optional<int> status;
};
Opened WaitOpened(pid_t pid, const std::string& log) {
  auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    if (ReadText(log).find("opened\n") != std::string::npos) {
      return {pid, std::chrono::steady_clock::now(), std::nullopt};
    }
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      if (ReadText(log).find("opened\n") != std::string::npos) {
        return {pid, std::chrono::steady_clock::now(), status};
      }
      FAIL("torture tool exited before opening the keystore (wait status "
           << status << "): " << ReadText(log));
    }
    if (std::chrono::steady_clock::now() > give_up) {
      kill(pid, SIGKILL);
      WaitExit(pid);
      FAIL("torture tool did not open the keystore within 30 s: " << ReadText(log));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

// The child's wait status, reaping it unless WaitOpened already did.
int Reap(const Opened& o) { return o.status ? *o.status : WaitExit(o.pid); }

TEST_CASE("crash: SIGKILL at any step leaves the old or the new generation", "[keystore]") {
  ProcessFixture f;
  std::string log = f.tmp.Sub("torture.log");
  std::string bak_dir = f.tmp.Sub("bak");
  REQUIRE(mkdir(bak_dir.c_str(), 0700) == 0);
  Unlocker unlocker = WithIdentity(f.id);
  std::mt19937 rng(std::random_device{}());
  std::map<std::string, int> last_step;
  size_t previous = 1;
  // A start-up (exec, and under a sanitizer its initialisation, then the keystore's open)
  // can take longer than many rotations, and varies with machine load. So each kill is
  // timed from the moment the child reports "opened", and the delays span the time three
  // slow rotations take here, measured first, capped at 150 ms.
  auto probe_opened = WaitOpened(Spawn(f, "3", /*slow=*/true, log), log);
  REQUIRE(Reap(probe_opened) == 0);
  auto span_us = std::chrono::duration_cast<std::chrono::microseconds>(
                     std::chrono::steady_clock::now() - probe_opened.at)
                     .count();
  uint32_t max_delay_us = static_cast<uint32_t>(std::clamp<int64_t>(span_us, 20000, 150000));
  previous = 4;
  // Kills go on until at least kMinKills have landed and every step of both writes has been
  // the last one before some kill (so kills fell between write, fsync and rename), or the
  // deadline passes; the checks after the loop then fail.
  static constexpr const char* kSteps[] = {"bak-written",  "bak-synced",  "bak-committed",
                                           "main-written", "main-synced", "main-committed"};
  auto all_steps_hit = [&] {
    return std::all_of(std::begin(kSteps), std::end(kSteps),
                       [&](const char* step) { return last_step.count(step) > 0; });
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  constexpr int kMinKills = 100;
  constexpr int kMaxKills = 400;
  int kills = 0;
  for (; (kills < kMinKills || !all_steps_hit()) && kills < kMaxKills &&
         std::chrono::steady_clock::now() < deadline;
       ++kills) {
    Opened child = WaitOpened(Spawn(f, "0", /*slow=*/true, log), log);
    if (child.status) FAIL("torture tool exited early: " << ReadText(log));
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % max_delay_us));
    REQUIRE(kill(child.pid, SIGKILL) == 0);
    int status = WaitExit(child.pid);
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
      FAIL("torture tool exited early: " << ReadText(log));
    }
    last_step[LastLine(ReadText(log))]++;

    auto ks = Keystore::Open(f.dir, unlocker);
    if (!ks.ok()) FAIL("open after kill " << kills << ": " << ks.error().message);
    auto key = ks->GetKey("k");
    REQUIRE(key.ok());
    size_t n = key->versions.size();
    REQUIRE(n >= previous);  // a committed rotation is never lost
    previous = n;
    // init, slot, create = 3 generations for version 1, then one per rotation.
    REQUIRE(n + 2 == ks->generation());

    // The backup is a complete, verifiable keystore of the previous generation, or of the
    // same one if the kill came between writing the backup and writing the main file.
    WriteText(MainFile(bak_dir), ReadText(BakFile(f.dir)));
    auto bak = Keystore::Open(bak_dir, unlocker);
    if (!bak.ok()) FAIL("open .bak after kill " << kills << ": " << bak.error().message);
    REQUIRE(bak->GetKey("k").ok());  // the probe's rotations put "k" in every backup
    size_t bn = bak->GetKey("k")->versions.size();
    REQUIRE((bn == n || bn + 1 == n));
  }
  INFO("kills: " << kills);
  CHECK(kills >= kMinKills);
  std::string histogram;
  for (const auto& [step, times] : last_step) {
    histogram += step + "=" + std::to_string(times) + " ";
  }
  INFO("last step before kill: " << histogram);
  for (const char* step : kSteps) CHECK(last_step[step] > 0);
  CHECK(previous > 4);  // rotations did get through between kills
  Keystore final_ks = OpenOrDie(f.dir, unlocker);
  CheckVersions(final_ks);
  // The stale temp files of killed writers are cleaned up by the next writer.
  REQUIRE(final_ks.RotateKey("k").ok());
  size_t temps = 0;
  for (const auto& e : std::filesystem::directory_iterator(f.dir)) {
    if (e.path().filename().string().find(".kh-tmp-") != std::string::npos) ++temps;
  }
  CHECK(temps == 0);
}

TEST_CASE("concurrency: 8 processes rotating one key lose no version", "[keystore]") {
  ProcessFixture f;
  constexpr int kProcesses = 8;
  constexpr int kRotations = 25;
  std::vector<pid_t> pids;
  for (int i = 0; i < kProcesses; ++i) {
    pids.push_back(
        Spawn(f, std::to_string(kRotations), false, f.tmp.Sub("p" + std::to_string(i) + ".log")));
  }
  for (int i = 0; i < kProcesses; ++i) {
    int status = WaitExit(pids[static_cast<size_t>(i)]);
    INFO(ReadText(f.tmp.Sub("p" + std::to_string(i) + ".log")));
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
  }
  Keystore ks = OpenOrDie(f.dir, WithIdentity(f.id));
  CHECK(CheckVersions(ks) == 1 + kProcesses * kRotations);
  CHECK(ks.generation() == 3 + kProcesses * kRotations);
}

}  // namespace
}  // namespace keyhold::keystore
