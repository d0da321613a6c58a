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

#if defined(__SANITIZE_THREAD__)
#define EMBER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define EMBER_TSAN 1
#endif
#endif

#if EMBER_USE_PTHREADPOOL && EMBER_TSAN
// ThreadSanitizer cannot see how Debian's (uninstrumented) pthreadpool hands work to its threads
// (atomics and futexes inside the library). Each dispatch states the order the pool guarantees:
// the dispatch happens before every task (`start`), every task before the dispatch returns
// (`done`). Tasks get no order among themselves, so two tasks touching the same data still race.
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
namespace {
struct TsanTask {
  void (*fn_1d)(void*, size_t);
  void (*fn_tiled)(void*, size_t, size_t);
  void* arg;
  char start, done;  // the two synchronization addresses
};
void tsan_task_1d(void* p, size_t i) {
  TsanTask* t = static_cast<TsanTask*>(p);
  __tsan_acquire(&t->start);
  t->fn_1d(t->arg, i);
  __tsan_release(&t->done);
}
void tsan_task_tiled(void* p, size_t start, size_t count) {
  TsanTask* t = static_cast<TsanTask*>(p);
  __tsan_acquire(&t->start);
  t->fn_tiled(t->arg, start, count);
  __tsan_release(&t->done);
}
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
#if EMBER_TSAN
    TsanTask t{fn, nullptr, arg, 0, 0};
    __tsan_release(&t.start);
    pthreadpool_parallelize_1d(static_cast<pthreadpool_t>(pool_), tsan_task_1d, &t, n, kPoolFlags);
    __tsan_acquire(&t.done);
#else
    pthreadpool_parallelize_1d(static_cast<pthreadpool_t>(pool_), fn, arg, n, kPoolFlags);
#endif
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
#if EMBER_TSAN
    TsanTask t{nullptr, fn, arg, 0, 0};
    __tsan_release(&t.start);
    pthreadpool_parallelize_1d_tile_1d(static_cast<pthreadpool_t>(pool_), tsan_task_tiled, &t, n,
                                       tile, kPoolFlags);
    __tsan_acquire(&t.done);
#else
    pthreadpool_parallelize_1d_tile_1d(static_cast<pthreadpool_t>(pool_), fn, arg, n, tile,
                                       kPoolFlags);
#endif
    return;
  }
#endif
  if (tile == 0) tile = n;
  for (size_t i = 0; i < n; i += tile) fn(arg, i, n - i < tile ? n - i : tile);
}

}  // namespace ember
