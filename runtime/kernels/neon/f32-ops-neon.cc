// RMSNorm, SiLU*mul, softmax, activation quantization and float matmuls, ARMv8.0 NEON, in the float
// order of kernels.h, bit-identical to the scalar kernels (no FMA: -ffp-contract=off).
// Float matmuls: sequential over k per output, SIMD ACROSS OUTPUT ROWS (one q register = the
// accumulators of 4 rows; 4x4 blocks of W transposed in registers). RMSNorm / softmax: sequential
// scalar reductions; exp is exp_f32 of common.h reproduced on 4 lanes (same IEEE steps, no FMA);
// element-wise multiplies / divides in SIMD (IEEE exact).
#include <cmath>

#include "kernels/neon/neon-common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {
namespace {

// exp_f32 (common.h) on 4 lanes, step for step: two halves of 2 doubles.
inline float64x2_t exp2d(float64x2_t xd) {
  const float64x2_t round = vdupq_n_f64(kExpRound);
  const float64x2_t k = vsubq_f64(vaddq_f64(vmulq_f64(xd, vdupq_n_f64(kExpLog2e)), round), round);
  const float64x2_t r = vsubq_f64(xd, vmulq_f64(k, vdupq_n_f64(kExpLn2)));
  float64x2_t p = vdupq_n_f64(kExpC[0]);
  for (int j = 1; j <= 10; ++j) p = vaddq_f64(vmulq_f64(p, r), vdupq_n_f64(kExpC[j]));
  const int64x2_t ki = vcvtq_s64_f64(k);  // exact: k is an integer
  const int64x2_t s = vshlq_n_s64(vaddq_s64(ki, vdupq_n_s64(1023)), 52);
  return vmulq_f64(p, vreinterpretq_f64_s64(s));
}

inline float32x4_t exp4(float32x4_t x) {
  const uint32x4_t nan = vmvnq_u32(vceqq_f32(x, x));
  // A NaN lane becomes NaN here (k converts to 0) and is replaced by x at the end.
  float32x4_t xc = vmaxq_f32(x, vdupq_n_f32(kExpLo));
  xc = vminq_f32(xc, vdupq_n_f32(kExpHi));
  const float64x2_t lo = exp2d(vcvt_f64_f32(vget_low_f32(xc)));
  const float64x2_t hi = exp2d(vcvt_high_f64_f32(xc));
  return vbslq_f32(nan, x, vcvt_high_f32_f64(vcvt_f32_f64(lo), hi));
}

// load4(p) = p[0..3] widened to f32; load1 = one value widened.
struct LoadF32 {
  using T = float;
  static float32x4_t load4(const float* p) { return vld1q_f32(p); }
  static float load1(float v) { return v; }
};
struct LoadF16 {
  using T = uint16_t;
  static float32x4_t load4(const uint16_t* p) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
  }
  static float load1(uint16_t v) { return f16_to_f32(v); }
};
struct LoadBF16 {
  using T = uint16_t;
  static float32x4_t load4(const uint16_t* p) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16));
  }
  static float load1(uint16_t v) { return bf16_to_f32(v); }
};

inline float32x4_t trn1_64(float32x4_t a, float32x4_t b) {
  return vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(a), vreinterpretq_f64_f32(b)));
}
inline float32x4_t trn2_64(float32x4_t a, float32x4_t b) {
  return vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(a), vreinterpretq_f64_f32(b)));
}

// c[t] = (w[r[0]][k0 + t], ..., w[r[3]][k0 + t]) for t = 0..3.
template <class L>
inline void columns4(const typename L::T* const r[4], size_t k0, float32x4_t c[4]) {
  const float32x4_t a0 = L::load4(r[0] + k0), a1 = L::load4(r[1] + k0);
  const float32x4_t a2 = L::load4(r[2] + k0), a3 = L::load4(r[3] + k0);
  const float32x4_t t0 = vtrn1q_f32(a0, a1);  // [r0k0 r1k0 r0k2 r1k2]
  const float32x4_t t1 = vtrn2q_f32(a0, a1);  // [r0k1 r1k1 r0k3 r1k3]
  const float32x4_t t2 = vtrn1q_f32(a2, a3);
  const float32x4_t t3 = vtrn2q_f32(a2, a3);
  c[0] = trn1_64(t0, t2);
  c[1] = trn1_64(t1, t3);
  c[2] = trn2_64(t0, t2);
  c[3] = trn2_64(t1, t3);
}

// Tokens [i0, i0 + MR) x rows [j0, j0 + 4 * NB) clipped to n1 (j0 < n1; a partial last block
// repeats its last row, computed but not stored).
template <class L, int MR, int NB>
inline void tile(const typename L::T* w, size_t k, const float* x, float* y, size_t ldy, size_t i0,
                 size_t j0, size_t n1) {
  const typename L::T* r[NB][4];
  for (int b = 0; b < NB; ++b)
    for (int l = 0; l < 4; ++l) {
      const size_t j = j0 + 4 * b + l;
      r[b][l] = w + (j < n1 ? j : n1 - 1) * k;
    }
  float32x4_t acc[MR][NB];
  for (int i = 0; i < MR; ++i)
    for (int b = 0; b < NB; ++b) acc[i][b] = vdupq_n_f32(0.0f);
  size_t t = 0;
  for (; t + 4 <= k; t += 4) {
    float32x4_t c[NB][4];
    for (int b = 0; b < NB; ++b) columns4<L>(r[b], t, c[b]);
    for (int u = 0; u < 4; ++u)
      for (int i = 0; i < MR; ++i) {
        const float32x4_t xv = vdupq_n_f32(x[(i0 + i) * k + t + u]);
        for (int b = 0; b < NB; ++b) acc[i][b] = vaddq_f32(acc[i][b], vmulq_f32(c[b][u], xv));
      }
  }
  for (; t < k; ++t) {
    float32x4_t c[NB];
    for (int b = 0; b < NB; ++b) {
      const float v[4] = {L::load1(r[b][0][t]), L::load1(r[b][1][t]), L::load1(r[b][2][t]),
                          L::load1(r[b][3][t])};
      c[b] = vld1q_f32(v);
    }
    for (int i = 0; i < MR; ++i) {
      const float32x4_t xv = vdupq_n_f32(x[(i0 + i) * k + t]);
      for (int b = 0; b < NB; ++b) acc[i][b] = vaddq_f32(acc[i][b], vmulq_f32(c[b], xv));
    }
  }
  for (int i = 0; i < MR; ++i) {
    float* yi = y + (i0 + i) * ldy;
    for (int b = 0; b < NB; ++b) {
      const size_t jb = j0 + 4 * b;
      if (jb + 4 <= n1) {
        vst1q_f32(yi + jb, acc[i][b]);
      } else if (jb < n1) {
        float out[4];
        vst1q_f32(out, acc[i][b]);
        for (size_t l = 0; jb + l < n1; ++l) yi[jb + l] = out[l];
      }
    }
  }
}

template <class L, int MR>
void rows(const typename L::T* w, size_t k, const float* x, float* y, size_t ldy, size_t i0,
          size_t n0, size_t n1) {
  size_t j = n0;
  for (; j + 16 <= n1; j += 16) tile<L, MR, 4>(w, k, x, y, ldy, i0, j, n1);
  for (; j < n1; j += 4) tile<L, MR, 1>(w, k, x, y, ldy, i0, j, n1);
}

template <class L>
void matmul(const typename L::T* w, size_t k, const float* x, size_t m, float* y, size_t ldy,
            size_t n0, size_t n1) {
  if (n0 >= n1) return;
  size_t i = 0;
  for (; i + 4 <= m; i += 4) rows<L, 4>(w, k, x, y, ldy, i, n0, n1);
  for (; i + 2 <= m; i += 2) rows<L, 2>(w, k, x, y, ldy, i, n0, n1);
  for (; i < m; ++i) rows<L, 1>(w, k, x, y, ldy, i, n0, n1);
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
  float acc = 0.0f;
  for (size_t i = 0; i < n; ++i) acc = acc + x[i] * x[i];
  const float mean = acc / static_cast<float>(n);
  const float scale = 1.0f / std::sqrt(mean + eps);
  const float32x4_t vs = vdupq_n_f32(scale);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vmulq_f32(vmulq_f32(vld1q_f32(x + i), vs), vld1q_f32(w + i)));
  for (; i < n; ++i) y[i] = (x[i] * scale) * w[i];
}

void f32_exp_neon(const float* x, size_t n, float* y) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, exp4(vld1q_f32(x + i)));
  for (; i < n; ++i) y[i] = exp_f32(x[i]);
}

void f32_silumul_neon(const float* gate, const float* up, size_t n, float* out) {
  const float32x4_t one = vdupq_n_f32(1.0f);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t g = vld1q_f32(gate + i);
    const float32x4_t s = vdivq_f32(one, vaddq_f32(one, exp4(vnegq_f32(g))));
    vst1q_f32(out + i, vmulq_f32(vmulq_f32(g, s), vld1q_f32(up + i)));
  }
  for (; i < n; ++i) out[i] = silu_mul_one(gate[i], up[i]);
}

void f32_softmax_neon(float* x, size_t n) {
  if (n == 0) return;
  float mx = x[0];
  for (size_t i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  const float32x4_t vmx = vdupq_n_f32(mx);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(x + i, exp4(vsubq_f32(vld1q_f32(x + i), vmx)));
  for (; i < n; ++i) x[i] = exp_f32(x[i] - mx);
  float sum = 0.0f;
  for (i = 0; i < n; ++i) sum = sum + x[i];
  const float32x4_t vsum = vdupq_n_f32(sum);
  i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(x + i, vdivq_f32(vld1q_f32(x + i), vsum));
  for (; i < n; ++i) x[i] = x[i] / sum;
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
