// Attention of one query head over the KV cache (AttentionFn), ARMv8.0 NEON, bit-identical to the
// scalar kernel (kernels.h order, no FMA: -ffp-contract=off). Scores: 4 keys per register, one lane
// per key, each lane the sequential interleaved sum; the K block (4 keys x 4 dims) is transposed in
// registers, dims j..j+3 of the first half and half + j.. of the second interleaved as run.c steps
// through them. Softmax: f32_softmax_neon. V sum: ACROSS d (4 dims per register, up to 32 dims in
// registers while t runs), each lane out = out + p * v in increasing t from +0.
#include <cmath>

#include "kernels/neon/neon-common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {
namespace {

// c[u] = (k_0[d0 + u], ..., k_3[d0 + u]) for u = 0..3; r[l] = key l's row.
inline void keys4x4(const float* const r[4], size_t d0, float32x4_t c[4]) {
  const float32x4_t a0 = vld1q_f32(r[0] + d0), a1 = vld1q_f32(r[1] + d0);
  const float32x4_t a2 = vld1q_f32(r[2] + d0), a3 = vld1q_f32(r[3] + d0);
  const float32x4_t t0 = vtrn1q_f32(a0, a1);  // [k0d0 k1d0 k0d2 k1d2]
  const float32x4_t t1 = vtrn2q_f32(a0, a1);  // [k0d1 k1d1 k0d3 k1d3]
  const float32x4_t t2 = vtrn1q_f32(a2, a3);
  const float32x4_t t3 = vtrn2q_f32(a2, a3);
  c[0] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
  c[1] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
  c[2] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
  c[3] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
}

// out[d0 .. d0 + 4 * NB) = sum over t of p_t * v_t[d], t increasing, from +0.
template <int NB>
inline void v_sum(const float* v, size_t kv_stride, const float* p, size_t n_keys, size_t d0,
                  float* out) {
  float32x4_t acc[NB];
  for (int b = 0; b < NB; ++b) acc[b] = vdupq_n_f32(0.0f);
  for (size_t t = 0; t < n_keys; ++t) {
    const float* vt = v + t * kv_stride + d0;
    const float32x4_t pt = vdupq_n_f32(p[t]);
    for (int b = 0; b < NB; ++b) acc[b] = vaddq_f32(acc[b], vmulq_f32(pt, vld1q_f32(vt + 4 * b)));
  }
  for (int b = 0; b < NB; ++b) vst1q_f32(out + d0 + 4 * b, acc[b]);
}

}  // namespace

void f32_attention_neon(const float* q, const float* k, const float* v, size_t head_dim,
                        size_t n_keys, size_t kv_stride, float* scores, float* out) {
  const float sqrt_hd = std::sqrt(static_cast<float>(head_dim));
  const size_t half = head_dim / 2;
  size_t t = 0;
  if (head_dim % 8 == 0) {  // half a multiple of 4: whole 4-dim blocks in each half
    const float32x4_t vsqrt = vdupq_n_f32(sqrt_hd);
    for (; t + 4 <= n_keys; t += 4) {
      const float* r[4];
      for (int l = 0; l < 4; ++l) r[l] = k + (t + l) * kv_stride;
      float32x4_t acc = vdupq_n_f32(0.0f);
      for (size_t j = 0; j < half; j += 4) {
        float32x4_t lo[4], hi[4];
        keys4x4(r, j, lo);
        keys4x4(r, half + j, hi);
        for (int u = 0; u < 4; ++u) {
          acc = vaddq_f32(acc, vmulq_f32(vdupq_n_f32(q[j + u]), lo[u]));
          acc = vaddq_f32(acc, vmulq_f32(vdupq_n_f32(q[half + j + u]), hi[u]));
        }
      }
      vst1q_f32(scores + t, vdivq_f32(acc, vsqrt));
    }
  }
  for (; t < n_keys; ++t) scores[t] = attention_score_one(q, k + t * kv_stride, head_dim, sqrt_hd);

  f32_softmax_neon(scores, n_keys);

  size_t d = 0;
  for (; d + 32 <= head_dim; d += 32) v_sum<8>(v, kv_stride, scores, n_keys, d, out);
  for (; d + 4 <= head_dim; d += 4) v_sum<1>(v, kv_stride, scores, n_keys, d, out);
  for (; d < head_dim; ++d) {
    float acc = 0.0f;
    for (size_t u = 0; u < n_keys; ++u) acc = acc + scores[u] * v[u * kv_stride + d];
    out[d] = acc;
  }
}

}  // namespace kernels
}  // namespace ember
