// Per-group symmetric s8 quantization of activations (QuantizeActsS8Fn), scalar.
#include "kernels/common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {

void f32_s8_quantize_scalar(const float* x, size_t m, size_t k, size_t group, int8_t* a, float* d,
                            int32_t* sum) {
  const size_t groups = (k + group - 1) / group;
  for (size_t i = 0; i < m; ++i) {
    for (size_t g = 0; g < groups; ++g) {
      const size_t k0 = g * group;
      const size_t len = k - k0 < group ? k - k0 : group;
      d[i * groups + g] =
          quantize_group_s8(x + i * k + k0, len, a + i * k + k0, sum + i * groups + g);
    }
  }
}

}  // namespace kernels
}  // namespace ember
