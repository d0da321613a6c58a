// Attention of a group of query heads over one KV head (AttentionFn, AttentionF16Fn,
// AttentionU8Fn), scalar: the definitions of kernels.h (run.c's order), one head after the other:
// per key the sequential interleaved q.k sum / sqrt(head_dim) (u8: with the key's scale and min),
// softmax, then the V sum in increasing t (u8: p * scale per key, then the min term).
#include <cmath>
#include <type_traits>

#include "kernels/common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {
namespace {

// Keys and values of element type E at k + t * k_stride, v + t * v_stride; kq / vq: the u8 rows'
// params (E = uint8_t only).
template <class E>
void attention_scalar(const float* q, size_t n_heads, const E* k, const E* v, const KvRowsU8* kq,
                      const KvRowsU8* vq, size_t head_dim, size_t n_keys, size_t k_stride,
                      size_t v_stride, float* scores, size_t scores_stride, float* out) {
  constexpr bool kU8 = std::is_same<E, uint8_t>::value;
  const float sqrt_hd = std::sqrt(static_cast<float>(head_dim));
  for (size_t h = 0; h < n_heads; ++h) {
    const float* qh = q + h * head_dim;
    float* s = scores + h * scores_stride;
    float* o = out + h * head_dim;
    const float qsum = kU8 ? attention_qsum(qh, head_dim) : 0.0f;
    for (size_t t = 0; t < n_keys; ++t) {
      const float acc = attention_dot_one(qh, k + t * k_stride, head_dim);
      s[t] = kU8 ? u8_attention_score(acc, f16_to_f32(kq->scale[t]), f16_to_f32(kq->min[t]), qsum,
                                      sqrt_hd)
                 : acc / sqrt_hd;
    }
    f32_softmax_scalar(s, n_keys);
    for (size_t d = 0; d < head_dim; ++d) o[d] = 0.0f;
    for (size_t t = 0; t < n_keys; ++t) {
      const E* vt = v + t * v_stride;
      const float p = kU8 ? s[t] * f16_to_f32(vq->scale[t]) : s[t];
      for (size_t d = 0; d < head_dim; ++d) o[d] = o[d] + p * kv_widen(vt[d]);
    }
    if (kU8) {
      const float pm = u8_attention_pmin(s, vq->min, n_keys);
      for (size_t d = 0; d < head_dim; ++d) o[d] = o[d] + pm;
    }
  }
}

}  // namespace

void f32_attention_scalar(const float* q, size_t n_heads, const float* k, const float* v,
                          size_t head_dim, size_t n_keys, size_t kv_stride, float* scores,
                          size_t scores_stride, float* out) {
  attention_scalar<float>(q, n_heads, k, v, nullptr, nullptr, head_dim, n_keys, kv_stride,
                          kv_stride, scores, scores_stride, out);
}

void f16_attention_scalar(const float* q, size_t n_heads, const uint16_t* k, const uint16_t* v,
                          size_t head_dim, size_t n_keys, size_t kv_stride, float* scores,
                          size_t scores_stride, float* out) {
  attention_scalar<uint16_t>(q, n_heads, k, v, nullptr, nullptr, head_dim, n_keys, kv_stride,
                             kv_stride, scores, scores_stride, out);
}

void u8_attention_scalar(const float* q, size_t n_heads, const KvRowsU8& k, const KvRowsU8& v,
                         size_t head_dim, size_t n_keys, float* scores, size_t scores_stride,
                         float* out) {
  attention_scalar<uint8_t>(q, n_heads, k.q, v.q, &k, &v, head_dim, n_keys, k.stride, v.stride,
                            scores, scores_stride, out);
}

}  // namespace kernels
}  // namespace ember
