// NEON helpers shared by the kernel files of the neon, neon-dot and i8mm variants (compiled with
// -ffp-contract=off: every multiply and add stays separate, as kernels.h requires). The neon files
// also build for AArch32 (ARMv7-A NEON + VFPv4): the shims below stand in for the AArch64-only
// intrinsics with the same results.
#ifndef EMBER_KERNELS_NEON_NEON_COMMON_H_
#define EMBER_KERNELS_NEON_NEON_COMMON_H_

#if !defined(__ARM_NEON)
#error "runtime/kernels/neon*/ and i8mm/ files are for ARM with Advanced SIMD"
#endif

#include <arm_neon.h>

#include "kernels/common.h"

namespace ember {
namespace kernels {

#if !defined(__aarch64__)
namespace {  // internal linkage: see common.h
// AArch32 stand-ins for the AArch64-only intrinsics the neon files use, same results. The float
// divides run lane by lane on VFP (IEEE, like AArch64's fdiv); AArch32 NEON arithmetic flushes
// subnormal inputs to zero, so bit-identity with the scalar kernel holds for normal values.
inline float32x4_t vdivq_f32(float32x4_t a, float32x4_t b) {
  alignas(16) float x[4], y[4];
  vst1q_f32(x, a);
  vst1q_f32(y, b);
  for (int i = 0; i < 4; ++i) x[i] = x[i] / y[i];
  return vld1q_f32(x);
}
inline float vmaxvq_f32(float32x4_t a) {
  const float32x2_t m = vpmax_f32(vget_low_f32(a), vget_high_f32(a));
  return vget_lane_f32(vpmax_f32(m, m), 0);
}
inline int32_t vaddvq_s32(int32x4_t a) {
  const int32x2_t s = vadd_s32(vget_low_s32(a), vget_high_s32(a));
  return vget_lane_s32(vpadd_s32(s, s), 0);
}
// Round to nearest, ties to even (the default rounding mode): exact for |x| < 2^22; larger values
// stay beyond the range the callers clamp to, and NaN converts to 0 as with fcvtns.
inline int32x4_t vcvtnq_s32_f32(float32x4_t x) {
  const float32x4_t magic = vdupq_n_f32(12582912.0f);  // 1.5 * 2^23
  return vcvtq_s32_f32(vsubq_f32(vaddq_f32(x, magic), magic));
}
inline float32x4_t vtrn1q_f32(float32x4_t a, float32x4_t b) { return vtrnq_f32(a, b).val[0]; }
inline float32x4_t vtrn2q_f32(float32x4_t a, float32x4_t b) { return vtrnq_f32(a, b).val[1]; }
inline int16x8_t vmull_high_s8(int8x16_t a, int8x16_t b) {
  return vmull_s8(vget_high_s8(a), vget_high_s8(b));
}
inline int16x8_t vpaddq_s16(int16x8_t a, int16x8_t b) {
  return vcombine_s16(vpadd_s16(vget_low_s16(a), vget_high_s16(a)),
                      vpadd_s16(vget_low_s16(b), vget_high_s16(b)));
}
}  // namespace
#endif

namespace neon {
namespace {  // internal linkage: see common.h

// The 64-bit halves: (a.lo, b.lo) and (a.hi, b.hi).
inline float32x4_t trn1_64(float32x4_t a, float32x4_t b) {
  return vcombine_f32(vget_low_f32(a), vget_low_f32(b));
}
inline float32x4_t trn2_64(float32x4_t a, float32x4_t b) {
  return vcombine_f32(vget_high_f32(a), vget_high_f32(b));
}

#if defined(__aarch64__)
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
#else
// AArch32 NEON has no double lanes: exp_f32 (common.h) lane by lane, its doubles on VFP.
inline float32x4_t exp4(float32x4_t x) {
  alignas(16) float v[4];
  vst1q_f32(v, x);
  for (float& e : v) e = exp_f32(e);
  return vld1q_f32(v);
}
#endif

}  // namespace
}  // namespace neon
}  // namespace kernels
}  // namespace ember

#endif  // EMBER_KERNELS_NEON_NEON_COMMON_H_
