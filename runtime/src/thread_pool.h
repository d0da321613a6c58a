// The context's worker threads: a pthreadpool when the build has one and n_threads > 1, else the
// calling thread. The forward pass, the linear layers and XNNPACK's operators all dispatch through
// it. No allocation after init (the pool's own memory is pthreadpool's, made at init).
#ifndef EMBER_SRC_THREAD_POOL_H_
#define EMBER_SRC_THREAD_POOL_H_

#include <cstddef>
#include <cstdint>

#include "core/status.h"

namespace ember {

class ThreadPool {
 public:
  ThreadPool() = default;
  ~ThreadPool() { shutdown(); }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // n_threads <= 1, or a build without pthreadpool: everything on the calling thread.
  Status init(uint32_t n_threads);
  void shutdown();

  uint32_t threads() const { return n_threads_; }
  // The pthreadpool_t (nullptr with one thread or without pthreadpool), for XNNPACK.
  void* native() const { return pool_; }

  // Multiply-adds below which a dispatch costs more than it saves (waking a worker takes some
  // microseconds, more in a VM): such work runs on the calling thread.
  static constexpr size_t kMinParallelWork = size_t{1} << 18;
  // The same for element-wise work (values touched: activation quantization, norms, SiLU, ...).
  static constexpr size_t kMinParallelElements = size_t{1} << 15;

  // Calls fn(arg, i) for i in [0, n), spread over the pool (no allocation, no locks).
  void parallel_for(size_t n, void (*fn)(void* arg, size_t i), void* arg) const;

  // Calls fn(arg, start, count) on consecutive ranges of [0, n) of at most `tile` indices, spread
  // over the pool; tile 0 = n split evenly in 2 * threads() ranges (one range without a pool).
  void parallel_ranges(size_t n, size_t tile, void (*fn)(void* arg, size_t start, size_t count),
                       void* arg) const;

 private:
  uint32_t n_threads_ = 1;
  void* pool_ = nullptr;  // pthreadpool_t when EMBER_USE_PTHREADPOOL
};

}  // namespace ember

#endif  // EMBER_SRC_THREAD_POOL_H_
