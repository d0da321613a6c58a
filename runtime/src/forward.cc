// Llama forward pass, as Hugging Face's LlamaForCausalLM computes it: RMSNorm, q/k/v projections,
// RoPE in rotate_half layout (weights used as stored), grouped-query attention over the slot's
// cache, o_proj, SwiGLU MLP, final norm, output head. Matmuls go through the LinearExecutor, float
// ops through the active kernel table; RoPE and the attention loop are plain C++ here.
//
// Threads: q/k/v (and gate/up) share one quantized input and one pool dispatch; attention is one
// dispatch per layer (work item = query head, looping over the batch's tokens) — with u8 q/k/v and
// KV heads that spread evenly over the threads, q/k/v rows, RoPE, KV append and attention are ONE
// dispatch (work item = KV head and its query heads); the per-token
// element-wise work of a prefill (embedding, norms, bias, RoPE + KV append, SiLU, residual adds) is
// split across the pool by token ranges. Every float is computed by the same operations in the
// same order whatever the thread count, so results are bit-identical.
#include "forward.h"

#include <cmath>
#include <cstring>

#include "core/half.h"
#include "core/zero_one.h"
#include "kernels/kernels.h"

namespace ember {
namespace {

void add_bias(float* y, const float* b, size_t m, size_t n) {
  if (!b) return;
  for (size_t i = 0; i < m; ++i) {
    float* row = y + i * n;
    for (size_t j = 0; j < n; ++j) row[j] += b[j];
  }
}

// rotate_half RoPE on `n_heads` heads of one token: pairs (x[j], x[j + half]).
void rope(float* x, uint32_t n_heads, uint32_t head_dim, const float* cos, const float* sin) {
  const uint32_t half = head_dim / 2;
  for (uint32_t h = 0; h < n_heads; ++h) {
    float* v = x + size_t{h} * head_dim;
    for (uint32_t j = 0; j < half; ++j) {
      const float x0 = v[j], x1 = v[j + half];
      v[j] = x0 * cos[j] - x1 * sin[j];
      v[j + half] = x1 * cos[j] + x0 * sin[j];
    }
  }
}

// The cache row of KV head `kvh` at position `pos` of sequence slot `seq`, layer `layer`, in
// elements (context.h: a head's keys and values lie one after the other, so attention streams them
// front to back).
size_t kv_offset(const Context* ctx, size_t seq, size_t layer, size_t kvh, size_t pos) {
  return kv_head_offset(ctx, seq, layer, kvh) + pos * ctx->model->config.head_dim;
}

// One cached row (a key: `key`, or a value) of KV head `kvh` at position `pos` of slot `seq`.
struct KvRow {
  size_t off;  // of the row's first element in k_cache / v_cache (elements)
  size_t p;    // u8: of its scale in k_params / v_params (its min is T further)
};
KvRow kv_row(const Context* ctx, size_t seq, size_t layer, size_t kvh, size_t pos) {
  return {kv_offset(ctx, seq, layer, kvh, pos), kv_params_offset(ctx, seq, layer, kvh) + pos};
}

// Writes hd floats into a cached row in the cache's type: copied (f32), rounded (f16) or
// quantized (u8).
void kv_put(Context* ctx, bool key, KvRow r, const float* x) {
  const size_t hd = ctx->model->config.head_dim, T = ctx->plan.n_ctx;
  uint8_t* cache = key ? ctx->k_cache : ctx->v_cache;
  switch (ctx->plan.kv_type) {
    case EMBER_KV_F16: {
      uint16_t* c = reinterpret_cast<uint16_t*>(cache) + r.off;
      for (size_t d = 0; d < hd; ++d) c[d] = f32_to_f16(x[d]);
      break;
    }
    case EMBER_KV_U8: {
      uint16_t* params = key ? ctx->k_params : ctx->v_params;
      zero_one_quantize_kv_row(x, hd, cache + r.off, params + r.p, params + r.p + T);
      break;
    }
    default:
      std::memcpy(reinterpret_cast<float*>(cache) + r.off, x, hd * sizeof(float));
      break;
  }
}

// Reads a cached row as hd floats (f16 widened, u8 dequantized: min + q * scale).
void kv_get(const Context* ctx, bool key, KvRow r, float* x) {
  const size_t hd = ctx->model->config.head_dim, T = ctx->plan.n_ctx;
  const uint8_t* cache = key ? ctx->k_cache : ctx->v_cache;
  switch (ctx->plan.kv_type) {
    case EMBER_KV_F16: {
      const uint16_t* c = reinterpret_cast<const uint16_t*>(cache) + r.off;
      for (size_t d = 0; d < hd; ++d) x[d] = f16_to_f32(c[d]);
      break;
    }
    case EMBER_KV_U8: {
      const uint16_t* params = key ? ctx->k_params : ctx->v_params;
      const ZeroOneParams zp{f16_to_f32(params[r.p]), f16_to_f32(params[r.p + T])};
      for (size_t d = 0; d < hd; ++d) x[d] = zero_one_dequantize(cache[r.off + d], zp);
      break;
    }
    default:
      std::memcpy(x, reinterpret_cast<const float*>(cache) + r.off, hd * sizeof(float));
      break;
  }
}

// Copies a cached row as stored (and its u8 params) from one position to another.
void kv_copy(Context* ctx, bool key, KvRow from, KvRow to) {
  const size_t hd = ctx->model->config.head_dim, T = ctx->plan.n_ctx;
  const size_t eb = ctx->plan.kv_elem_bytes;
  uint8_t* cache = key ? ctx->k_cache : ctx->v_cache;
  std::memmove(cache + to.off * eb, cache + from.off * eb, hd * eb);
  if (ctx->plan.kv_type == EMBER_KV_U8) {
    uint16_t* params = key ? ctx->k_params : ctx->v_params;
    params[to.p] = params[from.p];
    params[to.p + T] = params[from.p + T];
  }
}

// Appends one token's key and value of KV head `kvh` (hd floats each): converted once, here.
void kv_store(Context* ctx, size_t seq, size_t layer, size_t kvh, size_t pos, const float* k,
              const float* v) {
  const KvRow r = kv_row(ctx, seq, layer, kvh, pos);
  kv_put(ctx, true, r, k);
  kv_put(ctx, false, r, v);
}

// Query heads [h0, h0 + nh) of batch token `token` (sequence slot `seq`, attending to positions
// 0..n_keys-1 of the slot's cache), all of one KV head: scores into ctx->scores + h * T, output
// into ctx->att.
void attention_heads(Context* ctx, uint32_t layer, uint32_t token, uint32_t seq, uint32_t n_keys,
                     size_t h0, size_t nh) {
  const ModelConfig& c = ctx->model->config;
  const uint32_t hd = c.head_dim, T = ctx->plan.n_ctx;
  const size_t kvh = h0 / (c.num_heads / c.num_kv_heads);
  const float* q = ctx->q + size_t{token} * c.q_dim + h0 * hd;
  const size_t off = kv_offset(ctx, seq, layer, kvh, 0);
  float* scores = ctx->scores + h0 * T;
  float* out = ctx->att + size_t{token} * c.q_dim + h0 * hd;
  // llama2.c's order, so that the f32 path reproduces run.c's logits: the kernel sums
  // q.k sequentially over run.c's head layout (RoPE pairs interleaved), divides by sqrt(head_dim),
  // softmaxes, then sums p_t * v_t in increasing t (kernels.h, AttentionFn). The heads of a group
  // share the kernel's reads of K and V.
  const kernels::KernelTable& kt = kernels::active();
  switch (ctx->plan.kv_type) {
    case EMBER_KV_F16:
      kt.attention_f16(q, nh, reinterpret_cast<const uint16_t*>(ctx->k_cache) + off,
                       reinterpret_cast<const uint16_t*>(ctx->v_cache) + off, hd, n_keys, hd,
                       scores, T, out);
      break;
    case EMBER_KV_U8: {
      const size_t p = kv_params_offset(ctx, seq, layer, kvh);
      const kernels::KvRowsU8 k{ctx->k_cache + off, ctx->k_params + p, ctx->k_params + p + T, hd};
      const kernels::KvRowsU8 v{ctx->v_cache + off, ctx->v_params + p, ctx->v_params + p + T, hd};
      kt.attention_u8(q, nh, k, v, hd, n_keys, scores, T, out);
      break;
    }
    default:
      kt.attention(q, nh, reinterpret_cast<const float*>(ctx->k_cache) + off,
                   reinterpret_cast<const float*>(ctx->v_cache) + off, hd, n_keys, hd, scores, T,
                   out);
      break;
  }
}

// Everything the per-layer pool jobs below read: the batch, the layer, the kernels.
struct LayerJob {
  Context* ctx;
  const ember_batch* b;
  const kernels::KernelTable* kt;
  const LayerWeights* w;
  uint32_t layer;
  size_t n;           // batch tokens
  const float* norm;  // norm weight of the next block (residual_norm)
  const float* bias;  // bias of the projection in xb2 (residual_norm), may be null
};

// Work item = query head h: every token of the batch, in batch order (each token sees positions
// 0..pos of its slot, all of them already in the cache: causal within the batch too).
void attention_tokens(void* arg, size_t h) {
  const LayerJob& job = *static_cast<const LayerJob*>(arg);
  for (size_t i = 0; i < job.n; ++i) {
    attention_heads(job.ctx, job.layer, static_cast<uint32_t>(i),
                    static_cast<uint32_t>(job.b->seq_id[i]),
                    static_cast<uint32_t>(job.b->pos[i]) + 1, h, 1);
  }
}

// Work item = KV head g and its group of query heads, over every token of the batch: the rows of
// q / k / v that belong to the group (on the input prepared by LinearExecutor::prepare), their
// biases, RoPE, K/V appended to the cache, then attention of the group's query heads together.
// The same operations on the same values as linear_multi + rope_append_tokens + attention_tokens,
// one dispatch instead of three (the group's K/V are written and read by this item only).
void kv_group_tokens(void* arg, size_t g) {
  const LayerJob& job = *static_cast<const LayerJob*>(arg);
  Context* ctx = job.ctx;
  const ModelConfig& c = ctx->model->config;
  const LayerWeights& w = *job.w;
  const LinearExecutor& lin = ctx->linear;
  const size_t hd = c.head_dim, r = c.num_heads / c.num_kv_heads;
  const size_t qd = c.q_dim, kvd = c.kv_dim, half = hd / 2;
  const size_t q0 = g * r * hd, k0 = g * hd;  // first q / k / v row of the group
  lin.rows(w.wq, ctx->q, q0, q0 + r * hd);
  lin.rows(w.wk, ctx->k, k0, k0 + hd);
  lin.rows(w.wv, ctx->v, k0, k0 + hd);
  for (size_t i = 0; i < job.n; ++i) {
    float* q = ctx->q + i * qd + q0;   // (r, hd)
    float* k = ctx->k + i * kvd + k0;  // (hd)
    float* v = ctx->v + i * kvd + k0;  // (hd)
    if (w.bq) add_bias(q, w.bq + q0, 1, r * hd);
    if (w.bk) add_bias(k, w.bk + k0, 1, hd);
    if (w.bv) add_bias(v, w.bv + k0, 1, hd);
    const float* cs = ctx->rope_cos + i * half;
    const float* sn = ctx->rope_sin + i * half;
    rope(q, static_cast<uint32_t>(r), c.head_dim, cs, sn);
    rope(k, 1, c.head_dim, cs, sn);
    kv_store(ctx, size_t(job.b->seq_id[i]), job.layer, g, size_t(job.b->pos[i]), k, v);
  }
  for (size_t i = 0; i < job.n; ++i) {
    attention_heads(ctx, job.layer, static_cast<uint32_t>(i),
                    static_cast<uint32_t>(job.b->seq_id[i]),
                    static_cast<uint32_t>(job.b->pos[i]) + 1, g * r, r);
  }
}

// kv_group_tokens splits the work in num_kv_heads equal items: used when they spread evenly over
// the threads (or are many), otherwise q/k/v rows and query heads are split separately.
bool kv_groups_balance(uint32_t kv_heads, uint32_t threads) {
  return threads <= 1 || kv_heads % threads == 0 || kv_heads >= 4 * threads;
}

// Tokens [i0, i0 + count): embedding row and RoPE angles.
void embed_tokens(void* arg, size_t i0, size_t count) {
  const LayerJob& job = *static_cast<const LayerJob*>(arg);
  Context* ctx = job.ctx;
  const Model& m = *ctx->model;
  const size_t dim = m.config.hidden_size, half = m.config.head_dim / 2;
  for (size_t i = i0; i < i0 + count; ++i) {
    dequantize_row(m.embed, static_cast<size_t>(job.b->token[i]), ctx->x + i * dim);
    const float pos = static_cast<float>(job.b->pos[i]);
    for (size_t j = 0; j < half; ++j) {
      const float a = pos * ctx->inv_freq[j];
      ctx->rope_cos[i * half + j] = std::cos(a);
      ctx->rope_sin[i * half + j] = std::sin(a);
    }
  }
}

// Tokens [i0, i0 + count): if job.bias / add: xb2 += bias, x += xb2 (the residual of the projection
// in xb2); then xb = rmsnorm(x) * job.norm when job.norm is set.
template <bool kAdd>
void residual_norm_tokens(void* arg, size_t i0, size_t count) {
  const LayerJob& job = *static_cast<const LayerJob*>(arg);
  Context* ctx = job.ctx;
  const ModelConfig& c = ctx->model->config;
  const size_t dim = c.hidden_size;
  for (size_t i = i0; i < i0 + count; ++i) {
    float* x = ctx->x + i * dim;
    if (kAdd) {
      float* p = ctx->xb2 + i * dim;
      add_bias(p, job.bias, 1, dim);
      for (size_t j = 0; j < dim; ++j) x[j] += p[j];
    }
    if (job.norm) job.kt->rmsnorm(x, job.norm, dim, c.norm_eps, ctx->xb + i * dim);
  }
}

// Tokens [i0, i0 + count): q/k/v biases, RoPE on q and k, K/V appended at (seq, layer, pos).
void rope_append_tokens(void* arg, size_t i0, size_t count) {
  const LayerJob& job = *static_cast<const LayerJob*>(arg);
  Context* ctx = job.ctx;
  const ModelConfig& c = ctx->model->config;
  const LayerWeights& w = *job.w;
  const size_t qd = c.q_dim, kvd = c.kv_dim, half = c.head_dim / 2, hd = c.head_dim;
  for (size_t i = i0; i < i0 + count; ++i) {
    float* q = ctx->q + i * qd;
    float* k = ctx->k + i * kvd;
    float* v = ctx->v + i * kvd;
    add_bias(q, w.bq, 1, qd);
    add_bias(k, w.bk, 1, kvd);
    add_bias(v, w.bv, 1, kvd);
    const float* cs = ctx->rope_cos + i * half;
    const float* sn = ctx->rope_sin + i * half;
    rope(q, c.num_heads, c.head_dim, cs, sn);
    rope(k, c.num_kv_heads, c.head_dim, cs, sn);
    for (size_t h = 0; h < c.num_kv_heads; ++h)
      kv_store(ctx, size_t(job.b->seq_id[i]), job.layer, h, size_t(job.b->pos[i]), k + h * hd,
               v + h * hd);
  }
}

// Tokens [i0, i0 + count): gate/up biases, hb = silu(hb) * hb2.
void silu_tokens(void* arg, size_t i0, size_t count) {
  const LayerJob& job = *static_cast<const LayerJob*>(arg);
  Context* ctx = job.ctx;
  const size_t ffn = ctx->model->config.intermediate_size;
  float* g = ctx->hb + i0 * ffn;
  float* u = ctx->hb2 + i0 * ffn;
  add_bias(g, job.w->b_gate, count, ffn);
  add_bias(u, job.w->b_up, count, ffn);
  job.kt->silu_mul(g, u, count * ffn, g);
}

// Batches of at least this many tokens (and ThreadPool::kMinParallelElements values of the
// residual stream) split their element-wise work across the pool; smaller ones (decode) run it on
// the calling thread.
constexpr size_t kMinParallelTokens = 4;

void for_tokens(const ThreadPool& pool, const LayerJob& job,
                void (*fn)(void* arg, size_t i0, size_t count)) {
  LayerJob* arg = const_cast<LayerJob*>(&job);
  const size_t dim = job.ctx->model->config.hidden_size;
  if (job.n >= kMinParallelTokens && job.n * dim >= ThreadPool::kMinParallelElements &&
      pool.threads() > 1) {
    pool.parallel_ranges(job.n, 0, fn, arg);
  } else {
    fn(arg, 0, job.n);
  }
}

Status validate(Context* ctx, const ember_batch& b) {
  const ContextPlan& p = ctx->plan;
  const uint32_t vocab = ctx->model->config.vocab_size;
  if (b.n_tokens == 0) return set_error(Status::kInvalidArgument, "batch has no tokens");
  if (b.n_tokens > p.n_batch_max) {
    return set_error(Status::kInvalidArgument, "batch of %u tokens exceeds n_batch_max %u",
                     b.n_tokens, p.n_batch_max);
  }
  if (!b.token || !b.pos || !b.seq_id) {
    return set_error(Status::kInvalidArgument, "batch.%s is NULL",
                     !b.token ? "token" : (!b.pos ? "pos" : "seq_id"));
  }
  for (uint32_t s = 0; s < p.n_seq_max; ++s) ctx->seq_pending[s] = ctx->seq_len[s];
  for (uint32_t i = 0; i < b.n_tokens; ++i) {
    if (b.token[i] < 0 || static_cast<uint32_t>(b.token[i]) >= vocab) {
      return set_error(Status::kInvalidArgument, "batch token %u: id %d is out of range [0, %u)", i,
                       b.token[i], vocab);
    }
    if (b.seq_id[i] < 0 || static_cast<uint32_t>(b.seq_id[i]) >= p.n_seq_max) {
      return set_error(Status::kInvalidArgument,
                       "batch token %u: seq_id %d is out of range [0, %u)", i, b.seq_id[i],
                       p.n_seq_max);
    }
    const uint32_t s = static_cast<uint32_t>(b.seq_id[i]);
    const uint32_t expect = ctx->seq_pending[s];
    if (expect >= p.n_ctx) {
      return set_error(Status::kContextFull,
                       "batch token %u: sequence slot %u is full (n_ctx %u positions)", i, s,
                       p.n_ctx);
    }
    if (b.pos[i] < 0 || static_cast<uint32_t>(b.pos[i]) != expect) {
      return set_error(Status::kInvalidArgument,
                       "batch token %u: pos %d, but sequence slot %u continues at position %u", i,
                       b.pos[i], s, expect);
    }
    ctx->seq_pending[s] = expect + 1;
  }
  return Status::kOk;
}

}  // namespace

// fn(job, i) for i in [0, n): over the pool when the dispatch pays (`work` multiply-adds).
void for_items(const ThreadPool& pool, size_t n, size_t work, void (*fn)(void* arg, size_t i),
               LayerJob* job) {
  if (pool.threads() > 1 && work >= ThreadPool::kMinParallelWork) {
    pool.parallel_for(n, fn, job);
  } else {
    for (size_t i = 0; i < n; ++i) fn(job, i);
  }
}

Status decode(Context* ctx, const ember_batch& b) {
  EMBER_RETURN_IF_ERROR(validate(ctx, b));
  const Model& m = *ctx->model;
  const ModelConfig& c = m.config;
  const kernels::KernelTable& kt = kernels::active();
  const size_t n = b.n_tokens, dim = c.hidden_size;
  LinearExecutor& lin = ctx->linear;
  const ThreadPool& pool = ctx->pool;
  LayerJob job{ctx, &b, &kt, nullptr, 0, n, nullptr, nullptr};
  // Multiply-adds of attention (q.k and p.v over every key of every token) and of q/k/v.
  size_t keys = 0;
  for (size_t i = 0; i < n; ++i) keys += static_cast<size_t>(b.pos[i]) + 1;
  const size_t attn_work = keys * c.num_heads * c.head_dim * 2;
  const size_t qkv_work = n * (size_t{c.q_dim} + 2 * size_t{c.kv_dim}) * dim;

  // Embedding rows and the RoPE angles of each token.
  for_tokens(pool, job, embed_tokens);

  for (uint32_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights& w = m.layers[l];
    job.w = &w;
    job.layer = l;
    // Attention block: xb = rmsnorm(x) (after the previous layer's MLP residual, fused here).
    job.norm = w.attn_norm;
    if (l == 0) {
      for_tokens(pool, job, residual_norm_tokens<false>);
    } else {
      job.bias = m.layers[l - 1].b_down;
      for_tokens(pool, job, residual_norm_tokens<true>);
    }
    const WeightRef* qkv[3] = {&w.wq, &w.wk, &w.wv};
    if (kv_groups_balance(c.num_kv_heads, pool.threads()) && lin.prepare(qkv, 3, ctx->xb, n)) {
      // q/k/v rows, RoPE, KV append and attention of each KV head's group in one dispatch.
      for_items(pool, c.num_kv_heads, qkv_work + attn_work, kv_group_tokens, &job);
    } else {
      float* const out[3] = {ctx->q, ctx->k, ctx->v};
      lin.linear_multi(qkv, out, 3, ctx->xb, n);
      for_tokens(pool, job, rope_append_tokens);
      for_items(pool, c.num_heads, attn_work, attention_tokens, &job);
    }
    lin.linear(w.wo, ctx->att, n, ctx->xb2);

    // MLP block: x += xb2 + bo; xb = rmsnorm(x).
    job.norm = w.ffn_norm;
    job.bias = w.bo;
    for_tokens(pool, job, residual_norm_tokens<true>);
    {
      const WeightRef* gu[2] = {&w.w_gate, &w.w_up};
      float* const out[2] = {ctx->hb, ctx->hb2};
      lin.linear_multi(gu, out, 2, ctx->xb, n);
    }
    for_tokens(pool, job, silu_tokens);
    lin.linear(w.w_down, ctx->hb, n, ctx->xb2);
  }
  // The last layer's MLP residual (x += xb2 + b_down).
  job.norm = nullptr;
  job.bias = m.layers[c.num_layers - 1].b_down;
  for_tokens(pool, job, residual_norm_tokens<true>);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t s = static_cast<uint32_t>(b.seq_id[i]), pos = static_cast<uint32_t>(b.pos[i]);
    ctx->seq_len[s] = pos + 1;
    ctx->slot_ids[size_t{s} * ctx->plan.n_ctx + pos] = b.token[i];
    if (ctx->slot_valid[s] == pos) ctx->slot_valid[s] = pos + 1;  // (else a shift came before)
  }

  // Final norm and output head, only for the tokens that want logits (gathered into xb).
  size_t n_out = 0;
  for (size_t i = 0; i < n; ++i) {
    const bool want = b.logits ? b.logits[i] != 0 : i + 1 == n;
    ctx->logit_row[i] = want ? static_cast<int32_t>(n_out) : -1;
    if (want) {
      kt.rmsnorm(ctx->x + i * dim, m.final_norm, dim, c.norm_eps, ctx->xb + n_out * dim);
      ++n_out;
    }
  }
  for (size_t i = n; i < ctx->plan.n_batch_max; ++i) ctx->logit_row[i] = -1;
  if (n_out > 0) lin.linear(m.output, ctx->xb, n_out, ctx->logits);
  ctx->n_last_batch = static_cast<uint32_t>(n);
  return Status::kOk;
}

void kv_shift(Context* ctx, uint32_t seq, uint32_t n_keep, uint32_t n_discard) {
  const ModelConfig& c = ctx->model->config;
  const uint32_t len = ctx->seq_len[seq];
  const size_t half = c.head_dim / 2;
  // RoPE composes: a key rotated for position p, rotated again by -n_discard positions, is the
  // key of position p - n_discard (up to rounding). The angles are computed as embed_tokens does.
  float* cs = ctx->rope_cos;  // (half) scratch, free outside decode
  float* sn = ctx->rope_sin;
  const float delta = -static_cast<float>(n_discard);
  for (size_t j = 0; j < half; ++j) {
    const float a = delta * ctx->inv_freq[j];
    cs[j] = std::cos(a);
    sn[j] = std::sin(a);
  }
  float* row = ctx->k;  // (head_dim) scratch
  for (uint32_t l = 0; l < c.num_layers; ++l) {
    for (uint32_t h = 0; h < c.num_kv_heads; ++h) {
      // Increasing positions: each row is written below every row still to be read.
      for (uint32_t pos = n_keep + n_discard; pos < len; ++pos) {
        const KvRow from = kv_row(ctx, seq, l, h, pos),
                    to = kv_row(ctx, seq, l, h, pos - n_discard);
        kv_get(ctx, true, from, row);
        rope(row, 1, c.head_dim, cs, sn);
        kv_put(ctx, true, to, row);
        kv_copy(ctx, false, from, to);
      }
    }
  }
  int32_t* ids = ctx->slot_ids + size_t{seq} * ctx->plan.n_ctx;
  std::memmove(ids + n_keep, ids + n_keep + n_discard,
               (len - n_keep - n_discard) * sizeof(int32_t));
  ctx->seq_len[seq] = len - n_discard;
  // The moved positions attended to the dropped ones: only the kept ones equal a cold computation.
  if (ctx->slot_valid[seq] > n_keep) ctx->slot_valid[seq] = n_keep;
}

}  // namespace ember
