// RMSNorm (RmsNormFn), scalar: sum of squares in the 8-lane order of kernels.h.
#include <cmath>

#include "kernels/common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {

void f32_rmsnorm_scalar(const float* x, const float* w, size_t n, float eps, float* y) {
  float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (size_t i = 0; i < n; ++i) lane[i % 8] = lane[i % 8] + x[i] * x[i];
  const float mean = reduce8(lane) / static_cast<float>(n);
  const float scale = 1.0f / std::sqrt(mean + eps);
  for (size_t i = 0; i < n; ++i) y[i] = (x[i] * scale) * w[i];
}

}  // namespace kernels
}  // namespace ember
