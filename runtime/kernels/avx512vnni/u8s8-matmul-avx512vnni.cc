// Zero-one u8 x s8 matmul, AVX-512 VNNI (with AVX512BW/VL).
//
// The stored units (core/zero_one.h) put 4 bytes of each of a block's 16 rows in one 64-byte line,
// so one vpdpbusd of a unit with a token's activation word broadcast adds four products to each of
// the 16 rows' int32 sums: no transpose, no horizontal reduction, and each weight line is loaded
// once for every token of the call (MR tokens, one accumulator each). The group epilogue
// (kernels.h order: facc + ((s * d) * isum + (m * d) * asum)) then runs on 16 rows at once.
// Tiles of up to 8 tokens (u8s8-blocks.h); with m <= 8 a thread's weights and params stream front
// to back, prefetched ahead.
// Bytes of a group past its length are zero in the weights, and activation bytes past it are not
// read (the partial unit), so nothing outside the group contributes.
#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VL__) || \
    !defined(__AVX512VNNI__)
#error "runtime/kernels/avx512vnni/ files must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vnni"
#endif

#include <immintrin.h>

#include <cstring>

#include "kernels/common.h"
#include "kernels/u8s8-blocks.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {
namespace {

constexpr size_t R = kZeroOneBlockRows;
constexpr size_t kPrefetchAhead = 4096;  // bytes ahead of the weight line being read

inline __m512i bcast_unit(const int8_t* a) {
  int32_t v;
  std::memcpy(&v, a, 4);
  return _mm512_set1_epi32(v);
}

// The first n (< 4) activation bytes at a, the rest zero, broadcast.
inline __m512i bcast_partial(const int8_t* a, size_t n) {
  uint32_t v = 0;
  std::memcpy(&v, a, n);
  return _mm512_set1_epi32(static_cast<int32_t>(v));
}

// Groups [g0, g1) of one block for MR tokens: facc[i] (16 rows) += each group's terms.
template <int MR>
inline void tile_groups(const uint8_t* wb, const float* pb, const U8Blocks& L, size_t g0,
                        size_t g1, const int8_t* const* ar, const float* const* dr,
                        const int32_t* const* sr, __m512 facc[MR]) {
  // Independent sums per token: a chain of vpdpbusd on one register would wait on its latency.
  constexpr int NA = MR == 1 ? 4 : (MR <= 3 ? 2 : 1);
  const size_t param_ahead = kPrefetchAhead * kZeroOneParamFloats / L.group_bytes;
  for (size_t g = g0; g < g1; ++g) {
    const uint8_t* wg = wb + g * L.group_bytes;
    const float* pg = pb + g * kZeroOneParamFloats;
    _mm_prefetch(reinterpret_cast<const char*>(pg + param_ahead), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(pg + param_ahead + 16), _MM_HINT_T0);
    const size_t k0 = g * L.group, len = L.len(g), full = len / 4, rest = len % 4;
    __m512i acc[NA][MR];
    for (int j = 0; j < NA; ++j)
      for (int i = 0; i < MR; ++i) acc[j][i] = _mm512_setzero_si512();
    size_t u = 0;
    for (; u + NA <= full; u += NA) {
      for (int j = 0; j < NA; ++j) {
        const uint8_t* line = wg + (u + j) * kZeroOneUnitStride;
        _mm_prefetch(reinterpret_cast<const char*>(line + kPrefetchAhead), _MM_HINT_T0);
        const __m512i wv = _mm512_loadu_si512(line);
        for (int i = 0; i < MR; ++i)
          acc[j][i] = _mm512_dpbusd_epi32(acc[j][i], wv, bcast_unit(ar[i] + k0 + 4 * (u + j)));
      }
    }
    for (; u < full; ++u) {
      const uint8_t* line = wg + u * kZeroOneUnitStride;
      _mm_prefetch(reinterpret_cast<const char*>(line + kPrefetchAhead), _MM_HINT_T0);
      const __m512i wv = _mm512_loadu_si512(line);
      for (int i = 0; i < MR; ++i)
        acc[0][i] = _mm512_dpbusd_epi32(acc[0][i], wv, bcast_unit(ar[i] + k0 + 4 * u));
    }
    if (rest != 0) {
      const __m512i wv = _mm512_loadu_si512(wg + full * kZeroOneUnitStride);
      for (int i = 0; i < MR; ++i)
        acc[0][i] = _mm512_dpbusd_epi32(acc[0][i], wv, bcast_partial(ar[i] + k0 + 4 * full, rest));
    }
    const __m512 vs = _mm512_loadu_ps(pg);
    const __m512 vm = _mm512_loadu_ps(pg + R);
    for (int i = 0; i < MR; ++i) {
      __m512i isum = acc[0][i];
      for (int j = 1; j < NA; ++j) isum = _mm512_add_epi32(isum, acc[j][i]);
      const __m512 vd = _mm512_set1_ps(dr[i][g]);
      const __m512 va = _mm512_set1_ps(static_cast<float>(sr[i][g]));
      const __m512 sd = _mm512_mul_ps(vs, vd);
      const __m512 md = _mm512_mul_ps(vm, vd);
      const __m512 term =
          _mm512_add_ps(_mm512_mul_ps(sd, _mm512_cvtepi32_ps(isum)), _mm512_mul_ps(md, va));
      facc[i] = _mm512_add_ps(facc[i], term);
    }
  }
}

// One tile (u8s8-blocks.h): the rows outside [r0, r1) are masked off on load and store.
template <int MR>
void tile(const BlockTile& t) {
  const U8Blocks& L = *t.L;
  const __mmask16 mask = static_cast<__mmask16>(((1u << t.r1) - 1) & ~((1u << t.r0) - 1));
  const int8_t* ar[MR];
  const float* dr[MR];
  const int32_t* sr[MR];
  __m512 facc[MR];
  for (int i = 0; i < MR; ++i) {
    ar[i] = t.a + (t.i0 + i) * L.k;
    dr[i] = t.d + (t.i0 + i) * L.groups;
    sr[i] = t.sum + (t.i0 + i) * L.groups;
    facc[i] = t.g0 == 0 ? _mm512_setzero_ps()
                        : _mm512_maskz_loadu_ps(mask, t.yb + (t.i0 + i) * t.ldy);
  }
  tile_groups<MR>(t.wb, t.pb, L, t.g0, t.g1, ar, dr, sr, facc);
  for (int i = 0; i < MR; ++i) _mm512_mask_storeu_ps(t.yb + (t.i0 + i) * t.ldy, mask, facc[i]);
}

constexpr BlockTileFn kTiles[9] = {nullptr, tile<1>, tile<2>, tile<3>, tile<4>,
                                   tile<5>, tile<6>, tile<7>, tile<8>};

}  // namespace

void u8s8_matmul_avx512vnni(const uint8_t* w, const float* p, size_t k, size_t group,
                            const int8_t* a, const float* d, const int32_t* sum, size_t m, float* y,
                            size_t ldy, size_t n0, size_t n1) {
  run_u8_blocks<8>(kTiles, w, p, k, group, a, d, sum, m, y, ldy, n0, n1);
}

}  // namespace kernels
}  // namespace ember
