// Linear layers and row-parallel loops of one context: picks the kernel for the weight's dtype from
// the active KernelTable, quantizes activations for u8 weights, and splits output rows across the
// context's thread pool (pthreadpool). All scratch memory
// is handed in at init() from the context's arena; linear() never allocates.
#ifndef EMBER_SRC_LINEAR_H_
#define EMBER_SRC_LINEAR_H_

#include <cstddef>
#include <cstdint>

#include "core/status.h"
#include "core/zero_one.h"

namespace ember {

enum class WeightType : uint8_t { kF32 = 0, kF16 = 1, kBF16 = 2, kU8ZeroOne = 3 };  // = fb::DType

// A weight matrix used in place from the model file: (rows = outputs, cols = inputs).
struct WeightRef {
  WeightType type = WeightType::kF32;
  const void* data = nullptr;             // (rows, cols) of `type`
  const ZeroOneParams* params = nullptr;  // kU8ZeroOne: (rows, groups_per_row)
  uint32_t rows = 0, cols = 0;
  uint32_t group = 0;                     // kU8ZeroOne: weights per group (0 = whole row)
};

class LinearExecutor {
 public:
  // Scratch bytes for inputs of up to m_max rows x k_max columns whose weights have at most
  // max_groups groups per row.
  static size_t scratch_bytes(size_t m_max, size_t k_max, size_t max_groups);

  LinearExecutor() = default;
  ~LinearExecutor() { shutdown(); }
  LinearExecutor(const LinearExecutor&) = delete;
  LinearExecutor& operator=(const LinearExecutor&) = delete;

  // n_threads <= 1: everything on the calling thread. Creates the thread pool (its memory is the
  // pool library's, outside the arena).
  Status init(uint32_t n_threads, void* scratch, size_t scratch_size, size_t m_max, size_t k_max,
              size_t max_groups);
  void shutdown();

  // y (m, w.rows), row-major with leading dimension w.rows  =  x (m, w.cols) . W^T.
  // m <= m_max, w.cols <= k_max. Results are bit-identical for any thread count.
  void linear(const WeightRef& w, const float* x, size_t m, float* y);

  // Calls fn(arg, i) for i in [0, n), spread over the pool (no allocation, no locks).
  void parallel_for(size_t n, void (*fn)(void* arg, size_t i), void* arg);

  uint32_t threads() const { return n_threads_; }

 private:
  uint32_t n_threads_ = 1;
  void* pool_ = nullptr;  // pthreadpool_t when EMBER_USE_PTHREADPOOL
  void* scratch_ = nullptr;
  size_t scratch_size_ = 0, m_max_ = 0, k_max_ = 0, max_groups_ = 0;
};

}  // namespace ember

#endif  // EMBER_SRC_LINEAR_H_
