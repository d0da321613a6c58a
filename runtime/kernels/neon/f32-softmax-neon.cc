// Softmax in place (SoftmaxFn), ARMv8.0 NEON: max and sum are the scalar kernel's sequential loops;
// exp and the divides run on 4 lanes with the scalar bits.
#include "kernels/neon/neon-common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {

void f32_softmax_neon(float* x, size_t n) {
  if (n == 0) return;
  float mx = x[0];
  for (size_t i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  const float32x4_t vmx = vdupq_n_f32(mx);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(x + i, neon::exp4(vsubq_f32(vld1q_f32(x + i), vmx)));
  for (; i < n; ++i) x[i] = exp_f32(x[i] - mx);
  float sum = 0.0f;
  for (i = 0; i < n; ++i) sum = sum + x[i];
  const float32x4_t vsum = vdupq_n_f32(sum);
  i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(x + i, vdivq_f32(vld1q_f32(x + i), vsum));
  for (; i < n; ++i) x[i] = x[i] / sum;
}

}  // namespace kernels
}  // namespace ember
