// Zero-one u8 x s8 matmul, ARMv8.0 NEON (no dot product). Weights flipped to s8 (q ^ 0x80 =
// q - 128) so that smull multiplies bytes directly: each product is at most 128 * 127 = 16256, so
// addp of two stays in int16 and sadalp adds a row's 4 into its int32 lane; the dropped
// 128 * sum(a) is added back per group. Tiles of up to 3 tokens (u8s8-blocks-neon.h): with 4, the
// int16 products in flight push GCC to spill accumulators inside the unit loop.
#include "kernels/neon/u8s8-blocks-neon.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {
namespace {

struct DotWiden {
  using W = int8x16_t;
  static constexpr bool kFlip = true;
  static W load(const uint8_t* p) {
    return vreinterpretq_s8_u8(veorq_u8(vld1q_u8(p), vdupq_n_u8(0x80)));
  }
  // Lanes of w: rows r..r+3, 4 bytes each; a: one word in every lane (|a| <= 127).
  static int32x4_t dot(int32x4_t acc, W w, int8x16_t a) {
    const int16x8_t lo = vmull_s8(vget_low_s8(w), vget_low_s8(a));  // rows r, r + 1
    const int16x8_t hi = vmull_high_s8(w, a);                       // rows r + 2, r + 3
    return vpadalq_s16(acc, vpaddq_s16(lo, hi));
  }
};

}  // namespace

void u8s8_matmul_neon(const U8Matrix& w, const S8Acts& x, size_t m, float* y, size_t ldy, size_t n0,
                      size_t n1) {
  run_u8_blocks<3>(neon::neon_tile_sets<DotWiden>(), w, x, m, y, ldy, n0, n1);
}

}  // namespace kernels
}  // namespace ember
