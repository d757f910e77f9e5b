// LD_PRELOAD shim for the CLI tests: makes the openat2 system call fail with ENOSYS, as on a
// kernel before 5.6 or under a seccomp filter that does not know it, so that OpenBeneath's
// fallback (one openat with O_NOFOLLOW per path component, cli/paths.cpp) runs in tests.
// keyhold calls openat2 through syscall(2), which glibc 2.36 has no wrapper for; every other
// system call made through syscall(2) (libsodium's getrandom) is passed on unchanged.
#include <dlfcn.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>

extern "C" long syscall(long number, ...) {
  // syscall(2) takes at most six arguments after the number, all register-sized on x86-64;
  // reading six whatever the call passed is how such wrappers forward them.
  va_list ap;
  va_start(ap, number);
  long a[6];
  for (long& x : a) x = va_arg(ap, long);
  va_end(ap);
  if (number == SYS_openat2) {
    static std::atomic<bool> said{false};
    if (!said.exchange(true)) {
      static const char kMsg[] = "noopenat2-shim: openat2 refused\n";
      (void)!write(STDERR_FILENO, kMsg, sizeof kMsg - 1);
    }
    errno = ENOSYS;
    return -1;
  }
  using Fn = long (*)(long, ...);
  static const Fn next = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "syscall"));
  return next(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
