#include "thread_pool.h"

#if EMBER_USE_PTHREADPOOL
#include <pthreadpool.h>
#endif

namespace ember {

#if EMBER_USE_PTHREADPOOL
// Flags of every dispatch. 0: between dispatches the workers spin a while, then sleep
// (pthreadpool's default, for a device that runs the model alone); PTHREADPOOL_FLAG_YIELD_WORKERS
// makes them sleep at once (-DEMBER_POOL_FLAGS=PTHREADPOOL_FLAG_YIELD_WORKERS), better when the
// cores are shared.
#ifndef EMBER_POOL_FLAGS
#define EMBER_POOL_FLAGS 0
#endif
namespace {
constexpr uint32_t kPoolFlags = EMBER_POOL_FLAGS;
}  // namespace
#endif

Status ThreadPool::init(uint32_t n_threads) {
  shutdown();
  n_threads_ = n_threads == 0 ? 1 : n_threads;
#if EMBER_USE_PTHREADPOOL
  if (n_threads_ > 1) {
    pthreadpool_t pool = pthreadpool_create(n_threads_);
    if (pool == nullptr) {
      n_threads_ = 1;
      return set_error(Status::kOutOfMemory, "could not create a pool of %u threads", n_threads);
    }
    pool_ = pool;
  }
#else
  n_threads_ = 1;  // built without a thread pool
#endif
  return Status::kOk;
}

void ThreadPool::shutdown() {
#if EMBER_USE_PTHREADPOOL
  if (pool_ != nullptr) pthreadpool_destroy(static_cast<pthreadpool_t>(pool_));
#endif
  pool_ = nullptr;
  n_threads_ = 1;
}

void ThreadPool::parallel_for(size_t n, void (*fn)(void* arg, size_t i), void* arg) const {
#if EMBER_USE_PTHREADPOOL
  if (pool_ != nullptr) {
    pthreadpool_parallelize_1d(static_cast<pthreadpool_t>(pool_), fn, arg, n, kPoolFlags);
    return;
  }
#endif
  for (size_t i = 0; i < n; ++i) fn(arg, i);
}

void ThreadPool::parallel_ranges(size_t n, size_t tile,
                                 void (*fn)(void* arg, size_t start, size_t count),
                                 void* arg) const {
  if (n == 0) return;
#if EMBER_USE_PTHREADPOOL
  if (pool_ != nullptr) {
    if (tile == 0) tile = (n + 2 * n_threads_ - 1) / (2 * n_threads_);
    pthreadpool_parallelize_1d_tile_1d(static_cast<pthreadpool_t>(pool_), fn, arg, n, tile,
                                       kPoolFlags);
    return;
  }
#endif
  if (tile == 0) tile = n;
  for (size_t i = 0; i < n; i += tile) fn(arg, i, n - i < tile ? n - i : tile);
}

}  // namespace ember
