/* Cortex-M55 demo (MPS3 AN547): the model linked into flash (demo_model.S), its tables and the
 * context in one static arena in SRAM (section .arena, an547.ld), greedy generation through the
 * public C API, token ids and text printed through semihosting. The RAM budget is computed before
 * generation (arena from the runtime's required_bytes, the reserved stack, .data + .bss) and the
 * use measured after it (arena and stack high-water marks), so a product can size its RAM:
 * .ci/cortex-m55 builds the image again with the arena (EMBER_AN547_ARENA_BYTES) set to the budget
 * the first run printed, and checks that what the image reserves is that budget. */
#include <stdio.h>
#include <string.h>

#include "an547.h"
#include "ember/ember.h"

extern const unsigned char ember_demo_model[];
extern const unsigned char ember_demo_model_end[];

#ifndef EMBER_AN547_ARENA_BYTES
#define EMBER_AN547_ARENA_BYTES (1u << 20)
#endif
#define ARENA_PAINT 0xA5u

static unsigned char arena[EMBER_AN547_ARENA_BYTES] __attribute__((section(".arena"), aligned(64)));

static void say(const char* fmt, unsigned a, unsigned b, unsigned c, unsigned d) {
  char line[160];
  snprintf(line, sizeof line, fmt, a, b, c, d);
  an547_puts(line);
}

static int on_text(const char* text, size_t len, int32_t id, void* user) {
  (void)id;
  (void)user;
  char piece[64];
  if (len >= sizeof piece) len = sizeof piece - 1;
  memcpy(piece, text, len);
  piece[len] = 0;
  an547_puts(piece);
  return 0;
}

/* Bytes of the arena written since it was painted (from its start to the last changed byte). */
static size_t arena_high_water(void) {
  size_t n = sizeof arena;
  while (n > 0 && arena[n - 1] == ARENA_PAINT) --n;
  return n;
}

int main(void) {
  const size_t size = (size_t)(ember_demo_model_end - ember_demo_model);
  size_t model_bytes = 0, ctx_bytes = 0;
  ember_model* model = NULL;
  ember_context* ctx = NULL;
  memset(arena, ARENA_PAINT, sizeof arena);
#ifdef EMBER_AN547_KERNELS /* a lower variant, to compare (docs/porting.md: instruction counts) */
  if (ember_force_kernel_variant(EMBER_AN547_KERNELS) != EMBER_OK) {
    an547_puts("unknown kernel variant " EMBER_AN547_KERNELS "\n");
    return 1;
  }
#endif
  if (ember_model_required_bytes(ember_demo_model, size, &model_bytes) != EMBER_OK ||
      ember_model_load_buffer_in(ember_demo_model, size, arena, sizeof arena, &model) != EMBER_OK) {
    an547_puts("load failed: ");
    an547_puts(ember_last_error());
    return 1;
  }
  ember_context_params cp = ember_context_default_params();
  cp.n_ctx = 256;
  if (ember_context_required_bytes(model, &cp, &ctx_bytes) != EMBER_OK ||
      ember_context_create(model, &cp, arena + model_bytes, sizeof arena - model_bytes, &ctx) !=
          EMBER_OK) {
    an547_puts("context failed: ");
    an547_puts(ember_last_error());
    return 1;
  }
  const size_t budget_arena = model_bytes + ctx_bytes;
  say("model %u bytes in flash; n_ctx 256; kernels ", (unsigned)size, 0, 0, 0);
  an547_puts(ember_kernel_variant());
  an547_puts("\n");
  say("RAM budget: arena %u (model tables %u + context %u) + stack %u", (unsigned)budget_arena,
      (unsigned)model_bytes, (unsigned)ctx_bytes, (unsigned)an547_stack_size());
  say(" + .data/.bss %u\n", (unsigned)an547_data_bss_bytes(), 0, 0, 0);
  say("RAM reserved: arena %u + stack %u + .data/.bss %u = %u\n", (unsigned)sizeof arena,
      (unsigned)an547_stack_size(), (unsigned)an547_data_bss_bytes(),
      (unsigned)(sizeof arena + an547_stack_size() + an547_data_bss_bytes()));
  ember_generate_params gp = ember_generate_default_params();
  gp.max_new_tokens = 48;
  gp.sampler.temperature = 0.0f;
  gp.echo_prompt = 1;
  const char* prompt = "Once upon a time";
  int32_t ids[64];
  size_t n_ids = 0;
  if (ember_generate(ctx, prompt, strlen(prompt), &gp, on_text, NULL, ids, 64, &n_ids, NULL) !=
      EMBER_OK) {
    an547_puts("\ngenerate failed: ");
    an547_puts(ember_last_error());
    return 1;
  }
  an547_puts("\nids:");
  for (size_t i = 0; i < n_ids; ++i) say(" %u", (unsigned)ids[i], 0, 0, 0);
  const size_t used = arena_high_water(), stack = an547_stack_used();
  say("\nRAM used: arena %u of %u budgeted, stack %u of %u\n", (unsigned)used,
      (unsigned)budget_arena, (unsigned)stack, (unsigned)an547_stack_size());
  ember_context_free(ctx);
  ember_model_free(model);
  return used <= budget_arena && stack < an547_stack_size() ? 0 : 2;
}
