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
  static float load1(uint16_t v) { return f16_to_f32(v); }
};
struct LoadBF16 {
  using T = uint16_t;
  static __m256 load4x2(const uint16_t* a, const uint16_t* b) {
    const __m256i w = _mm256_cvtepu16_epi32(load_u16x4x2(a, b));
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

}  // namespace kernels
}  // namespace ember
