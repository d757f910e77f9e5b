// AtomicFile and ReadSmallFile: what appears on disk, with which mode, and what never does.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "internal/temp_registry.h"
#include "keyhold/crypto/file_io.h"

using keyhold::AtomicFile;
using keyhold::ErrorCode;
namespace fs = std::filesystem;

namespace {

// A fresh private directory, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "kh-fileio-XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    REQUIRE(mkdtemp(buf.data()) != nullptr);
    path_ = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  // Names in the directory, hidden ones included (a leftover temp file is hidden).
  std::set<std::string> Entries() const {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(path_)) out.insert(e.path().filename().string());
    return out;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::vector<uint8_t> B(std::string_view s) { return {s.begin(), s.end()}; }

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  REQUIRE(lstat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

}  // namespace

TEST_CASE("atomic file: commit creates the file with the final mode", "[crypto]") {
  TempDir dir;
  const std::string target = dir / "out.bin";
  auto f = AtomicFile::Create(target, AtomicFile::Overwrite::kNo, 0640);
  REQUIRE(f.ok());
  // The temp file sits beside the target (rename is atomic only within a filesystem), is
  // hidden, is not the target, and is 0600 from the start (never readable by others, even
  // though the final mode will be 0640).
  CHECK(keyhold::DirName(f->temp_path()) == dir.path());
  CHECK(keyhold::BaseName(f->temp_path())[0] == '.');
  CHECK(f->temp_path() != target);
  CHECK(ModeOf(f->temp_path()) == 0600);
  CHECK_FALSE(fs::exists(target));  // nothing under the final name before Commit

  REQUIRE(f->Write(B("hello ")).ok());
  REQUIRE(f->Write(B("world")).ok());
  CHECK_FALSE(fs::exists(target));
  REQUIRE(f->Commit().ok());
  CHECK(ReadText(target) == "hello world");
  CHECK(ModeOf(target) == 0640);
  CHECK(dir.Entries() == std::set<std::string>{"out.bin"});  // no temp file left
  // A second Commit is refused rather than renaming a file that no longer exists.
  CHECK_FALSE(f->Commit().ok());
}

TEST_CASE("atomic file: the final mode ignores the umask and defaults to 0600", "[crypto]") {
  TempDir dir;
  const mode_t old = umask(0);
  {
    auto f = AtomicFile::Create(dir / "a", AtomicFile::Overwrite::kNo);
    REQUIRE(f.ok());
    CHECK(ModeOf(f->temp_path()) == 0600);  // even with umask 0
    REQUIRE(f->Commit().ok());
  }
  umask(077);
  {
    auto f = AtomicFile::Create(dir / "b", AtomicFile::Overwrite::kNo, 0644);
    REQUIRE(f.ok());
    REQUIRE(f->Commit().ok());
  }
  umask(old);
  CHECK(ModeOf(dir / "a") == 0600);
  CHECK(ModeOf(dir / "b") == 0644);
}

TEST_CASE("atomic file: destroyed or aborted without commit leaves nothing", "[crypto]") {
  TempDir dir;
  std::string temp;
  {
    auto f = AtomicFile::Create(dir / "never", AtomicFile::Overwrite::kNo);
    REQUIRE(f.ok());
    temp = f->temp_path();
    REQUIRE(f->Write(B("partial")).ok());
    CHECK(fs::exists(temp));
  }
  CHECK_FALSE(fs::exists(temp));
  CHECK(dir.Entries().empty());

  auto g = AtomicFile::Create(dir / "never", AtomicFile::Overwrite::kYes);
  REQUIRE(g.ok());
  REQUIRE(g->Write(B("partial")).ok());
  g->Abort();
  CHECK(dir.Entries().empty());
  CHECK_FALSE(g->Commit().ok());  // nothing left to commit
  CHECK(dir.Entries().empty());

  // A moved-from object must not remove the file its new owner is writing.
  auto h = AtomicFile::Create(dir / "moved", AtomicFile::Overwrite::kNo);
  REQUIRE(h.ok());
  AtomicFile owner(std::move(*h));
  { AtomicFile discard(std::move(*h)); }  // NOLINT(bugprone-use-after-move): moved-from twice
  REQUIRE(owner.Write(B("x")).ok());
  REQUIRE(owner.Commit().ok());
  CHECK(ReadText(dir / "moved") == "x");
  CHECK(dir.Entries() == std::set<std::string>{"moved"});
}

TEST_CASE("atomic file: overwrite no refuses an existing target", "[crypto]") {
  TempDir dir;
  const std::string target = dir / "exists";
  WriteText(target, "original");

  auto f = AtomicFile::Create(target, AtomicFile::Overwrite::kNo);
  REQUIRE_FALSE(f.ok());
  CHECK(f.error().code == ErrorCode::kAlreadyExists);
  CHECK(ReadText(target) == "original");
  CHECK(dir.Entries() == std::set<std::string>{"exists"});

  // A dangling symlink is an existing name too.
  REQUIRE(symlink("nowhere", (dir / "dangling").c_str()) == 0);
  auto g = AtomicFile::Create(dir / "dangling", AtomicFile::Overwrite::kNo);
  REQUIRE_FALSE(g.ok());
  CHECK(g.error().code == ErrorCode::kAlreadyExists);
}

TEST_CASE("atomic file: overwrite no refuses a target that appears before commit", "[crypto]") {
  TempDir dir;
  const std::string target = dir / "race";
  auto f = AtomicFile::Create(target, AtomicFile::Overwrite::kNo);
  REQUIRE(f.ok());
  REQUIRE(f->Write(B("ours")).ok());
  WriteText(target, "theirs");  // someone else creates the name in between
  auto s = f->Commit();
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code == ErrorCode::kAlreadyExists);
  CHECK(ReadText(target) == "theirs");                    // not clobbered
  CHECK(dir.Entries() == std::set<std::string>{"race"});  // our temp file is gone
}

TEST_CASE("atomic file: overwrite no-at-commit skips the early check, never the rename's",
          "[crypto]") {
  TempDir dir;
  // An existing file, a dangling link and a directory are all let through at Create (the
  // caller vouches that the directory is new), and all refused at Commit, untouched.
  WriteText(dir / "file", "theirs");
  REQUIRE(symlink("nowhere", (dir / "dangling").c_str()) == 0);
  REQUIRE(mkdir((dir / "subdir").c_str(), 0700) == 0);
  for (const char* name : {"file", "dangling", "subdir"}) {
    INFO(name);
    auto f = AtomicFile::Create(dir / name, AtomicFile::Overwrite::kNoAtCommit, 0644);
    REQUIRE(f.ok());
    REQUIRE(f->Write(B("ours")).ok());
    auto s = f->Commit();
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().code == ErrorCode::kAlreadyExists);
  }
  CHECK(ReadText(dir / "file") == "theirs");
  struct stat st {};
  REQUIRE(lstat((dir / "dangling").c_str(), &st) == 0);
  CHECK(S_ISLNK(st.st_mode));
  CHECK(fs::is_empty(dir / "subdir"));
  CHECK(dir.Entries() == std::set<std::string>{"file", "dangling", "subdir"});  // no temp left

  // A free name is written as with kNo.
  auto g = AtomicFile::Create(dir / "new", AtomicFile::Overwrite::kNoAtCommit, 0644);
  REQUIRE(g.ok());
  REQUIRE(g->Write(B("fresh")).ok());
  REQUIRE(g->Commit().ok());
  CHECK(ReadText(dir / "new") == "fresh");
  CHECK(ModeOf(dir / "new") == 0644);
}

TEST_CASE("atomic file: overwrite replaces a file, and a symlink rather than its target",
          "[crypto]") {
  TempDir dir;
  WriteText(dir / "plain", "old");
  REQUIRE(keyhold::WriteFileAtomically(dir / "plain", B("new"), AtomicFile::Overwrite::kYes).ok());
  CHECK(ReadText(dir / "plain") == "new");

  WriteText(dir / "victim", "do not touch");
  REQUIRE(symlink("victim", (dir / "link").c_str()) == 0);
  REQUIRE(keyhold::WriteFileAtomically(dir / "link", B("replacement"), AtomicFile::Overwrite::kYes,
                                       0600)
              .ok());
  struct stat st {};
  REQUIRE(lstat((dir / "link").c_str(), &st) == 0);
  CHECK(S_ISREG(st.st_mode));  // the link itself was replaced by a regular file
  CHECK(ReadText(dir / "link") == "replacement");
  CHECK(ReadText(dir / "victim") == "do not touch");
  CHECK(dir.Entries() == std::set<std::string>{"plain", "victim", "link"});

  // Without overwrite, WriteFileAtomically refuses and leaves the file alone.
  auto s = keyhold::WriteFileAtomically(dir / "plain", B("x"), AtomicFile::Overwrite::kNo);
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code == ErrorCode::kAlreadyExists);
  CHECK(ReadText(dir / "plain") == "new");
}

// The cleanup handler is process-wide, so it runs in a child: the child leaves a live temp
// file and is killed; the directory must be empty and the exit status must still say
// "killed by SIGTERM" (the handler re-raises with the default action).
TEST_CASE("atomic file: a fatal signal removes live temp files", "[crypto]") {
  TempDir dir;
  for (int sig : {SIGTERM, SIGINT}) {
    INFO("signal " << sig);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      keyhold::InstallTempFileCleanupHandlers();
      auto f = AtomicFile::Create(dir / "interrupted", AtomicFile::Overwrite::kNo);
      if (!f.ok() || !f->Write(B("partial")).ok() || access(f->temp_path().c_str(), F_OK) != 0) {
        _exit(2);
      }
      raise(sig);
      _exit(3);  // not reached: the signal kills the process
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == sig);
    CHECK(dir.Entries().empty());
  }
}

namespace registry_test {
volatile unsigned spin_sink = 0;

std::vector<std::string> Registered() {
  std::vector<std::string> out;
  keyhold::internal::ForEachRegisteredTemp(
      [](const char* p, void* v) { static_cast<std::vector<std::string>*>(v)->push_back(p); },
      &out);
  return out;
}
}  // namespace registry_test

TEST_CASE("atomic file: the temp name is registered for signals exactly while it exists",
          "[crypto]") {
  TempDir dir;
  auto f = AtomicFile::Create(dir / "out", AtomicFile::Overwrite::kNo);
  REQUIRE(f.ok());
  const std::string temp = f->temp_path();
  // .out.kh-tmp- and 12 random characters, in the target's directory.
  CHECK(temp.rfind(dir / ".out.kh-tmp-", 0) == 0);
  CHECK(temp.size() == (dir / ".out.kh-tmp-").size() + 12);
  auto regs = registry_test::Registered();
  CHECK(std::count(regs.begin(), regs.end(), temp) == 1);
  REQUIRE(f->Write(B("data")).ok());
  REQUIRE(f->Commit().ok());
  regs = registry_test::Registered();
  CHECK(std::count(regs.begin(), regs.end(), temp) == 0);

  auto g = AtomicFile::Create(dir / "aborted", AtomicFile::Overwrite::kNo);
  REQUIRE(g.ok());
  const std::string temp2 = g->temp_path();
  g->Abort();
  regs = registry_test::Registered();
  CHECK(std::count(regs.begin(), regs.end(), temp2) == 0);
  CHECK(dir.Entries() == std::set<std::string>{"out"});
}

// The signal handler reads slots while other threads release and re-claim them. A slot that
// changed during the copy must be skipped or read again, never reported as a mix of the old
// and the new path (a mix could name a file that is not a temp file at all). The registry is
// filled but for one slot, so that one thread re-claims that slot over and over, alternately
// with two long paths that differ in every byte after the directory, while this thread reads.
TEST_CASE("temp registry: a reader never sees a path torn by slot reuse", "[crypto]") {
  using keyhold::internal::RegisterTemp;
  using keyhold::internal::UnregisterTemp;
  const std::string held = "/nonexistent/held";
  // Released on every exit, a failed REQUIRE included, so later tests find an empty registry.
  struct Held {
    std::vector<int> slots;
    ~Held() {
      for (int slot : slots) UnregisterTemp(slot);
    }
  } held_slots;
  for (int slot; (slot = RegisterTemp(held)) >= 0;) held_slots.slots.push_back(slot);
  // Every slot can be taken, and there are more than the 768 temp files an encrypt -O job may
  // have pending at once (cli/bulk.cpp): none of them escapes the signal cleanup.
  REQUIRE(held_slots.slots.size() == keyhold::internal::kMaxTempFiles);
  REQUIRE(held_slots.slots.size() >= 768);
  UnregisterTemp(held_slots.slots.back());
  held_slots.slots.pop_back();

  const std::string path_a = "/nonexistent/" + std::string(2000, 'a');
  const std::string path_b = "/nonexistent/" + std::string(2000, 'b');
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      for (const std::string* p : {&path_a, &path_b}) {
        const int slot = RegisterTemp(*p);
        // Published for about as long as the fill took, so the reader often copies it.
        for (unsigned k = 0; k < 2000; ++k) registry_test::spin_sink = registry_test::spin_sink + k;
        UnregisterTemp(slot);
      }
    }
  });
  struct Seen {
    const std::string* a;
    const std::string* b;
    const std::string* held;
    uint64_t good = 0;
    uint64_t torn = 0;
  } seen{&path_a, &path_b, &held};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
  while (std::chrono::steady_clock::now() < deadline) {
    keyhold::internal::ForEachRegisteredTemp(
        [](const char* p, void* v) {
          auto* s = static_cast<Seen*>(v);
          if (*s->held == p) return;
          if (*s->a == p || *s->b == p) {
            ++s->good;
          } else {
            ++s->torn;
          }
        },
        &seen);
  }
  stop = true;
  churn.join();
  for (int slot : held_slots.slots) UnregisterTemp(slot);
  held_slots.slots.clear();
  INFO("paths read whole " << seen.good << ", torn " << seen.torn);
  // Mutation check: without the re-check after the copy, this failed in 5 runs of 5 (10 to
  // 386 torn paths per run). How many whole paths the reader got depends on timing, so it is
  // not checked; that a published slot is reported is checked deterministically below.
  CHECK(seen.torn == 0);
  CHECK(registry_test::Registered().empty());
  const int slot = RegisterTemp(path_a);
  CHECK(registry_test::Registered() == std::vector<std::string>{path_a});
  UnregisterTemp(slot);
}

// SIGTERM while other threads keep creating temp files: they run on during the handler, so
// without the creation gate a thread could create a file after the scan passed its slot.
// Two threads create, write and abort temp files in a loop; the child is killed at a random
// moment, 30 times. Without StopTempCreationForSignal in the handler, 23 to 26 rounds of 30
// left temp files behind (3 runs).
TEST_CASE("atomic file: SIGTERM during concurrent creation leaves no temp file", "[crypto]") {
  TempDir dir;
  std::mt19937 rng(12345);
  int rounds_with_leftovers = 0;
  for (int round = 0; round < 30; ++round) {
    // The child says when its handlers are installed and its threads started: a SIGTERM
    // before that would meet Catch2's own handler (which allocates, and can deadlock in a
    // child still inside fork) instead of ours.
    int ready[2];
    REQUIRE(pipe(ready) == 0);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      close(ready[0]);
      keyhold::InstallTempFileCleanupHandlers();
      auto work = [&dir](int id) {
        for (unsigned n = 0;; ++n) {
          auto f = AtomicFile::Create(dir / ("t" + std::to_string(id) + "-" + std::to_string(n)),
                                      AtomicFile::Overwrite::kNo);
          if (!f.ok()) _exit(2);
          if (!f->Write(B("partial")).ok()) _exit(2);
          f->Abort();
        }
      };
      std::thread a(work, 0);
      std::thread b(work, 1);
      const char byte = 1;
      if (write(ready[1], &byte, 1) != 1) _exit(4);
      a.join();  // never returns: the signal ends the process
      b.join();
      _exit(3);
    }
    close(ready[1]);
    char byte = 0;
    const bool child_ready = read(ready[0], &byte, 1) == 1;
    close(ready[0]);
    if (!child_ready) kill(pid, SIGKILL);
    REQUIRE(child_ready);
    std::this_thread::sleep_for(std::chrono::microseconds(500 + rng() % 20000));
    REQUIRE(kill(pid, SIGTERM) == 0);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    INFO("round " << round << ", wait status " << status);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGTERM);
    const auto left = dir.Entries();
    if (!left.empty()) ++rounds_with_leftovers;
    for (const auto& name : left) fs::remove(dir / name);
  }
  CHECK(rounds_with_leftovers == 0);
}

TEST_CASE("atomic file: unusable targets", "[crypto]") {
  TempDir dir;
  auto missing_dir = AtomicFile::Create(dir / "no/such/dir/file", AtomicFile::Overwrite::kYes);
  REQUIRE_FALSE(missing_dir.ok());
  CHECK(missing_dir.error().code == ErrorCode::kIo);
  REQUIRE(mkdir((dir / "sub").c_str(), 0700) == 0);
  auto is_dir = AtomicFile::Create(dir / "sub", AtomicFile::Overwrite::kYes);
  REQUIRE_FALSE(is_dir.ok());
  CHECK(is_dir.error().code == ErrorCode::kAlreadyExists);
  auto empty = AtomicFile::Create("", AtomicFile::Overwrite::kYes);
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.error().code == ErrorCode::kInvalidArgument);
}

TEST_CASE("read small file enforces its limit", "[crypto]") {
  TempDir dir;
  WriteText(dir / "ten", "0123456789");
  auto exact = keyhold::ReadSmallFile(dir / "ten", 10);
  REQUIRE(exact.ok());
  CHECK(*exact == B("0123456789"));
  auto over = keyhold::ReadSmallFile(dir / "ten", 9);
  REQUIRE_FALSE(over.ok());
  CHECK(over.error().code == ErrorCode::kMalformed);
  auto zero_limit = keyhold::ReadSmallFile(dir / "ten", 0);
  REQUIRE_FALSE(zero_limit.ok());
  CHECK(zero_limit.error().code == ErrorCode::kMalformed);
  WriteText(dir / "empty", "");
  auto empty = keyhold::ReadSmallFile(dir / "empty", 0);
  REQUIRE(empty.ok());
  CHECK(empty->empty());
  auto missing = keyhold::ReadSmallFile(dir / "missing", 10);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == ErrorCode::kNotFound);
}

// A generous limit must not cost memory up front or overflow: max_size + 1 used to wrap to
// 0 for SIZE_MAX (the file then read as empty, silently) and a 1 TiB limit allocated 1 TiB
// (std::bad_alloc thrown across the API).
TEST_CASE("read small file with large limits and larger files", "[crypto]") {
  TempDir dir;
  WriteText(dir / "ten", "0123456789");
  auto no_limit = keyhold::ReadSmallFile(dir / "ten", SIZE_MAX);
  REQUIRE(no_limit.ok());
  CHECK(*no_limit == B("0123456789"));
  keyhold::Result<std::vector<uint8_t>> huge_limit = keyhold::Error();
  REQUIRE_NOTHROW(huge_limit = keyhold::ReadSmallFile(dir / "ten", size_t{1} << 40));
  REQUIRE(huge_limit.ok());
  CHECK(*huge_limit == B("0123456789"));

  // Bigger than any internal read block, at and around the limit.
  std::string big(200003, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31 + 7);
  WriteText(dir / "big", big);
  auto at = keyhold::ReadSmallFile(dir / "big", big.size());
  REQUIRE(at.ok());
  CHECK(*at == B(big));
  auto above = keyhold::ReadSmallFile(dir / "big", big.size() + 1);
  REQUIRE(above.ok());
  CHECK(above->size() == big.size());
  auto below = keyhold::ReadSmallFile(dir / "big", big.size() - 1);
  REQUIRE_FALSE(below.ok());
  CHECK(below.error().code == ErrorCode::kMalformed);
  // Not a regular file: a pipe-like source with no size hint still obeys the limit.
  auto dev = keyhold::ReadSmallFile("/dev/zero", 1000);
  REQUIRE_FALSE(dev.ok());
  CHECK(dev.error().code == ErrorCode::kMalformed);
}

TEST_CASE("dirname and basename", "[crypto]") {
  CHECK(keyhold::DirName("file") == ".");
  CHECK(keyhold::DirName("/file") == "/");
  CHECK(keyhold::DirName("a/b/c") == "a/b");
  CHECK(keyhold::BaseName("a/b/c") == "c");
  CHECK(keyhold::BaseName("c") == "c");
}

namespace {

// A written, uncommitted AtomicFile holding `text`.
AtomicFile Written(const std::string& path, const std::string& text,
                   AtomicFile::Overwrite overwrite = AtomicFile::Overwrite::kNo,
                   mode_t mode = 0644) {
  auto f = AtomicFile::Create(path, overwrite, mode);
  REQUIRE(f.ok());
  REQUIRE(f->Write(B(text)).ok());
  return std::move(f).value();
}

std::vector<AtomicFile> Group(AtomicFile a) {
  std::vector<AtomicFile> g;
  g.push_back(std::move(a));
  return g;
}

}  // namespace

TEST_CASE("atomic batch: files appear only at Flush, complete, with their mode", "[crypto]") {
  TempDir dir;
  fs::create_directory(dir / "sub");
  keyhold::AtomicBatch batch(100);
  std::vector<std::string> order;
  for (int i = 0; i < 5; ++i) {
    const std::string name = (i % 2 ? "sub/f" : "f") + std::to_string(i);
    batch.Add(Group(Written(dir / name, "content " + std::to_string(i))),
              [&order, name](const keyhold::Status& s) {
                CHECK(s.ok());
                order.push_back(name);
              });
  }
  CHECK(batch.pending() == 5);
  // Nothing under a final name yet: only hidden temp files, each already 0600.
  for (const auto& e : dir.Entries()) {
    if (e != "sub") CHECK(e[0] == '.');
  }
  CHECK(order.empty());
  batch.Flush();
  CHECK(batch.pending() == 0);
  CHECK(order == std::vector<std::string>{"f0", "sub/f1", "f2", "sub/f3", "f4"});
  for (int i = 0; i < 5; ++i) {
    const std::string name = (i % 2 ? "sub/f" : "f") + std::to_string(i);
    CHECK(ReadText(dir / name) == "content " + std::to_string(i));
    CHECK(ModeOf(dir / name) == 0644);
  }
  CHECK(dir.Entries() == std::set<std::string>{"f0", "f2", "f4", "sub"});
  batch.Flush();  // an empty flush is a no-op
}

TEST_CASE("atomic batch: flushes by itself when full", "[crypto]") {
  TempDir dir;
  keyhold::AtomicBatch batch(2);
  int done = 0;
  auto count = [&done](const keyhold::Status& s) { done += s.ok() ? 1 : 100; };
  batch.Add(Group(Written(dir / "a", "a")), count);
  CHECK(done == 0);
  batch.Add(Group(Written(dir / "b", "b")), count);
  CHECK(done == 2);  // the second Add filled the batch
  CHECK(fs::exists(dir / "a"));
  batch.Add(Group(Written(dir / "c", "c")), count);
  CHECK(batch.pending() == 1);
  CHECK_FALSE(fs::exists(dir / "c"));
}

TEST_CASE("atomic batch: with overlap, a full batch commits on its own thread", "[crypto]") {
  TempDir dir;
  std::mutex mu;  // the callbacks run on the commit thread
  std::vector<std::string> order;
  std::set<std::thread::id> threads;
  auto record = [&](const std::string& name) {
    return [&, name](const keyhold::Status& s) {
      std::lock_guard<std::mutex> lock(mu);
      CHECK(s.ok());
      order.push_back(name);
      threads.insert(std::this_thread::get_id());
    };
  };
  {
    keyhold::AtomicBatch batch(3, /*overlap=*/true);
    for (int i = 0; i < 10; ++i) {
      const std::string name = "f" + std::to_string(i);
      batch.Add(Group(Written(dir / name, name)), record(name));
      // Never more than one batch in flight and one being filled.
      CHECK(batch.pending() < 3);
    }
    batch.Flush();  // waits for the batch in flight, then commits the last one here
    std::lock_guard<std::mutex> lock(mu);
    CHECK(order ==
          std::vector<std::string>{"f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9"});
    // Full batches on commit threads (one at a time, so their ids may repeat), the rest here.
    CHECK(threads.size() >= 2);
    CHECK(threads.count(std::this_thread::get_id()) == 1);
  }
  for (int i = 0; i < 10; ++i) {
    const std::string name = "f" + std::to_string(i);
    CHECK(ReadText(dir / name) == name);
  }
  CHECK(dir.Entries().size() == 10);  // no temp file left

  // Destroyed with a batch in flight and one pending: the first completes, the second is
  // removed and its callbacks are not called.
  TempDir dir2;
  int called = 0;
  {
    keyhold::AtomicBatch batch(2, /*overlap=*/true);
    for (const char* name : {"a", "b", "c"}) {
      batch.Add(Group(Written(dir2 / name, name)), [&called, &mu](const keyhold::Status& s) {
        std::lock_guard<std::mutex> lock(mu);
        CHECK(s.ok());
        ++called;
      });
    }
  }
  CHECK(called == 2);
  CHECK(dir2.Entries() == std::set<std::string>{"a", "b"});

  // A rename refused on the commit thread is reported as from Flush; the rest goes on.
  TempDir dir3;
  std::vector<keyhold::Status> results;
  auto keep = [&results, &mu](const keyhold::Status& s) {
    std::lock_guard<std::mutex> lock(mu);
    results.push_back(s);
  };
  {
    keyhold::AtomicBatch batch(2, /*overlap=*/true);
    batch.Add(Group(Written(dir3 / "taken", "new")), keep);
    WriteText(dir3 / "taken", "old");                      // someone else creates it meanwhile
    batch.Add(Group(Written(dir3 / "free", "ok")), keep);  // full: committed on the thread
    batch.Flush();
  }
  REQUIRE(results.size() == 2);
  REQUIRE_FALSE(results[0].ok());
  CHECK(results[0].error().code == ErrorCode::kAlreadyExists);
  CHECK(results[1].ok());
  CHECK(ReadText(dir3 / "taken") == "old");
  CHECK(dir3.Entries() == std::set<std::string>{"taken", "free"});
}

TEST_CASE("atomic batch: what the commit thread throws comes out of the next Add or Flush",
          "[crypto]") {
  TempDir dir;
  for (bool via_flush : {false, true}) {
    INFO(via_flush);
    const std::string a = via_flush ? "a2" : "a1", b = via_flush ? "b2" : "b1";
    keyhold::AtomicBatch batch(1, /*overlap=*/true);
    // Full at once: committed on a thread, whose callback throws.
    batch.Add(Group(Written(dir / a, "a")),
              [](const keyhold::Status&) { throw std::runtime_error("callback failed"); });
    if (via_flush) {
      CHECK_THROWS_AS(batch.Flush(), std::runtime_error);
    } else {
      // Waits for the thread first: the group just added stays pending (the Flush below
      // commits it; a caller that stops instead destroys the batch, which removes it).
      CHECK_THROWS_AS(batch.Add(Group(Written(dir / b, "b")), [](const keyhold::Status&) {}),
                      std::runtime_error);
    }
    batch.Flush();  // the error was reported once
  }
  // The renames were done before the callbacks ran.
  CHECK(dir.Entries() == std::set<std::string>{"a1", "a2", "b1"});
}

TEST_CASE("atomic batch: a throwing callback does not keep the others from running", "[crypto]") {
  TempDir dir;
  for (bool overlap : {false, true}) {
    INFO(overlap);
    const std::string tag = overlap ? "o" : "s";
    keyhold::AtomicBatch batch(3, overlap);
    std::vector<std::string> called;
    auto note = [&called](std::string name) {
      return [&called, name](const keyhold::Status& s) {
        REQUIRE(s.ok());
        called.push_back(name);
      };
    };
    batch.Add(Group(Written(dir / (tag + "1"), "1")), note("1"));
    batch.Add(Group(Written(dir / (tag + "2"), "2")), [&called](const keyhold::Status&) {
      called.push_back("2");
      throw std::runtime_error("first");
    });
    auto add_third = [&] {
      batch.Add(Group(Written(dir / (tag + "3"), "3")), [&called](const keyhold::Status&) {
        called.push_back("3");
        throw std::logic_error("second");
      });
    };
    // Full with the third: committed at once (the Add throws), or on the thread (the Flush
    // does). Either way the first exception, once, after every callback ran.
    if (!overlap) {
      CHECK_THROWS_AS(add_third(), std::runtime_error);
    } else {
      add_third();
      CHECK_THROWS_AS(batch.Flush(), std::runtime_error);
    }
    CHECK(called == std::vector<std::string>{"1", "2", "3"});
    batch.Flush();
  }
  CHECK(dir.Entries() == std::set<std::string>{"s1", "s2", "s3", "o1", "o2", "o3"});
}

TEST_CASE("atomic batch: one failing group does not stop the others", "[crypto]") {
  // Whether the early check was made or not (a target that appears after Create is found at
  // the rename either way).
  const auto overwrite = GENERATE(AtomicFile::Overwrite::kNo, AtomicFile::Overwrite::kNoAtCommit);
  TempDir dir;
  keyhold::AtomicBatch batch(100);
  std::vector<keyhold::Status> results;
  auto record = [&results](const keyhold::Status& s) { results.push_back(s); };
  batch.Add(Group(Written(dir / "first", "1", overwrite)), record);
  // A group of two whose first file cannot be renamed (no-overwrite target exists): its
  // second file must not appear either, as a sidecar must never outlive its payload's failure.
  std::vector<AtomicFile> pair;
  pair.push_back(Written(dir / "taken", "new", overwrite));
  pair.push_back(Written(dir / "taken.hdr", "header", overwrite));
  batch.Add(std::move(pair), record);
  batch.Add(Group(Written(dir / "last", "3", overwrite)), record);
  WriteText(dir / "taken", "old");  // someone else creates it meanwhile
  batch.Flush();
  REQUIRE(results.size() == 3);
  CHECK(results[0].ok());
  REQUIRE_FALSE(results[1].ok());
  CHECK(results[1].error().code == ErrorCode::kAlreadyExists);
  CHECK(results[2].ok());
  CHECK(ReadText(dir / "taken") == "old");
  CHECK(dir.Entries() == std::set<std::string>{"first", "taken", "last"});  // no temp left
}

TEST_CASE("atomic batch: destroyed before Flush leaves nothing", "[crypto]") {
  TempDir dir;
  bool called = false;
  {
    keyhold::AtomicBatch batch(100);
    batch.Add(Group(Written(dir / "a", "a")), [&called](const keyhold::Status&) { called = true; });
    CHECK(dir.Entries().size() == 1);  // the temp file
  }
  CHECK_FALSE(called);
  CHECK(dir.Entries().empty());
}

TEST_CASE("atomic batch: syncfs is trusted only on kernels that report its errors", "[crypto]") {
  using keyhold::SyncfsReportsErrors;
  CHECK(SyncfsReportsErrors("5.8.0"));
  CHECK(SyncfsReportsErrors("5.10.0-28-amd64"));       // Debian 11
  CHECK(SyncfsReportsErrors("6.1.0-18-cloud-amd64"));  // Debian 12
  CHECK(SyncfsReportsErrors("6.18.44"));
  CHECK(SyncfsReportsErrors("10.0"));
  CHECK_FALSE(SyncfsReportsErrors("5.7.19"));
  CHECK_FALSE(SyncfsReportsErrors("4.19.0-26-amd64"));  // Debian 10
  CHECK_FALSE(SyncfsReportsErrors("3.10.0-1160.el7.x86_64"));
  CHECK_FALSE(SyncfsReportsErrors(""));
  CHECK_FALSE(SyncfsReportsErrors("6"));
  CHECK_FALSE(SyncfsReportsErrors("6."));
  CHECK_FALSE(SyncfsReportsErrors("linux-6.1"));
  CHECK_FALSE(SyncfsReportsErrors("99999999.1"));
}
