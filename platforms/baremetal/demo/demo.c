/* Bare-metal demo: a model linked into the image (no file system), generated through the public C
 * API with the model's tables and then the context in one static arena (no heap), printed through
 * semihosting. Built by the arm-none-eabi toolchain (toolchains/arm-none-eabi.cmake) with
 * -DEMBER_BAREMETAL_MODEL=path/to/model.ember and run under qemu-system-arm -M vexpress-a15 (see
 * .ci/test). */
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
  size_t model_bytes = 0;
  if (ember_model_required_bytes(ember_demo_model, size, &model_bytes) != EMBER_OK ||
      ember_model_load_buffer_in(ember_demo_model, size, arena, sizeof arena, &model) != EMBER_OK) {
    printf("load failed: %s\n", ember_last_error());
    return 1;
  }
  /* The context after the model's tables (model_bytes is a multiple of 64). */
  ember_context_params cp = ember_context_default_params();
  cp.n_ctx = 256;
  size_t need = 0;
  if (ember_context_required_bytes(model, &cp, &need) != EMBER_OK ||
      ember_context_create(model, &cp, arena + model_bytes, sizeof arena - model_bytes, &ctx) !=
          EMBER_OK) {
    printf("context failed (needs %u bytes, arena %u): %s\n", (unsigned)need,
           (unsigned)(sizeof arena - model_bytes), ember_last_error());
    return 1;
  }
  printf("model %u bytes (+%u in the arena), context %u bytes in the arena, kernels %s\n",
         (unsigned)size, (unsigned)model_bytes, (unsigned)need, ember_kernel_variant());
  ember_generate_params gp = ember_generate_default_params();
  gp.max_new_tokens = 48;
  gp.sampler.temperature = 0.0f;
  gp.echo_prompt = 1;
  const char* prompt = "Once upon a time";
  ember_generate_stats st;
  if (ember_generate(ctx, prompt, strlen(prompt), &gp, on_text, NULL, NULL, 0, NULL, &st) !=
      EMBER_OK) {
    printf("\ngenerate failed: %s\n", ember_last_error());
    return 1;
  }
  printf("\n[%" PRIu32 " prompt tokens, %" PRIu32 " generated]\n", st.n_prompt_tokens,
         st.n_generated);
  ember_context_free(ctx);
  ember_model_free(model);
  return 0;
}
