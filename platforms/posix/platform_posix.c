#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "platform.h"

double ember_platform_now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void ember_platform_log(const char* message) { fprintf(stderr, "ember: %s\n", message); }

int ember_platform_map_file(const char* path, const void** data, size_t* size, void** handle) {
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
  *size = (size_t)st.st_size;
  *handle = NULL;
  if (st.st_size == 0) { /* mmap of 0 bytes fails; the verifier reports the empty file */
    close(fd);
    *data = "";
    return 0;
  }
  void* p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  close(fd);
  if (p == MAP_FAILED) return e;
  *data = p;
  *handle = p;
  return 0;
}

void ember_platform_unmap_file(const void* data, size_t size, void* handle) {
  if (handle != NULL && size > 0) munmap((void*)data, size);
}

void* ember_platform_alloc(size_t size, size_t alignment) {
  void* p = NULL;
  if (alignment < sizeof(void*)) alignment = sizeof(void*);
  if (posix_memalign(&p, alignment, size == 0 ? 1 : size) != 0) return NULL;
  return p;
}

void ember_platform_free(void* ptr) { free(ptr); }
