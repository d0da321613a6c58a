// A context: everything that changes while generating, planned once from (model, params) and placed
// in one block of memory (the caller's arena or one ember_platform_alloc). Nothing here allocates
// after create_context().
#ifndef EMBER_SRC_CONTEXT_H_
#define EMBER_SRC_CONTEXT_H_

#include <cstddef>
#include <cstdint>

#include "batcher.h"
#include "core/status.h"
#include "ember/ember.h"
#include "linear.h"
#include "model.h"
#include "thread_pool.h"
#include "xnnpack_linear.h"

namespace ember {

// Byte offsets of every buffer inside the context block (all 64-aligned), and the total.
struct ContextPlan {
  uint32_t n_ctx = 0, n_seq_max = 0, n_batch_max = 0, n_threads = 0;
  uint32_t n_requests = 0;  // request records: n_seq_max + n_queue_max
  size_t n_prompt_bytes_max = 0;
  bool use_xnnpack = false;  // ember_context_params.use_xnnpack (checked: this build has XNNPACK)
  ember_kv_type kv_type = EMBER_KV_F32;
  size_t kv_elem_bytes = 4;  // of one cached key or value element: 4 (f32), 2 (f16), 1 (u8)
  size_t off_k_cache = 0, off_v_cache = 0, off_k_params = 0, off_v_params = 0;
  size_t off_seq_len = 0, off_seq_pending = 0;
  size_t off_slot_ids = 0, off_slot_valid = 0, off_slot_stamp = 0;
  size_t off_x = 0, off_xb = 0, off_xb2 = 0, off_q = 0, off_k = 0, off_v = 0, off_att = 0;
  size_t off_hb = 0, off_hb2 = 0, off_logits = 0, off_logit_row = 0;
  size_t off_inv_freq = 0, off_rope_cos = 0, off_rope_sin = 0, off_scores = 0;
  size_t off_linear = 0, linear_bytes = 0;
  size_t off_sample_val = 0, off_sample_idx = 0;
  size_t off_tok_work = 0, tok_work_bytes = 0;
  size_t off_text = 0, text_bytes = 0;
  size_t off_batch_tok = 0, off_batch_pos = 0, off_batch_seq = 0, off_batch_logits = 0;
  size_t off_requests = 0, off_req_ids = 0, off_req_hold = 0, hold_bytes = 0, off_slot_owner = 0;
  size_t kv_bytes = 0;  // both caches, with the u8 cache's params
  size_t total = 0;
};

// Validates params (n_ctx 0 -> the model's max_context; larger than max_context is an error: RoPE
// models degrade past their trained length) and computes the plan with overflow checks.
Status plan_context(const Model& m, const ember_context_params& params, ContextPlan* plan);

struct Context {
  const Model* model = nullptr;
  ContextPlan plan;
  uint8_t* base = nullptr;  // the block (the Context itself lives at its start)
  bool owns_block = false;
  ThreadPool pool;  // the context's worker threads (memory outside the block: pthreadpool's)
  LinearExecutor linear;
  XnnpackLinear xnnpack;  // use_xnnpack: f32 weights' XNNPACK operators (memory outside the block)

  // Buffers (shape comments in floats unless said). B = n_batch_max, S = n_seq_max, T = n_ctx.
  // The KV cache in plan.kv_type's elements (float, f16 bits or u8 q): a head's keys contiguous.
  uint8_t* k_cache = nullptr;       // (S, layers, kv_heads, T, head_dim) elements
  uint8_t* v_cache = nullptr;       // (S, layers, kv_heads, T, head_dim)
  uint16_t* k_params = nullptr;     // u8 only: (S, layers, kv_heads, {T scales, T mins}) f16
  uint16_t* v_params = nullptr;     // u8 only: (S, layers, kv_heads, {T scales, T mins}) f16
  uint32_t* seq_len = nullptr;      // (S) cached positions per slot
  uint32_t* seq_pending = nullptr;  // (S) scratch for batch validation
  // What each slot holds, kept after its request finishes so that a later prompt starting with
  // the same ids reuses them: the id at each cached position, how many leading positions equal a
  // cold computation of those ids (a context shift cuts it to its n_keep), and when it was last
  // used (a new request takes the least recently used free slot that shares nothing).
  int32_t* slot_ids = nullptr;      // (S, T)
  uint32_t* slot_valid = nullptr;   // (S) <= seq_len
  uint64_t* slot_stamp = nullptr;   // (S)
  float* x = nullptr;               // (B, dim) residual stream
  float* xb = nullptr;              // (B, dim) normed input / rows gathered for the output head
  float* xb2 = nullptr;             // (B, dim) projection output
  float* q = nullptr;               // (B, q_dim)
  float* k = nullptr;               // (B, kv_dim)
  float* v = nullptr;               // (B, kv_dim)
  float* att = nullptr;             // (B, q_dim) attention output
  float* hb = nullptr;              // (B, ffn)
  float* hb2 = nullptr;             // (B, ffn)
  float* logits = nullptr;          // (B, vocab), rows in the order of logit_row
  int32_t* logit_row = nullptr;     // (B) batch token -> row of `logits`, -1 = none
  float* inv_freq = nullptr;        // (head_dim / 2) RoPE frequencies after scaling
  float* rope_cos = nullptr;        // (B, head_dim / 2)
  float* rope_sin = nullptr;        // (B, head_dim / 2)
  float* scores = nullptr;          // (num_heads, T) attention scores
  float* sample_val = nullptr;      // (vocab) sampler scratch
  int32_t* sample_idx = nullptr;    // (vocab)
  void* tok_work = nullptr;         // tokenizer.work_bytes(n_prompt_bytes_max)
  char* text = nullptr;             // detokenizer output for one token (text_bytes)
  int32_t* batch_tok = nullptr;     // (B) a batch built by ember_step: tokens,
  int32_t* batch_pos = nullptr;     // (B) positions,
  int32_t* batch_seq = nullptr;     // (B) slots,
  uint8_t* batch_logits = nullptr;  // (B) which tokens want logits
  Request* requests = nullptr;      // (R) request records, R = plan.n_requests
  int32_t* req_ids = nullptr;       // (R, T + 1) each record's prompt and generated ids
  char* req_hold = nullptr;         // (R, hold_bytes) each record's held-back text
  int32_t* slot_owner = nullptr;    // (S) the record that holds a slot, -1 = free
  uint64_t next_request_id = 1, next_order = 0, n_steps = 0;
  uint32_t n_last_batch = 0;  // tokens of the last ember_decode
};

// Where slot `seq`'s rows of KV head `kvh` in `layer` begin, in elements of k_cache / v_cache:
// the cache is (S, layers, kv_heads, T, head_dim), a head's keys (and values) one after the other.
inline size_t kv_head_offset(const Context* ctx, size_t seq, size_t layer, size_t kvh) {
  const ModelConfig& c = ctx->model->config;
  return ((seq * c.num_layers + layer) * c.num_kv_heads + kvh) * ctx->plan.n_ctx * c.head_dim;
}

// The u8 cache's params of (seq, layer, kvh) in k_params / v_params: T scales, then T mins.
inline size_t kv_params_offset(const Context* ctx, size_t seq, size_t layer, size_t kvh) {
  const ModelConfig& c = ctx->model->config;
  return ((seq * c.num_layers + layer) * c.num_kv_heads + kvh) * 2 * ctx->plan.n_ctx;
}

// Builds a context in `block` (plan.total bytes, 64-aligned).
Status init_context(const Model& m, const ContextPlan& plan, uint8_t* block, Context** out);
void destroy_context(Context* ctx);

}  // namespace ember

struct ember_context : ember::Context {};

#endif  // EMBER_SRC_CONTEXT_H_
