// The ISA-independent part of the grouped attention kernels (AttentionFn, kernels.h): the query
// heads of one KV head in chunks whose scores share each transposed K block, the key tail and the
// per-head softmax, then the V sums in chunks of heads. Included by the SIMD attention sources;
// an `Isa` struct supplies the vector parts:
//   static constexpr size_t kKeys;                     keys per score vector
//   static constexpr int kScoreHeads, kVHeads;         heads per chunk (1..8)
//   template <int H> static void scores(q, k, head_dim, kv_stride, blocks, scores, ss);
//       H heads (q: (H, head_dim)) over keys [0, kKeys * blocks): s_h[t] at scores + h * ss
//   template <int H> static size_t v_sum(v, kv_stride, p, ps, n_keys, head_dim, out);
//       H heads' V sums (p_h = p + h * ps, out_h = out + h * head_dim) over the dims it vectorizes,
//       returning how many (from d = 0); v_sum_rest finishes the others
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
inline void v_sum_rest(const float* v, size_t kv_stride, const float* p, size_t ps, size_t n_keys,
                       size_t d0, size_t head_dim, size_t nh, float* out) {
  for (size_t d = d0; d < head_dim; ++d) {
    for (size_t h = 0; h < nh; ++h) {
      float acc = 0.0f;
      for (size_t u = 0; u < n_keys; ++u) acc = acc + p[h * ps + u] * v[u * kv_stride + d];
      out[h * head_dim + d] = acc;
    }
  }
}

// Head sizes up to which the key tail goes through the vector code (its rows on the stack).
constexpr size_t kTailMaxDim = 256;

template <class Isa>
void attention_group(const float* q, size_t n_heads, const float* k, const float* v,
                     size_t head_dim, size_t n_keys, size_t kv_stride, float* scores,
                     size_t scores_stride, float* out) {
  const float sqrt_hd = std::sqrt(static_cast<float>(head_dim));
  // Scores: whole blocks of kKeys keys through the transposes (head_dim a multiple of 8: whole
  // 4-dim blocks in each half), the rest key by key.
  const size_t blocks = head_dim % 8 == 0 ? n_keys / Isa::kKeys : 0;
  constexpr size_t kScoreHeads = Isa::kScoreHeads, kVHeads = Isa::kVHeads;
  for (size_t h0 = 0; h0 < n_heads; h0 += kScoreHeads) {
    const float* qh = q + h0 * head_dim;
    float* sh = scores + h0 * scores_stride;
    with_heads<Isa::kScoreHeads>(n_heads - h0, [&](auto nh) {
      Isa::template scores<decltype(nh)::value>(qh, k, head_dim, kv_stride, blocks, sh,
                                                scores_stride);
    });
  }
  // The last keys (fewer than a block) as one more block through the same vector code: their rows
  // copied to the stack, the last one repeated to fill it (those lanes are dropped). Each lane's
  // score is the same sequential sum whichever way: the same bits as attention_score_one.
  const size_t tail = n_keys - Isa::kKeys * blocks;
  if (blocks > 0 && tail > 0 && head_dim <= kTailMaxDim) {
    const size_t t0 = Isa::kKeys * blocks;
    float kt[Isa::kKeys * kTailMaxDim];
    float st[Isa::kScoreHeads * Isa::kKeys];
    for (size_t l = 0; l < Isa::kKeys; ++l) {
      const float* row = k + (t0 + (l < tail ? l : tail - 1)) * kv_stride;
      for (size_t d = 0; d < head_dim; ++d) kt[l * head_dim + d] = row[d];
    }
    for (size_t h0 = 0; h0 < n_heads; h0 += kScoreHeads) {
      const size_t nh = n_heads - h0 < kScoreHeads ? n_heads - h0 : kScoreHeads;
      with_heads<Isa::kScoreHeads>(nh, [&](auto c) {
        Isa::template scores<decltype(c)::value>(q + h0 * head_dim, kt, head_dim, head_dim, 1, st,
                                                 Isa::kKeys);
      });
      for (size_t h = 0; h < nh; ++h)
        for (size_t l = 0; l < tail; ++l)
          scores[(h0 + h) * scores_stride + t0 + l] = st[h * Isa::kKeys + l];
    }
  } else {
    for (size_t h = 0; h < n_heads; ++h)
      for (size_t t = Isa::kKeys * blocks; t < n_keys; ++t)
        scores[h * scores_stride + t] =
            attention_score_one(q + h * head_dim, k + t * kv_stride, head_dim, sqrt_hd);
  }
  for (size_t h = 0; h < n_heads; ++h) Isa::softmax(scores + h * scores_stride, n_keys);
  for (size_t h0 = 0; h0 < n_heads; h0 += kVHeads) {
    const float* ph = scores + h0 * scores_stride;
    float* oh = out + h0 * head_dim;
    const size_t nh = n_heads - h0 < kVHeads ? n_heads - h0 : kVHeads;
    size_t done = 0;
    with_heads<Isa::kVHeads>(nh, [&](auto c) {
      done = Isa::template v_sum<decltype(c)::value>(v, kv_stride, ph, scores_stride, n_keys,
                                                     head_dim, oh);
    });
    v_sum_rest(v, kv_stride, ph, scores_stride, n_keys, done, head_dim, nh, oh);
  }
}

}  // namespace
}  // namespace kernels
}  // namespace ember

#endif  // EMBER_KERNELS_ATTENTION_GROUP_H_
