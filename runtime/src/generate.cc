// ember_generate: text in, text out on sequence slot 0, entirely in the context's memory.
#include <cstring>

#include "context.h"
#include "ember/ember.h"
#include "forward.h"
#include "model.h"
#include "platform.h"
#include "sampler.h"

using ember::Status;
using ember::set_error;
using ember::to_c;

namespace {

// Feeds one id to the stream and hands its text to the callback; true if the callback asks to stop.
bool emit(ember_context* ctx, ember_detok_stream* stream, int32_t id, bool call,
          ember_text_callback on_text, void* user, ember_status* status) {
  size_t n = 0;
  const ember_status s =
      ember_detok_stream_feed(static_cast<const ember_model*>(ctx->model), stream, id, ctx->text, ctx->plan.text_bytes, &n);
  if (s != EMBER_OK) {
    *status = s;
    return true;
  }
  if (call && on_text) return on_text(ctx->text, n, id, user) != 0;
  return false;
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
  const ember::Model& m = *ctx->model;
  if (!m.tokenizer.loaded()) {
    return to_c(set_error(Status::kInvalidArgument, "ember_generate: the model has no tokenizer"));
  }
  const ember::ContextPlan& plan = ctx->plan;
  const double t0 = ember_platform_now_seconds();

  // 1. Tokenize into the context's work area.
  if (prompt_len > plan.n_prompt_bytes_max) {
    return to_c(set_error(Status::kContextFull,
                          "prompt of %zu bytes exceeds the context's n_prompt_bytes_max (%zu)",
                          prompt_len, plan.n_prompt_bytes_max));
  }
  size_t n_prompt = 0;
  Status s = m.tokenizer.encode(prompt ? prompt : "", prompt_len, params->tokenize_flags,
                                ctx->tok_work, plan.tok_work_bytes, ctx->prompt_ids, plan.n_ctx,
                                &n_prompt);
  if (s == Status::kBufferTooSmall) {
    return to_c(set_error(Status::kContextFull, "prompt is %zu tokens, the context holds n_ctx = %u",
                          n_prompt, plan.n_ctx));
  }
  if (s != Status::kOk) return to_c(s);
  if (n_prompt == 0) {
    return to_c(set_error(Status::kInvalidArgument,
                          "prompt encodes to no tokens (empty text without ADD_SPECIAL/BOS)"));
  }
  if (n_prompt > plan.n_ctx) {
    return to_c(set_error(Status::kContextFull, "prompt is %zu tokens, the context holds n_ctx = %u",
                          n_prompt, plan.n_ctx));
  }
  size_t written = 0;
  auto record = [&](int32_t id) {
    if (written < ids_cap) out_ids[written++] = id;
  };

  // 2. Echo the prompt (the stream also learns that generated text is not the first piece).
  ember_detok_stream stream;
  ember_detok_stream_init(&stream, EMBER_DETOKENIZE_SKIP_SPECIAL);
  ember_status st = EMBER_OK;
  bool stop = false;
  for (size_t i = 0; i < n_prompt; ++i) {
    record(ctx->prompt_ids[i]);
    if (!stop) stop = emit(ctx, &stream, ctx->prompt_ids[i], params->echo_prompt != 0, on_text, user, &st);
    if (st != EMBER_OK) return st;
  }
  if (n_ids) *n_ids = written;

  // 3. Prefill slot 0 in chunks of n_batch_max (logits for the last token of each chunk).
  ember_kv_clear(ctx, 0);
  for (size_t start = 0; start < n_prompt; start += plan.n_batch_max) {
    size_t n = n_prompt - start;
    if (n > plan.n_batch_max) n = plan.n_batch_max;
    for (size_t i = 0; i < n; ++i) {
      ctx->batch_pos[i] = static_cast<int32_t>(start + i);
      ctx->batch_seq[i] = 0;
    }
    ember_batch b{static_cast<uint32_t>(n), ctx->prompt_ids + start, ctx->batch_pos, ctx->batch_seq,
                  nullptr};
    s = ember::decode(ctx, b);
    if (s != Status::kOk) return to_c(s);
  }
  const double t1 = ember_platform_now_seconds();
  if (stats) {
    stats->n_prompt_tokens = static_cast<uint32_t>(n_prompt);
    stats->prompt_seconds = t1 - t0;
  }

  // 4. Sample, emit, decode.
  uint64_t rng = ember::rng_seed(params->sampler.seed);
  const int32_t bos = m.tokenizer.bos_id();
  uint32_t pos = static_cast<uint32_t>(n_prompt);
  const float* logits = ember_get_logits(ctx, ctx->n_last_batch - 1);
  uint32_t n_gen = 0;
  while (!stop && n_gen < params->max_new_tokens) {
    int32_t id = 0;
    s = ember::sample(logits, m.config.vocab_size, params->sampler, &rng, ctx->sample_val,
                      ctx->sample_idx, &id);
    if (s != Status::kOk) return to_c(s);
    if (m.tokenizer.is_eos(id)) break;
    if (params->stop_at_bos && bos >= 0 && id == bos) break;
    ++n_gen;
    record(id);
    stop = emit(ctx, &stream, id, true, on_text, user, &st);
    if (st != EMBER_OK) return st;
    if (stop || n_gen == params->max_new_tokens || pos >= plan.n_ctx) break;
    ctx->batch_pos[0] = static_cast<int32_t>(pos);
    ctx->batch_seq[0] = 0;
    ember_batch b{1, &id, ctx->batch_pos, ctx->batch_seq, nullptr};
    s = ember::decode(ctx, b);
    if (s != Status::kOk) return to_c(s);
    ++pos;
    logits = ember_get_logits(ctx, 0);
  }
  if (n_ids) *n_ids = written;
  if (stats) {
    stats->n_generated = n_gen;
    stats->generate_seconds = ember_platform_now_seconds() - t1;
  }
  return EMBER_OK;
}

}  // extern "C"
