// Zero-one u8 weight x s8 activation matmul (MatmulU8S8Fn), scalar: one 16-row block and one token
// at a time, 16 integer sums per group side by side as the stored units lay them out.
#include "kernels/common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {

void u8s8_matmul_scalar(const uint8_t* w, const float* p, size_t k, size_t group, const int8_t* a,
                        const float* d, const int32_t* sum, size_t m, float* y, size_t ldy,
                        size_t n0, size_t n1) {
  constexpr size_t R = kZeroOneBlockRows, U = kZeroOneUnitBytes, S = kZeroOneUnitStride;
  const U8Blocks L(k, group);
  for (size_t b = n0 / R; b * R < n1; ++b) {
    const uint8_t* wb = w + b * L.block_bytes;                 // (groups, units, 16, 4)
    const float* pb = p + b * L.groups * kZeroOneParamFloats;  // (groups, {16 scales, 16 mins})
    const size_t r0 = b * R < n0 ? n0 - b * R : 0;
    const size_t r1 = n1 - b * R < R ? n1 - b * R : R;
    for (size_t i = 0; i < m; ++i) {
      const int8_t* ai = a + i * k;            // (k)
      const float* di = d + i * L.groups;      // (groups)
      const int32_t* si = sum + i * L.groups;  // (groups)
      float facc[R] = {};
      for (size_t g = 0; g < L.groups; ++g) {
        const uint8_t* wg = wb + g * L.group_bytes;
        const size_t k0 = g * group, len = L.len(g);
        int32_t isum[R] = {};
        for (size_t t = 0; t < len; ++t) {
          const uint8_t* col = wg + (t / U) * S + t % U;  // byte t of the group, row r at r * U
          const int32_t av = ai[k0 + t];
          for (size_t r = 0; r < R; ++r) isum[r] += static_cast<int32_t>(col[r * U]) * av;
        }
        const float* sc = pb + g * kZeroOneParamFloats;
        for (size_t r = 0; r < R; ++r) {
          facc[r] = facc[r] + u8s8_group_term(sc[r], sc[R + r], di[g], isum[r], si[g]);
        }
      }
      for (size_t r = r0; r < r1; ++r) y[i * ldy + b * R + r] = facc[r];
    }
  }
}

}  // namespace kernels
}  // namespace ember
