// y = e^x element-wise (ExpFn), ARMv8.0 NEON: exp_f32 of common.h on 4 lanes (neon-common.h).
#include "kernels/neon/neon-common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {

void f32_exp_neon(const float* x, size_t n, float* y) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, neon::exp4(vld1q_f32(x + i)));
  for (; i < n; ++i) y[i] = exp_f32(x[i]);
}

}  // namespace kernels
}  // namespace ember
