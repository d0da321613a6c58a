// NEON helpers shared by the kernel files of the neon, neon-dot and i8mm variants (AArch64 only;
// compiled with -ffp-contract=off: every multiply and add stays separate, as kernels.h requires).
#ifndef EMBER_KERNELS_NEON_NEON_COMMON_H_
#define EMBER_KERNELS_NEON_NEON_COMMON_H_

#if !defined(__aarch64__) || !defined(__ARM_NEON)
#error "runtime/kernels/neon*/ and i8mm/ files are for AArch64 with Advanced SIMD"
#endif

#include <arm_neon.h>

#include "core/zero_one.h"
#include "kernels/common.h"

namespace ember {
namespace kernels {
namespace neon {
namespace {  // internal linkage: see common.h

// exp_f32 (common.h) on 4 lanes, step for step: two halves of 2 doubles.
inline float64x2_t exp2d(float64x2_t xd) {
  const float64x2_t round = vdupq_n_f64(kExpRound);
  const float64x2_t k = vsubq_f64(vaddq_f64(vmulq_f64(xd, vdupq_n_f64(kExpLog2e)), round), round);
  const float64x2_t r = vsubq_f64(xd, vmulq_f64(k, vdupq_n_f64(kExpLn2)));
  float64x2_t p = vdupq_n_f64(kExpC[0]);
  for (int j = 1; j <= 10; ++j) p = vaddq_f64(vmulq_f64(p, r), vdupq_n_f64(kExpC[j]));
  const int64x2_t ki = vcvtq_s64_f64(k);  // exact: k is an integer
  const int64x2_t s = vshlq_n_s64(vaddq_s64(ki, vdupq_n_s64(1023)), 52);
  return vmulq_f64(p, vreinterpretq_f64_s64(s));
}

inline float32x4_t exp4(float32x4_t x) {
  const uint32x4_t nan = vmvnq_u32(vceqq_f32(x, x));
  // A NaN lane becomes NaN here (k converts to 0) and is replaced by x at the end.
  float32x4_t xc = vmaxq_f32(x, vdupq_n_f32(kExpLo));
  xc = vminq_f32(xc, vdupq_n_f32(kExpHi));
  const float64x2_t lo = exp2d(vcvt_f64_f32(vget_low_f32(xc)));
  const float64x2_t hi = exp2d(vcvt_high_f64_f32(xc));
  return vbslq_f32(nan, x, vcvt_high_f32_f64(vcvt_f32_f64(lo), hi));
}

// The u8 x s8 matmul skeleton shared by the three ARM variants: `Dot` returns the exact integer
// dot of one group for 4 rows at once; the float epilogue is the scalar one (kernels.h order).
template <class Dot>
void u8s8_matmul(const uint8_t* q, const ZeroOneParams* p, size_t k, size_t group, const int8_t* a,
                 const float* d, const int32_t* sum, size_t m, float* y, size_t ldy, size_t n0,
                 size_t n1) {
  const size_t groups = (k + group - 1) / group;
  for (size_t i = 0; i < m; ++i) {
    const int8_t* ai = a + i * k;
    const float* di = d + i * groups;
    const int32_t* si = sum + i * groups;
    for (size_t j0 = n0; j0 < n1; j0 += 4) {
      const uint8_t* qr[4];
      for (int j = 0; j < 4; ++j) qr[j] = q + (j0 + j < n1 ? j0 + j : n1 - 1) * k;
      float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      for (size_t g = 0; g < groups; ++g) {
        const size_t k0 = g * group;
        const size_t len = k - k0 < group ? k - k0 : group;
        int32_t isum[4];
        Dot::dot4(qr, ai, k0, len, si[g], isum);
        for (int j = 0; j < 4; ++j) {
          const ZeroOneParams pj = p[(j0 + j < n1 ? j0 + j : n1 - 1) * groups + g];
          acc[j] = acc[j] + u8s8_group_term(pj.scale, pj.min, di[g], isum[j], si[g]);
        }
      }
      for (int j = 0; j < 4 && j0 + j < n1; ++j) y[i * ldy + j0 + j] = acc[j];
    }
  }
}

}  // namespace
}  // namespace neon
}  // namespace kernels
}  // namespace ember

#endif  // EMBER_KERNELS_NEON_NEON_COMMON_H_
