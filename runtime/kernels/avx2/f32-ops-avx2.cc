// RMSNorm, SiLU*mul and softmax, AVX2, in the order of kernels.h (the scalar kernels' exactly):
// the reductions are sequential scalar loops (O(n), compiled without contraction or reassociation),
// exp is libm's expf per element; only the element-wise multiplies and divides use SIMD (IEEE
// exact, so the same bits as scalar).
#include <cmath>

#include "kernels/avx2/avx2-common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {

void f32_rmsnorm_avx2(const float* x, const float* w, size_t n, float eps, float* y) {
  float acc = 0.0f;
  for (size_t i = 0; i < n; ++i) acc = acc + x[i] * x[i];
  const float mean = acc / static_cast<float>(n);
  const float scale = 1.0f / std::sqrt(mean + eps);
  const __m256 vs = _mm256_set1_ps(scale);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs),
                                          _mm256_loadu_ps(w + i)));
  }
  for (; i < n; ++i) y[i] = (x[i] * scale) * w[i];
}

void f32_silumul_avx2(const float* gate, const float* up, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = silu_mul_one(gate[i], up[i]);
}

void f32_softmax_avx2(float* x, size_t n) {
  if (n == 0) return;
  float mx = x[0];
  for (size_t i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;  // exact; scalar order keeps ±0 alike
  float sum = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum = sum + x[i];
  }
  const __m256 vsum = _mm256_set1_ps(sum);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_div_ps(_mm256_loadu_ps(x + i), vsum));
  for (; i < n; ++i) x[i] = x[i] / sum;
}

}  // namespace kernels
}  // namespace ember
