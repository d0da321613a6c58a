// Attention of a group of query heads over one KV head (AttentionFn, AttentionF16Fn,
// AttentionU8Fn), ARMv8.0 NEON, bit-identical to the scalar kernel (kernels.h order, no FMA:
// -ffp-contract=off). Scores: 4 keys per register, one lane per key, each lane the sequential
// interleaved sum; each K block (4 keys x 4 dims) is widened to float (f16: fcvtl, u8: uxtl +
// ucvtf, both exact) and transposed in registers ONCE for up to kScoreHeads heads (GQA), dims
// j..j+3 of the first half and half + j.. of the second interleaved as run.c steps through them.
// Softmax: f32_softmax_neon per head. V sum: ACROSS d, 16 accumulators of up to kVHeads heads in
// registers while t runs (each v_t block loaded once for those heads), each lane out = out + p * v
// in increasing t from +0.
#include <cmath>
#include <cstring>
#include <type_traits>

#include "kernels/attention-group.h"
#include "kernels/neon/neon-common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {
namespace {

// 4 cached elements from p, widened exactly to float.
inline float32x4_t load4(const float* p) { return vld1q_f32(p); }
inline float32x4_t load4(const uint16_t* p) {
  return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
}
inline float32x4_t load4(const uint8_t* p) {
  uint32_t w;
  std::memcpy(&w, p, 4);
  const uint8x8_t b = vreinterpret_u8_u32(vdup_n_u32(w));
  return vcvtq_f32_u32(vmovl_u16(vget_low_u16(vmovl_u8(b))));
}

// c[u] = (k_0[d0 + u], ..., k_3[d0 + u]) for u = 0..3; r[l] = key l's row.
template <class E>
inline void keys4x4(const E* const r[4], size_t d0, float32x4_t c[4]) {
  const float32x4_t a0 = load4(r[0] + d0), a1 = load4(r[1] + d0);
  const float32x4_t a2 = load4(r[2] + d0), a3 = load4(r[3] + d0);
  const float32x4_t t0 = vtrn1q_f32(a0, a1);  // [k0d0 k1d0 k0d2 k1d2]
  const float32x4_t t1 = vtrn2q_f32(a0, a1);  // [k0d1 k1d1 k0d3 k1d3]
  const float32x4_t t2 = vtrn1q_f32(a2, a3);
  const float32x4_t t3 = vtrn2q_f32(a2, a3);
  c[0] = neon::trn1_64(t0, t2);
  c[1] = neon::trn1_64(t1, t3);
  c[2] = neon::trn2_64(t0, t2);
  c[3] = neon::trn2_64(t1, t3);
}

// The vector parts of attention_group (kernels/attention-group.h).
struct NeonAttention {
  static constexpr size_t kKeys = 4;
  // Heads per K transpose, and heads of one V pass (NEON has 32 q registers); each V pass keeps
  // 16 accumulators: H heads x 16 / H 4-dim blocks (one head: a whole 64-dim row per pass).
  static constexpr int kScoreHeads = 8;
  static constexpr int kVHeads = 4;

  template <int H, class E>
  static void scores(const float* q, const E* k, size_t head_dim, size_t kv_stride, size_t blocks,
                     float* s, size_t ss, const U8Terms& u8) {
    constexpr bool kU8 = std::is_same<E, uint8_t>::value;
    const size_t half = head_dim / 2;
    const float32x4_t vsqrt = vdupq_n_f32(std::sqrt(static_cast<float>(head_dim)));
    for (size_t b = 0; b < blocks; ++b) {
      const size_t t = kKeys * b;
      const E* r[4];
      for (int l = 0; l < 4; ++l) r[l] = k + (t + l) * kv_stride;
      float32x4_t acc[H];
      for (int h = 0; h < H; ++h) acc[h] = vdupq_n_f32(0.0f);
      for (size_t j = 0; j < half; j += 4) {
        float32x4_t lo[4], hi[4];
        keys4x4(r, j, lo);
        keys4x4(r, half + j, hi);
        for (int u = 0; u < 4; ++u) {
          for (int h = 0; h < H; ++h) {
            const float* qh = q + h * head_dim;
            acc[h] = vaddq_f32(acc[h], vmulq_f32(vdupq_n_f32(qh[j + u]), lo[u]));
            acc[h] = vaddq_f32(acc[h], vmulq_f32(vdupq_n_f32(qh[half + j + u]), hi[u]));
          }
        }
      }
      if (kU8) {
        // (scale * acc + min * qsum) / sqrt(head_dim), lane by lane.
        const float32x4_t sc = load4(u8.scale + t), mn = load4(u8.min + t);
        for (int h = 0; h < H; ++h) {
          const float32x4_t m = vmulq_f32(mn, vdupq_n_f32(u8.head[h]));
          acc[h] = vaddq_f32(vmulq_f32(sc, acc[h]), m);
        }
      }
      for (int h = 0; h < H; ++h) vst1q_f32(s + h * ss + t, vdivq_f32(acc[h], vsqrt));
    }
  }

  // out_h[d0 .. d0 + 4 * NB) = sum over t of p_h[t] * v_t[d], t increasing, from +0.
  template <int H, int NB, class E>
  static void v_block(const E* v, size_t kv_stride, const float* p, size_t ps, size_t n_keys,
                      size_t d0, size_t head_dim, const U8Terms& u8, float* out) {
    constexpr bool kU8 = std::is_same<E, uint8_t>::value;
    float32x4_t acc[H][NB];
    for (int h = 0; h < H; ++h)
      for (int b = 0; b < NB; ++b) acc[h][b] = vdupq_n_f32(0.0f);
    for (size_t t = 0; t < n_keys; ++t) {
      const E* vt = v + t * kv_stride + d0;
      float32x4_t vv[NB];
      for (int b = 0; b < NB; ++b) vv[b] = load4(vt + 4 * b);
      // u8: p * scale of the row (one rounding, as scalar).
      const float sc = kU8 ? f16_to_f32(u8.scale[t]) : 1.0f;
      for (int h = 0; h < H; ++h) {
        const float32x4_t pt = vdupq_n_f32(kU8 ? p[h * ps + t] * sc : p[h * ps + t]);
        for (int b = 0; b < NB; ++b) acc[h][b] = vaddq_f32(acc[h][b], vmulq_f32(pt, vv[b]));
      }
    }
    for (int h = 0; h < H; ++h) {
      const float32x4_t pm = vdupq_n_f32(kU8 ? u8.head[h] : 0.0f);
      for (int b = 0; b < NB; ++b) {
        const float32x4_t o = kU8 ? vaddq_f32(acc[h][b], pm) : acc[h][b];
        vst1q_f32(out + h * head_dim + d0 + 4 * b, o);
      }
    }
  }

  template <int H, class E>
  static size_t v_sum(const E* v, size_t kv_stride, const float* p, size_t ps, size_t n_keys,
                      size_t head_dim, float* out, const U8Terms& u8) {
    constexpr int kBlocks = 16 / H;
    size_t d = 0;
    for (; d + 4 * kBlocks <= head_dim; d += 4 * kBlocks)
      v_block<H, kBlocks>(v, kv_stride, p, ps, n_keys, d, head_dim, u8, out);
    for (; d + 4 <= head_dim; d += 4)
      v_block<H, 1>(v, kv_stride, p, ps, n_keys, d, head_dim, u8, out);
    return d;
  }

  static void softmax(float* x, size_t n) { f32_softmax_neon(x, n); }
};

}  // namespace

void f32_attention_neon(const float* q, size_t n_heads, const float* k, const float* v,
                        size_t head_dim, size_t n_keys, size_t kv_stride, float* scores,
                        size_t scores_stride, float* out) {
  attention_group<NeonAttention, float>(q, n_heads, k, v, nullptr, nullptr, head_dim, n_keys,
                                        kv_stride, kv_stride, scores, scores_stride, out);
}

void f16_attention_neon(const float* q, size_t n_heads, const uint16_t* k, const uint16_t* v,
                        size_t head_dim, size_t n_keys, size_t kv_stride, float* scores,
                        size_t scores_stride, float* out) {
  attention_group<NeonAttention, uint16_t>(q, n_heads, k, v, nullptr, nullptr, head_dim, n_keys,
                                           kv_stride, kv_stride, scores, scores_stride, out);
}

void u8_attention_neon(const float* q, size_t n_heads, const KvRowsU8& k, const KvRowsU8& v,
                       size_t head_dim, size_t n_keys, float* scores, size_t scores_stride,
                       float* out) {
  attention_group<NeonAttention, uint8_t>(q, n_heads, k.q, v.q, &k, &v, head_dim, n_keys, k.stride,
                                          v.stride, scores, scores_stride, out);
}

}  // namespace kernels
}  // namespace ember
