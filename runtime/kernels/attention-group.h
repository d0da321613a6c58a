// The ISA-independent part of the grouped attention kernels (AttentionFn, AttentionF16Fn,
// AttentionU8Fn; kernels.h): the query heads of one KV head in chunks whose scores share each
// transposed K block, the key tail and the per-head softmax, then the V sums in chunks of heads.
// Keys and values are read as the cache stores them (E: float, f16 bits or u8 q), widened in
// registers. Included by the SIMD attention sources; an `Isa` struct supplies the vector parts:
//   static constexpr size_t kKeys;                     keys per score vector
//   static constexpr int kScoreHeads, kVHeads;         heads per chunk (1..8)
//   template <int H, class E> static void scores(q, k, head_dim, kv_stride, blocks, scores, ss,
//                                                 u8);
//       H heads (q: (H, head_dim)) over keys [0, kKeys * blocks): s_h[t] at scores + h * ss
//       (E = uint8_t: u8 holds the keys' scales and mins from key 0 and the heads' qsums)
//   template <int H, class E> static size_t v_sum(v, kv_stride, p, ps, n_keys, head_dim, out,
//                                                  u8);
//       H heads' V sums (p_h = p + h * ps, out_h = out + h * head_dim) over the dims it vectorizes,
//       returning how many (from d = 0); v_sum_rest finishes the others (E = uint8_t: u8 holds
//       the values' scales and the heads' min terms)
//   static void softmax(float* x, size_t n);
#ifndef EMBER_KERNELS_ATTENTION_GROUP_H_
#define EMBER_KERNELS_ATTENTION_GROUP_H_

#include <cmath>
#include <cstddef>
#include <type_traits>

#include "kernels/common.h"

namespace ember {
namespace kernels {
// Internal linkage, as common.h: each includer is compiled with its own ISA flags.
namespace {

// The per-key params of u8 rows for one call of Isa::scores or Isa::v_sum (unused otherwise).
struct U8Terms {
  const uint16_t* scale;  // (keys) f16, from the call's first key
  const uint16_t* min;    // (keys) f16 (scores only)
  const float* head;      // (H) per head: qsum (scores) or the min term pm (V sums)
};

// f(std::integral_constant<int, nh>) for a run-time head count 1 <= nh <= kMax.
template <int kMax, class F>
inline void with_heads(size_t nh, F&& f) {
  if constexpr (kMax > 1) {
    if (nh < static_cast<size_t>(kMax)) {
      with_heads<kMax - 1>(nh, f);
      return;
    }
  }
  f(std::integral_constant<int, kMax>{});
}

// The V sums of dims [d0, head_dim) for nh heads, scalar (kernels.h order).
template <class E>
inline void v_sum_rest(const E* v, size_t kv_stride, const float* p, size_t ps, size_t n_keys,
                       size_t d0, size_t head_dim, size_t nh, const U8Terms& u8, float* out) {
  constexpr bool kU8 = std::is_same<E, uint8_t>::value;
  for (size_t d = d0; d < head_dim; ++d) {
    for (size_t h = 0; h < nh; ++h) {
      float acc = 0.0f;
      for (size_t u = 0; u < n_keys; ++u) {
        const float pu = kU8 ? p[h * ps + u] * f16_to_f32(u8.scale[u]) : p[h * ps + u];
        acc = acc + pu * kv_widen(v[u * kv_stride + d]);
      }
      out[h * head_dim + d] = kU8 ? acc + u8.head[h] : acc;
    }
  }
}

// Head sizes up to which the key tail goes through the vector code (its rows on the stack).
constexpr size_t kTailMaxDim = 256;

// The scores of every head (kernels.h order): whole blocks of kKeys keys through the transposes
// (head_dim a multiple of 8: whole 4-dim blocks in each half), the rest key by key.
template <class Isa, class E>
void attention_scores(const float* q, size_t n_heads, const E* k, const KvRowsU8* kq,
                      size_t head_dim, size_t n_keys, size_t kv_stride, float* scores,
                      size_t scores_stride) {
  constexpr bool kU8 = std::is_same<E, uint8_t>::value;
  constexpr size_t kScoreHeads = Isa::kScoreHeads, kKeys = Isa::kKeys;
  const float sqrt_hd = std::sqrt(static_cast<float>(head_dim));
  const size_t blocks = head_dim % 8 == 0 ? n_keys / kKeys : 0;
  const size_t t0 = kKeys * blocks, tail = n_keys - t0;
  const bool vector_tail = blocks > 0 && tail > 0 && head_dim <= kTailMaxDim;
  // The last keys (fewer than a block) as one more block through the same vector code: their rows
  // copied to the stack, the last one repeated to fill it (those lanes are dropped). Each lane's
  // score is the same sequential sum whichever way: the same bits as the key-by-key path.
  E kt[kKeys * kTailMaxDim];
  uint16_t sct[kKeys], mnt[kKeys];
  if (vector_tail) {
    for (size_t l = 0; l < kKeys; ++l) {
      const size_t t = t0 + (l < tail ? l : tail - 1);
      for (size_t d = 0; d < head_dim; ++d) kt[l * head_dim + d] = k[t * kv_stride + d];
      if (kU8) {
        sct[l] = kq->scale[t];
        mnt[l] = kq->min[t];
      }
    }
  }
  for (size_t h0 = 0; h0 < n_heads; h0 += kScoreHeads) {
    const size_t nh = n_heads - h0 < kScoreHeads ? n_heads - h0 : kScoreHeads;
    const float* qh = q + h0 * head_dim;
    float* sh = scores + h0 * scores_stride;
    float qsum[kScoreHeads] = {};
    if (kU8)
      for (size_t h = 0; h < nh; ++h) qsum[h] = attention_qsum(qh + h * head_dim, head_dim);
    const U8Terms u8{kq ? kq->scale : nullptr, kq ? kq->min : nullptr, qsum};
    float st[kScoreHeads * kKeys];
    with_heads<Isa::kScoreHeads>(nh, [&](auto c) {
      constexpr int H = decltype(c)::value;
      Isa::template scores<H, E>(qh, k, head_dim, kv_stride, blocks, sh, scores_stride, u8);
      if (vector_tail) {
        Isa::template scores<H, E>(qh, kt, head_dim, head_dim, 1, st, kKeys,
                                   U8Terms{sct, mnt, qsum});
      }
    });
    if (vector_tail) {
      for (size_t h = 0; h < nh; ++h)
        for (size_t l = 0; l < tail; ++l) sh[h * scores_stride + t0 + l] = st[h * kKeys + l];
    } else {
      for (size_t h = 0; h < nh; ++h) {
        for (size_t t = t0; t < n_keys; ++t) {
          const float acc = attention_dot_one(qh + h * head_dim, k + t * kv_stride, head_dim);
          sh[h * scores_stride + t] =
              kU8 ? u8_attention_score(acc, f16_to_f32(kq->scale[t]), f16_to_f32(kq->min[t]),
                                       qsum[h], sqrt_hd)
                  : acc / sqrt_hd;
        }
      }
    }
  }
}

template <class Isa, class E>
void attention_group(const float* q, size_t n_heads, const E* k, const E* v, const KvRowsU8* kq,
                     const KvRowsU8* vq, size_t head_dim, size_t n_keys, size_t k_stride,
                     size_t v_stride, float* scores, size_t scores_stride, float* out) {
  constexpr bool kU8 = std::is_same<E, uint8_t>::value;
  constexpr size_t kVHeads = Isa::kVHeads;
  attention_scores<Isa, E>(q, n_heads, k, kq, head_dim, n_keys, k_stride, scores, scores_stride);
  for (size_t h = 0; h < n_heads; ++h) Isa::softmax(scores + h * scores_stride, n_keys);
  for (size_t h0 = 0; h0 < n_heads; h0 += kVHeads) {
    const float* ph = scores + h0 * scores_stride;
    float* oh = out + h0 * head_dim;
    const size_t nh = n_heads - h0 < kVHeads ? n_heads - h0 : kVHeads;
    float pm[kVHeads] = {};
    if (kU8)
      for (size_t h = 0; h < nh; ++h)
        pm[h] = u8_attention_pmin(ph + h * scores_stride, vq->min, n_keys);
    const U8Terms u8{vq ? vq->scale : nullptr, nullptr, pm};
    size_t done = 0;
    with_heads<Isa::kVHeads>(nh, [&](auto c) {
      done = Isa::template v_sum<decltype(c)::value, E>(v, v_stride, ph, scores_stride, n_keys,
                                                        head_dim, oh, u8);
    });
    v_sum_rest(v, v_stride, ph, scores_stride, n_keys, done, head_dim, nh, u8, oh);
  }
}

}  // namespace
}  // namespace kernels
}  // namespace ember

#endif  // EMBER_KERNELS_ATTENTION_GROUP_H_
