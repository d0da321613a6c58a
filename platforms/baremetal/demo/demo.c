/* Bare-metal demo: a model linked into the image (no file system), generated through the public C API
 * with the context in a static arena, printed through semihosting. Built by the arm-none-eabi
 * toolchain (toolchains/arm-none-eabi.cmake) with -DEMBER_BAREMETAL_MODEL=path/to/model.ember and run
 * under qemu-system-arm -M vexpress-a15 (see .ci/test). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ember/ember.h"

/* The model file, placed by demo_model.S (.incbin), 64-byte aligned. */
extern const unsigned char ember_demo_model[];
extern const unsigned char ember_demo_model_end[];

static unsigned char arena[4u << 20] __attribute__((aligned(64)));

static int on_text(const char* text, size_t len, int32_t id, void* user) {
  (void)id;
  (void)user;
  fwrite(text, 1, len, stdout);
  return 0;
}

int main(void) {
  ember_model* model = NULL;
  ember_context* ctx = NULL;
  const size_t size = (size_t)(ember_demo_model_end - ember_demo_model);
  if (ember_model_load_buffer(ember_demo_model, size, &model) != EMBER_OK) {
    printf("load failed: %s\n", ember_last_error());
    return 1;
  }
  ember_context_params cp = ember_context_default_params();
  cp.n_ctx = 256;
  size_t need = 0;
  if (ember_context_required_bytes(model, &cp, &need) != EMBER_OK || need > sizeof arena ||
      ember_context_create(model, &cp, arena, sizeof arena, &ctx) != EMBER_OK) {
    printf("context failed (needs %u bytes, arena %u): %s\n", (unsigned)need, (unsigned)sizeof arena,
           ember_last_error());
    return 1;
  }
  printf("model %u bytes, context %u bytes in a static arena, kernels %s\n", (unsigned)size,
         (unsigned)need, ember_kernel_variant());
  ember_generate_params gp = ember_generate_default_params();
  gp.max_new_tokens = 48;
  gp.sampler.temperature = 0.0f;
  gp.echo_prompt = 1;
  const char* prompt = "Once upon a time";
  ember_generate_stats st;
  if (ember_generate(ctx, prompt, strlen(prompt), &gp, on_text, NULL, NULL, 0, NULL, &st) != EMBER_OK) {
    printf("\ngenerate failed: %s\n", ember_last_error());
    return 1;
  }
  printf("\n[%" PRIu32 " prompt tokens, %" PRIu32 " generated]\n", st.n_prompt_tokens, st.n_generated);
  ember_context_free(ctx);
  ember_model_free(model);
  return 0;
}
