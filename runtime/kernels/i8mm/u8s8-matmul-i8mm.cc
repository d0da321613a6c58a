// Zero-one u8 x s8 matmul with usdot (ARMv8.6 i8mm): unsigned weights times signed activations
// directly, no offset needed.
#include "kernels/neon/neon-common.h"
#include "kernels/variants.h"

#if !defined(__ARM_FEATURE_MATMUL_INT8)
#error "compile i8mm/ with -march=armv8.2-a+i8mm"
#endif

namespace ember {
namespace kernels {
namespace {

struct DotUsdot {
  static void dot4(const uint8_t* const* qr, const int8_t* a, size_t k0, size_t len, int32_t /*asum*/,
                   int32_t* out) {
    int32x4_t acc[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
    size_t t = 0;
    for (; t + 16 <= len; t += 16) {
      const int8x16_t av = vld1q_s8(a + k0 + t);
      for (int j = 0; j < 4; ++j) acc[j] = vusdotq_s32(acc[j], vld1q_u8(qr[j] + k0 + t), av);
    }
    for (int j = 0; j < 4; ++j) {
      int32_t s = vaddvq_s32(acc[j]);
      for (size_t u = t; u < len; ++u) s += static_cast<int32_t>(qr[j][k0 + u]) * a[k0 + u];
      out[j] = s;
    }
  }
};

}  // namespace

void u8s8_matmul_i8mm(const uint8_t* q, const ZeroOneParams* p, size_t k, size_t group,
                      const int8_t* a, const float* d, const int32_t* sum, size_t m, float* y,
                      size_t ldy, size_t n0, size_t n1) {
  neon::u8s8_matmul<DotUsdot>(q, p, k, group, a, d, sum, m, y, ldy, n0, n1);
}

}  // namespace kernels
}  // namespace ember
