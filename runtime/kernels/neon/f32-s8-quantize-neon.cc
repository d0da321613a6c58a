// Per-group symmetric s8 quantization of activations (QuantizeActsS8Fn), ARMv8.0 NEON: max |x| and
// the rounding on 4 lanes, the same scale, values and group sums as the scalar kernel.
#include <cmath>

#include "kernels/neon/neon-common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {

void f32_s8_quantize_neon(const float* x, size_t m, size_t k, size_t group, size_t act_group,
                          int8_t* a, float* d, int32_t* sum, float* msum) {
  const size_t acts = (k + act_group - 1) / act_group;
  const size_t groups = (k + group - 1) / group;
  for (size_t i = 0; i < m; ++i) {
    for (size_t h = 0; h < acts; ++h) {
      const size_t k0 = h * act_group;
      const size_t len = k - k0 < act_group ? k - k0 : act_group;
      const float* xg = x + i * k + k0;
      int8_t* ag = a + i * k + k0;
      float32x4_t vmax = vdupq_n_f32(0.0f);
      size_t t = 0;
      for (; t + 4 <= len; t += 4) vmax = vmaxq_f32(vmax, vabsq_f32(vld1q_f32(xg + t)));
      float amax = vmaxvq_f32(vmax);
      for (; t < len; ++t) {
        const float v = std::fabs(xg[t]);
        amax = v > amax ? v : amax;
      }
      const float dg = amax / 127.0f;
      const float id = dg > 0.0f ? 1.0f / dg : 0.0f;
      const float32x4_t vid = vdupq_n_f32(id);
      int32x4_t vsum = vdupq_n_s32(0);
      t = 0;
      for (; t + 8 <= len; t += 8) {
        int32x4_t q0 = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(xg + t), vid));
        int32x4_t q1 = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(xg + t + 4), vid));
        q0 = vminq_s32(vmaxq_s32(q0, vdupq_n_s32(-127)), vdupq_n_s32(127));
        q1 = vminq_s32(vmaxq_s32(q1, vdupq_n_s32(-127)), vdupq_n_s32(127));
        vsum = vaddq_s32(vsum, vaddq_s32(q0, q1));
        vst1_s8(ag + t, vmovn_s16(vcombine_s16(vmovn_s32(q0), vmovn_s32(q1))));
      }
      int32_t s = vaddvq_s32(vsum);
      for (; t < len; ++t) {
        float v = std::nearbyint(xg[t] * id);
        v = v > 127.0f ? 127.0f : (v >= -127.0f ? v : -127.0f);  // NaN: -127, as the x86 lanes
        const int32_t qv = static_cast<int32_t>(v);
        ag[t] = static_cast<int8_t>(qv);
        s += qv;
      }
      d[i * acts + h] = dg;
      sum[i * acts + h] = s;
    }
    act_group_msums(k, group, act_group, d + i * acts, sum + i * acts, msum + i * groups);
  }
}

}  // namespace kernels
}  // namespace ember
