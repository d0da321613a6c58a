// Porting contract (ember/platform.h): a product's own definition of one hook replaces the platform
// library's weak default at link time, while the other hooks stay the defaults.
//
// This file defines ember_platform_alloc, so it is linked into its own executable only
// (tests/runtime/CMakeLists.txt): every other test keeps the posix default. The hook counts its
// calls and allocates with posix_memalign, whose blocks the default ember_platform_free accepts.
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <string>

#include "ember/ember.h"
#include "ember/platform.h"
#include "support/convert.h"

namespace {

std::atomic<long> g_calls{0};
std::atomic<size_t> g_last_size{0};
std::atomic<bool> g_fail{false};  // true: behave as an exhausted heap

}  // namespace

extern "C" void* ember_platform_alloc(size_t size, size_t alignment) {
  g_calls.fetch_add(1);
  g_last_size.store(size);
  if (g_fail.load()) return nullptr;
  if (alignment < sizeof(void*)) alignment = sizeof(void*);
  void* p = nullptr;
  if (posix_memalign(&p, alignment, size == 0 ? 1 : size) != 0) return nullptr;
  return p;
}

namespace ember_test {
namespace {

TEST(PlatformHooks, ProductAllocReplacesTheDefault) {
  EMBER_REQUIRE_CONVERTED(path, "models/stories260K/hf", "--quant f32");
  const long before = g_calls.load();
  ember_model* model = nullptr;
  // Loads through the default map_file hook, allocates through this file's hook.
  ASSERT_EQ(ember_model_load_file(path.c_str(), &model), EMBER_OK) << ember_last_error();
  const long after_load = g_calls.load();
  EXPECT_GT(after_load, before) << "the model load did not call the product's ember_platform_alloc";

  // A context without an arena is one allocation of exactly the required bytes.
  ember_context_params cp = ember_context_default_params();
  cp.n_ctx = 64;
  size_t need = 0;
  ASSERT_EQ(ember_context_required_bytes(model, &cp, &need), EMBER_OK) << ember_last_error();
  ember_context* ctx = nullptr;
  ASSERT_EQ(ember_context_create(model, &cp, nullptr, 0, &ctx), EMBER_OK) << ember_last_error();
  EXPECT_EQ(g_calls.load(), after_load + 1);
  EXPECT_EQ(g_last_size.load(), need);
  ember_context_free(ctx);  // the default ember_platform_free
  ember_model_free(model);
}

TEST(PlatformHooks, ProductAllocFailureIsOutOfMemory) {
  EMBER_REQUIRE_CONVERTED(path, "models/stories260K/hf", "--quant f32");
  g_fail.store(true);
  ember_model* model = nullptr;
  const ember_status s = ember_model_load_file(path.c_str(), &model);
  g_fail.store(false);
  EXPECT_EQ(s, EMBER_ERR_OUT_OF_MEMORY);
  EXPECT_EQ(model, nullptr);
  EXPECT_NE(std::string(ember_last_error()).find("cannot allocate the model ("), std::string::npos)
      << ember_last_error();
}

}  // namespace
}  // namespace ember_test
