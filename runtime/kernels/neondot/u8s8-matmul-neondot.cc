// Zero-one u8 x s8 matmul with sdot (ARMv8.2 dot product): sdot needs two signed operands, so
// q ^ 0x80 = q - 128 is used and the 128 * sum(a) it drops is added back exactly in int32.
#include "kernels/neon/neon-common.h"
#include "kernels/variants.h"

#if !defined(__ARM_FEATURE_DOTPROD)
#error "compile neondot/ with -march=armv8.2-a+dotprod"
#endif

namespace ember {
namespace kernels {
namespace {

struct DotSdot {
  static void dot4(const uint8_t* const* qr, const int8_t* a, size_t k0, size_t len, int32_t asum,
                   int32_t* out) {
    int32x4_t acc[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
    const uint8x16_t flip = vdupq_n_u8(0x80);
    size_t t = 0;
    for (; t + 16 <= len; t += 16) {
      const int8x16_t av = vld1q_s8(a + k0 + t);
      for (int j = 0; j < 4; ++j) {
        const int8x16_t qv = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(qr[j] + k0 + t), flip));
        acc[j] = vdotq_s32(acc[j], qv, av);
      }
    }
    // The 128 * sum(a) correction covers the elements the sdot loop saw (the whole group unless
    // its length is not a multiple of 16); the tail's products are added exactly.
    int32_t a_head = asum;
    if (t < len) {
      a_head = 0;
      for (size_t u = 0; u < t; ++u) a_head += a[k0 + u];
    }
    for (int j = 0; j < 4; ++j) {
      int32_t s = vaddvq_s32(acc[j]) + 128 * a_head;
      for (size_t u = t; u < len; ++u) s += static_cast<int32_t>(qr[j][k0 + u]) * a[k0 + u];
      out[j] = s;
    }
  }
};

}  // namespace

void u8s8_matmul_neondot(const uint8_t* q, const ZeroOneParams* p, size_t k, size_t group,
                         const int8_t* a, const float* d, const int32_t* sum, size_t m, float* y,
                         size_t ldy, size_t n0, size_t n1) {
  neon::u8s8_matmul<DotSdot>(q, p, k, group, a, d, sum, m, y, ldy, n0, n1);
}

}  // namespace kernels
}  // namespace ember
