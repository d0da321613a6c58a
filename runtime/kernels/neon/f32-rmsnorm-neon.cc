// RMSNorm (RmsNormFn), ARMv8.0 NEON: the sum of squares is the scalar kernel's sequential loop;
// the element-wise multiplies run on 4 lanes (IEEE exact, so the scalar bits).
#include <cmath>

#include "kernels/neon/neon-common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {

void f32_rmsnorm_neon(const float* x, const float* w, size_t n, float eps, float* y) {
  float acc = 0.0f;
  for (size_t i = 0; i < n; ++i) acc = acc + x[i] * x[i];
  const float mean = acc / static_cast<float>(n);
  const float scale = 1.0f / std::sqrt(mean + eps);
  const float32x4_t vs = vdupq_n_f32(scale);
  size_t i = 0;
  for (; i + 4 <= n; i += 4)
    vst1q_f32(y + i, vmulq_f32(vmulq_f32(vld1q_f32(x + i), vs), vld1q_f32(w + i)));
  for (; i < n; ++i) y[i] = (x[i] * scale) * w[i];
}

}  // namespace kernels
}  // namespace ember
