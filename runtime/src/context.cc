#include "context.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>

#include "core/format.h"
#include "ember_generated.h"
#include "planner.h"

namespace ember {
namespace {

void compute_inv_freq(const ModelConfig& c, float* inv_freq) {
  const uint32_t half = c.head_dim / 2;
  for (uint32_t i = 0; i < half; ++i) {
    // As Hugging Face: 1 / theta^(2i / head_dim), in float32.
    float f =
        1.0f / std::pow(c.rope_theta, static_cast<float>(2 * i) / static_cast<float>(c.head_dim));
    if (c.rope_scaling_type == static_cast<uint8_t>(fb::RopeScalingType::LINEAR)) {
      f /= c.rope_factor;
    } else if (c.rope_scaling_type == static_cast<uint8_t>(fb::RopeScalingType::LLAMA3)) {
      // transformers' _compute_llama3_parameters.
      const float old_ctx = static_cast<float>(c.rope_original_max_position);
      const float low_wavelen = old_ctx / c.rope_low_freq_factor;
      const float high_wavelen = old_ctx / c.rope_high_freq_factor;
      const float wavelen = 2.0f * 3.14159265358979f / f;
      if (wavelen > low_wavelen) {
        f = f / c.rope_factor;
      } else if (wavelen >= high_wavelen) {
        const float smooth = (old_ctx / wavelen - c.rope_low_freq_factor) /
                             (c.rope_high_freq_factor - c.rope_low_freq_factor);
        f = (1.0f - smooth) * f / c.rope_factor + smooth * f;
      }
    }
    inv_freq[i] = f;
  }
}

}  // namespace

Status plan_context(const Model& m, const ember_context_params& params, ContextPlan* out) {
  if (!m.has_config) {
    return set_error(Status::kInvalidArgument,
                     "this model file holds only a tokenizer (no config, no tensors): it can "
                     "tokenize but cannot run; a context needs a full model");
  }
  const ModelConfig& c = m.config;
  ContextPlan p;
  p.n_ctx = params.n_ctx == 0 ? c.max_context : params.n_ctx;
  if (p.n_ctx > c.max_context) {
    return set_error(Status::kInvalidArgument,
                     "n_ctx %u exceeds the model's max_context %u (positions past the trained "
                     "length are not supported)",
                     p.n_ctx, c.max_context);
  }
  if (params.n_seq_max == 0 || params.n_seq_max > 4096) {
    return set_error(Status::kInvalidArgument, "n_seq_max %u (must be in 1..4096)",
                     params.n_seq_max);
  }
  if (params.n_batch_max == 0 || params.n_batch_max > 65536) {
    return set_error(Status::kInvalidArgument, "n_batch_max %u (must be in 1..65536)",
                     params.n_batch_max);
  }
  if (params.n_threads > 256) {
    return set_error(Status::kInvalidArgument, "n_threads %u (must be <= 256)", params.n_threads);
  }
  if (params.n_queue_max > 65536) {
    return set_error(Status::kInvalidArgument, "n_queue_max %u (must be <= 65536)",
                     params.n_queue_max);
  }
  p.n_seq_max = params.n_seq_max;
  p.n_batch_max = params.n_batch_max;
  p.n_requests = params.n_seq_max + params.n_queue_max;
  p.n_threads = params.n_threads;
  if (params.use_xnnpack > 1) {
    return set_error(Status::kInvalidArgument, "use_xnnpack %u (must be 0 or 1)",
                     static_cast<unsigned>(params.use_xnnpack));
  }
  if (params.use_xnnpack) EMBER_RETURN_IF_ERROR(XnnpackLinear::check_available());
  p.use_xnnpack = params.use_xnnpack != 0;
  if (params.kv_type != EMBER_KV_F32 && params.kv_type != EMBER_KV_F16 &&
      params.kv_type != EMBER_KV_U8) {
    return set_error(Status::kInvalidArgument, "kv_type %d (must be EMBER_KV_F32, _F16 or _U8)",
                     static_cast<int>(params.kv_type));
  }
  p.kv_type = params.kv_type;
  p.kv_elem_bytes = p.kv_type == EMBER_KV_F32 ? 4 : (p.kv_type == EMBER_KV_F16 ? 2 : 1);
  p.n_prompt_bytes_max =
      params.n_prompt_bytes_max == 0 ? size_t{16} * p.n_ctx : params.n_prompt_bytes_max;

  const unsigned long long B = p.n_batch_max, S = p.n_seq_max, T = p.n_ctx;
  const unsigned long long dim = c.hidden_size, ffn = c.intermediate_size, V = c.vocab_size;
  Planner pl(static_cast<size_t>(align_up(sizeof(ember_context), kWeightAlignment)));
  unsigned long long kv = 0;
  bool ok = checked_mul(S, c.num_layers, &kv) && checked_mul(kv, T, &kv) &&
            checked_mul(kv, c.kv_dim, &kv);
  if (!ok) return set_error(Status::kInvalidArgument, "KV cache size overflows");
  // Keys, values, and for u8 one f16 scale and min per cached row (kv / head_dim rows).
  const unsigned long long kv_params = p.kv_type == EMBER_KV_U8 ? kv / c.head_dim * 2 : 0;
  const size_t before_kv = pl.total();
  pl.add(kv, p.kv_elem_bytes, &p.off_k_cache);
  pl.add(kv, p.kv_elem_bytes, &p.off_v_cache);
  if (kv_params > 0) {
    pl.add(kv_params, sizeof(uint16_t), &p.off_k_params);
    pl.add(kv_params, sizeof(uint16_t), &p.off_v_params);
  }
  p.kv_bytes = pl.total() - before_kv;
  pl.add(S, sizeof(uint32_t), &p.off_seq_len);
  pl.add(S, sizeof(uint32_t), &p.off_seq_pending);
  unsigned long long st = 0;
  if (!checked_mul(S, T, &st)) return set_error(Status::kInvalidArgument, "slot ids overflow");
  pl.add(st, sizeof(int32_t), &p.off_slot_ids);
  pl.add(S, sizeof(uint32_t), &p.off_slot_valid);
  pl.add(S, sizeof(uint64_t), &p.off_slot_stamp);
  pl.add(B * dim, sizeof(float), &p.off_x);
  pl.add(B * dim, sizeof(float), &p.off_xb);
  pl.add(B * dim, sizeof(float), &p.off_xb2);
  pl.add(B * c.q_dim, sizeof(float), &p.off_q);
  pl.add(B * c.kv_dim, sizeof(float), &p.off_k);
  pl.add(B * c.kv_dim, sizeof(float), &p.off_v);
  pl.add(B * c.q_dim, sizeof(float), &p.off_att);
  pl.add(B * ffn, sizeof(float), &p.off_hb);
  pl.add(B * ffn, sizeof(float), &p.off_hb2);
  unsigned long long bv = 0;
  if (!checked_mul(B, V, &bv)) return set_error(Status::kInvalidArgument, "logits size overflows");
  pl.add(bv, sizeof(float), &p.off_logits);
  pl.add(B, sizeof(int32_t), &p.off_logit_row);
  pl.add(c.head_dim / 2, sizeof(float), &p.off_inv_freq);
  pl.add(B * (c.head_dim / 2), sizeof(float), &p.off_rope_cos);
  pl.add(B * (c.head_dim / 2), sizeof(float), &p.off_rope_sin);
  pl.add(uint64_t{c.num_heads} * T, sizeof(float), &p.off_scores);
  // Activation quantization for the u8 matrices only: none for float ones (kept in float or all).
  p.linear_bytes = LinearExecutor::scratch_bytes(B, m.u8_k_max, m.max_groups, m.max_act_groups);
  pl.add(p.linear_bytes, 1, &p.off_linear);
  pl.add(V, sizeof(float), &p.off_sample_val);
  pl.add(V, sizeof(int32_t), &p.off_sample_idx);
  pl.add(B, sizeof(int32_t), &p.off_batch_tok);
  pl.add(B, sizeof(int32_t), &p.off_batch_pos);
  pl.add(B, sizeof(int32_t), &p.off_batch_seq);
  pl.add(B, 1, &p.off_batch_logits);
  pl.add(S, sizeof(int32_t), &p.off_slot_owner);
  if (m.tokenizer.loaded()) {
    p.tok_work_bytes = m.tokenizer.work_bytes(p.n_prompt_bytes_max);
    pl.add(p.tok_work_bytes, 1, &p.off_tok_work);
    p.text_bytes = 2 * m.max_piece_bytes + 64;
    pl.add(p.text_bytes, 1, &p.off_text);
  }
  // Request records: each holds its prompt and generated ids (at most n_ctx, plus the last token,
  // which needs no position) and its held-back text.
  const unsigned long long R = p.n_requests;
  p.hold_bytes = request_hold_bytes(p.text_bytes);
  pl.add(R, sizeof(Request), &p.off_requests);
  pl.add(R * (T + 1), sizeof(int32_t), &p.off_req_ids);
  pl.add(R * p.hold_bytes, 1, &p.off_req_hold);
  if (!pl.ok()) {
    return set_error(Status::kInvalidArgument,
                     "context size overflows (n_ctx %u, n_seq_max %u, n_batch_max %u)", p.n_ctx,
                     p.n_seq_max, p.n_batch_max);
  }
  p.total = pl.total();
  *out = p;
  return Status::kOk;
}

Status init_context(const Model& m, const ContextPlan& plan, uint8_t* block, Context** out) {
  std::memset(block, 0, align_up(sizeof(ember_context), kWeightAlignment));
  ember_context* ctx = new (block) ember_context();
  ctx->model = &m;
  ctx->plan = plan;
  ctx->base = block;
  auto f = [&](size_t off) { return reinterpret_cast<float*>(block + off); };
  ctx->k_cache = block + plan.off_k_cache;
  ctx->v_cache = block + plan.off_v_cache;
  if (plan.kv_type == EMBER_KV_U8) {
    ctx->k_params = reinterpret_cast<uint16_t*>(block + plan.off_k_params);
    ctx->v_params = reinterpret_cast<uint16_t*>(block + plan.off_v_params);
  }
  ctx->seq_len = reinterpret_cast<uint32_t*>(block + plan.off_seq_len);
  ctx->seq_pending = reinterpret_cast<uint32_t*>(block + plan.off_seq_pending);
  ctx->slot_ids = reinterpret_cast<int32_t*>(block + plan.off_slot_ids);
  ctx->slot_valid = reinterpret_cast<uint32_t*>(block + plan.off_slot_valid);
  ctx->slot_stamp = reinterpret_cast<uint64_t*>(block + plan.off_slot_stamp);
  ctx->x = f(plan.off_x);
  ctx->xb = f(plan.off_xb);
  ctx->xb2 = f(plan.off_xb2);
  ctx->q = f(plan.off_q);
  ctx->k = f(plan.off_k);
  ctx->v = f(plan.off_v);
  ctx->att = f(plan.off_att);
  ctx->hb = f(plan.off_hb);
  ctx->hb2 = f(plan.off_hb2);
  ctx->logits = f(plan.off_logits);
  ctx->logit_row = reinterpret_cast<int32_t*>(block + plan.off_logit_row);
  ctx->inv_freq = f(plan.off_inv_freq);
  ctx->rope_cos = f(plan.off_rope_cos);
  ctx->rope_sin = f(plan.off_rope_sin);
  ctx->scores = f(plan.off_scores);
  ctx->sample_val = f(plan.off_sample_val);
  ctx->sample_idx = reinterpret_cast<int32_t*>(block + plan.off_sample_idx);
  ctx->batch_tok = reinterpret_cast<int32_t*>(block + plan.off_batch_tok);
  ctx->batch_pos = reinterpret_cast<int32_t*>(block + plan.off_batch_pos);
  ctx->batch_seq = reinterpret_cast<int32_t*>(block + plan.off_batch_seq);
  ctx->batch_logits = block + plan.off_batch_logits;
  ctx->slot_owner = reinterpret_cast<int32_t*>(block + plan.off_slot_owner);
  if (m.tokenizer.loaded()) {
    ctx->tok_work = block + plan.off_tok_work;
    ctx->text = reinterpret_cast<char*>(block + plan.off_text);
  }
  ctx->requests = reinterpret_cast<Request*>(block + plan.off_requests);
  ctx->req_ids = reinterpret_cast<int32_t*>(block + plan.off_req_ids);
  ctx->req_hold = reinterpret_cast<char*>(block + plan.off_req_hold);
  init_requests(ctx);
  for (uint32_t s = 0; s < plan.n_seq_max; ++s) {
    ctx->seq_len[s] = 0;
    ctx->slot_valid[s] = 0;
    ctx->slot_stamp[s] = 0;
    ctx->slot_owner[s] = -1;
  }
  for (uint32_t i = 0; i < plan.n_batch_max; ++i) ctx->logit_row[i] = -1;
  compute_inv_freq(m.config, ctx->inv_freq);
  Status s = ctx->pool.init(plan.n_threads);
  if (s == Status::kOk) {
    s = ctx->linear.init(&ctx->pool, block + plan.off_linear, plan.linear_bytes, plan.n_batch_max,
                         m.u8_k_max, m.max_groups, m.max_act_groups);
  }
  if (s != Status::kOk) {
    ctx->~ember_context();
    return s;
  }
  if (plan.use_xnnpack) {
    const Status xs = ctx->xnnpack.init(m, ctx->pool.native());
    if (xs != Status::kOk) {
      ctx->~ember_context();
      return xs;
    }
    ctx->linear.set_xnnpack(&ctx->xnnpack);
  }
  *out = ctx;
  return Status::kOk;
}

void destroy_context(Context* ctx) {
  ember_context* c = static_cast<ember_context*>(ctx);
  c->~ember_context();
}

}  // namespace ember
