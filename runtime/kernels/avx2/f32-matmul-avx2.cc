// Float matmuls (f32 / f16 / bf16 weights), AVX2. One 8-lane accumulator per output, k in steps of 8
// (lane l = index % 8), multiply then add (no FMA): the 8-lane order of kernels.h, so the results
// equal the scalar kernel's bit for bit. Tiles of MR tokens x NR rows share the loads.
#include "kernels/avx2/avx2-common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {
namespace {

struct LoadF32 {
  using T = float;
  static __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
  static float load1(float v) { return v; }
};
struct LoadF16 {
  using T = uint16_t;
  static __m256 load8(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static float load1(uint16_t v) { return f16_to_f32(v); }
};
struct LoadBF16 {
  using T = uint16_t;
  static __m256 load8(const uint16_t* p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  static float load1(uint16_t v) { return bf16_to_f32(v); }
};

template <class L, int MR, int NR>
inline void tile(const typename L::T* w, size_t k, const float* x, float* y, size_t ldy, size_t i0,
                 size_t j0) {
  __m256 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
  size_t t = 0;
  for (; t + 8 <= k; t += 8) {
    __m256 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = L::load8(w + (j0 + j) * k + t);
    for (int i = 0; i < MR; ++i) {
      const __m256 xv = _mm256_loadu_ps(x + (i0 + i) * k + t);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_add_ps(acc[i][j], _mm256_mul_ps(wv[j], xv));
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      float r;
      if (t == k) {
        r = avx2::reduce8_ps(acc[i][j]);
      } else {
        alignas(32) float lane[8];
        _mm256_store_ps(lane, acc[i][j]);
        const typename L::T* wr = w + (j0 + j) * k;
        const float* xr = x + (i0 + i) * k;
        for (size_t u = t, l = 0; u < k; ++u, ++l) lane[l] = lane[l] + L::load1(wr[u]) * xr[u];
        r = reduce8(lane);
      }
      y[(i0 + i) * ldy + j0 + j] = r;
    }
}

template <class L>
void matmul(const typename L::T* w, size_t k, const float* x, size_t m, float* y, size_t ldy,
            size_t n0, size_t n1) {
  size_t i = 0;
  for (; i + 4 <= m; i += 4) {
    size_t j = n0;
    for (; j + 2 <= n1; j += 2) tile<L, 4, 2>(w, k, x, y, ldy, i, j);
    for (; j < n1; ++j) tile<L, 4, 1>(w, k, x, y, ldy, i, j);
  }
  for (; i < m; ++i) {
    size_t j = n0;
    for (; j + 4 <= n1; j += 4) tile<L, 1, 4>(w, k, x, y, ldy, i, j);
    for (; j < n1; ++j) tile<L, 1, 1>(w, k, x, y, ldy, i, j);
  }
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
