// SiLU(gate) * up (SiluMulFn), scalar: (g * (1 / (1 + exp_f32(-g)))) * u (common.h, kernels.h).
#include "kernels/common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {

void f32_silumul_scalar(const float* gate, const float* up, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = silu_mul_one(gate[i], up[i]);
}

}  // namespace kernels
}  // namespace ember
