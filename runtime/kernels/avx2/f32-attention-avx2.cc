// Attention of one query head over the KV cache (AttentionFn), AVX2, bit-identical to the scalar
// kernel (kernels.h order, no FMA). Scores: 8 keys per register, one lane per key, each lane the
// sequential interleaved sum; the K block (8 keys x 4 dims) is transposed in registers, dims j..j+3
// of the first half and half + j.. of the second interleaved as run.c steps through them. Softmax:
// f32_softmax_avx2. V sum: ACROSS d (8 dims per register, up to 64 dims kept in registers while t
// runs), each lane out = out + p * v in increasing t from +0.
#include <cmath>

#include "kernels/avx2/avx2-common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {
namespace {

// c[u] = (k_0[d0 + u], ..., k_7[d0 + u]) for u = 0..3; r[l] = key l's row.
inline void keys8x4(const float* const r[8], size_t d0, __m256 c[4]) {
  const __m256 a0 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(r[0] + d0)),
                                         _mm_loadu_ps(r[4] + d0), 1);
  const __m256 a1 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(r[1] + d0)),
                                         _mm_loadu_ps(r[5] + d0), 1);
  const __m256 a2 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(r[2] + d0)),
                                         _mm_loadu_ps(r[6] + d0), 1);
  const __m256 a3 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(r[3] + d0)),
                                         _mm_loadu_ps(r[7] + d0), 1);
  const __m256 t0 = _mm256_unpacklo_ps(a0, a1);  // [k0d0 k1d0 k0d1 k1d1 | k4.. k5..]
  const __m256 t1 = _mm256_unpackhi_ps(a0, a1);  // [k0d2 k1d2 k0d3 k1d3 | ...]
  const __m256 t2 = _mm256_unpacklo_ps(a2, a3);
  const __m256 t3 = _mm256_unpackhi_ps(a2, a3);
  c[0] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  c[1] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  c[2] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  c[3] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
}

// out[d0 .. d0 + 8 * NB) = sum over t of p_t * v_t[d], t increasing, from +0.
template <int NB>
inline void v_sum(const float* v, size_t kv_stride, const float* p, size_t n_keys, size_t d0,
                  float* out) {
  __m256 acc[NB];
  for (int b = 0; b < NB; ++b) acc[b] = _mm256_setzero_ps();
  for (size_t t = 0; t < n_keys; ++t) {
    const float* vt = v + t * kv_stride + d0;
    const __m256 pt = _mm256_set1_ps(p[t]);
    for (int b = 0; b < NB; ++b)
      acc[b] = _mm256_add_ps(acc[b], _mm256_mul_ps(pt, _mm256_loadu_ps(vt + 8 * b)));
  }
  for (int b = 0; b < NB; ++b) _mm256_storeu_ps(out + d0 + 8 * b, acc[b]);
}

}  // namespace

void f32_attention_avx2(const float* q, const float* k, const float* v, size_t head_dim,
                        size_t n_keys, size_t kv_stride, float* scores, float* out) {
  const float sqrt_hd = std::sqrt(static_cast<float>(head_dim));
  const size_t half = head_dim / 2;
  size_t t = 0;
  if (head_dim % 8 == 0) {  // half a multiple of 4: whole 4-dim blocks in each half
    const __m256 vsqrt = _mm256_set1_ps(sqrt_hd);
    for (; t + 8 <= n_keys; t += 8) {
      const float* r[8];
      for (int l = 0; l < 8; ++l) r[l] = k + (t + l) * kv_stride;
      __m256 acc = _mm256_setzero_ps();
      for (size_t j = 0; j < half; j += 4) {
        __m256 lo[4], hi[4];
        keys8x4(r, j, lo);
        keys8x4(r, half + j, hi);
        for (int u = 0; u < 4; ++u) {
          acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(q[j + u]), lo[u]));
          acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(q[half + j + u]), hi[u]));
        }
      }
      _mm256_storeu_ps(scores + t, _mm256_div_ps(acc, vsqrt));
    }
  }
  for (; t < n_keys; ++t) scores[t] = attention_score_one(q, k + t * kv_stride, head_dim, sqrt_hd);

  f32_softmax_avx2(scores, n_keys);

  size_t d = 0;
  for (; d + 64 <= head_dim; d += 64) v_sum<8>(v, kv_stride, scores, n_keys, d, out);
  for (; d + 8 <= head_dim; d += 8) v_sum<1>(v, kv_stride, scores, n_keys, d, out);
  for (; d < head_dim; ++d) {
    float acc = 0.0f;
    for (size_t u = 0; u < n_keys; ++u) acc = acc + scores[u] * v[u * kv_stride + d];
    out[d] = acc;
  }
}

}  // namespace kernels
}  // namespace ember
