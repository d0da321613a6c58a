// RMSNorm, exp, SiLU*mul and softmax, AVX2, in the order of kernels.h (the scalar kernels'
// exactly): the reductions are sequential scalar loops (O(n), compiled without contraction or
// reassociation); exp is exp_f32 of common.h reproduced on 8 lanes (every step the same IEEE
// operation, no FMA); the element-wise multiplies and divides are IEEE exact, so the same bits as
// scalar.
#include <cmath>

#include "kernels/avx2/avx2-common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {
namespace {

// exp_f32 (common.h) on 8 lanes, step for step: two halves of 4 doubles.
inline __m256d exp4d(__m256d xd) {
  const __m256d round = _mm256_set1_pd(kExpRound);
  const __m256d k =
      _mm256_sub_pd(_mm256_add_pd(_mm256_mul_pd(xd, _mm256_set1_pd(kExpLog2e)), round), round);
  const __m256d r = _mm256_sub_pd(xd, _mm256_mul_pd(k, _mm256_set1_pd(kExpLn2)));
  __m256d p = _mm256_set1_pd(kExpC[0]);
  for (int j = 1; j <= 10; ++j) p = _mm256_add_pd(_mm256_mul_pd(p, r), _mm256_set1_pd(kExpC[j]));
  const __m256i k64 = _mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(k));  // exact: k is an integer
  const __m256i s = _mm256_slli_epi64(_mm256_add_epi64(k64, _mm256_set1_epi64x(1023)), 52);
  return _mm256_mul_pd(p, _mm256_castsi256_pd(s));
}

inline __m256 exp8(__m256 x) {
  const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
  // max / min return the second operand for a NaN lane: the lane is replaced below anyway.
  __m256 xc = _mm256_max_ps(x, _mm256_set1_ps(kExpLo));
  xc = _mm256_min_ps(xc, _mm256_set1_ps(kExpHi));
  const __m256d lo = exp4d(_mm256_cvtps_pd(_mm256_castps256_ps128(xc)));
  const __m256d hi = exp4d(_mm256_cvtps_pd(_mm256_extractf128_ps(xc, 1)));
  const __m256 y = _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo));
  return _mm256_blendv_ps(y, x, nan);
}

}  // namespace

void f32_exp_avx2(const float* x, size_t n, float* y) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp8(_mm256_loadu_ps(x + i)));
  for (; i < n; ++i) y[i] = exp_f32(x[i]);
}

void f32_rmsnorm_avx2(const float* x, const float* w, size_t n, float eps, float* y) {
  float acc = 0.0f;
  for (size_t i = 0; i < n; ++i) acc = acc + x[i] * x[i];
  const float mean = acc / static_cast<float>(n);
  const float scale = 1.0f / std::sqrt(mean + eps);
  const __m256 vs = _mm256_set1_ps(scale);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(
        y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs), _mm256_loadu_ps(w + i)));
  }
  for (; i < n; ++i) y[i] = (x[i] * scale) * w[i];
}

void f32_silumul_avx2(const float* gate, const float* up, size_t n, float* out) {
  const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = exp8(_mm256_xor_ps(g, sign));  // e^-g
    const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, e));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(g, s), _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = silu_mul_one(gate[i], up[i]);
}

void f32_softmax_avx2(float* x, size_t n) {
  if (n == 0) return;
  float mx = x[0];
  for (size_t i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;  // exact; scalar order keeps ±0 alike
  const __m256 vmx = _mm256_set1_ps(mx);
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(x + i, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmx)));
  for (; i < n; ++i) x[i] = exp_f32(x[i] - mx);
  float sum = 0.0f;
  for (i = 0; i < n; ++i) sum = sum + x[i];
  const __m256 vsum = _mm256_set1_ps(sum);
  i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_div_ps(_mm256_loadu_ps(x + i), vsum));
  for (; i < n; ++i) x[i] = x[i] / sum;
}

}  // namespace kernels
}  // namespace ember
