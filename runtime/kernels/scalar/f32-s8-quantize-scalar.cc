// Per-group symmetric s8 quantization of activations (QuantizeActsS8Fn), scalar.
#include "kernels/common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {

void f32_s8_quantize_scalar(const float* x, size_t m, size_t k, size_t group, size_t act_group,
                            int8_t* a, float* d, int32_t* sum, float* msum) {
  const size_t acts = (k + act_group - 1) / act_group;
  const size_t groups = (k + group - 1) / group;
  for (size_t i = 0; i < m; ++i) {
    for (size_t h = 0; h < acts; ++h) {
      const size_t k0 = h * act_group;
      const size_t len = k - k0 < act_group ? k - k0 : act_group;
      d[i * acts + h] = quantize_group_s8(x + i * k + k0, len, a + i * k + k0, sum + i * acts + h);
    }
    act_group_msums(k, group, act_group, d + i * acts, sum + i * acts, msum + i * groups);
  }
}

}  // namespace kernels
}  // namespace ember
