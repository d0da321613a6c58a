// SiLU(gate) * up (SiluMulFn), ARMv8.0 NEON: exp on 4 lanes (neon-common.h), then the scalar
// kernel's divide and multiplies, IEEE exact, so the same bits.
#include "kernels/neon/neon-common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {

void f32_silumul_neon(const float* gate, const float* up, size_t n, float* out) {
  size_t i = 0;
#if defined(__aarch64__)
  const float32x4_t one = vdupq_n_f32(1.0f);
  for (; i + 4 <= n; i += 4) {
    const float32x4_t g = vld1q_f32(gate + i);
    const float32x4_t s = vdivq_f32(one, vaddq_f32(one, neon::exp4(vnegq_f32(g))));
    vst1q_f32(out + i, vmulq_f32(vmulq_f32(g, s), vld1q_f32(up + i)));
  }
#endif
  // AArch32: every lane on VFP. Its exp is lane by lane anyway, and NEON's multiplies would flush
  // the subnormal sigmoid of a large negative gate to zero.
  for (; i < n; ++i) out[i] = silu_mul_one(gate[i], up[i]);
}

}  // namespace kernels
}  // namespace ember
