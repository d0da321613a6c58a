// In-place softmax (SoftmaxFn), scalar, in the order of kernels.h (run.c's): exact max,
// x = exp_f32(x - max) with a sequential sum, then x / sum.
#include "kernels/common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {

void f32_softmax_scalar(float* x, size_t n) {
  if (n == 0) return;
  float mx = x[0];
  for (size_t i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  float sum = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    x[i] = exp_f32(x[i] - mx);
    sum = sum + x[i];
  }
  for (size_t i = 0; i < n; ++i) x[i] = x[i] / sum;
}

}  // namespace kernels
}  // namespace ember
