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

// Ember's exp (common.h exp_ember) on 4 lanes, bit for bit (frintn = round to nearest even).
inline float32x4_t exp_f32x4(float32x4_t x) {
  const uint32x4_t below = vcltq_f32(x, vdupq_n_f32(kExpLo));
  x = vminq_f32(x, vdupq_n_f32(kExpHi));
  x = vmaxq_f32(x, vdupq_n_f32(kExpLo));
  const float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(kLog2e)));
  float32x4_t r = vsubq_f32(x, vmulq_f32(n, vdupq_n_f32(kLn2Hi)));
  r = vsubq_f32(r, vmulq_f32(n, vdupq_n_f32(kLn2Lo)));
  float32x4_t p = vdupq_n_f32(kExpC7);
  p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32(kExpC6));
  p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32(kExpC5));
  p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32(kExpC4));
  p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32(kExpC3));
  p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32(kExpC2));
  p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32(1.0f));
  p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32(1.0f));
  const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
  const float32x4_t y = vmulq_f32(p, vreinterpretq_f32_s32(e));
  return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(y), below));
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
