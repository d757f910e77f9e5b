// The file-system floor of `keyhold encrypt -O`: what any tool must do to write a tree of
// files durably and atomically, under keyhold's rules (README: every output is a temp file in
// its directory, made durable, renamed into place, its directory fsynced), with no
// cryptography at all. scripts/bench times it beside keyhold and cp -r.
//
//   bench-floor OUTDIR FILE...
//
// Two threads take the files in turn. Per file: open and read the input (up to 64 KiB), create
// a temp file beside the output with O_EXCL, write the bytes plus 200 (about a keyhold
// header), close. Per 256 files of a thread: one syncfs, then a rename (RENAME_NOREPLACE) of
// each temp file into place and one fsync per directory, as keyhold's AtomicBatch does.
// Outputs go to OUTDIR/PARENT/NAME.kh, PARENT being the input's directory name.
#define _GNU_SOURCE
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { kBatch = 256, kPath = 4096, kMaxInput = 65536 };

static char** g_files;
static int g_count;
static const char* g_out;
static int g_next;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

static void die(const char* what, const char* path) {
  fprintf(stderr, "bench-floor: %s %s: ", what, path);
  perror(NULL);
  exit(1);
}

// snprintf into a kPath buffer; a path that does not fit is an error, never truncated.
static void fmt(char* out, const char* format, ...) {
  va_list ap;
  va_start(ap, format);
  int n = vsnprintf(out, kPath, format, ap);
  va_end(ap);
  if (n < 0 || n >= kPath) {
    fprintf(stderr, "bench-floor: path too long\n");
    exit(1);
  }
}

static void commit(char (*tmp)[kPath], char (*fin)[kPath], int n) {
  int fd = open(g_out, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || syncfs(fd) != 0) die("syncfs", g_out);
  close(fd);
  char last[kPath] = "";
  for (int k = 0; k < n; k++) {
    if (renameat2(AT_FDCWD, tmp[k], AT_FDCWD, fin[k], RENAME_NOREPLACE) != 0) die("rename", tmp[k]);
    char dir[kPath];
    fmt(dir, "%s", fin[k]);
    dirname(dir);
    if (strcmp(dir, last) != 0) {
      int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (d < 0 || fsync(d) != 0) die("fsync", dir);
      close(d);
      fmt(last, "%s", dir);
    }
  }
}

static void* work(void* unused) {
  (void)unused;
  static __thread char tmp[kBatch][kPath], fin[kBatch][kPath], buf[kMaxInput + 200];
  int n = 0;
  for (;;) {
    pthread_mutex_lock(&g_mu);
    int i = g_next++;
    pthread_mutex_unlock(&g_mu);
    if (i >= g_count) break;
    int in = open(g_files[i], O_RDONLY | O_CLOEXEC);
    if (in < 0) die("open", g_files[i]);
    ssize_t got = 0, r;
    while ((r = read(in, buf + got, (size_t)(kMaxInput - got))) > 0) got += r;
    if (r < 0) die("read", g_files[i]);
    close(in);
    char path[kPath], parent[kPath], dir[kPath];
    fmt(path, "%s", g_files[i]);
    fmt(parent, "%s", basename(dirname(path)));
    fmt(path, "%s", g_files[i]);
    const char* name = basename(path);
    fmt(dir, "%s/%s", g_out, parent);
    if (mkdir(dir, 0755) != 0 && access(dir, F_OK) != 0) die("mkdir", dir);
    fmt(fin[n], "%s/%s.kh", dir, name);
    fmt(tmp[n], "%s/.%s.kh.tmp", dir, name);
    int out = open(tmp[n], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0) die("create", tmp[n]);
    if (write(out, buf, (size_t)got + 200) != got + 200) die("write", tmp[n]);
    if (close(out) != 0) die("close", tmp[n]);
    if (++n == kBatch) {
      commit(tmp, fin, n);
      n = 0;
    }
  }
  if (n > 0) commit(tmp, fin, n);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: bench-floor OUTDIR FILE...\n");
    return 2;
  }
  g_out = argv[1];
  g_files = argv + 2;
  g_count = argc - 2;
  if (mkdir(g_out, 0755) != 0) die("mkdir", g_out);
  pthread_t helper;
  if (pthread_create(&helper, NULL, work, NULL) != 0) die("pthread_create", "");
  work(NULL);
  pthread_join(helper, NULL);
  return 0;
}
