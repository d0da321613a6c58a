// Float matmuls (f32 / f16 / bf16 weights), AVX2, in the sequential order of kernels.h: each output
// is one accumulator, acc = acc + w[t] * x[t] for t = 0..k-1, multiply then add (no FMA), so the
// results equal the scalar kernel's bit for bit. The SIMD runs ACROSS OUTPUT ROWS: one __m256 holds
// the accumulators of 8 rows. Per step of 4 along k, 8 rows x 4 values of W are loaded as
// [row r k0..3 | row r+4 k0..3] (r = 0..3) and transposed in registers into 4 columns
// (w[row0..7][t]); each column times broadcast x[t] is added to the accumulators of every token of
// the tile. Tiles: MR tokens x NB blocks of 8 rows; a partial last block repeats its last row
// (computed, not stored).
#include "kernels/avx2/avx2-common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {
namespace {

// load4x2(a, b) = [a[0..3] | b[0..3]] widened to f32; load1 = one value widened.
struct LoadF32 {
  using T = float;
  static __m256 load4x2(const float* a, const float* b) {
    return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(a)), _mm_loadu_ps(b), 1);
  }
  static __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
  static float load1(float v) { return v; }
};
inline __m128i load_u16x4x2(const uint16_t* a, const uint16_t* b) {
  return _mm_unpacklo_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(a)),
                            _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b)));
}
struct LoadF16 {
  using T = uint16_t;
  static __m256 load4x2(const uint16_t* a, const uint16_t* b) {
    return _mm256_cvtph_ps(load_u16x4x2(a, b));
  }
  static __m256 load8(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static float load1(uint16_t v) { return f16_to_f32(v); }
};
struct LoadBF16 {
  using T = uint16_t;
  static __m256 load4x2(const uint16_t* a, const uint16_t* b) {
    const __m256i w = _mm256_cvtepu16_epi32(load_u16x4x2(a, b));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  static __m256 load8(const uint16_t* p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  static float load1(uint16_t v) { return bf16_to_f32(v); }
};

// c[t] = (w[r[0]][k0 + t], ..., w[r[7]][k0 + t]) for t = 0..3.
template <class L>
inline void columns4(const typename L::T* const r[8], size_t k0, __m256 c[4]) {
  const __m256 a0 = L::load4x2(r[0] + k0, r[4] + k0);
  const __m256 a1 = L::load4x2(r[1] + k0, r[5] + k0);
  const __m256 a2 = L::load4x2(r[2] + k0, r[6] + k0);
  const __m256 a3 = L::load4x2(r[3] + k0, r[7] + k0);
  const __m256 t0 = _mm256_unpacklo_ps(a0, a1);  // [r0k0 r1k0 r0k1 r1k1 | r4.. r5..]
  const __m256 t1 = _mm256_unpackhi_ps(a0, a1);  // [r0k2 r1k2 r0k3 r1k3 | ...]
  const __m256 t2 = _mm256_unpacklo_ps(a2, a3);
  const __m256 t3 = _mm256_unpackhi_ps(a2, a3);
  c[0] = _mm256_shuffle_ps(t0, t2, 0x44);
  c[1] = _mm256_shuffle_ps(t0, t2, 0xEE);
  c[2] = _mm256_shuffle_ps(t1, t3, 0x44);
  c[3] = _mm256_shuffle_ps(t1, t3, 0xEE);
}

// Tokens [i0, i0 + MR) x rows [j0, j0 + 8 * NB) clipped to n1 (j0 < n1).
template <class L, int MR, int NB>
inline void tile(const typename L::T* w, size_t k, const float* x, float* y, size_t ldy, size_t i0,
                 size_t j0, size_t n1) {
  const typename L::T* r[NB][8];
  for (int b = 0; b < NB; ++b)
    for (int l = 0; l < 8; ++l) {
      const size_t j = j0 + 8 * b + l;
      r[b][l] = w + (j < n1 ? j : n1 - 1) * k;
    }
  __m256 acc[MR][NB];
  for (int i = 0; i < MR; ++i)
    for (int b = 0; b < NB; ++b) acc[i][b] = _mm256_setzero_ps();
  size_t t = 0;
  for (; t + 4 <= k; t += 4) {
    __m256 c[NB][4];
    for (int b = 0; b < NB; ++b) columns4<L>(r[b], t, c[b]);
    for (int u = 0; u < 4; ++u)
      for (int i = 0; i < MR; ++i) {
        const __m256 xv = _mm256_broadcast_ss(x + (i0 + i) * k + t + u);
        for (int b = 0; b < NB; ++b)
          acc[i][b] = _mm256_add_ps(acc[i][b], _mm256_mul_ps(c[b][u], xv));
      }
  }
  for (; t < k; ++t) {
    __m256 c[NB];
    for (int b = 0; b < NB; ++b) {
      c[b] = _mm256_setr_ps(L::load1(r[b][0][t]), L::load1(r[b][1][t]), L::load1(r[b][2][t]),
                            L::load1(r[b][3][t]), L::load1(r[b][4][t]), L::load1(r[b][5][t]),
                            L::load1(r[b][6][t]), L::load1(r[b][7][t]));
    }
    for (int i = 0; i < MR; ++i) {
      const __m256 xv = _mm256_broadcast_ss(x + (i0 + i) * k + t);
      for (int b = 0; b < NB; ++b) acc[i][b] = _mm256_add_ps(acc[i][b], _mm256_mul_ps(c[b], xv));
    }
  }
  for (int i = 0; i < MR; ++i) {
    float* yi = y + (i0 + i) * ldy;
    for (int b = 0; b < NB; ++b) {
      const size_t jb = j0 + 8 * b;
      if (jb + 8 <= n1) {
        _mm256_storeu_ps(yi + jb, acc[i][b]);
      } else if (jb < n1) {
        alignas(32) float out[8];
        _mm256_store_ps(out, acc[i][b]);
        for (size_t l = 0; jb + l < n1; ++l) yi[jb + l] = out[l];
      }
    }
  }
}

template <class L, int MR>
void rows(const typename L::T* w, size_t k, const float* x, float* y, size_t ldy, size_t i0,
          size_t n0, size_t n1) {
  size_t j = n0;
  for (; j + 16 <= n1; j += 16) tile<L, MR, 2>(w, k, x, y, ldy, i0, j, n1);
  for (; j < n1; j += 8) tile<L, MR, 1>(w, k, x, y, ldy, i0, j, n1);
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

// Row-blocked weights (core/float_blocks.h): two __m256 hold a block's 16 accumulators; per t two
// loads of 8 values and one multiply and add per token and half. NB blocks x MR tokens per tile.
template <class L, int NB, int MR>
inline void blocked_tile(const typename L::T* w, size_t k, const float* x, float* y, size_t ldy,
                         size_t i0, size_t b0, size_t n0, size_t n1) {
  const typename L::T* p[NB];
  for (int b = 0; b < NB; ++b) p[b] = w + (b0 + b) * k * 16;
  __m256 acc[MR][NB][2];
  for (int i = 0; i < MR; ++i)
    for (int b = 0; b < NB; ++b) acc[i][b][0] = acc[i][b][1] = _mm256_setzero_ps();
  const float* xi = x + i0 * k;
  for (size_t t = 0; t < k; ++t) {
    __m256 wv[NB][2];
    for (int b = 0; b < NB; ++b) {
      wv[b][0] = L::load8(p[b] + t * 16);
      wv[b][1] = L::load8(p[b] + t * 16 + 8);
    }
    for (int i = 0; i < MR; ++i) {
      const __m256 xv = _mm256_broadcast_ss(xi + i * k + t);
      for (int b = 0; b < NB; ++b)
        for (int h = 0; h < 2; ++h)
          acc[i][b][h] = _mm256_add_ps(acc[i][b][h], _mm256_mul_ps(wv[b][h], xv));
    }
  }
  for (int b = 0; b < NB; ++b) {
    const size_t j = (b0 + b) * 16;
    const size_t lo = n0 > j ? n0 - j : 0, hi = n1 - j < 16 ? n1 - j : 16;
    for (int i = 0; i < MR; ++i) {
      float* yi = y + (i0 + i) * ldy + j;
      if (lo == 0 && hi == 16) {
        _mm256_storeu_ps(yi, acc[i][b][0]);
        _mm256_storeu_ps(yi + 8, acc[i][b][1]);
      } else {
        alignas(32) float out[16];
        _mm256_store_ps(out, acc[i][b][0]);
        _mm256_store_ps(out + 8, acc[i][b][1]);
        for (size_t r = lo; r < hi; ++r) yi[r] = out[r];
      }
    }
  }
}

template <class L, int NB>
inline void blocked_tokens(const typename L::T* w, size_t k, const float* x, size_t m, float* y,
                           size_t ldy, size_t b, size_t n0, size_t n1) {
  size_t i = 0;
  for (; i + 4 <= m; i += 4) blocked_tile<L, NB, 4>(w, k, x, y, ldy, i, b, n0, n1);
  for (; i + 2 <= m; i += 2) blocked_tile<L, NB, 2>(w, k, x, y, ldy, i, b, n0, n1);
  for (; i < m; ++i) blocked_tile<L, NB, 1>(w, k, x, y, ldy, i, b, n0, n1);
}

template <class L>
void matmul_blocked(const typename L::T* w, size_t k, const float* x, size_t m, float* y,
                    size_t ldy, size_t n0, size_t n1) {
  if (n0 >= n1) return;
  const size_t b1 = (n1 + 15) / 16;
  size_t b = n0 / 16;
  if (m == 1) {  // one token: two blocks side by side, four accumulator chains
    for (; b + 2 <= b1; b += 2) blocked_tile<L, 2, 1>(w, k, x, y, ldy, 0, b, n0, n1);
  }
  for (; b < b1; ++b) blocked_tokens<L, 1>(w, k, x, m, y, ldy, b, n0, n1);
}

}  // namespace

void f32_matmul_avx2(const float* w, size_t k, const float* x, size_t m, float* y, size_t ldy,
                     size_t n0, size_t n1) {
  matmul<LoadF32>(w, k, x, m, y, ldy, n0, n1);
}
void f16_matmul_avx2(const uint16_t* w, size_t k, const float* x, size_t m, float* y, size_t ldy,
                     size_t n0, size_t n1) {
  matmul<LoadF16>(w, k, x, m, y, ldy, n0, n1);
}
void bf16_matmul_avx2(const uint16_t* w, size_t k, const float* x, size_t m, float* y, size_t ldy,
                      size_t n0, size_t n1) {
  matmul<LoadBF16>(w, k, x, m, y, ldy, n0, n1);
}

void f32_matmul_blocked_avx2(const float* w, size_t k, const float* x, size_t m, float* y,
                             size_t ldy, size_t n0, size_t n1) {
  matmul_blocked<LoadF32>(w, k, x, m, y, ldy, n0, n1);
}
void f16_matmul_blocked_avx2(const uint16_t* w, size_t k, const float* x, size_t m, float* y,
                             size_t ldy, size_t n0, size_t n1) {
  matmul_blocked<LoadF16>(w, k, x, m, y, ldy, n0, n1);
}
void bf16_matmul_blocked_avx2(const uint16_t* w, size_t k, const float* x, size_t m, float* y,
                              size_t ldy, size_t n0, size_t n1) {
  matmul_blocked<LoadBF16>(w, k, x, m, y, ldy, n0, n1);
}

}  // namespace kernels
}  // namespace ember
