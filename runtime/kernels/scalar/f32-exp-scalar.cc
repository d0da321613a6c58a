// y = e^x element-wise (ExpFn), scalar: exp_f32 of common.h, the definition every variant
// reproduces lane for lane.
#include "kernels/common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {

void f32_exp_scalar(const float* x, size_t n, float* y) {
  for (size_t i = 0; i < n; ++i) y[i] = exp_f32(x[i]);
}

}  // namespace kernels
}  // namespace ember
