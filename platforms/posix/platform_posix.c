/* POSIX platform (Linux, macOS): the hooks of ember/platform.h. Each is weak: a product's own
 * definition of a hook replaces it at link time. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, madvise, MADV_HUGEPAGE (glibc) */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ember/platform.h"

EMBER_PLATFORM_WEAK double ember_platform_now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

EMBER_PLATFORM_WEAK void ember_platform_log(const char* message) {
  fprintf(stderr, "ember: %s\n", message);
}

/* Maps fd read-only. Linux: at a 2 MiB-aligned address with MADV_HUGEPAGE, so that pages read in
 * by the mapping's faults come into the page cache as 2 MiB folios (physically contiguous) instead
 * of 4 KiB pages, which decode reads faster (docs/performance.md). Without MADV_HUGEPAGE, or when
 * the address cannot be reserved, a plain mmap. */
static void* map_aligned(int fd, size_t len) {
#if defined(MADV_HUGEPAGE) && defined(MAP_ANONYMOUS) && defined(MAP_FIXED)
  const size_t huge = (size_t)2 << 20;
  if (len >= huge && len <= SIZE_MAX - huge) { /* (no wrap of the reservation's size) */
    char* r = (char*)mmap(NULL, len + huge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r != (char*)MAP_FAILED) {
      char* a = (char*)(((uintptr_t)r + huge - 1) & ~(uintptr_t)(huge - 1));
      void* p = mmap(a, len, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
      if (p == MAP_FAILED) {
        const int e = errno;
        munmap(r, len + huge);
        errno = e;
        return MAP_FAILED;
      }
      /* The reservation's parts before and after the file. */
      if (a > r) munmap(r, (size_t)(a - r));
      if (r + len + huge > a + len) munmap(a + len, (size_t)(r + len + huge - (a + len)));
      (void)madvise(p, len, MADV_HUGEPAGE); /* a hint: without THP the mapping works as is */
      return p;
    }
  }
#endif
  return mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
}

EMBER_PLATFORM_WEAK int ember_platform_map_file(const char* path, const void** data, size_t* size,
                                                void** handle) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return e;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return EISDIR;
  }
  if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX) { /* e.g. a > 4 GiB file on a 32-bit target */
    close(fd);
    return EFBIG;
  }
  *size = (size_t)st.st_size;
  *handle = NULL;
  if (st.st_size == 0) { /* mmap of 0 bytes fails; the verifier reports the empty file */
    close(fd);
    *data = "";
    return 0;
  }
  void* p = map_aligned(fd, (size_t)st.st_size);
  int e = errno;
  /* A file that shrank between fstat and mmap would raise SIGBUS on the first read past its new
   * end: check its size again now that the mapping exists, and refuse any change. */
  struct stat now;
  if (p != MAP_FAILED && (fstat(fd, &now) != 0 || now.st_size != st.st_size)) {
    munmap(p, (size_t)st.st_size);
    p = MAP_FAILED;
    e = ESTALE;
  }
  close(fd);
  if (p == MAP_FAILED) return e;
  *data = p;
  *handle = p;
  return 0;
}

EMBER_PLATFORM_WEAK void ember_platform_unmap_file(const void* data, size_t size, void* handle) {
  if (handle != NULL && size > 0) munmap((void*)data, size);
}

/* A temporary file beside `path` (same file system, so rename is atomic), written whole and
 * fsync'ed, then renamed over `path`; the directory is fsync'ed so that the rename survives a power
 * cut. On any failure the temporary is removed and `path` is untouched. */
EMBER_PLATFORM_WEAK int ember_platform_write_file(const char* path, const void* data, size_t size) {
  const size_t n = strlen(path);
  char* tmp = (char*)malloc(n + 8);
  if (tmp == NULL) return ENOMEM;
  memcpy(tmp, path, n);
  memcpy(tmp + n, ".XXXXXX", 8);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    const int e = errno;
    free(tmp);
    return e;
  }
  int e = 0;
  for (const char* p = (const char*)data; size > 0 && e == 0;) {
    const ssize_t w = write(fd, p, size);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      e = w < 0 ? errno : EIO;
    } else {
      p += w;
      size -= (size_t)w;
    }
  }
  if (e == 0 && fsync(fd) != 0) e = errno;
  if (close(fd) != 0 && e == 0) e = errno;
  if (e == 0 && rename(tmp, path) != 0) e = errno;
  if (e != 0) {
    unlink(tmp);
    free(tmp);
    return e;
  }
  /* The directory entry: fsync the parent (its name is path up to the last '/'). */
  char* slash = strrchr(tmp, '/');
  if (slash == tmp) {
    slash[1] = '\0';
  } else if (slash != NULL) {
    *slash = '\0';
  } else {
    tmp[0] = '.';
    tmp[1] = '\0';
  }
  const int dir = open(tmp, O_RDONLY | O_CLOEXEC);
  if (dir >= 0) {
    (void)fsync(dir); /* best effort: the file is complete and in place either way */
    close(dir);
  }
  free(tmp);
  return 0;
}

EMBER_PLATFORM_WEAK void* ember_platform_alloc(size_t size, size_t alignment) {
  void* p = NULL;
  if (alignment < sizeof(void*)) alignment = sizeof(void*);
  if (posix_memalign(&p, alignment, size == 0 ? 1 : size) != 0) return NULL;
  return p;
}

EMBER_PLATFORM_WEAK void ember_platform_free(void* ptr) { free(ptr); }
