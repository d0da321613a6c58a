// ember_generate: text in, text out — one request (batcher.h) run to its end, its events handed to
// the caller's text callback. Entirely in the context's memory.
#include <cstring>

#include "batcher.h"
#include "context.h"
#include "ember/ember.h"
#include "ember/platform.h"

using ember::set_error;
using ember::Status;
using ember::to_c;

namespace {

struct GenerateState {
  ember_text_callback on_text;
  void* user;
  int32_t* out_ids;
  size_t ids_cap, written;
};

int on_event(const ember_request_event* ev, void* user) {
  GenerateState& g = *static_cast<GenerateState*>(user);
  if (ev->finish != EMBER_FINISH_NONE) return 0;
  if (g.written < g.ids_cap) g.out_ids[g.written++] = ev->token;
  if (g.on_text == nullptr) return 0;
  return g.on_text(ev->text, ev->text_len, ev->token, g.user);
}

}  // namespace

extern "C" {

ember_generate_params ember_generate_default_params(void) {
  ember_generate_params p;
  p.max_new_tokens = 128;
  p.sampler = ember_sampler_default_params();
  p.echo_prompt = 0;
  p.stop_at_bos = 0;
  p.tokenize_flags = EMBER_TOKENIZE_ADD_SPECIAL;
  p.ctx_shift = 0;
  p.n_keep = 1;
  return p;
}

ember_status ember_generate(ember_context* ctx, const char* prompt, size_t prompt_len,
                            const ember_generate_params* params, ember_text_callback on_text,
                            void* user, int32_t* out_ids, size_t ids_cap, size_t* n_ids,
                            ember_generate_stats* stats) {
  if (n_ids) *n_ids = 0;
  if (stats) std::memset(stats, 0, sizeof *stats);
  if (!ctx || !params || (!prompt && prompt_len > 0)) {
    return to_c(set_error(Status::kInvalidArgument, "ember_generate: %s is NULL",
                          !ctx ? "ctx" : (!params ? "params" : "prompt")));
  }
  if (out_ids == nullptr && ids_cap > 0) {
    return to_c(set_error(Status::kInvalidArgument, "ember_generate: out_ids is NULL, ids_cap %zu",
                          ids_cap));
  }
  const double t0 = ember_platform_now_seconds();
  GenerateState g{on_text, user, out_ids, ids_cap, 0};
  ember_request_params rp = ember_request_default_params();
  rp.prompt = prompt ? prompt : "";
  rp.prompt_len = prompt_len;
  rp.tokenize_flags = params->tokenize_flags;
  rp.max_new_tokens = params->max_new_tokens;
  rp.sampler = params->sampler;
  rp.stop_at_bos = params->stop_at_bos;
  rp.ctx_shift = params->ctx_shift;
  rp.n_keep = params->n_keep;
  rp.on_event = on_event;
  rp.user = &g;
  // The prompt's ids go to out_ids first (and its text to the callback with echo_prompt): the
  // request echoes it at submit, before anything is generated.
  GenerateState echo = g;
  if (!params->echo_prompt) echo.on_text = nullptr;
  rp.echo_prompt = 1;
  rp.user = &echo;
  uint64_t id = 0;
  Status s = ember::submit_request(ctx, rp, &id);
  if (s != Status::kOk) return to_c(s);
  ember::Request* r = ember::find_request(ctx, id);
  g.written = echo.written;
  r->user = &g;  // generated tokens: the caller's callback
  if (n_ids) *n_ids = g.written;
  uint32_t pending = 1;
  while (s == Status::kOk && r->state != ember::RequestState::kFinished && pending > 0) {
    s = ember::step_requests(ctx, &pending);
  }
  if (stats) {
    stats->n_prompt_tokens = r->n_prompt;
    stats->n_generated = r->n_generated;
    stats->n_prompt_reused = r->n_reused;
    const double t_prompt = r->n_generated > 0 ? r->t_first : r->t_end;
    stats->prompt_seconds = t_prompt - t0;
    stats->generate_seconds = r->t_end - t_prompt;
  }
  if (n_ids) *n_ids = g.written;
  ember::release_request(ctx, id);
  return to_c(s);
}

}  // extern "C"
