// Zero-one u8 x s8 matmul with usdot (ARMv8.6 i8mm): unsigned weights times signed activations
// directly, no flip. One usdot of a unit register with a token's activation word adds 4 products
// to each of 4 rows; tiles of up to 4 tokens (u8s8-blocks-neon.h): 16 accumulators, 4 weight
// and 4 activation registers of the 32.
#include "kernels/neon/u8s8-blocks-neon.h"
#include "kernels/variants.h"

#if !defined(__ARM_FEATURE_MATMUL_INT8)
#error "compile i8mm/ with -march=armv8.2-a+i8mm"
#endif

namespace ember {
namespace kernels {
namespace {

struct DotUsdot {
  using W = uint8x16_t;
  static constexpr bool kFlip = false;
  static W load(const uint8_t* p) { return vld1q_u8(p); }
  static int32x4_t dot(int32x4_t acc, W w, int8x16_t a) { return vusdotq_s32(acc, w, a); }
};

}  // namespace

void u8s8_matmul_i8mm(const U8Matrix& w, const S8Acts& x, size_t m, float* y, size_t ldy, size_t n0,
                      size_t n1) {
  run_u8_blocks<4>(neon::neon_tile_sets<DotUsdot>(), w, x, m, y, ldy, n0, n1);
}

}  // namespace kernels
}  // namespace ember
