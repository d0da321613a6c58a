// The few hooks the runtime needs from an OS or a board. Plain C functions; platforms/posix
// implements them for Linux/macOS, platforms/baremetal for a board without an OS (a product may
// replace any of them by linking its own definitions instead of a platform library).
#ifndef EMBER_PLATFORMS_PLATFORM_H_
#define EMBER_PLATFORMS_PLATFORM_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Monotonic time in seconds (for the statistics only; never affects results). */
double ember_platform_now_seconds(void);

/* One log line (no trailing newline needed). */
void ember_platform_log(const char* message);

/* Maps a whole file read-only. On success, *data and *size describe it and *handle is what unmap needs.
 * Returns 0 on success, an errno-style code otherwise (a platform without files returns nonzero). */
int ember_platform_map_file(const char* path, const void** data, size_t* size, void** handle);
void ember_platform_unmap_file(const void* data, size_t size, void* handle);

/* Aligned allocation for the few once-only allocations (model handle, context without an arena). */
void* ember_platform_alloc(size_t size, size_t alignment);
void ember_platform_free(void* ptr);

#ifdef __cplusplus
}
#endif

#endif /* EMBER_PLATFORMS_PLATFORM_H_ */
