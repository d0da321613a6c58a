// Continuous batching: the requests of one context (ember_request_* and ember_step in ember.h).
// Every request lives in a record planned with the context (its ids, its held-back text); slots
// are taken at admission and given back at the finish. Nothing here allocates.
#ifndef EMBER_SRC_BATCHER_H_
#define EMBER_SRC_BATCHER_H_

#include <cstddef>
#include <cstdint>

#include "core/status.h"
#include "ember/ember.h"

namespace ember {

struct Context;

enum class RequestState : uint8_t { kFree, kQueued, kPrefill, kGenerating, kFinished };

struct Request {
  uint64_t id = 0;     // the handle; 0 = a free record
  uint64_t order = 0;  // submit order: the queue is first in, first out
  RequestState state = RequestState::kFree;
  ember_finish_reason finish = EMBER_FINISH_NONE;
  int32_t slot = -1;         // KV slot while admitted
  uint32_t n_prompt = 0;     // prompt ids at ids[0, n_prompt)
  uint32_t n_cached = 0;     // prompt ids already in the slot (the prefill cursor)
  uint32_t n_reused = 0;     // of those, found in the cache at admission (prefix reuse)
  uint32_t n_generated = 0;  // generated ids at ids[n_prompt, n_prompt + n_generated)
  uint32_t max_new_tokens = 0;
  int32_t batch_row = -1;    // this pass: the batch token whose logits it samples from, or -1
  uint32_t batch_chunk = 0;  // this pass: prompt tokens it put in the batch
  uint64_t last_step = 0;    // the step that last gave it a decode token (the least recent first)
  ember_sampler_params sampler{};
  uint64_t rng = 0;
  bool stop_at_bos = false, ignore_eos = false;
  bool ctx_shift = false;  // shift the slot's context when it is full (ember_kv_shift)
  uint32_t n_keep = 0;     // positions a shift keeps
  uint32_t n_shifted = 0;  // positions (and ids) dropped by shifts so far
  uint32_t n_stop_ids = 0, n_stop = 0;
  int32_t stop_ids[EMBER_MAX_STOP_IDS] = {};
  uint8_t stop_len[EMBER_MAX_STOP_STRINGS] = {};
  char stop[EMBER_MAX_STOP_STRINGS][EMBER_MAX_STOP_BYTES] = {};
  ember_detok_stream stream{};  // generated text (primed with the prompt)
  uint32_t n_hold = 0;          // text held back: a stop string may begin there
  uint64_t text_sent = 0;       // generated text released (to the callback and to polls)
  ember_request_callback on_event = nullptr;
  void* user = nullptr;
  double t_submit = 0, t_first = 0, t_end = 0;
  int32_t* ids = nullptr;  // (n_ctx + 1) prompt then generated (after shifts: those not dropped)
  char* hold = nullptr;    // (hold capacity) text not yet released
};

// Bytes of held-back text a record needs: the longest stop string plus one token's text.
size_t request_hold_bytes(size_t text_bytes);

// Points the records at their arrays in the context block and marks them free.
void init_requests(Context* ctx);

Status submit_request(Context* ctx, const ember_request_params& p, uint64_t* out_id);
Status step_requests(Context* ctx, uint32_t* n_pending);
Status cancel_request(Context* ctx, uint64_t id);
Status release_request(Context* ctx, uint64_t id);
// The record of a live request, or nullptr (error set) for an unknown or released handle.
Request* find_request(const Context* ctx, uint64_t id);
Status request_text(Context* ctx, const Request& r, size_t offset, char* out, size_t cap,
                    size_t* n_out);

}  // namespace ember

#endif  // EMBER_SRC_BATCHER_H_
