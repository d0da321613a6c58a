// Continuous batching (batcher.h): admission in submit order, one forward pass per step over every
// admitted request (decode tokens first, then prompt chunks up to n_batch_max tokens), sampling
// and stop checks per request, text released through a hold-back buffer for stop strings.
#include "batcher.h"

#include <cstring>
#include <new>

#include "context.h"
#include "ember/platform.h"
#include "forward.h"
#include "kv_state.h"
#include "model.h"
#include "sampler.h"

namespace ember {
namespace {

const Model& model_of(const Context* ctx) { return *ctx->model; }

// Hands `len` bytes of released text (and the token) to the callback; a nonzero answer cancels.
void release_text(Context* ctx, Request& r, int32_t token, const char* text, size_t len) {
  r.text_sent += len;
  if (r.on_event == nullptr) return;
  const ember_request_event ev{r.id, token, text, len, EMBER_FINISH_NONE};
  if (r.on_event(&ev, r.user) != 0) cancel_request(ctx, r.id);
}

// Where a stop string first occurs in the held text, or n_hold when none does.
size_t first_stop(const Request& r) {
  size_t best = r.n_hold;
  for (uint32_t s = 0; s < r.n_stop; ++s) {
    const size_t len = r.stop_len[s];
    for (size_t i = 0; i + len <= r.n_hold && i < best; ++i) {
      if (std::memcmp(r.hold + i, r.stop[s], len) == 0) {
        best = i;
        break;
      }
    }
  }
  return best;
}

// The longest end of the held text that begins some stop string (it must wait for more text).
size_t stop_prefix_tail(const Request& r) {
  size_t keep = 0;
  for (uint32_t s = 0; s < r.n_stop; ++s) {
    const size_t most = size_t{r.stop_len[s]} - 1;
    size_t l = most < r.n_hold ? most : r.n_hold;
    for (; l > keep; --l) {
      if (std::memcmp(r.hold + r.n_hold - l, r.stop[s], l) == 0) break;
    }
    if (l > keep) keep = l;
  }
  return keep;
}

void finish(Context* ctx, Request& r, ember_finish_reason reason) {
  if (r.state == RequestState::kFree || r.state == RequestState::kFinished) return;
  if (r.slot >= 0) {  // the slot is free for the next request at once, its cache kept for reuse
    ctx->slot_owner[r.slot] = -1;
    ctx->slot_stamp[r.slot] = ctx->n_steps;
    if (reason == EMBER_FINISH_ERROR) ctx->seq_len[r.slot] = ctx->slot_valid[r.slot] = 0;
    r.slot = -1;
  }
  r.state = RequestState::kFinished;
  r.finish = reason;
  r.t_end = ember_platform_now_seconds();
  // Held text that no stop string claimed is released with the final event.
  const size_t n = reason == EMBER_FINISH_STOP ? 0 : r.n_hold;
  r.text_sent += n;
  r.n_hold = 0;
  if (r.on_event != nullptr) {
    const ember_request_event ev{r.id, -1, r.hold, n, reason};
    (void)r.on_event(&ev, r.user);
  }
}

// The text of an accepted token: released at once, or (with stop strings) held back while it may
// begin a stop string. Returns true when a stop string matched (the text before it is released).
bool accept_text(Context* ctx, Request& r, int32_t id) {
  size_t n = 0;
  if (ember_detok_stream_feed(static_cast<const ember_model*>(ctx->model), &r.stream, id, ctx->text,
                              ctx->plan.text_bytes, &n) != EMBER_OK) {
    n = 0;  // (cannot happen: text_bytes holds any piece plus pending bytes)
  }
  if (r.n_stop == 0) {
    release_text(ctx, r, id, ctx->text, n);
    return false;
  }
  std::memcpy(r.hold + r.n_hold, ctx->text, n);
  r.n_hold += static_cast<uint32_t>(n);
  const size_t at = first_stop(r);
  if (at < r.n_hold) {
    r.n_hold = 0;
    release_text(ctx, r, id, r.hold, at);
    return true;
  }
  const size_t keep = stop_prefix_tail(r);
  const size_t out = r.n_hold - keep;
  // Released from the front; the kept tail moves to the front after the callback has the text.
  char* tail = ctx->text;  // (scratch: the piece is already copied into hold)
  std::memcpy(tail, r.hold + out, keep);
  r.n_hold = 0;
  release_text(ctx, r, id, r.hold, out);
  if (r.state == RequestState::kGenerating) {
    std::memcpy(r.hold, tail, keep);
    r.n_hold = static_cast<uint32_t>(keep);
  }
  return false;
}

bool is_stop_id(const Request& r, int32_t id) {
  for (uint32_t i = 0; i < r.n_stop_ids; ++i) {
    if (r.stop_ids[i] == id) return true;
  }
  return false;
}

// A sampled token: a stop id or EOS ends the request (and is not part of the output); otherwise it
// is appended and its text released, then the length limits are checked.
void accept_token(Context* ctx, Request& r, int32_t id) {
  const Model& m = model_of(ctx);
  const int32_t bos = m.tokenizer.bos_id();
  if ((!r.ignore_eos && m.tokenizer.is_eos(id)) || (r.stop_at_bos && bos >= 0 && id == bos)) {
    finish(ctx, r, EMBER_FINISH_EOS);
    return;
  }
  if (is_stop_id(r, id)) {
    finish(ctx, r, EMBER_FINISH_STOP);
    return;
  }
  r.ids[r.n_prompt + r.n_generated++ - r.n_shifted] = id;
  if (r.n_generated == 1) r.t_first = ember_platform_now_seconds();
  const bool stopped = accept_text(ctx, r, id);
  if (r.state != RequestState::kGenerating) return;  // cancelled by its callback
  if (stopped) {
    finish(ctx, r, EMBER_FINISH_STOP);
  } else if (r.n_generated >= r.max_new_tokens ||
             (!r.ctx_shift && r.n_prompt + r.n_generated > ctx->plan.n_ctx)) {
    // (the last token is sampled but never decoded: it needs no position in the slot; with
    // ctx_shift a full slot is shifted before its next token is decoded)
    finish(ctx, r, EMBER_FINISH_LENGTH);
  }
}

// Context shift of a generating request whose slot is full: keeps n_keep positions, drops half of
// the rest, from the cache (kv_shift) and from its ids alike, so that ids[i] stays position i.
void shift_request(Context* ctx, Request& r) {
  const uint32_t len = ctx->seq_len[r.slot];
  const uint32_t n_discard = (len - r.n_keep) / 2;  // >= 1: n_keep < n_ctx - 1
  kv_shift(ctx, static_cast<uint32_t>(r.slot), r.n_keep, n_discard);
  const uint32_t n_ids = r.n_prompt + r.n_generated - r.n_shifted;  // the slot's and the next one
  std::memmove(r.ids + r.n_keep, r.ids + r.n_keep + n_discard,
               (n_ids - r.n_keep - n_discard) * sizeof(int32_t));
  r.n_shifted += n_discard;
}

// Leading ids of slot s that equal the request's prompt, among the positions reusable as a cold run
// computed them; at most n_prompt - 1 (the last prompt token is computed for its logits).
uint32_t shared_prefix(const Context* ctx, uint32_t s, const Request& r) {
  const int32_t* ids = ctx->slot_ids + size_t{s} * ctx->plan.n_ctx;
  uint32_t most = ctx->slot_valid[s] < r.n_prompt - 1 ? ctx->slot_valid[s] : r.n_prompt - 1;
  uint32_t n = 0;
  while (n < most && ids[n] == r.ids[n]) ++n;
  return n;
}

// The slot for a request and the prompt positions it finds cached: the free slot sharing the
// longest prefix with its prompt, else the least recently used free one; a busy slot that shares
// more lends its prefix (copied into the chosen free slot). -1 when no slot is free.
int32_t place(Context* ctx, const Request& r, uint32_t* reused) {
  int32_t best_free = -1, lru = -1, best_busy = -1;
  uint32_t free_len = 0, busy_len = 0;
  for (uint32_t s = 0; s < ctx->plan.n_seq_max; ++s) {
    const uint32_t n = shared_prefix(ctx, s, r);
    if (ctx->slot_owner[s] >= 0) {
      if (n > busy_len) best_busy = static_cast<int32_t>(s), busy_len = n;
      continue;
    }
    if (lru < 0 || ctx->slot_stamp[s] < ctx->slot_stamp[lru]) lru = static_cast<int32_t>(s);
    if (n > free_len) best_free = static_cast<int32_t>(s), free_len = n;
  }
  if (lru < 0) return -1;
  if (busy_len > free_len) {
    const int32_t s = best_free >= 0 ? best_free : lru;
    kv_copy_prefix(ctx, static_cast<uint32_t>(best_busy), static_cast<uint32_t>(s), busy_len);
    *reused = busy_len;
    return s;
  }
  *reused = free_len;
  return free_len > 0 ? best_free : lru;
}

// Gives free slots to waiting requests, oldest first.
void admit(Context* ctx) {
  const uint32_t R = ctx->plan.n_requests;
  for (;;) {
    int32_t pick = -1;
    for (uint32_t i = 0; i < R; ++i) {
      const Request& r = ctx->requests[i];
      if (r.state == RequestState::kQueued && (pick < 0 || r.order < ctx->requests[pick].order)) {
        pick = static_cast<int32_t>(i);
      }
    }
    if (pick < 0) return;
    Request& r = ctx->requests[pick];
    uint32_t reused = 0;
    const int32_t s = place(ctx, r, &reused);
    if (s < 0) return;
    r.state = RequestState::kPrefill;
    r.slot = s;
    r.n_cached = r.n_reused = reused;
    ctx->slot_owner[s] = pick;
    ctx->seq_len[s] = reused;
    if (ctx->slot_valid[s] > reused) ctx->slot_valid[s] = reused;
    ctx->slot_stamp[s] = ctx->n_steps;
  }
}

// Appends one token to the pass's batch.
void push(Context* ctx, uint32_t* n, int32_t token, uint32_t pos, int32_t slot, bool logits) {
  ctx->batch_tok[*n] = token;
  ctx->batch_pos[*n] = static_cast<int32_t>(pos);
  ctx->batch_seq[*n] = slot;
  ctx->batch_logits[*n] = logits ? 1 : 0;
  ++*n;
}

// The pass's batch: one token for every generating request, then prompt chunks in admission
// order, n_batch_max tokens at most.
uint32_t build_batch(Context* ctx) {
  const uint32_t B = ctx->plan.n_batch_max, R = ctx->plan.n_requests;
  uint32_t n = 0;
  for (uint32_t i = 0; i < R; ++i) {
    Request& r = ctx->requests[i];
    r.batch_row = -1;
    r.batch_chunk = 0;
  }
  // A decode token for every generating request; when they are more than n_batch_max, those that
  // waited longest first (then in admission order). Slots are few: a scan per pick is cheap.
  while (n < B) {
    int32_t pick = -1;
    for (uint32_t i = 0; i < R; ++i) {
      const Request& r = ctx->requests[i];
      if (r.state != RequestState::kGenerating || r.batch_row >= 0) continue;
      const Request* p = pick < 0 ? nullptr : &ctx->requests[pick];
      if (p == nullptr || r.last_step < p->last_step ||
          (r.last_step == p->last_step && r.order < p->order)) {
        pick = static_cast<int32_t>(i);
      }
    }
    if (pick < 0) break;
    Request& r = ctx->requests[pick];
    r.batch_row = static_cast<int32_t>(n);
    r.last_step = ctx->n_steps;
    const uint32_t pos = r.n_prompt + r.n_generated - 1 - r.n_shifted;
    if (r.ctx_shift && pos >= ctx->plan.n_ctx) shift_request(ctx, r);
    const uint32_t at = r.n_prompt + r.n_generated - 1 - r.n_shifted;
    push(ctx, &n, r.ids[at], at, r.slot, true);
  }
  // Prompt chunks, oldest admission first.
  for (uint64_t last = 0; n < B;) {
    int32_t pick = -1;
    for (uint32_t i = 0; i < R; ++i) {
      const Request& r = ctx->requests[i];
      if (r.state == RequestState::kPrefill && r.order + 1 > last &&
          (pick < 0 || r.order < ctx->requests[pick].order)) {
        pick = static_cast<int32_t>(i);
      }
    }
    if (pick < 0) break;
    Request& r = ctx->requests[pick];
    last = r.order + 1;
    uint32_t chunk = r.n_prompt - r.n_cached;
    if (chunk > B - n) chunk = B - n;
    for (uint32_t t = 0; t < chunk; ++t) {
      const uint32_t pos = r.n_cached + t;
      const bool last_token = pos + 1 == r.n_prompt;
      if (last_token) r.batch_row = static_cast<int32_t>(n);
      push(ctx, &n, r.ids[pos], pos, r.slot, last_token);
    }
    r.batch_chunk = chunk;
  }
  return n;
}

uint32_t pending(const Context* ctx) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < ctx->plan.n_requests; ++i) {
    const RequestState st = ctx->requests[i].state;
    n += st == RequestState::kQueued || st == RequestState::kPrefill ||
         st == RequestState::kGenerating;
  }
  return n;
}

}  // namespace

size_t request_hold_bytes(size_t text_bytes) { return EMBER_MAX_STOP_BYTES + text_bytes; }

void init_requests(Context* ctx) {
  const ContextPlan& p = ctx->plan;
  for (uint32_t i = 0; i < p.n_requests; ++i) {
    Request* r = new (&ctx->requests[i]) Request();
    r->ids = ctx->req_ids + size_t{i} * (p.n_ctx + 1);
    r->hold = ctx->req_hold + size_t{i} * p.hold_bytes;
  }
}

Request* find_request(const Context* ctx, uint64_t id) {
  for (uint32_t i = 0; id != 0 && i < ctx->plan.n_requests; ++i) {
    if (ctx->requests[i].id == id) return &ctx->requests[i];
  }
  set_error(Status::kInvalidArgument, "request %llu is unknown or released",
            static_cast<unsigned long long>(id));
  return nullptr;
}

namespace {

Status check_request_params(const Context* ctx, const ember_request_params& p) {
  if (!model_of(ctx).tokenizer.loaded()) {
    return set_error(Status::kInvalidArgument, "requests need a tokenizer; the model has none");
  }
  if (p.prompt == nullptr && (p.prompt_ids == nullptr || p.n_prompt_ids == 0)) {
    return set_error(Status::kInvalidArgument,
                     "request: no prompt (prompt and prompt_ids are NULL)");
  }
  EMBER_RETURN_IF_ERROR(check_sampler(p.sampler));
  if (p.ctx_shift && uint64_t{p.n_keep} + 2 > ctx->plan.n_ctx) {
    return set_error(Status::kInvalidArgument,
                     "request: n_keep %u leaves nothing to shift (must be below n_ctx - 1 = %u)",
                     p.n_keep, ctx->plan.n_ctx - 1);
  }
  if (p.n_stop_ids > EMBER_MAX_STOP_IDS || (p.n_stop_ids > 0 && p.stop_ids == nullptr)) {
    return set_error(Status::kInvalidArgument, "request: %u stop ids (at most %d, non-NULL)",
                     p.n_stop_ids, EMBER_MAX_STOP_IDS);
  }
  if (p.n_stop_strings > EMBER_MAX_STOP_STRINGS ||
      (p.n_stop_strings > 0 && p.stop_strings == nullptr)) {
    return set_error(Status::kInvalidArgument, "request: %u stop strings (at most %d, non-NULL)",
                     p.n_stop_strings, EMBER_MAX_STOP_STRINGS);
  }
  for (uint32_t i = 0; i < p.n_stop_strings; ++i) {
    const char* s = p.stop_strings[i];
    size_t len = 0;  // bounded scan: strnlen is POSIX, not in newlib's C++ headers
    while (s != nullptr && len <= EMBER_MAX_STOP_BYTES && s[len] != '\0') ++len;
    if (len == 0 || len > EMBER_MAX_STOP_BYTES) {
      return set_error(Status::kInvalidArgument, "request: stop string %u is %s (1..%d bytes)", i,
                       s == nullptr ? "NULL" : (len == 0 ? "empty" : "too long"),
                       EMBER_MAX_STOP_BYTES);
    }
  }
  return Status::kOk;
}

// The prompt's ids into r.ids: tokenized in the context's work area, or copied and checked.
Status load_prompt(Context* ctx, const ember_request_params& p, Request* r) {
  const ContextPlan& plan = ctx->plan;
  const uint32_t vocab = model_of(ctx).config.vocab_size;
  size_t n = 0;
  if (p.prompt != nullptr) {
    if (p.prompt_len > plan.n_prompt_bytes_max) {
      return set_error(Status::kContextFull,
                       "prompt of %zu bytes exceeds the context's n_prompt_bytes_max (%zu)",
                       p.prompt_len, plan.n_prompt_bytes_max);
    }
    const Status s =
        model_of(ctx).tokenizer.encode(p.prompt, p.prompt_len, p.tokenize_flags, ctx->tok_work,
                                       plan.tok_work_bytes, r->ids, plan.n_ctx, &n);
    if (s == Status::kBufferTooSmall) {
      return set_error(Status::kContextFull, "prompt is %zu tokens, the context holds n_ctx = %u",
                       n, plan.n_ctx);
    }
    EMBER_RETURN_IF_ERROR(s);
    if (n == 0) {
      return set_error(Status::kInvalidArgument,
                       "prompt encodes to no tokens (empty text without ADD_SPECIAL/BOS)");
    }
  } else {
    n = p.n_prompt_ids;
    if (n > plan.n_ctx) {
      return set_error(Status::kContextFull, "prompt is %zu tokens, the context holds n_ctx = %u",
                       n, plan.n_ctx);
    }
    for (size_t i = 0; i < n; ++i) {
      if (p.prompt_ids[i] < 0 || static_cast<uint32_t>(p.prompt_ids[i]) >= vocab) {
        return set_error(Status::kInvalidArgument, "prompt id %zu is %d, out of range [0, %u)", i,
                         p.prompt_ids[i], vocab);
      }
      r->ids[i] = p.prompt_ids[i];
    }
  }
  r->n_prompt = static_cast<uint32_t>(n);
  return Status::kOk;
}

}  // namespace

Status submit_request(Context* ctx, const ember_request_params& p, uint64_t* out_id) {
  EMBER_RETURN_IF_ERROR(check_request_params(ctx, p));
  Request* r = nullptr;
  for (uint32_t i = 0; i < ctx->plan.n_requests && r == nullptr; ++i) {
    if (ctx->requests[i].state == RequestState::kFree) r = &ctx->requests[i];
  }
  if (r == nullptr) {
    return set_error(Status::kBusy,
                     "every request place is taken (%u: n_seq_max %u + n_queue_max %u; finished "
                     "requests hold theirs until released)",
                     ctx->plan.n_requests, ctx->plan.n_seq_max,
                     ctx->plan.n_requests - ctx->plan.n_seq_max);
  }
  EMBER_RETURN_IF_ERROR(load_prompt(ctx, p, r));
  r->max_new_tokens = p.max_new_tokens;
  r->sampler = p.sampler;
  r->rng = rng_seed(p.sampler.seed);
  r->stop_at_bos = p.stop_at_bos != 0;
  r->ignore_eos = p.ignore_eos != 0;
  r->ctx_shift = p.ctx_shift != 0;
  r->n_keep = p.n_keep;
  r->n_shifted = 0;
  r->n_stop_ids = p.n_stop_ids;
  for (uint32_t i = 0; i < p.n_stop_ids; ++i) r->stop_ids[i] = p.stop_ids[i];
  r->n_stop = p.n_stop_strings;
  for (uint32_t i = 0; i < p.n_stop_strings; ++i) {
    r->stop_len[i] = static_cast<uint8_t>(std::strlen(p.stop_strings[i]));
    std::memcpy(r->stop[i], p.stop_strings[i], r->stop_len[i]);
  }
  r->on_event = p.on_event;
  r->user = p.user;
  r->n_generated = r->n_cached = r->n_reused = r->n_hold = 0;
  r->text_sent = 0;
  r->slot = -1;
  r->finish = EMBER_FINISH_NONE;
  r->t_submit = ember_platform_now_seconds();
  r->t_first = r->t_end = 0;
  r->id = ctx->next_request_id++;
  r->order = ctx->next_order++;
  r->state = RequestState::kQueued;
  // The text stream learns the prompt (the first generated piece keeps its leading space); with
  // echo_prompt the prompt's text goes to the callback now.
  ember_detok_stream_init(&r->stream, EMBER_DETOKENIZE_SKIP_SPECIAL);
  for (uint32_t i = 0; i < r->n_prompt; ++i) {
    size_t n = 0;
    if (ember_detok_stream_feed(static_cast<const ember_model*>(ctx->model), &r->stream, r->ids[i],
                                ctx->text, ctx->plan.text_bytes, &n) != EMBER_OK) {
      n = 0;
    }
    if (p.echo_prompt && r->on_event != nullptr) {
      const ember_request_event ev{r->id, r->ids[i], ctx->text, n, EMBER_FINISH_NONE};
      (void)r->on_event(&ev, r->user);
    }
  }
  *out_id = r->id;
  return Status::kOk;
}

Status step_requests(Context* ctx, uint32_t* n_pending) {
  ++ctx->n_steps;
  admit(ctx);
  const uint32_t n = build_batch(ctx);
  Status status = Status::kOk;
  if (n > 0) {
    const ember_batch b{n, ctx->batch_tok, ctx->batch_pos, ctx->batch_seq, ctx->batch_logits};
    status = decode(ctx, b);
  }
  const uint32_t R = ctx->plan.n_requests;
  const uint32_t vocab = model_of(ctx).config.vocab_size;
  // In admission order, so callbacks run in a fixed order.
  for (uint64_t last = 0;;) {
    int32_t pick = -1;
    for (uint32_t i = 0; i < R; ++i) {
      const Request& r = ctx->requests[i];
      if ((r.batch_row >= 0 || r.batch_chunk > 0) && r.order + 1 > last &&
          (pick < 0 || r.order < ctx->requests[pick].order)) {
        pick = static_cast<int32_t>(i);
      }
    }
    if (pick < 0) break;
    Request& r = ctx->requests[pick];
    last = r.order + 1;
    const int32_t row = r.batch_row;
    r.batch_row = -1;
    if (r.state != RequestState::kPrefill && r.state != RequestState::kGenerating) continue;
    if (status != Status::kOk) {
      finish(ctx, r, EMBER_FINISH_ERROR);
      continue;
    }
    if (r.state == RequestState::kPrefill) {
      r.n_cached += r.batch_chunk;
      if (r.n_cached < r.n_prompt) continue;
      r.state = RequestState::kGenerating;
      if (r.max_new_tokens == 0) {
        finish(ctx, r, EMBER_FINISH_LENGTH);
        continue;
      }
    }
    const float* logits = ctx->logits + size_t(ctx->logit_row[row]) * vocab;
    int32_t id = 0;
    const Status s =
        sample(logits, vocab, r.sampler, &r.rng, ctx->sample_val, ctx->sample_idx, &id);
    if (s != Status::kOk) {
      status = s;
      finish(ctx, r, EMBER_FINISH_ERROR);
      continue;
    }
    accept_token(ctx, r, id);
  }
  for (uint32_t i = 0; i < R; ++i) ctx->requests[i].batch_chunk = 0;
  if (n_pending) *n_pending = pending(ctx);
  return status;
}

Status cancel_request(Context* ctx, uint64_t id) {
  Request* r = find_request(ctx, id);
  if (r == nullptr) return Status::kInvalidArgument;
  finish(ctx, *r, EMBER_FINISH_CANCELLED);
  return Status::kOk;
}

Status release_request(Context* ctx, uint64_t id) {
  Request* r = find_request(ctx, id);
  if (r == nullptr) return Status::kInvalidArgument;
  finish(ctx, *r, EMBER_FINISH_CANCELLED);
  r->id = 0;
  r->state = RequestState::kFree;
  return Status::kOk;
}

Status request_text(Context* ctx, const Request& r, size_t offset, char* out, size_t cap,
                    size_t* n_out) {
  // The released text is re-derived from the ids: a fresh stream primed with the prompt, then the
  // generated pieces, cut at what has been released (stop strings never are).
  if (r.n_shifted > 0) {
    return set_error(Status::kUnsupported,
                     "request %llu's context was shifted: its first ids are gone, so is its text "
                     "(read it through on_event)",
                     static_cast<unsigned long long>(r.id));
  }
  ember_detok_stream st;
  ember_detok_stream_init(&st, EMBER_DETOKENIZE_SKIP_SPECIAL);
  const ember_model* m = static_cast<const ember_model*>(ctx->model);
  size_t n = 0;
  for (uint32_t i = 0; i < r.n_prompt; ++i) {
    if (ember_detok_stream_feed(m, &st, r.ids[i], ctx->text, ctx->plan.text_bytes, &n) !=
        EMBER_OK) {
      return Status::kInternal;
    }
  }
  uint64_t at = 0;  // bytes of generated text before the current piece
  size_t written = 0;
  for (uint32_t i = 0; i < r.n_generated && at < r.text_sent; ++i) {
    if (ember_detok_stream_feed(m, &st, r.ids[r.n_prompt + i], ctx->text, ctx->plan.text_bytes,
                                &n) != EMBER_OK) {
      return Status::kInternal;
    }
    const uint64_t end = at + n < r.text_sent ? at + n : r.text_sent;
    if (end > offset) {
      const uint64_t from = offset > at ? offset : at;
      const size_t len = static_cast<size_t>(end - from);
      if (written + len > cap) break;  // a piece that does not fit waits for the next call
      std::memcpy(out + written, ctx->text + (from - at), len);
      written += len;
    }
    at += n;
  }
  *n_out = written;
  return Status::kOk;
}

}  // namespace ember

extern "C" {

ember_request_params ember_request_default_params(void) {
  ember_request_params p;
  std::memset(&p, 0, sizeof p);
  p.tokenize_flags = EMBER_TOKENIZE_ADD_SPECIAL;
  p.max_new_tokens = 128;
  p.sampler = ember_sampler_default_params();
  p.n_keep = 1;
  return p;
}

ember_status ember_request_submit(ember_context* ctx, const ember_request_params* params,
                                  uint64_t* out_id) {
  if (out_id) *out_id = 0;
  if (!ctx || !params || !out_id) {
    return ember::to_c(ember::set_error(ember::Status::kInvalidArgument,
                                        "ember_request_submit: %s is NULL",
                                        !ctx ? "ctx" : (!params ? "params" : "out_id")));
  }
  return ember::to_c(ember::submit_request(ctx, *params, out_id));
}

ember_status ember_step(ember_context* ctx, uint32_t* n_pending) {
  if (n_pending) *n_pending = 0;
  if (!ctx) {
    return ember::to_c(
        ember::set_error(ember::Status::kInvalidArgument, "ember_step: ctx is NULL"));
  }
  return ember::to_c(ember::step_requests(ctx, n_pending));
}

ember_status ember_request_cancel(ember_context* ctx, uint64_t request) {
  if (!ctx) {
    return ember::to_c(
        ember::set_error(ember::Status::kInvalidArgument, "ember_request_cancel: ctx is NULL"));
  }
  return ember::to_c(ember::cancel_request(ctx, request));
}

ember_status ember_request_release(ember_context* ctx, uint64_t request) {
  if (!ctx) {
    return ember::to_c(
        ember::set_error(ember::Status::kInvalidArgument, "ember_request_release: ctx is NULL"));
  }
  return ember::to_c(ember::release_request(ctx, request));
}

ember_status ember_request_info_get(const ember_context* ctx, uint64_t request,
                                    ember_request_info* out) {
  if (!ctx || !out) {
    return ember::to_c(ember::set_error(ember::Status::kInvalidArgument,
                                        "ember_request_info_get: %s is NULL",
                                        !ctx ? "ctx" : "out"));
  }
  const ember::Request* r = ember::find_request(ctx, request);
  if (r == nullptr) return EMBER_ERR_INVALID_ARGUMENT;
  const double now = ember_platform_now_seconds();
  out->finish = r->finish;
  out->queued = r->state == ember::RequestState::kQueued;
  out->n_prompt_tokens = r->n_prompt;
  out->n_generated = r->n_generated;
  out->generated = r->n_shifted > 0 ? nullptr : r->ids + r->n_prompt;
  out->text_bytes = static_cast<size_t>(r->text_sent);
  out->first_token_seconds = r->n_generated > 0 ? r->t_first - r->t_submit : 0.0;
  out->total_seconds = (r->state == ember::RequestState::kFinished ? r->t_end : now) - r->t_submit;
  out->n_prompt_reused = r->n_reused;
  return EMBER_OK;
}

ember_status ember_request_text(ember_context* ctx, uint64_t request, size_t offset, char* out,
                                size_t cap, size_t* n_out) {
  if (n_out) *n_out = 0;
  if (!ctx || !n_out || (!out && cap > 0)) {
    return ember::to_c(ember::set_error(ember::Status::kInvalidArgument,
                                        "ember_request_text: %s is NULL",
                                        !ctx ? "ctx" : (!n_out ? "n_out" : "out")));
  }
  const ember::Request* r = ember::find_request(ctx, request);
  if (r == nullptr) return EMBER_ERR_INVALID_ARGUMENT;
  return ember::to_c(ember::request_text(ctx, *r, offset, out, cap, n_out));
}

}  // extern "C"
