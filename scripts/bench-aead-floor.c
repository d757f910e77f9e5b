// The AES-GCM floor of `keyhold encrypt` and `keyhold decrypt` of one file: keyhold's engine
// with everything taken away but the two costs its design cannot avoid, the pread copy out
// of the page cache and OpenSSL's AES-256-GCM over every 16 KiB chunk. scripts/bench times
// it beside keyhold, age, gpg and cat.
//
//   bench-aead-floor seal|open FILE THREADS
//
// THREADS 0 means as many as keyhold starts by default: the online CPUs, at most 8. Prints
// the number of bytes it read (scripts/bench checks it against the file's size) and the
// number of threads it ran.
//
// THREADS threads take stripes of 32 chunks in turn, as keyhold's engine does; each preads
// its stripe into its own buffer and seals (16384-byte chunks) or opens (16400-byte chunks,
// body then tag) every chunk with its own EVP_CIPHER_CTX, keyed once. Nothing else: no
// header, no key derivation, no output, no ordering, one fixed nonce pattern. In open mode
// the tags do not verify (FILE was not sealed under this key), but OpenSSL decrypts, hashes
// and compares every chunk all the same, so the work is that of a valid object.
//
// Not a lower bound for every possible program: a perfect split of the work between the
// vCPUs, an AES-GCM using the CPU's wider vector instructions (which Debian 12's OpenSSL
// lacks), a program that maps the input instead of copying it, or one with larger chunks
// (fewer per-chunk calls and tags) could be faster. It is keyhold's design with no overhead
// beyond those two costs.
#define _GNU_SOURCE
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { kChunk = 16384, kTag = 16, kStripeChunks = 32, kMaxThreads = 64, kMaxDefaultThreads = 8 };

static int g_fd;
static int g_open;  // 1: open (decrypt) mode
static off_t g_size;
static size_t g_in_chunk;  // bytes of input per chunk
static atomic_long g_next_stripe;
static atomic_llong g_bytes_read;
static EVP_CIPHER* g_cipher;

// _exit, not exit: other threads may still be running OpenSSL.
static void die(const char* what) {
  fprintf(stderr, "bench-aead-floor: %s\n", what);
  _exit(1);
}

static void* worker(void* arg) {
  (void)arg;
  static const unsigned char key[32] = {1};
  unsigned char nonce[12] = {0};
  const size_t stripe_bytes = g_in_chunk * kStripeChunks;
  unsigned char* in = malloc(stripe_bytes);
  unsigned char* out = malloc(stripe_bytes + kTag * kStripeChunks);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (in == NULL || out == NULL || ctx == NULL) die("out of memory");
  int ok = g_open ? EVP_DecryptInit_ex(ctx, g_cipher, NULL, key, NULL)
                  : EVP_EncryptInit_ex(ctx, g_cipher, NULL, key, NULL);
  if (ok != 1) die("key setup failed");
  for (;;) {
    const long stripe = atomic_fetch_add(&g_next_stripe, 1);
    const off_t offset = (off_t)stripe * (off_t)stripe_bytes;
    if (offset >= g_size) break;
    size_t got = 0;
    while (got < stripe_bytes) {
      const ssize_t n = pread(g_fd, in + got, stripe_bytes - got, offset + (off_t)got);
      if (n < 0) die("read failed");
      if (n == 0) break;
      got += (size_t)n;
    }
    for (size_t at = 0; at < got; at += g_in_chunk) {
      const size_t len = got - at < g_in_chunk ? got - at : g_in_chunk;
      const uint64_t index = (uint64_t)stripe * kStripeChunks + at / g_in_chunk;
      memcpy(nonce + 4, &index, sizeof index);
      int n = 0;
      if (!g_open) {
        if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1 ||
            EVP_EncryptUpdate(ctx, out + at, &n, in + at, (int)len) != 1 ||
            EVP_EncryptFinal_ex(ctx, out + at + len, &n) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, kTag, out + at + len) != 1) {
          die("seal failed");
        }
      } else {
        if (len < kTag) break;  // a short tail that holds no tag: nothing to open
        const size_t body = len - kTag;
        if (EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1 ||
            EVP_DecryptUpdate(ctx, out + at, &n, in + at, (int)body) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, kTag, in + at + body) != 1) {
          die("open failed");
        }
        (void)EVP_DecryptFinal_ex(ctx, out + at + body, &n);  // computes and compares the tag
      }
    }
    atomic_fetch_add(&g_bytes_read, (long long)got);
    if (got < stripe_bytes) break;
  }
  EVP_CIPHER_CTX_free(ctx);
  free(in);
  free(out);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 4 || (strcmp(argv[1], "seal") != 0 && strcmp(argv[1], "open") != 0)) {
    die("usage: bench-aead-floor seal|open FILE THREADS");
  }
  g_open = strcmp(argv[1], "open") == 0;
  g_in_chunk = g_open ? kChunk + kTag : kChunk;
  char* end = NULL;
  long threads = strtol(argv[3], &end, 10);
  if (end == argv[3] || *end != '\0' || threads < 0 || threads > kMaxThreads) {
    die("THREADS must be 0-64");
  }
  if (threads == 0) {
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    threads = online < 1 ? 1 : online > kMaxDefaultThreads ? kMaxDefaultThreads : online;
  }
  g_fd = open(argv[2], O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (g_fd < 0 || fstat(g_fd, &st) != 0) die("cannot open FILE");
  g_size = st.st_size;
  g_cipher = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
  if (g_cipher == NULL) die("no AES-256-GCM in this OpenSSL");
  pthread_t tids[kMaxThreads];
  // The calling thread is one of the workers, as in keyhold.
  for (int i = 1; i < threads; ++i) {
    if (pthread_create(&tids[i], NULL, worker, NULL) != 0) die("cannot start a thread");
  }
  worker(NULL);
  for (int i = 1; i < threads; ++i) {
    if (pthread_join(tids[i], NULL) != 0) die("cannot join a thread");
  }
  EVP_CIPHER_free(g_cipher);
  printf("%lld %ld\n", (long long)atomic_load(&g_bytes_read), threads);
  return 0;
}
