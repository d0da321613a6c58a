// Zero-one u8 x s8 matmul with sdot (ARMv8.2 dot product). sdot needs two signed operands: the
// weights are q ^ 0x80 = q - 128 and the 128 * sum(a) this drops is added back per group in int32.
// One sdot of a unit register with a token's activation word adds 4 products to each of 4 rows;
// tiles of up to 4 tokens (u8s8-blocks-neon.h): 16 accumulators, 4 weight and 4 activation
// registers of the 32.
#include "kernels/neon/u8s8-blocks-neon.h"
#include "kernels/variants.h"

#if !defined(__ARM_FEATURE_DOTPROD)
#error "compile neondot/ with -march=armv8.2-a+dotprod"
#endif

namespace ember {
namespace kernels {
namespace {

struct DotSdot {
  using W = int8x16_t;
  static constexpr bool kFlip = true;
  static W load(const uint8_t* p) {
    return vreinterpretq_s8_u8(veorq_u8(vld1q_u8(p), vdupq_n_u8(0x80)));
  }
  static int32x4_t dot(int32x4_t acc, W w, int8x16_t a) { return vdotq_s32(acc, w, a); }
};

}  // namespace

void u8s8_matmul_neondot(const U8Matrix& w, const S8Acts& x, size_t m, float* y, size_t ldy,
                         size_t n0, size_t n1) {
  run_u8_blocks<4>(neon::neon_tile_sets<DotSdot>(), w, x, m, y, ldy, n0, n1);
}

}  // namespace kernels
}  // namespace ember
