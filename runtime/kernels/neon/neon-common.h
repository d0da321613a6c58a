// NEON helpers shared by the kernel files of the neon, neon-dot and i8mm variants (AArch64 only;
// compiled with -ffp-contract=off: every multiply and add stays separate, as kernels.h requires).
#ifndef EMBER_KERNELS_NEON_NEON_COMMON_H_
#define EMBER_KERNELS_NEON_NEON_COMMON_H_

#if !defined(__aarch64__) || !defined(__ARM_NEON)
#error "runtime/kernels/neon*/ and i8mm/ files are for AArch64 with Advanced SIMD"
#endif

#include <arm_neon.h>

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

}  // namespace
}  // namespace neon
}  // namespace kernels
}  // namespace ember

#endif  // EMBER_KERNELS_NEON_NEON_COMMON_H_
