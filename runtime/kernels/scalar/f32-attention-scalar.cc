// Attention of one query head over the KV cache (AttentionFn), scalar: the definition of kernels.h
// (run.c's order): per key the sequential interleaved q.k sum / sqrt(head_dim), softmax, then the
// V sum in increasing t.
#include <cmath>

#include "kernels/common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {

void f32_attention_scalar(const float* q, const float* k, const float* v, size_t head_dim,
                          size_t n_keys, size_t kv_stride, float* scores, float* out) {
  const float sqrt_hd = std::sqrt(static_cast<float>(head_dim));
  for (size_t t = 0; t < n_keys; ++t)
    scores[t] = attention_score_one(q, k + t * kv_stride, head_dim, sqrt_hd);
  f32_softmax_scalar(scores, n_keys);
  for (size_t d = 0; d < head_dim; ++d) out[d] = 0.0f;
  for (size_t t = 0; t < n_keys; ++t) {
    const float* vt = v + t * kv_stride;
    const float p = scores[t];
    for (size_t d = 0; d < head_dim; ++d) out[d] = out[d] + p * vt[d];
  }
}

}  // namespace kernels
}  // namespace ember
