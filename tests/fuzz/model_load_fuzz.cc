// Fuzz target: an .ember file from memory (ember_model_load_buffer), then, when it loads, a context
// and a short greedy generation. Seeds: the shared models converted by the build.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "ember/ember.h"

namespace {
// Harness limit: a file may legitimately ask for more memory than a fuzzing process has; such a
// load or context is skipped, not attempted.
constexpr size_t kMaxBytes = size_t{256} << 20;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The API wants the buffer 64-byte aligned, as a mapping or a flash image is.
  void* buf = nullptr;
  if (posix_memalign(&buf, 64, size == 0 ? 1 : size) != 0) return 0;
  if (size) std::memcpy(buf, data, size);
  size_t need = 0;
  ember_model* model = nullptr;
  if (ember_model_required_bytes(buf, size, &need) == EMBER_OK && need <= kMaxBytes &&
      ember_model_load_buffer(buf, size, &model) == EMBER_OK) {
    char info[256];
    (void)ember_model_describe(model, info, sizeof info, nullptr);
    ember_context_params cp = ember_context_default_params();
    cp.n_ctx = 16;
    cp.n_threads = 1;
    ember_context* ctx = nullptr;
    size_t ctx_need = 0;
    if (ember_context_required_bytes(model, &cp, &ctx_need) == EMBER_OK && ctx_need <= kMaxBytes &&
        ember_context_create(model, &cp, nullptr, 0, &ctx) == EMBER_OK) {
      ember_generate_params gp = ember_generate_default_params();
      gp.max_new_tokens = 4;
      gp.sampler.temperature = 0;
      int32_t ids[32];
      size_t n_ids = 0;
      (void)ember_generate(ctx, "Once upon", 9, &gp, nullptr, nullptr, ids, 32, &n_ids, nullptr);
      ember_context_free(ctx);
    }
    ember_model_free(model);
  }
  std::free(buf);
  return 0;
}
