/* Reads a .ember model file into memory (the consumer's heap, not the runtime's), generates
 * greedily from "Once upon a time" and prints the ids, one line: "ids: 1 2 3 ...", then the text.
 *   ember-consumer MODEL.ember [N_TOKENS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ember/ember.h"

static int on_text(const char* text, size_t len, int32_t id, void* user) {
  (void)id;
  (void)user;
  fwrite(text, 1, len, stdout);
  return 0;
}

static void* read_file(const char* path, size_t* size) {
  FILE* f = fopen(path, "rb");
  if (f == NULL) return NULL;
  size_t cap = 1u << 20, n = 0;
  unsigned char* buf = (unsigned char*)malloc(cap);
  while (buf != NULL) {
    n += fread(buf + n, 1, cap - n, f);
    if (n < cap) break;
    unsigned char* grown = (unsigned char*)realloc(buf, cap * 2);
    if (grown == NULL) free(buf);
    buf = grown;
    cap *= 2;
  }
  fclose(f);
  *size = n;
  return buf;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: ember-consumer MODEL.ember [N_TOKENS]\n");
    return 2;
  }
  size_t size = 0;
  void* data = read_file(argv[1], &size);
  ember_model* model = NULL;
  ember_context* ctx = NULL;
  if (data == NULL || ember_model_load_buffer(data, size, &model) != EMBER_OK) {
    fprintf(stderr, "cannot load %s: %s\n", argv[1], data ? ember_last_error() : "unreadable");
    return 1;
  }
  ember_context_params cp = ember_context_default_params();
  cp.n_ctx = 64;
  if (ember_context_create(model, &cp, NULL, 0, &ctx) != EMBER_OK) {
    fprintf(stderr, "context: %s\n", ember_last_error());
    return 1;
  }
  ember_generate_params gp = ember_generate_default_params();
  gp.max_new_tokens = argc > 2 ? (uint32_t)atoi(argv[2]) : 8;
  gp.sampler.temperature = 0.0f;
  const char* prompt = "Once upon a time";
  int32_t ids[64];
  size_t n_ids = 0;
  if (ember_generate(ctx, prompt, strlen(prompt), &gp, on_text, NULL, ids, 64, &n_ids, NULL) !=
      EMBER_OK) {
    fprintf(stderr, "generate: %s\n", ember_last_error());
    return 1;
  }
  printf("\nids:");
  for (size_t i = 0; i < n_ids; ++i) printf(" %d", (int)ids[i]);
  printf("\n");
  ember_context_free(ctx);
  ember_model_free(model);
  free(data);
  return 0;
}
