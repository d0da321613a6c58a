// Heap counting for the no-heap-while-generating tests. A test binary linked with the
// ember_heap_counter library (tests/CMakeLists.txt) gets -Wl,--wrap=malloc,calloc,realloc,
// posix_memalign,aligned_alloc — so every allocation made by code linked statically into it
// (libember.a, the platform layer, XNNPACK's allocator hooks) is counted — and a replaced global
// operator new, which catches C++ allocations from anywhere.
#ifndef EMBER_TESTS_SUPPORT_HEAP_COUNTER_H_
#define EMBER_TESTS_SUPPORT_HEAP_COUNTER_H_

namespace ember_test {

// Counts allocations (and their requested bytes) while alive. One at a time.
class HeapCounting {
 public:
  HeapCounting();
  ~HeapCounting();
  HeapCounting(const HeapCounting&) = delete;
  HeapCounting& operator=(const HeapCounting&) = delete;
  long allocs() const;
  unsigned long long bytes() const;
};

}  // namespace ember_test

#endif  // EMBER_TESTS_SUPPORT_HEAP_COUNTER_H_
