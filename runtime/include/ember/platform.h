/* Ember — the porting contract: the few hooks the runtime needs from an OS or a board.
 *
 * The runtime (libember.a) calls only the functions below to reach the outside world: a clock, a
 * log line, a read-only file mapping and aligned memory. They are plain C functions resolved at
 * link time, not a table of function pointers. Ember ships two implementations:
 *   platforms/posix      Linux and macOS (clock_gettime, stderr, mmap, posix_memalign)
 *   platforms/baremetal  a board without an OS (no clock, printf, no files, malloc)
 * Both define every hook as a weak symbol (EMBER_PLATFORM_WEAK): a product replaces any one of
 * them by linking its own ordinary (strong) definition, and keeps the defaults for the rest. That
 * definition belongs in one of the program's object files (or a library linked before the platform
 * library): a linker does not search a later archive for a symbol that a weak definition already
 * provides. A product may also link no platform library and define every hook itself.
 *
 * Threads: the runtime calls a hook only on a thread that called into the ember API, never on the
 * worker threads of a context's thread pool. A product that calls the API from several threads at
 * once (one context per thread) needs hooks that are safe to call concurrently; a single-threaded
 * product needs no locking in them.
 */
#ifndef EMBER_PLATFORM_H_
#define EMBER_PLATFORM_H_

#include <stddef.h>
#include <stdint.h>

/* Marks the platform libraries' definitions as defaults that a product's definition replaces at
 * link time. Empty where the toolchain has no weak symbols: there a product that wants its own hook
 * links no platform library and defines every hook. (A build may define it beforehand.) */
#ifndef EMBER_PLATFORM_WEAK
#if defined(__GNUC__) || defined(__clang__)
#define EMBER_PLATFORM_WEAK __attribute__((weak))
#else
#define EMBER_PLATFORM_WEAK
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Monotonic time in seconds from an arbitrary origin. Used only for the timings in the statistics
 * (ember_generate's and the batcher's); it never affects tokens. A board without a timer may
 * return 0 (the timings then read 0). Called a few times per generated token: it must be cheap and
 * must not block. */
double ember_platform_now_seconds(void);

/* Writes one log line. `message` is NUL-terminated, has no trailing newline and is valid only
 * during the call. Errors are not logged here: they reach the caller as an ember_status plus
 * ember_last_error(). This hook gets the rare notice that has no caller to return to (for instance
 * an EMBER_KERNELS value that names no runnable kernel variant). May drop the message. */
void ember_platform_log(const char* message);

/* Maps the whole file at `path` read-only, for ember_model_load_file. On success returns 0 and sets
 * *data (the file's first byte, at least 16-byte aligned: see ember_model_load_buffer; a page-
 * aligned mapping is), *size (its length in bytes) and *handle (anything unmap needs, may be NULL).
 * The bytes must stay readable and unchanged until ember_platform_unmap_file. On failure returns a
 * nonzero errno-style code (its strerror() text goes into ember_last_error()) and leaves the
 * outputs unspecified. A platform without files returns ENOSYS, and its products load models with
 * ember_model_load_buffer instead. ESTALE means the file changed size while it was being mapped
 * (ember_last_error() says so). A mapped file must not shrink afterwards either: reading a mapping
 * past a file's end raises SIGBUS, which no check can prevent, so model files are replaced by
 * rename (as ember-convert does), never rewritten in place; a product that cannot promise that
 * provides a hook that reads the file into memory. */
int ember_platform_map_file(const char* path, const void** data, size_t* size, void** handle);

/* Releases a mapping: called exactly once per successful ember_platform_map_file, with the values
 * it returned, when the model is freed (or its load fails). */
void ember_platform_unmap_file(const void* data, size_t size, void* handle);

/* Writes `size` bytes to the file at `path`, all or nothing: a reader sees the old file or the
 * complete new one, never a part (POSIX: a temporary file beside it, fsync, rename). Used only by
 * ember_kv_state_save_file. Returns 0 or a nonzero errno-style code; a platform without files
 * returns ENOSYS (its products save states with ember_kv_state_save into their own storage). */
int ember_platform_write_file(const char* path, const void* data, size_t size);

/* Allocates `size` bytes aligned to `alignment` (a power of two; may be below sizeof(void*)); NULL
 * when out of memory (the API call then returns EMBER_ERR_OUT_OF_MEMORY). Used only for allocations
 * made once: the model handle and the tables built at load, a context created without an arena,
 * ember_tokenize's work memory for long texts, and XNNPACK's operators where a context opts in.
 * Never called by ember_decode / ember_sample / ember_generate. */
void* ember_platform_alloc(size_t size, size_t alignment);

/* Frees a block from ember_platform_alloc; `ptr` may be NULL. The two are a pair: a product that
 * replaces one replaces the other, unless its allocator returns blocks the default free accepts
 * (posix: anything from posix_memalign or malloc). */
void ember_platform_free(void* ptr);

#ifdef __cplusplus
}
#endif

#endif /* EMBER_PLATFORM_H_ */
