// See heap_counter.h. The __wrap_* functions are what the linker calls for malloc & co. when the
// binary is linked with -Wl,--wrap=... (set by the ember_heap_counter target).
#include "support/heap_counter.h"

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocs{0};
std::atomic<unsigned long long> g_bytes{0};
inline void count(size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) {
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    g_bytes.fetch_add(n, std::memory_order_relaxed);
  }
}
}  // namespace

extern "C" {
void* __real_malloc(size_t n);
void* __real_calloc(size_t n, size_t m);
void* __real_realloc(void* p, size_t n);
int __real_posix_memalign(void** p, size_t a, size_t n);
void* __real_aligned_alloc(size_t a, size_t n);
void* __wrap_malloc(size_t n) {
  count(n);
  return __real_malloc(n);
}
void* __wrap_calloc(size_t n, size_t m) {
  count(n * m);
  return __real_calloc(n, m);
}
void* __wrap_realloc(void* p, size_t n) {
  count(n);
  return __real_realloc(p, n);
}
int __wrap_posix_memalign(void** p, size_t a, size_t n) {
  count(n);
  return __real_posix_memalign(p, a, n);
}
void* __wrap_aligned_alloc(size_t a, size_t n) {
  count(n);
  return __real_aligned_alloc(a, n);
}
}

void* operator new(size_t n) {
  count(n);
  void* p = std::malloc(n == 0 ? 1 : n);
  if (!p) std::abort();
  return p;
}
void* operator new[](size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace ember_test {

HeapCounting::HeapCounting() {
  g_allocs = 0;
  g_bytes = 0;
  g_counting = true;
}
HeapCounting::~HeapCounting() { g_counting = false; }
long HeapCounting::allocs() const { return g_allocs.load(); }
unsigned long long HeapCounting::bytes() const { return g_bytes.load(); }

}  // namespace ember_test
