// RMSNorm (RmsNormFn), scalar, in the order of kernels.h (run.c's): sequential sum of squares,
// mean = sum / n, scale = 1 / sqrt(mean + eps), y = (x * scale) * w.
#include <cmath>

#include "kernels/common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {

void f32_rmsnorm_scalar(const float* x, const float* w, size_t n, float eps, float* y) {
  float acc = 0.0f;
  for (size_t i = 0; i < n; ++i) acc = acc + x[i] * x[i];
  const float mean = acc / static_cast<float>(n);
  const float scale = 1.0f / std::sqrt(mean + eps);
  for (size_t i = 0; i < n; ++i) y[i] = (x[i] * scale) * w[i];
}

}  // namespace kernels
}  // namespace ember
