// AVX2 helpers shared by the avx2/ kernel files (each compiled with -mavx2 -mfma -mf16c and
// -ffp-contract=off: multiplies and adds stay separate, as the float order in kernels.h requires).
#ifndef EMBER_KERNELS_AVX2_AVX2_COMMON_H_
#define EMBER_KERNELS_AVX2_AVX2_COMMON_H_

#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "runtime/kernels/avx2/ files must be compiled with -mavx2 -mfma -mf16c"
#endif

#include <immintrin.h>

#include "kernels/common.h"

namespace ember {
namespace kernels {
namespace avx2 {
namespace {  // internal linkage: see common.h

// The 8-lane order's final combine: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)).
inline float reduce8_ps(__m256 v) {
  const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));  // [(l0+l4)+(l2+l6), (l1+l5)+(l3+l7)]
  return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
}

// Ember's exp (common.h exp_ember) on 8 lanes, bit for bit.
inline __m256 exp_ps(__m256 x) {
  const __m256 below = _mm256_cmp_ps(x, _mm256_set1_ps(kExpLo), _CMP_LT_OQ);
  x = _mm256_min_ps(x, _mm256_set1_ps(kExpHi));
  x = _mm256_max_ps(x, _mm256_set1_ps(kExpLo));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(kLn2Hi)));
  r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(kLn2Lo)));
  __m256 p = _mm256_set1_ps(kExpC7);
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kExpC6));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kExpC5));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kExpC4));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kExpC3));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kExpC2));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  return _mm256_andnot_ps(below, y);
}

}  // namespace
}  // namespace avx2
}  // namespace kernels
}  // namespace ember

#endif  // EMBER_KERNELS_AVX2_AVX2_COMMON_H_
