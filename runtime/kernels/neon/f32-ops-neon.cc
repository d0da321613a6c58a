// RMSNorm, SiLU*mul, softmax, activation quantization and float matmuls, ARMv8.0 NEON, in the float
// order of kernels.h (two q registers = lanes 0-3 and 4-7 of the 8-lane order; no FMA).
#include <cmath>

#include "kernels/neon/neon-common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {
namespace {

inline void store8(float* lane, float32x4_t lo, float32x4_t hi) {
  vst1q_f32(lane, lo);
  vst1q_f32(lane + 4, hi);
}

struct LoadF32 {
  using T = float;
  static void load8(const float* p, float32x4_t* lo, float32x4_t* hi) {
    *lo = vld1q_f32(p);
    *hi = vld1q_f32(p + 4);
  }
  static float load1(float v) { return v; }
};
struct LoadF16 {
  using T = uint16_t;
  static void load8(const uint16_t* p, float32x4_t* lo, float32x4_t* hi) {
    const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(p));
    *lo = vcvt_f32_f16(vget_low_f16(h));
    *hi = vcvt_high_f32_f16(h);
  }
  static float load1(uint16_t v) { return f16_to_f32(v); }
};
struct LoadBF16 {
  using T = uint16_t;
  static void load8(const uint16_t* p, float32x4_t* lo, float32x4_t* hi) {
    const uint16x8_t h = vld1q_u16(p);
    *lo = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
    *hi = vreinterpretq_f32_u32(vshll_high_n_u16(h, 16));
  }
  static float load1(uint16_t v) { return bf16_to_f32(v); }
};

template <class L>
void matmul(const typename L::T* w, size_t k, const float* x, size_t m, float* y, size_t ldy,
            size_t n0, size_t n1) {
  for (size_t i = 0; i < m; ++i) {
    const float* xi = x + i * k;
    for (size_t j = n0; j < n1; ++j) {
      const typename L::T* wj = w + j * k;
      float32x4_t lo = vdupq_n_f32(0.0f), hi = vdupq_n_f32(0.0f);
      size_t t = 0;
      for (; t + 8 <= k; t += 8) {
        float32x4_t wl, wh;
        L::load8(wj + t, &wl, &wh);
        lo = vaddq_f32(lo, vmulq_f32(wl, vld1q_f32(xi + t)));
        hi = vaddq_f32(hi, vmulq_f32(wh, vld1q_f32(xi + t + 4)));
      }
      float lane[8];
      store8(lane, lo, hi);
      for (size_t l = 0; t < k; ++t, ++l) lane[l] = lane[l] + L::load1(wj[t]) * xi[t];
      y[i * ldy + j] = reduce8(lane);
    }
  }
}

}  // namespace

void f32_matmul_neon(const float* w, size_t k, const float* x, size_t m, float* y, size_t ldy,
                     size_t n0, size_t n1) {
  matmul<LoadF32>(w, k, x, m, y, ldy, n0, n1);
}
void f16_matmul_neon(const uint16_t* w, size_t k, const float* x, size_t m, float* y, size_t ldy,
                     size_t n0, size_t n1) {
  matmul<LoadF16>(w, k, x, m, y, ldy, n0, n1);
}
void bf16_matmul_neon(const uint16_t* w, size_t k, const float* x, size_t m, float* y, size_t ldy,
                      size_t n0, size_t n1) {
  matmul<LoadBF16>(w, k, x, m, y, ldy, n0, n1);
}

void f32_rmsnorm_neon(const float* x, const float* w, size_t n, float eps, float* y) {
  float32x4_t lo = vdupq_n_f32(0.0f), hi = vdupq_n_f32(0.0f);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float32x4_t a = vld1q_f32(x + i), b = vld1q_f32(x + i + 4);
    lo = vaddq_f32(lo, vmulq_f32(a, a));
    hi = vaddq_f32(hi, vmulq_f32(b, b));
  }
  float lane[8];
  store8(lane, lo, hi);
  for (size_t l = 0; i + l < n; ++l) lane[l] = lane[l] + x[i + l] * x[i + l];
  const float mean = reduce8(lane) / static_cast<float>(n);
  const float scale = 1.0f / std::sqrt(mean + eps);
  const float32x4_t vs = vdupq_n_f32(scale);
  for (i = 0; i + 4 <= n; i += 4) vst1q_f32(y + i, vmulq_f32(vmulq_f32(vld1q_f32(x + i), vs), vld1q_f32(w + i)));
  for (; i < n; ++i) y[i] = (x[i] * scale) * w[i];
}

void f32_silumul_neon(const float* gate, const float* up, size_t n, float* out) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t g = vld1q_f32(gate + i);
    const float32x4_t e = neon::exp_f32x4(vnegq_f32(g));
    const float32x4_t s = vdivq_f32(g, vaddq_f32(vdupq_n_f32(1.0f), e));
    vst1q_f32(out + i, vmulq_f32(s, vld1q_f32(up + i)));
  }
  for (; i < n; ++i) out[i] = silu_mul_one(gate[i], up[i]);
}

void f32_softmax_neon(float* x, size_t n) {
  if (n == 0) return;
  float mx = x[0];
  for (size_t i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  const float32x4_t vmx = vdupq_n_f32(mx);
  float32x4_t lo = vdupq_n_f32(0.0f), hi = vdupq_n_f32(0.0f);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float32x4_t a = neon::exp_f32x4(vsubq_f32(vld1q_f32(x + i), vmx));
    const float32x4_t b = neon::exp_f32x4(vsubq_f32(vld1q_f32(x + i + 4), vmx));
    vst1q_f32(x + i, a);
    vst1q_f32(x + i + 4, b);
    lo = vaddq_f32(lo, a);
    hi = vaddq_f32(hi, b);
  }
  float lane[8];
  store8(lane, lo, hi);
  for (size_t l = 0; i + l < n; ++l) {
    x[i + l] = exp_ember(x[i + l] - mx);
    lane[l] = lane[l] + x[i + l];
  }
  const float inv = 1.0f / reduce8(lane);
  for (i = 0; i < n; ++i) x[i] = x[i] * inv;
}

void f32_s8_quantize_neon(const float* x, size_t m, size_t k, size_t group, int8_t* a, float* d,
                          int32_t* sum) {
  const size_t groups = (k + group - 1) / group;
  for (size_t i = 0; i < m; ++i) {
    for (size_t g = 0; g < groups; ++g) {
      const size_t k0 = g * group;
      const size_t len = k - k0 < group ? k - k0 : group;
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
        v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
        const int32_t qv = static_cast<int32_t>(v);
        ag[t] = static_cast<int8_t>(qv);
        s += qv;
      }
      d[i * groups + g] = dg;
      sum[i * groups + g] = s;
    }
  }
}

}  // namespace kernels
}  // namespace ember
