// Zero-one u8 weight x s8 activation matmul (MatmulU8S8Fn), scalar: one output at a time.
#include "kernels/common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {

void u8s8_matmul_scalar(const uint8_t* q, const ZeroOneParams* p, size_t k, size_t group,
                        const int8_t* a, const float* d, const int32_t* sum, size_t m, float* y,
                        size_t ldy, size_t n0, size_t n1) {
  const size_t groups = (k + group - 1) / group;
  for (size_t i = 0; i < m; ++i) {
    const int8_t* ai = a + i * k;          // (k)
    const float* di = d + i * groups;      // (groups)
    const int32_t* si = sum + i * groups;  // (groups)
    for (size_t j = n0; j < n1; ++j) {
      const uint8_t* qj = q + j * k;                 // (k)
      const ZeroOneParams* pj = p + j * groups;      // (groups)
      float acc = 0.0f;
      for (size_t g = 0; g < groups; ++g) {
        const size_t k0 = g * group;
        const size_t k1 = k - k0 < group ? k : k0 + group;
        int32_t isum = 0;
        for (size_t t = k0; t < k1; ++t) isum += static_cast<int32_t>(qj[t]) * ai[t];
        acc = acc + u8s8_group_term(pj[g].scale, pj[g].min, di[g], isum, si[g]);
      }
      y[i * ldy + j] = acc;
    }
  }
}

}  // namespace kernels
}  // namespace ember
