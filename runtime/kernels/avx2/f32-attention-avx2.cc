// Attention of a group of query heads over one KV head (AttentionFn, AttentionF16Fn,
// AttentionU8Fn), AVX2, bit-identical to the scalar kernel (kernels.h order, no FMA). Scores: 8
// keys per register, one lane per key, each lane the sequential interleaved sum; each K block (8
// keys x 4 dims) is widened to float (f16: vcvtph2ps, u8: vpmovzxbd + vcvtdq2ps, both exact) and
// transposed in registers ONCE for up to kScoreHeads heads (GQA: the 8 query heads of a TinyLlama
// KV head read and transpose K twice instead of 8 times), dims j..j+3 of the first half and half +
// j.. of the second interleaved as run.c steps through them. Softmax: f32_softmax_avx2 per head. V
// sum: ACROSS d, 8 accumulators of up to kVHeads heads in registers while t runs (each v_t block
// loaded once for those heads), each lane out = out + p * v in increasing t from +0.
#include <cmath>
#include <cstring>
#include <type_traits>

#include "kernels/attention-group.h"
#include "kernels/avx2/avx2-common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {
namespace {

// 4 cached elements from p, widened exactly to float.
inline __m128 load4(const float* p) { return _mm_loadu_ps(p); }
inline __m128 load4(const uint16_t* p) {
  return _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
inline __m128 load4(const uint8_t* p) {
  int32_t w;
  std::memcpy(&w, p, 4);
  return _mm_cvtepi32_ps(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(w)));
}
// 8 cached elements from p, widened exactly to float.
inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m256 load8(const uint8_t* p) {
  return _mm256_cvtepi32_ps(
      _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

// c[u] = (k_0[d0 + u], ..., k_7[d0 + u]) for u = 0..3; r[l] = key l's row.
template <class E>
inline void keys8x4(const E* const r[8], size_t d0, __m256 c[4]) {
  const __m256 a0 =
      _mm256_insertf128_ps(_mm256_castps128_ps256(load4(r[0] + d0)), load4(r[4] + d0), 1);
  const __m256 a1 =
      _mm256_insertf128_ps(_mm256_castps128_ps256(load4(r[1] + d0)), load4(r[5] + d0), 1);
  const __m256 a2 =
      _mm256_insertf128_ps(_mm256_castps128_ps256(load4(r[2] + d0)), load4(r[6] + d0), 1);
  const __m256 a3 =
      _mm256_insertf128_ps(_mm256_castps128_ps256(load4(r[3] + d0)), load4(r[7] + d0), 1);
  const __m256 t0 = _mm256_unpacklo_ps(a0, a1);  // [k0d0 k1d0 k0d1 k1d1 | k4.. k5..]
  const __m256 t1 = _mm256_unpackhi_ps(a0, a1);  // [k0d2 k1d2 k0d3 k1d3 | ...]
  const __m256 t2 = _mm256_unpacklo_ps(a2, a3);
  const __m256 t3 = _mm256_unpackhi_ps(a2, a3);
  c[0] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  c[1] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  c[2] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  c[3] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
}

// The vector parts of attention_group (kernels/attention-group.h).
struct Avx2Attention {
  static constexpr size_t kKeys = 8;
  // Heads per K transpose: H accumulators + 8 transposed vectors stay in the 16 ymm registers.
  static constexpr int kScoreHeads = 4;
  // Heads of one V pass; each pass keeps 8 accumulators: H heads x 8 / H 8-dim blocks (one head:
  // a whole 64-dim row per pass, as an MHA model wants; four: 16 dims of each).
  static constexpr int kVHeads = 4;
  // Software prefetch distances: K blocks ahead in the scores, value rows ahead in the V sums.
  static constexpr size_t kPrefetchBlocks = 4;
  static constexpr size_t kPrefetchKeys = 16;

  template <int H, class E>
  static void scores(const float* q, const E* k, size_t head_dim, size_t kv_stride, size_t blocks,
                     float* s, size_t ss, const U8Terms& u8) {
    constexpr bool kU8 = std::is_same<E, uint8_t>::value;
    const size_t half = head_dim / 2;
    const __m256 vsqrt = _mm256_set1_ps(std::sqrt(static_cast<float>(head_dim)));
    for (size_t b = 0; b < blocks; ++b) {
      const size_t t = kKeys * b;
      const E* r[8];
      for (int l = 0; l < 8; ++l) r[l] = k + (t + l) * kv_stride;
      // The keys kPrefetchBlocks blocks ahead: a decoding model's cache comes from DRAM, and the
      // demand loads alone leave its latency exposed (docs/performance.md).
      if (b + kPrefetchBlocks < blocks) {
        for (int l = 0; l < 8; ++l) {
          const char* row =
              reinterpret_cast<const char*>(r[l] + kPrefetchBlocks * kKeys * kv_stride);
          for (size_t o = 0; o < head_dim * sizeof(E); o += 64) _mm_prefetch(row + o, _MM_HINT_T0);
        }
      }
      __m256 acc[H];
      for (int h = 0; h < H; ++h) acc[h] = _mm256_setzero_ps();
      for (size_t j = 0; j < half; j += 4) {
        __m256 lo[4], hi[4];
        keys8x4(r, j, lo);
        keys8x4(r, half + j, hi);
        for (int u = 0; u < 4; ++u) {
          for (int h = 0; h < H; ++h) {
            const float* qh = q + h * head_dim;
            acc[h] = _mm256_add_ps(acc[h], _mm256_mul_ps(_mm256_set1_ps(qh[j + u]), lo[u]));
            acc[h] = _mm256_add_ps(acc[h], _mm256_mul_ps(_mm256_set1_ps(qh[half + j + u]), hi[u]));
          }
        }
      }
      if (kU8) {
        // (scale * acc + min * qsum) / sqrt(head_dim), lane by lane.
        const __m256 sc = load8(u8.scale + t), mn = load8(u8.min + t);
        for (int h = 0; h < H; ++h) {
          const __m256 m = _mm256_mul_ps(mn, _mm256_set1_ps(u8.head[h]));
          acc[h] = _mm256_add_ps(_mm256_mul_ps(sc, acc[h]), m);
        }
      }
      for (int h = 0; h < H; ++h) _mm256_storeu_ps(s + h * ss + t, _mm256_div_ps(acc[h], vsqrt));
    }
  }

  // out_h[d0 .. d0 + 8 * NB) = sum over t of p_h[t] * v_t[d], t increasing, from +0.
  template <int H, int NB, class E>
  static void v_block(const E* v, size_t kv_stride, const float* p, size_t ps, size_t n_keys,
                      size_t d0, size_t head_dim, const U8Terms& u8, float* out) {
    constexpr bool kU8 = std::is_same<E, uint8_t>::value;
    __m256 acc[H][NB];
    for (int h = 0; h < H; ++h)
      for (int b = 0; b < NB; ++b) acc[h][b] = _mm256_setzero_ps();
    for (size_t t = 0; t < n_keys; ++t) {
      const E* vt = v + t * kv_stride + d0;
      if (t + kPrefetchKeys < n_keys)
        _mm_prefetch(reinterpret_cast<const char*>(vt + kPrefetchKeys * kv_stride), _MM_HINT_T0);
      __m256 vv[NB];
      for (int b = 0; b < NB; ++b) vv[b] = load8(vt + 8 * b);
      // u8: p * scale of the row (one rounding, as scalar).
      const float sc = kU8 ? f16_to_f32(u8.scale[t]) : 1.0f;
      for (int h = 0; h < H; ++h) {
        const __m256 pt = _mm256_set1_ps(kU8 ? p[h * ps + t] * sc : p[h * ps + t]);
        for (int b = 0; b < NB; ++b) acc[h][b] = _mm256_add_ps(acc[h][b], _mm256_mul_ps(pt, vv[b]));
      }
    }
    for (int h = 0; h < H; ++h) {
      const __m256 pm = _mm256_set1_ps(kU8 ? u8.head[h] : 0.0f);
      for (int b = 0; b < NB; ++b) {
        const __m256 o = kU8 ? _mm256_add_ps(acc[h][b], pm) : acc[h][b];
        _mm256_storeu_ps(out + h * head_dim + d0 + 8 * b, o);
      }
    }
  }

  template <int H, class E>
  static size_t v_sum(const E* v, size_t kv_stride, const float* p, size_t ps, size_t n_keys,
                      size_t head_dim, float* out, const U8Terms& u8) {
    constexpr int kBlocks = 8 / H;
    size_t d = 0;
    for (; d + 8 * kBlocks <= head_dim; d += 8 * kBlocks)
      v_block<H, kBlocks>(v, kv_stride, p, ps, n_keys, d, head_dim, u8, out);
    for (; d + 8 <= head_dim; d += 8)
      v_block<H, 1>(v, kv_stride, p, ps, n_keys, d, head_dim, u8, out);
    return d;
  }

  static void softmax(float* x, size_t n) { f32_softmax_avx2(x, n); }
};

}  // namespace

void f32_attention_avx2(const float* q, size_t n_heads, const float* k, const float* v,
                        size_t head_dim, size_t n_keys, size_t kv_stride, float* scores,
                        size_t scores_stride, float* out) {
  attention_group<Avx2Attention, float>(q, n_heads, k, v, nullptr, nullptr, head_dim, n_keys,
                                        kv_stride, kv_stride, scores, scores_stride, out);
}

void f16_attention_avx2(const float* q, size_t n_heads, const uint16_t* k, const uint16_t* v,
                        size_t head_dim, size_t n_keys, size_t kv_stride, float* scores,
                        size_t scores_stride, float* out) {
  attention_group<Avx2Attention, uint16_t>(q, n_heads, k, v, nullptr, nullptr, head_dim, n_keys,
                                           kv_stride, kv_stride, scores, scores_stride, out);
}

void u8_attention_avx2(const float* q, size_t n_heads, const KvRowsU8& k, const KvRowsU8& v,
                       size_t head_dim, size_t n_keys, float* scores, size_t scores_stride,
                       float* out) {
  attention_group<Avx2Attention, uint8_t>(q, n_heads, k.q, v.q, &k, &v, head_dim, n_keys, k.stride,
                                          v.stride, scores, scores_stride, out);
}

}  // namespace kernels
}  // namespace ember
