// Float matmuls (f32 / f16 / bf16 weights), ARMv8.0 NEON, in the sequential order of kernels.h:
// acc = acc + w[t] * x[t] per output, no FMA, so the scalar kernel's bits. The SIMD runs ACROSS
// OUTPUT ROWS: one q register holds the accumulators of 4 rows, 4x4 blocks of W are transposed in
// registers.
#include "kernels/neon/neon-common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {
namespace {

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

using neon::trn1_64;
using neon::trn2_64;

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

// Row-blocked weights (core/float_blocks.h): four q registers hold a block's 16 accumulators; per
// t four loads of 4 values and one multiply and add per token and quarter. NB blocks x MR tokens.
template <class L, int NB, int MR>
inline void blocked_tile(const typename L::T* w, size_t k, const float* x, float* y, size_t ldy,
                         size_t i0, size_t b0, size_t n0, size_t n1) {
  const typename L::T* p[NB];
  for (int b = 0; b < NB; ++b) p[b] = w + (b0 + b) * k * 16;
  float32x4_t acc[MR][NB][4];
  for (int i = 0; i < MR; ++i)
    for (int b = 0; b < NB; ++b)
      for (int q = 0; q < 4; ++q) acc[i][b][q] = vdupq_n_f32(0.0f);
  const float* xi = x + i0 * k;
  for (size_t t = 0; t < k; ++t) {
    float32x4_t wv[NB][4];
    for (int b = 0; b < NB; ++b)
      for (int q = 0; q < 4; ++q) wv[b][q] = L::load4(p[b] + t * 16 + 4 * q);
    for (int i = 0; i < MR; ++i) {
      const float32x4_t xv = vdupq_n_f32(xi[i * k + t]);
      for (int b = 0; b < NB; ++b)
        for (int q = 0; q < 4; ++q) acc[i][b][q] = vaddq_f32(acc[i][b][q], vmulq_f32(wv[b][q], xv));
    }
  }
  for (int b = 0; b < NB; ++b) {
    const size_t j = (b0 + b) * 16;
    const size_t lo = n0 > j ? n0 - j : 0, hi = n1 - j < 16 ? n1 - j : 16;
    for (int i = 0; i < MR; ++i) {
      float* yi = y + (i0 + i) * ldy + j;
      if (lo == 0 && hi == 16) {
        for (int q = 0; q < 4; ++q) vst1q_f32(yi + 4 * q, acc[i][b][q]);
      } else {
        float out[16];
        for (int q = 0; q < 4; ++q) vst1q_f32(out + 4 * q, acc[i][b][q]);
        for (size_t r = lo; r < hi; ++r) yi[r] = out[r];
      }
    }
  }
}

template <class L>
void matmul_blocked(const typename L::T* w, size_t k, const float* x, size_t m, float* y,
                    size_t ldy, size_t n0, size_t n1) {
  if (n0 >= n1) return;
  const size_t b1 = (n1 + 15) / 16;
  size_t b = n0 / 16;
  if (m == 1) {  // one token: two blocks side by side, eight accumulator chains
    for (; b + 2 <= b1; b += 2) blocked_tile<L, 2, 1>(w, k, x, y, ldy, 0, b, n0, n1);
  }
  for (; b < b1; ++b) {
    size_t i = 0;
    for (; i + 2 <= m; i += 2) blocked_tile<L, 1, 2>(w, k, x, y, ldy, i, b, n0, n1);
    for (; i < m; ++i) blocked_tile<L, 1, 1>(w, k, x, y, ldy, i, b, n0, n1);
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

void f32_matmul_blocked_neon(const float* w, size_t k, const float* x, size_t m, float* y,
                             size_t ldy, size_t n0, size_t n1) {
  matmul_blocked<LoadF32>(w, k, x, m, y, ldy, n0, n1);
}
void f16_matmul_blocked_neon(const uint16_t* w, size_t k, const float* x, size_t m, float* y,
                             size_t ldy, size_t n0, size_t n1) {
  matmul_blocked<LoadF16>(w, k, x, m, y, ldy, n0, n1);
}
void bf16_matmul_blocked_neon(const uint16_t* w, size_t k, const float* x, size_t m, float* y,
                              size_t ldy, size_t n0, size_t n1) {
  matmul_blocked<LoadBF16>(w, k, x, m, y, ldy, n0, n1);
}

}  // namespace kernels
}  // namespace ember
