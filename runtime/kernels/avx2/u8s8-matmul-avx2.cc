// Zero-one u8 x s8 matmul, AVX2.
//
// A stored unit (core/zero_one.h) is 4 bytes of each of 16 rows: two ymm of 8 rows, each row's
// 4 bytes in one 32-bit lane. The bytes are widened without shuffles: the even ones as
// (w & 0xff) against the sign-extended even activation bytes, the odd ones as (w >> 8) against the
// odd ones, and vpmaddwd of each pair of 16-bit lanes lands in the row's own int32 lane (it cannot
// saturate: |255 * 127 * 2| << 2^31; vpmaddubsw could, and its sign trick cannot take q - 128 =
// -128). One broadcast activation word serves 8 rows; a tile of MR <= 4 tokens loads each weight
// line once. The epilogue is the kernels.h order (f16 params widened by F16C's vcvtph2ps).
#include <cstring>

#include "kernels/avx2/avx2-common.h"
#include "kernels/u8s8-blocks.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {
namespace {

constexpr size_t R = kZeroOneBlockRows;
constexpr size_t kPrefetchAhead = 4096;  // bytes ahead of the weight line being read

inline __m256i bcast_unit(const int8_t* a) {
  int32_t v;
  std::memcpy(&v, a, 4);
  return _mm256_set1_epi32(v);
}

// The first n (< 4) activation bytes at a, the rest zero, broadcast.
inline __m256i bcast_partial(const int8_t* a, size_t n) {
  uint32_t v = 0;
  std::memcpy(&v, a, n);
  return _mm256_set1_epi32(static_cast<int32_t>(v));
}

// A broadcast activation word [a0 a1 a2 a3] as 16-bit lanes: the even bytes (a0, a2) and the
// odd ones (a1, a3), sign-extended.
struct SplitWord {
  __m256i even, odd;
};
inline SplitWord split_word(__m256i a) {
  return {_mm256_srai_epi16(_mm256_slli_epi16(a, 8), 8), _mm256_srai_epi16(a, 8)};
}

// One weight vector (8 rows x 4 bytes) split into its even and odd bytes as 16-bit lanes.
struct SplitWeights {
  __m256i even, odd;
};
inline SplitWeights split_weights(const uint8_t* p) {
  const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return {_mm256_and_si256(w, _mm256_set1_epi16(0x00FF)), _mm256_srli_epi16(w, 8)};
}

// acc (8 rows) += the products of each row's 4 weight bytes with the activation word.
inline __m256i dot4(__m256i acc, SplitWeights w, SplitWord a) {
  acc = _mm256_add_epi32(acc, _mm256_madd_epi16(w.even, a.even));
  return _mm256_add_epi32(acc, _mm256_madd_epi16(w.odd, a.odd));
}

// The 8 scales (or mins) at p: f32, or f16 widened exactly (F16C vcvtph2ps).
template <bool kF16>
inline __m256 load_params8(const uint8_t* p) {
  if (kF16) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
}

// acc[i][0..1] (16 rows) = the integer dots of MR tokens with `len` bytes of a group's weights from
// the unit at wg, their activations at ar[i] + k0.
template <int MR>
inline void range_dots(const uint8_t* wg, const int8_t* const* ar, size_t k0, size_t len,
                       __m256i acc[][2]) {
  const size_t full = len / 4, rest = len % 4;
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
  for (size_t u = 0; u < full + (rest != 0); ++u) {
    const uint8_t* line = wg + u * kZeroOneUnitStride;
    _mm_prefetch(reinterpret_cast<const char*>(line + kPrefetchAhead), _MM_HINT_T0);
    const SplitWeights w0 = split_weights(line), w1 = split_weights(line + 32);
    for (int i = 0; i < MR; ++i) {
      const SplitWord av = split_word(u < full ? bcast_unit(ar[i] + k0 + 4 * u)
                                               : bcast_partial(ar[i] + k0 + 4 * u, rest));
      acc[i][0] = dot4(acc[i][0], w0, av);
      acc[i][1] = dot4(acc[i][1], w1, av);
    }
  }
}

// One group of MR tokens: facc[i][h] (rows 8h..8h+7) += its terms in the kernels.h order of an
// activation group equal to the weight group (kSub false) or smaller.
template <bool kF16, bool kSub, int MR>
inline void group_step(const uint8_t* wg, const uint8_t* pg, const U8Blocks& L, size_t g,
                       const int8_t* const* ar, const float* const* dr, const int32_t* const* sr,
                       const float* const* mr, __m256 facc[][2]) {
  const size_t k0 = g * L.group, len = L.len(g);
  __m256i acc[MR][2];
  if (!kSub) {
    range_dots<MR>(wg, ar, k0, len, acc);
    for (int h = 0; h < 2; ++h) {
      const __m256 vs = load_params8<kF16>(pg + 8 * h * L.param_bytes);
      const __m256 vm = load_params8<kF16>(pg + (R + 8 * h) * L.param_bytes);
      for (int i = 0; i < MR; ++i) {
        const __m256 vd = _mm256_set1_ps(dr[i][g]);
        const __m256 va = _mm256_set1_ps(static_cast<float>(sr[i][g]));
        const __m256 sd = _mm256_mul_ps(vs, vd);
        const __m256 md = _mm256_mul_ps(vm, vd);
        const __m256 term =
            _mm256_add_ps(_mm256_mul_ps(sd, _mm256_cvtepi32_ps(acc[i][h])), _mm256_mul_ps(md, va));
        facc[i][h] = _mm256_add_ps(facc[i][h], term);
      }
    }
    return;
  }
  __m256 f[MR][2];  // (each set by the first activation group)
  for (int i = 0; i < MR; ++i) f[i][0] = f[i][1] = _mm256_setzero_ps();
  for (size_t t0 = 0, a = k0 / L.act_group; t0 < len; t0 += L.act_group, ++a) {
    range_dots<MR>(wg + t0 / 4 * kZeroOneUnitStride, ar, k0 + t0,
                   len - t0 < L.act_group ? len - t0 : L.act_group, acc);
    for (int i = 0; i < MR; ++i) {
      const __m256 vd = _mm256_set1_ps(dr[i][a]);
      for (int h = 0; h < 2; ++h) {
        const __m256 p = _mm256_mul_ps(vd, _mm256_cvtepi32_ps(acc[i][h]));
        f[i][h] = t0 == 0 ? p : _mm256_add_ps(f[i][h], p);
      }
    }
  }
  for (int h = 0; h < 2; ++h) {
    const __m256 vs = load_params8<kF16>(pg + 8 * h * L.param_bytes);
    const __m256 vm = load_params8<kF16>(pg + (R + 8 * h) * L.param_bytes);
    for (int i = 0; i < MR; ++i) {
      const __m256 term =
          _mm256_add_ps(_mm256_mul_ps(vs, f[i][h]), _mm256_mul_ps(vm, _mm256_set1_ps(mr[i][g])));
      facc[i][h] = _mm256_add_ps(facc[i][h], term);
    }
  }
}

template <bool kF16, bool kSub, int MR>
void tile(const BlockTile& t) {
  const U8Blocks& L = *t.L;
  const S8Acts& x = *t.x;
  const int8_t* ar[MR];
  const float* dr[MR];
  const int32_t* sr[MR];
  const float* mr[MR];
  __m256 facc[MR][2];
  for (int i = 0; i < MR; ++i) {
    ar[i] = x.a + (t.i0 + i) * L.k;
    dr[i] = x.d + (t.i0 + i) * L.acts;
    sr[i] = x.sum + (t.i0 + i) * L.acts;
    mr[i] = x.msum + (t.i0 + i) * L.groups;
    for (int h = 0; h < 2; ++h) {
      facc[i][h] = _mm256_setzero_ps();
      if (t.g0 != 0) {  // the running sums of the rows this tile stores
        alignas(32) float run[8] = {};
        for (size_t r = 8 * size_t(h); r < 8 * size_t(h) + 8; ++r)
          if (r >= t.r0 && r < t.r1) run[r - 8 * h] = t.yb[(t.i0 + i) * t.ldy + r];
        facc[i][h] = _mm256_load_ps(run);
      }
    }
  }
  const size_t param_ahead = kPrefetchAhead * L.group_params_bytes / L.group_bytes;
  for (size_t g = t.g0; g < t.g1; ++g) {
    const uint8_t* pg = t.pb + g * L.group_params_bytes;
    _mm_prefetch(reinterpret_cast<const char*>(pg + param_ahead), _MM_HINT_T0);
    if (!kF16) _mm_prefetch(reinterpret_cast<const char*>(pg + param_ahead + 64), _MM_HINT_T0);
    group_step<kF16, kSub, MR>(t.wb + g * L.group_bytes, pg, L, g, ar, dr, sr, mr, facc);
  }
  for (int i = 0; i < MR; ++i) {
    float* yr = t.yb + (t.i0 + i) * t.ldy;
    if (t.r0 == 0 && t.r1 == R) {
      _mm256_storeu_ps(yr, facc[i][0]);
      _mm256_storeu_ps(yr + 8, facc[i][1]);
      continue;
    }
    alignas(32) float out[R];
    _mm256_store_ps(out, facc[i][0]);
    _mm256_store_ps(out + 8, facc[i][1]);
    for (size_t r = t.r0; r < t.r1; ++r) yr[r] = out[r];
  }
}

template <bool kF16, bool kSub>
constexpr BlockTileFn kTiles[5] = {nullptr, tile<kF16, kSub, 1>, tile<kF16, kSub, 2>,
                                   tile<kF16, kSub, 3>, tile<kF16, kSub, 4>};

}  // namespace

void u8s8_matmul_avx2(const U8Matrix& w, const S8Acts& x, size_t m, float* y, size_t ldy, size_t n0,
                      size_t n1) {
  const TileSets sets{kTiles<false, false>, kTiles<true, false>, kTiles<false, true>,
                      kTiles<true, true>};
  run_u8_blocks<4>(sets, w, x, m, y, ldy, n0, n1);
}

}  // namespace kernels
}  // namespace ember
