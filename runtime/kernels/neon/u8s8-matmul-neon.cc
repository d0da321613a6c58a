// Zero-one u8 x s8 matmul, ARMv8.0 NEON (no dot product): widen to 16 bits, smlal into int32.
#include "kernels/neon/neon-common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {
namespace {

struct DotWiden {
  static void dot4(const uint8_t* const* qr, const int8_t* a, size_t k0, size_t len, int32_t /*asum*/,
                   int32_t* out) {
    int32x4_t acc[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
    size_t t = 0;
    for (; t + 8 <= len; t += 8) {
      const int16x8_t av = vmovl_s8(vld1_s8(a + k0 + t));
      for (int j = 0; j < 4; ++j) {
        const int16x8_t qv = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(qr[j] + k0 + t)));
        acc[j] = vmlal_s16(acc[j], vget_low_s16(av), vget_low_s16(qv));
        acc[j] = vmlal_high_s16(acc[j], av, qv);
      }
    }
    for (int j = 0; j < 4; ++j) {
      int32_t s = vaddvq_s32(acc[j]);
      for (size_t u = t; u < len; ++u) s += static_cast<int32_t>(qr[j][k0 + u]) * a[k0 + u];
      out[j] = s;
    }
  }
};

}  // namespace

void u8s8_matmul_neon(const uint8_t* q, const ZeroOneParams* p, size_t k, size_t group,
                      const int8_t* a, const float* d, const int32_t* sum, size_t m, float* y,
                      size_t ldy, size_t n0, size_t n1) {
  neon::u8s8_matmul<DotWiden>(q, p, k, group, a, d, sum, m, y, ldy, n0, n1);
}

}  // namespace kernels
}  // namespace ember
