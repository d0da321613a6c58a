// RMSNorm, SiLU*mul and softmax, AVX2: same float order as the scalar kernels (kernels.h).
#include <cmath>

#include "kernels/avx2/avx2-common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {

using avx2::exp_ps;

void f32_rmsnorm_avx2(const float* x, const float* w, size_t n, float eps, float* y) {
  __m256 acc = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    acc = _mm256_add_ps(acc, _mm256_mul_ps(v, v));
  }
  alignas(32) float lane[8];
  _mm256_store_ps(lane, acc);
  for (size_t l = 0; i + l < n; ++l) lane[l] = lane[l] + x[i + l] * x[i + l];
  const float mean = reduce8(lane) / static_cast<float>(n);
  const float scale = 1.0f / std::sqrt(mean + eps);
  const __m256 vs = _mm256_set1_ps(scale);
  for (i = 0; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs),
                                          _mm256_loadu_ps(w + i)));
  }
  for (; i < n; ++i) y[i] = (x[i] * scale) * w[i];
}

void f32_silumul_avx2(const float* gate, const float* up, size_t n, float* out) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = exp_ps(_mm256_xor_ps(g, sign));
    const __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, e));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = silu_mul_one(gate[i], up[i]);
}

void f32_softmax_avx2(float* x, size_t n) {
  if (n == 0) return;
  float mx = x[0];
  for (size_t i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;  // exact; scalar order keeps ±0 alike
  const __m256 vmx = _mm256_set1_ps(mx);
  __m256 acc = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmx));
    _mm256_storeu_ps(x + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  alignas(32) float lane[8];
  _mm256_store_ps(lane, acc);
  for (size_t l = 0; i + l < n; ++l) {
    x[i + l] = exp_ember(x[i + l] - mx);
    lane[l] = lane[l] + x[i + l];
  }
  const float inv = 1.0f / reduce8(lane);
  const __m256 vinv = _mm256_set1_ps(inv);
  for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vinv));
  for (; i < n; ++i) x[i] = x[i] * inv;
}

}  // namespace kernels
}  // namespace ember
