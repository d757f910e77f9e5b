// LD_PRELOAD shim for the CLI tests: makes readdir(3) report DT_UNKNOWN for every entry, as
// some file systems do, so that the directory walk's lstat fallback (cli/paths.cpp, ListDir)
// runs in tests on ext4 and tmpfs, which always report a type.
#include <dirent.h>
#include <dlfcn.h>
#include <unistd.h>

#include <atomic>

namespace {
// Says once on stderr that it is at work, so the test can tell it ran.
void Announce() {
  static std::atomic<bool> said{false};
  if (!said.exchange(true)) {
    static const char kMsg[] = "dtunknown-shim: readdir intercepted\n";
    (void)!write(STDERR_FILENO, kMsg, sizeof kMsg - 1);
  }
}
}  // namespace

extern "C" {

dirent64* readdir64(DIR* dir) {
  using Fn = dirent64* (*)(DIR*);
  static const Fn next = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "readdir64"));
  dirent64* e = next(dir);
  if (e != nullptr) e->d_type = DT_UNKNOWN;
  Announce();
  return e;
}

dirent* readdir(DIR* dir) {
  using Fn = dirent* (*)(DIR*);
  static const Fn next = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "readdir"));
  dirent* e = next(dir);
  if (e != nullptr) e->d_type = DT_UNKNOWN;
  Announce();
  return e;
}

}  // extern "C"
