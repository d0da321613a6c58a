// The memory read probe of ember-bench and tests/bench: how fast this machine streams a buffer far
// larger than the caches, the ceiling that bounds decode (each token reads every weight once).
#ifndef EMBER_APPS_READ_PROBE_H_
#define EMBER_APPS_READ_PROBE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ember_app {

// The wrapping sum of n words read front to back with the widest vector loads this CPU runs.
uint64_t wide_sum(const uint64_t* p, size_t n);

// A buffer in 2 MiB pages where the OS gives them (Linux MADV_HUGEPAGE), as a mapped model lies:
// with transparent huge pages in "madvise" mode a plain allocation gets 4 KiB pages, which read
// slower and would understate the ceiling.
class ProbeBuffer {
 public:
  ProbeBuffer() = default;
  ProbeBuffer(const ProbeBuffer&) = delete;
  ProbeBuffer& operator=(const ProbeBuffer&) = delete;
  ~ProbeBuffer() { release(); }
  // n words with distinct nonzero contents on every page (no shared or deduplicated pages).
  bool allocate(size_t n);
  size_t size() const { return n_; }
  uint64_t* data() { return p_; }

 private:
  void release();
  void* map_ = nullptr;
  uint64_t* p_ = nullptr;
  size_t n_ = 0, len_ = 0;
};

// Read bandwidth (bytes / s) with `threads` threads, each summing its share of `buf`: 5 rounds of a
// plain scalar loop and a wide_sum pass (which of the two reads faster differs between hosts).
// Returns the best pass; appends each round's better rate to `rounds`.
double measure_read_bandwidth(ProbeBuffer& buf, uint32_t threads, std::vector<double>* rounds);

}  // namespace ember_app

#endif  // EMBER_APPS_READ_PROBE_H_
