// AVX2 helpers shared by the avx2/ kernel files (each compiled with -mavx2 -mfma -mf16c and
// -ffp-contract=off: multiplies and adds stay separate, as the float order in kernels.h requires).
#ifndef EMBER_KERNELS_AVX2_AVX2_COMMON_H_
#define EMBER_KERNELS_AVX2_AVX2_COMMON_H_

#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "runtime/kernels/avx2/ files must be compiled with -mavx2 -mfma -mf16c"
#endif

#include <immintrin.h>

#include "core/zero_one.h"
#include "kernels/common.h"

namespace ember {
namespace kernels {
namespace avx2 {
namespace {  // internal linkage: see common.h
// Pieces of the u8 x s8 dot-product tiles (MR tokens x NR rows, MR * NR = 8 int32 / float lanes),
// shared by the avx2 and avx512vnni matmuls: they differ only in the integer dot of a group.

inline __m256i hsum8x8(const __m256i v[8]) {
  const __m256i s01 = _mm256_hadd_epi32(v[0], v[1]);
  const __m256i s23 = _mm256_hadd_epi32(v[2], v[3]);
  const __m256i s45 = _mm256_hadd_epi32(v[4], v[5]);
  const __m256i s67 = _mm256_hadd_epi32(v[6], v[7]);
  const __m256i s0123 = _mm256_hadd_epi32(s01, s23);
  const __m256i s4567 = _mm256_hadd_epi32(s45, s67);
  const __m256i lo = _mm256_permute2x128_si256(s0123, s4567, 0x20);
  const __m256i hi = _mm256_permute2x128_si256(s0123, s4567, 0x31);
  return _mm256_add_epi32(lo, hi);
}

// (scale, min) of two rows' group g as [s0 m0 s1 m1].
inline __m128 params2(const ZeroOneParams* a, const ZeroOneParams* b) {
  return _mm_castpd_ps(_mm_loadh_pd(_mm_load_sd(reinterpret_cast<const double*>(a)),
                                    reinterpret_cast<const double*>(b)));
}

// Lane i * NR + j gets row j's scale / min of group g.
template <int NR>
inline void load_params(const ZeroOneParams* const* pr, size_t g, __m256* vs, __m256* vm);
template <>
inline void load_params<2>(const ZeroOneParams* const* pr, size_t g, __m256* vs, __m256* vm) {
  const __m128 p = params2(pr[0] + g, pr[1] + g);
  const __m128 s = _mm_shuffle_ps(p, p, _MM_SHUFFLE(2, 0, 2, 0));
  const __m128 m = _mm_shuffle_ps(p, p, _MM_SHUFFLE(3, 1, 3, 1));
  *vs = _mm256_set_m128(s, s);
  *vm = _mm256_set_m128(m, m);
}
template <>
inline void load_params<4>(const ZeroOneParams* const* pr, size_t g, __m256* vs, __m256* vm) {
  const __m128 a = params2(pr[0] + g, pr[1] + g), b = params2(pr[2] + g, pr[3] + g);
  const __m128 s = _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
  const __m128 m = _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
  *vs = _mm256_set_m128(s, s);
  *vm = _mm256_set_m128(m, m);
}
template <>
inline void load_params<8>(const ZeroOneParams* const* pr, size_t g, __m256* vs, __m256* vm) {
  const __m128 a = params2(pr[0] + g, pr[1] + g), b = params2(pr[2] + g, pr[3] + g);
  const __m128 c = params2(pr[4] + g, pr[5] + g), e = params2(pr[6] + g, pr[7] + g);
  *vs = _mm256_set_m128(_mm_shuffle_ps(c, e, _MM_SHUFFLE(2, 0, 2, 0)), _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
  *vm = _mm256_set_m128(_mm_shuffle_ps(c, e, _MM_SHUFFLE(3, 1, 3, 1)), _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
}

// Lane i * NR + j gets token i's activation scale d and (float) sum of group g.
template <int MR, int NR>
inline void load_acts(const float* const* dr, const int32_t* const* sr, size_t g, __m256* vd, __m256* va);
template <>
inline void load_acts<1, 8>(const float* const* dr, const int32_t* const* sr, size_t g, __m256* vd, __m256* va) {
  *vd = _mm256_set1_ps(dr[0][g]);
  *va = _mm256_set1_ps(static_cast<float>(sr[0][g]));
}
template <>
inline void load_acts<2, 4>(const float* const* dr, const int32_t* const* sr, size_t g, __m256* vd, __m256* va) {
  *vd = _mm256_set_m128(_mm_set1_ps(dr[1][g]), _mm_set1_ps(dr[0][g]));
  *va = _mm256_cvtepi32_ps(_mm256_set_m128i(_mm_set1_epi32(sr[1][g]), _mm_set1_epi32(sr[0][g])));
}
template <>
inline void load_acts<4, 2>(const float* const* dr, const int32_t* const* sr, size_t g, __m256* vd, __m256* va) {
  const __m256i idx = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
  const __m128 d4 = _mm_setr_ps(dr[0][g], dr[1][g], dr[2][g], dr[3][g]);
  const __m128i s4 = _mm_setr_epi32(sr[0][g], sr[1][g], sr[2][g], sr[3][g]);
  *vd = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(d4), idx);
  *va = _mm256_cvtepi32_ps(_mm256_permutevar8x32_epi32(_mm256_castsi128_si256(s4), idx));
}

// The float epilogue of group g on a tile's 8 lanes (kernels.h order):
// facc + ((s * d) * isum + (m * d) * asum).
template <int MR, int NR>
inline __m256 group_epilogue(const ZeroOneParams* const* pr, const float* const* dr,
                             const int32_t* const* sr, size_t g, __m256i isum, __m256 facc) {
  __m256 vs, vm, vd, va;
  load_params<NR>(pr, g, &vs, &vm);
  load_acts<MR, NR>(dr, sr, g, &vd, &va);
  const __m256 sd = _mm256_mul_ps(vs, vd);
  const __m256 md = _mm256_mul_ps(vm, vd);
  const __m256 term =
      _mm256_add_ps(_mm256_mul_ps(sd, _mm256_cvtepi32_ps(isum)), _mm256_mul_ps(md, va));
  return _mm256_add_ps(facc, term);
}

// Drives MR x NR tiles over rows [n0, n1) and all m tokens; Tile::compute(qr, pr, ar, dr, sr, k,
// group, groups, out) computes one tile (out: lane i * NR + j).
template <int MR, int NR, class Tile>
void run_tiles(const uint8_t* q, const ZeroOneParams* p, size_t k, size_t group, const int8_t* a,
         const float* d, const int32_t* sum, size_t m, float* y, size_t ldy, size_t n0, size_t n1) {
  const size_t groups = (k + group - 1) / group;
  // Token blocks keep the activations of a block in L2 while all rows stream past them.
  const size_t kTokenBlock = 64;
  for (size_t ib = 0; ib < m; ib += kTokenBlock) {
    const size_t ie = ib + kTokenBlock < m ? ib + kTokenBlock : m;
    for (size_t j0 = n0; j0 < n1; j0 += NR) {
      const uint8_t* qr[NR];
      const ZeroOneParams* pr[NR];
      for (int j = 0; j < NR; ++j) {
        const size_t jj = j0 + j < n1 ? j0 + j : n1 - 1;
        qr[j] = q + jj * k;
        pr[j] = p + jj * groups;
      }
      for (size_t i0 = ib; i0 < ie; i0 += MR) {
        const int8_t* ar[MR];
        const float* dr[MR];
        const int32_t* sr[MR];
        for (int i = 0; i < MR; ++i) {
          const size_t ii = i0 + i < ie ? i0 + i : ie - 1;
          ar[i] = a + ii * k;
          dr[i] = d + ii * groups;
          sr[i] = sum + ii * groups;
        }
        alignas(32) float out[8];
        Tile::compute(qr, pr, ar, dr, sr, k, group, groups, out);
        for (int i = 0; i < MR && i0 + i < ie; ++i)
          for (int j = 0; j < NR && j0 + j < n1; ++j) y[(i0 + i) * ldy + j0 + j] = out[i * NR + j];
      }
    }
  }
}

}  // namespace
}  // namespace avx2
}  // namespace kernels
}  // namespace ember

#endif  // EMBER_KERNELS_AVX2_AVX2_COMMON_H_
