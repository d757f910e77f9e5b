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

// The next readdir or readdir64 in the lookup order, its entry's type erased.
template <typename Entry>
Entry* NextWithoutType(const char* name, DIR* dir) {
  using Fn = Entry* (*)(DIR*);
  static const Fn next = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));  // one per Entry type
  Entry* e = next(dir);
  if (e != nullptr) e->d_type = DT_UNKNOWN;
  Announce();
  return e;
}
}  // namespace

extern "C" {

dirent64* readdir64(DIR* dir) { return NextWithoutType<dirent64>("readdir64", dir); }

dirent* readdir(DIR* dir) { return NextWithoutType<dirent>("readdir", dir); }

}  // extern "C"
