/* LD_PRELOAD shim for the atomic-write test: counts the bytes the process write()s to files whose
 * path contains ".tmp." (the converter's temporary output) and, when EMBER_TEST_KILL_AFTER_BYTES
 * is reached, writes only up to that byte and raises SIGKILL: a kill at an exact byte offset.
 * Without the variable it only passes writes through. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef ssize_t (*write_fn)(int, const void*, size_t);

static int is_temporary(int fd) {
  char link[64], target[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(link, target, sizeof target - 1);
  if (n <= 0) return 0;
  target[n] = '\0';
  return strstr(target, ".tmp.") != NULL;
}

ssize_t write(int fd, const void* buf, size_t count) {
  static write_fn real;
  static long long limit = -2; /* -2: not read yet; -1: no limit */
  static long long written;
  if (!real) real = (write_fn)dlsym(RTLD_NEXT, "write");
  if (limit == -2) {
    const char* v = getenv("EMBER_TEST_KILL_AFTER_BYTES");
    limit = v ? atoll(v) : -1;
  }
  if (limit < 0 || !is_temporary(fd)) return real(fd, buf, count);
  if (written + (long long)count >= limit) {
    const size_t part = (size_t)(limit - written);
    if (part > 0) real(fd, buf, part);
    raise(SIGKILL);
  }
  written += (long long)count;
  return real(fd, buf, count);
}
