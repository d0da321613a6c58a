// Attention of a group of query heads over one KV head (AttentionFn), scalar: the definition of
// kernels.h (run.c's order), one head after the other: per key the sequential interleaved q.k sum /
// sqrt(head_dim), softmax, then the V sum in increasing t.
#include <cmath>

#include "kernels/common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {

void f32_attention_scalar(const float* q, size_t n_heads, const float* k, const float* v,
                          size_t head_dim, size_t n_keys, size_t kv_stride, float* scores,
                          size_t scores_stride, float* out) {
  const float sqrt_hd = std::sqrt(static_cast<float>(head_dim));
  for (size_t h = 0; h < n_heads; ++h) {
    const float* qh = q + h * head_dim;
    float* s = scores + h * scores_stride;
    float* o = out + h * head_dim;
    for (size_t t = 0; t < n_keys; ++t)
      s[t] = attention_score_one(qh, k + t * kv_stride, head_dim, sqrt_hd);
    f32_softmax_scalar(s, n_keys);
    for (size_t d = 0; d < head_dim; ++d) o[d] = 0.0f;
    for (size_t t = 0; t < n_keys; ++t) {
      const float* vt = v + t * kv_stride;
      const float p = s[t];
      for (size_t d = 0; d < head_dim; ++d) o[d] = o[d] + p * vt[d];
    }
  }
}

}  // namespace kernels
}  // namespace ember
