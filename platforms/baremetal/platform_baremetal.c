/* Bare-metal platform: no files, no OS clock. A product overrides the weak definitions with its
 * board's timer and console. Allocation uses newlib's malloc only for a model or context created
 * without an arena (a product that passes arenas to ember_model_load_buffer_in and
 * ember_context_create allocates nothing: the demo does). */
#include <stdio.h>
#include <stdlib.h>

#include "ember/platform.h"

EMBER_PLATFORM_WEAK double ember_platform_now_seconds(void) { return 0.0; }

EMBER_PLATFORM_WEAK void ember_platform_log(const char* message) { printf("ember: %s\n", message); }

EMBER_PLATFORM_WEAK int ember_platform_map_file(const char* path, const void** data, size_t* size,
                                                void** handle) {
  (void)path;
  (void)data;
  (void)size;
  (void)handle;
  return 38; /* ENOSYS: no file system; use ember_model_load_buffer */
}

EMBER_PLATFORM_WEAK void ember_platform_unmap_file(const void* data, size_t size, void* handle) {
  (void)data;
  (void)size;
  (void)handle;
}

EMBER_PLATFORM_WEAK int ember_platform_write_file(const char* path, const void* data, size_t size) {
  (void)path;
  (void)data;
  (void)size;
  return 38; /* ENOSYS: no file system; save KV states with ember_kv_state_save */
}

/* newlib's aligned_alloc needs posix_memalign, which bare-metal newlib lacks: over-allocate with
 * malloc and keep the original pointer just below the aligned block. `alignment` is a power of 2.
 */
EMBER_PLATFORM_WEAK void* ember_platform_alloc(size_t size, size_t alignment) {
  if (alignment < sizeof(void*)) alignment = sizeof(void*);
  if (size > (size_t)-1 - alignment - sizeof(void*)) return NULL;
  unsigned char* raw = (unsigned char*)malloc(size + alignment + sizeof(void*));
  if (raw == NULL) return NULL;
  uintptr_t p = ((uintptr_t)(raw + sizeof(void*)) + alignment - 1) & ~(uintptr_t)(alignment - 1);
  ((void**)p)[-1] = raw;
  return (void*)p;
}

EMBER_PLATFORM_WEAK void ember_platform_free(void* ptr) {
  if (ptr != NULL) free(((void**)ptr)[-1]);
}
