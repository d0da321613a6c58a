// Fault injection: every allocation made while a model loads or a context is created fails in
// turn (the product's ember_platform_alloc hook, and pthreadpool_create, counted down), and each
// failure is EMBER_ERR_OUT_OF_MEMORY with nothing leaked; a model file that shrinks or vanishes
// between open and map is an error or a clean load, never a crash.
//
// This executable defines ember_platform_alloc/free (strong, replacing the posix defaults) and is
// linked with -Wl,--wrap=mmap,pthreadpool_create,pthreadpool_destroy (tests/runtime/CMakeLists.txt)
// so that the statically linked runtime and platform layer call the wrappers below.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>

#include "ember/ember.h"
#include "ember/platform.h"
#include "support/convert.h"
#include "support/heap_counter.h"

namespace {

// Allocation sites counted down: the n-th call (from 0) after arming fails; -1: none fails.
std::atomic<long> g_fail_at{-1};
std::atomic<long> g_calls{0};
std::atomic<long> g_live_blocks{0};  // ember_platform_alloc minus ember_platform_free
std::atomic<long> g_live_pools{0};   // pthreadpool_create minus pthreadpool_destroy

bool next_fails() {
  const long n = g_calls.fetch_add(1);
  return n == g_fail_at.load();
}

// What the mmap wrapper does to the file just before mapping it.
enum class MapFault { kNone, kShrink, kEmpty, kUnlink };
MapFault g_map_fault = MapFault::kNone;
std::string g_map_path;

}  // namespace

extern "C" {

// The heap counter's unwrapped allocator: the hook's own blocks are not counted as allocations
// that bypass it.
int __real_posix_memalign(void** p, size_t alignment, size_t size);

void* ember_platform_alloc(size_t size, size_t alignment) {
  if (next_fails()) return nullptr;
  if (alignment < sizeof(void*)) alignment = sizeof(void*);
  void* p = nullptr;
  if (__real_posix_memalign(&p, alignment, size == 0 ? 1 : size) != 0) return nullptr;
  g_live_blocks.fetch_add(1);
  return p;
}

void ember_platform_free(void* ptr) {
  if (ptr) g_live_blocks.fetch_sub(1);
  std::free(ptr);
}

void* __real_mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off);
void* __wrap_mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (fd >= 0 && g_map_fault != MapFault::kNone) {
    // (by path: the runtime's descriptor is read-only)
    if (g_map_fault == MapFault::kShrink) (void)::truncate(g_map_path.c_str(), len / 3);
    if (g_map_fault == MapFault::kEmpty) (void)::truncate(g_map_path.c_str(), 0);
    if (g_map_fault == MapFault::kUnlink) (void)::unlink(g_map_path.c_str());
  }
  return __real_mmap(addr, len, prot, flags, fd, off);
}

#if EMBER_TEST_HAS_PTHREADPOOL
struct pthreadpool;
pthreadpool* __real_pthreadpool_create(size_t threads);
void __real_pthreadpool_destroy(pthreadpool* pool);
pthreadpool* __wrap_pthreadpool_create(size_t threads) {
  if (next_fails()) return nullptr;
  pthreadpool* p = __real_pthreadpool_create(threads);
  if (p) g_live_pools.fetch_add(1);
  return p;
}
void __wrap_pthreadpool_destroy(pthreadpool* pool) {
  if (pool) g_live_pools.fetch_sub(1);
  __real_pthreadpool_destroy(pool);
}
#endif

}  // extern "C"

namespace ember_test {
namespace {

// Runs `op` with the n-th counted allocation failing, for n = 0, 1, ... until it succeeds; each
// failure must be EMBER_ERR_OUT_OF_MEMORY with no block or pool left, and no allocation may bypass
// the counted sites (the heap counter sees malloc & co. and operator new). `undo` frees what a
// successful `op` made. Returns the number of sites.
template <class Op, class Undo>
long fail_each_site(const char* what, Op op, Undo undo) {
  const long blocks_before = g_live_blocks.load();  // a loaded model's block, say
  for (long n = 0;; ++n) {
    g_calls = 0;
    g_fail_at = n;
    ember_status s;
    long heap_allocs;
    {
      HeapCounting heap;
      s = op();
      heap_allocs = heap.allocs();
    }
    g_fail_at = -1;
    const long sites = g_calls.load();
    EXPECT_EQ(heap_allocs, 0) << what << ": an allocation outside ember_platform_alloc";
    if (s == EMBER_OK) {
      EXPECT_EQ(n, sites) << what << ": succeeded though allocation " << n << " failed";
      undo();
      EXPECT_EQ(g_live_blocks.load(), blocks_before) << what << ": a block outlives its free";
      EXPECT_EQ(g_live_pools.load(), 0) << what << ": a pool outlives its free";
      std::printf("[ faults ] %s: %ld allocation sites, each failure EMBER_ERR_OUT_OF_MEMORY\n",
                  what, sites);
      return sites;
    }
    EXPECT_EQ(s, EMBER_ERR_OUT_OF_MEMORY)
        << what << ", allocation " << n << " failing: " << ember_status_string(s) << ": "
        << ember_last_error();
    EXPECT_EQ(g_live_blocks.load(), blocks_before)
        << what << ", allocation " << n << " failing: a leak";
    EXPECT_EQ(g_live_pools.load(), 0) << what << ", allocation " << n << " failing: a pool leak";
    if (n > 64) {
      ADD_FAILURE() << what << ": still failing after 64 sites";
      return -1;
    }
  }
}

TEST(FaultInjection, EveryAllocationOfAModelLoadFails) {
  EMBER_REQUIRE_CONVERTED(path, "models/stories260K/hf", "--quant u8");
  ember_model* model = nullptr;
  const long sites = fail_each_site(
      "ember_model_load_file", [&] { return ember_model_load_file(path.c_str(), &model); },
      [&] { ember_model_free(model); });
  EXPECT_GE(sites, 1);
  const std::vector<unsigned char> bytes = read_file(path);
  fail_each_site(
      "ember_model_load_buffer",
      [&] { return ember_model_load_buffer(bytes.data(), bytes.size(), &model); },
      [&] { ember_model_free(model); });
}

TEST(FaultInjection, EveryAllocationOfAContextFails) {
  EMBER_REQUIRE_CONVERTED(path, "models/stories260K/hf", "--quant u8");
  ember_model* model = nullptr;
  ASSERT_EQ(ember_model_load_file(path.c_str(), &model), EMBER_OK) << ember_last_error();
  for (uint32_t threads : {1u, 2u, 4u}) {
    ember_context_params cp = ember_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = threads;
    cp.n_seq_max = 2;
    ember_context* ctx = nullptr;
    const std::string what = "ember_context_create, " + std::to_string(threads) + " threads";
    const long sites = fail_each_site(
        what.c_str(), [&] { return ember_context_create(model, &cp, nullptr, 0, &ctx); },
        [&] { ember_context_free(ctx); });
#if EMBER_TEST_HAS_PTHREADPOOL
    EXPECT_EQ(sites, threads > 1 ? 2 : 1) << what << ": the block, and the pool";
#else
    EXPECT_EQ(sites, 1) << what;
#endif
  }
  ember_model_free(model);
}

class MapFaults : public ::testing::TestWithParam<MapFault> {};

TEST_P(MapFaults, FileChangingBetweenOpenAndMapIsNotACrash) {
  EMBER_REQUIRE_CONVERTED(path, "models/stories260K/hf", "--quant u8");
  const std::vector<unsigned char> bytes = read_file(path);
  g_map_path = temp_path("changing.ember");
  write_file(g_map_path, bytes.data(), bytes.size());
  g_map_fault = GetParam();
  ember_model* model = nullptr;
  const ember_status s = ember_model_load_file(g_map_path.c_str(), &model);
  g_map_fault = MapFault::kNone;
  if (GetParam() == MapFault::kUnlink) {
    // POSIX keeps an unlinked file's data while it is open or mapped: the load sees it whole.
    ASSERT_EQ(s, EMBER_OK) << ember_last_error();
    ember_context_params cp = ember_context_default_params();
    cp.n_ctx = 32;
    ember_context* ctx = nullptr;
    ASSERT_EQ(ember_context_create(model, &cp, nullptr, 0, &ctx), EMBER_OK) << ember_last_error();
    ember_generate_params gp = ember_generate_default_params();
    gp.max_new_tokens = 8;
    EXPECT_EQ(ember_generate(ctx, "Once", 4, &gp, nullptr, nullptr, nullptr, 0, nullptr, nullptr),
              EMBER_OK)
        << ember_last_error();
    ember_context_free(ctx);
    ember_model_free(model);
    return;
  }
  EXPECT_EQ(s, EMBER_ERR_IO) << ember_status_string(s) << ": " << ember_last_error();
  EXPECT_EQ(model, nullptr);
  EXPECT_NE(std::string(ember_last_error()).find("changed size while being mapped"),
            std::string::npos)
      << ember_last_error();
}

INSTANTIATE_TEST_SUITE_P(Faults, MapFaults,
                         ::testing::Values(MapFault::kShrink, MapFault::kEmpty, MapFault::kUnlink),
                         [](const ::testing::TestParamInfo<MapFault>& i) {
                           switch (i.param) {
                             case MapFault::kShrink:
                               return "Shrinks";
                             case MapFault::kEmpty:
                               return "Emptied";
                             case MapFault::kUnlink:
                               return "Unlinked";
                             default:
                               return "None";
                           }
                         });

}  // namespace
}  // namespace ember_test
