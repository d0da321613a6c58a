// In-place softmax (SoftmaxFn), scalar: exact max, Ember's exp, 8-lane sum, multiply by 1/sum.
#include "kernels/common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {

void f32_softmax_scalar(float* x, size_t n) {
  if (n == 0) return;
  float mx = x[0];
  for (size_t i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (size_t i = 0; i < n; ++i) {
    x[i] = exp_ember(x[i] - mx);
    lane[i % 8] = lane[i % 8] + x[i];
  }
  const float inv = 1.0f / reduce8(lane);
  for (size_t i = 0; i < n; ++i) x[i] = x[i] * inv;
}

}  // namespace kernels
}  // namespace ember
