// Zero-one u8 x s8 matmul, AVX-512 VNNI (with AVX512BW/VL).
//
// The stored units (core/zero_one.h) put 4 bytes of each of a block's 16 rows in one 64-byte line,
// so one vpdpbusd of a unit with a token's activation word broadcast adds four products to each of
// the 16 rows' int32 sums: no transpose, no horizontal reduction, and each weight line is loaded
// once for every token of the call (MR tokens, one accumulator each). The group epilogue (the
// kernels.h order, f16 params widened by vcvtph2ps) then runs on 16 rows at once.
// Tiles of up to 8 tokens (u8s8-blocks.h); with m <= 8 a thread's weights and params stream front
// to back, prefetched ahead.
// Bytes of a group past its length are zero in the weights, and activation bytes past it are not
// read (the partial unit), so nothing outside the group contributes.
#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VL__) || \
    !defined(__AVX512VNNI__)
#error \
    "runtime/kernels/avx512vnni/ files must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vnni"
#endif

#include <immintrin.h>

#include <cstring>
#include <utility>

#include "kernels/common.h"
#include "kernels/u8s8-blocks.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {
namespace {

constexpr size_t R = kZeroOneBlockRows;
constexpr size_t kPrefetchAhead = 4096;  // bytes ahead of the weight line being read

typedef int32_t __attribute__((may_alias, aligned(1))) Word;

// acc += w . the activation word at a broadcast to every lane, with the broadcast embedded in the
// instruction. Written out because GCC 12 copies the accumulators of the intrinsic around every
// vpdpbusd of an unrolled tile (and spills the weights).
inline __m512i dpbusd_word(__m512i acc, __m512i w, const int8_t* a) {
  __asm__("vpdpbusd %2%{1to16%}, %1, %0"
          : "+v"(acc)
          : "v"(w), "m"(*reinterpret_cast<const Word*>(a)));
  return acc;
}

// The first n (< 4) activation bytes at a, the rest zero, broadcast.
inline __m512i bcast_partial(const int8_t* a, size_t n) {
  uint32_t v = 0;
  std::memcpy(&v, a, n);
  return _mm512_set1_epi32(static_cast<int32_t>(v));
}

// Token i's sums += one unit of weights (16 rows x 4 bytes at `line`) times its activation word
// at ar[i] + off. The token loops are written as folds over I... so that every array index is a
// constant and the compiler keeps the accumulators in registers.
// Tiles of 4 or more tokens prefetch into L2 (T1): their weight loads stall less than with T0,
// which one token keeps (docs/performance.md).
template <size_t... I>
inline void unit(const uint8_t* line, const int8_t* const* ar, size_t off, __m512i* acc,
                 std::index_sequence<I...>) {
  if (sizeof...(I) >= 4) {
    _mm_prefetch(reinterpret_cast<const char*>(line + kPrefetchAhead), _MM_HINT_T1);
  } else {
    _mm_prefetch(reinterpret_cast<const char*>(line + kPrefetchAhead), _MM_HINT_T0);
  }
  const __m512i wv = _mm512_loadu_si512(line);
  ((acc[I] = dpbusd_word(acc[I], wv, ar[I] + off)), ...);
}

// The last unit of a group whose length is not a multiple of 4: only its n activation bytes.
template <size_t... I>
inline void partial_unit(const uint8_t* line, const int8_t* const* ar, size_t off, size_t n,
                         __m512i* acc, std::index_sequence<I...>) {
  const __m512i wv = _mm512_loadu_si512(line);
  ((acc[I] = _mm512_dpbusd_epi32(acc[I], wv, bcast_partial(ar[I] + off, n))), ...);
}

// facc += (s * d) * isum + (m * d) * asum for one token's 16 rows (kernels.h order).
inline __m512 group_term(__m512 facc, __m512 vs, __m512 vm, float d, int32_t asum, __m512i isum) {
  const __m512 vd = _mm512_set1_ps(d);
  const __m512 va = _mm512_set1_ps(static_cast<float>(asum));
  const __m512 sd = _mm512_mul_ps(vs, vd);
  const __m512 md = _mm512_mul_ps(vm, vd);
  return _mm512_add_ps(
      facc, _mm512_add_ps(_mm512_mul_ps(sd, _mm512_cvtepi32_ps(isum)), _mm512_mul_ps(md, va)));
}

// The 16 scales (or mins) of a group's params at p: f32, or f16 widened exactly (vcvtph2ps).
template <bool kF16>
inline __m512 load_params(const uint8_t* p) {
  if (kF16) return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_loadu_ps(p);
}

// out[i] = the integer dots of the tokens I... with `len` bytes of one group's weights from the
// unit at wg, their activations at ar[i] + k0. One token keeps 4 independent sums (2 for 2-3
// tokens) so that its vpdpbusd chain does not wait on the instruction's latency.
template <size_t... I>
EMBER_KERNEL_INLINE void range_dots(const uint8_t* wg, const int8_t* const* ar, size_t k0,
                                    size_t len, __m512i* out, std::index_sequence<I...> tok) {
  constexpr size_t MR = sizeof...(I);
  constexpr int NA = MR == 1 ? 4 : (MR <= 3 ? 2 : 1);
  const size_t full = len / 4, rest = len % 4;
  __m512i a0[MR], a1[MR], a2[MR], a3[MR];  // sums of the units u with u % NA == 0, 1, 2, 3
  ((a0[I] = a1[I] = a2[I] = a3[I] = _mm512_setzero_si512()), ...);
  size_t u = 0;
  for (; u + NA <= full; u += NA) {
    const uint8_t* line = wg + u * kZeroOneUnitStride;
    unit(line, ar, k0 + 4 * u, a0, tok);
    if (NA > 1) unit(line + kZeroOneUnitStride, ar, k0 + 4 * u + 4, a1, tok);
    if (NA > 2) {
      unit(line + 2 * kZeroOneUnitStride, ar, k0 + 4 * u + 8, a2, tok);
      unit(line + 3 * kZeroOneUnitStride, ar, k0 + 4 * u + 12, a3, tok);
    }
  }
  for (; u < full; ++u) unit(wg + u * kZeroOneUnitStride, ar, k0 + 4 * u, a0, tok);
  if (rest != 0) partial_unit(wg + full * kZeroOneUnitStride, ar, k0 + 4 * full, rest, a0, tok);
  ((out[I] = _mm512_add_epi32(_mm512_add_epi32(a0[I], a1[I]), _mm512_add_epi32(a2[I], a3[I]))),
   ...);
}

// range_dots for one activation group of 16 bytes (4 units) in straight-line code: two chains
// per token.
template <size_t... I>
EMBER_KERNEL_INLINE void dots16(const uint8_t* wg, const int8_t* const* ar, size_t k0, __m512i* out,
                                std::index_sequence<I...> tok) {
  constexpr size_t MR = sizeof...(I);
  __m512i a0[MR], a1[MR];
  ((a0[I] = a1[I] = _mm512_setzero_si512()), ...);
  unit(wg, ar, k0, a0, tok);
  unit(wg + kZeroOneUnitStride, ar, k0 + 4, a1, tok);
  unit(wg + 2 * kZeroOneUnitStride, ar, k0 + 8, a0, tok);
  unit(wg + 3 * kZeroOneUnitStride, ar, k0 + 12, a1, tok);
  ((out[I] = _mm512_add_epi32(a0[I], a1[I])), ...);
}

// The dots of one activation group of len bytes at byte t0 of the group.
template <size_t... I>
EMBER_KERNEL_INLINE void act_dots(const uint8_t* wg, const int8_t* const* ar, size_t k0, size_t t0,
                                  size_t len, __m512i* out, std::index_sequence<I...> tok) {
  if (len == 16) {
    dots16(wg + t0 / 4 * kZeroOneUnitStride, ar, k0 + t0, out, tok);
  } else {
    range_dots(wg + t0 / 4 * kZeroOneUnitStride, ar, k0 + t0, len, out, tok);
  }
}

// The rows of one tile: per token its activation row, scales, sums (and msums), float sums.
template <size_t MR>
struct TileRows {
  const int8_t* a[MR];
  const float* d[MR];
  const int32_t* sum[MR];
  const float* msum[MR];
  __m512 facc[MR];
};

// Groups [g0, g1) of one block for the tokens I...: facc[i] (16 rows) += each group's terms, in
// the kernels.h order of an activation group equal to the weight group (kSub false) or smaller.
template <bool kF16, bool kSub, size_t... I>
EMBER_KERNEL_INLINE void tile_groups(const uint8_t* wb, const uint8_t* pb, const U8Blocks& L,
                                     size_t g0, size_t g1, TileRows<sizeof...(I)>& t,
                                     std::index_sequence<I...> tok) {
  constexpr size_t MR = sizeof...(I);
  const size_t param_ahead = kPrefetchAhead * L.group_params_bytes / L.group_bytes;
  for (size_t g = g0; g < g1; ++g) {
    const uint8_t* wg = wb + g * L.group_bytes;
    const uint8_t* pg = pb + g * L.group_params_bytes;
    _mm_prefetch(reinterpret_cast<const char*>(pg + param_ahead), _MM_HINT_T0);
    if (!kF16) _mm_prefetch(reinterpret_cast<const char*>(pg + param_ahead + 64), _MM_HINT_T0);
    const size_t k0 = g * L.group, len = L.len(g);
    __m512i isum[MR];
    if (!kSub) {
      range_dots(wg, t.a, k0, len, isum, tok);
      const __m512 vs = load_params<kF16>(pg), vm = load_params<kF16>(pg + R * L.param_bytes);
      ((t.facc[I] = group_term(t.facc[I], vs, vm, t.d[I][g], t.sum[I][g], isum[I])), ...);
      continue;
    }
    // f = d_0 * isum_0, then f + d_h * isum_h per activation group h of the group.
    const size_t h0 = k0 / L.act_group, ah = L.act_group;
    act_dots(wg, t.a, k0, 0, len < ah ? len : ah, isum, tok);
    __m512 f[MR];
    ((f[I] = _mm512_mul_ps(_mm512_set1_ps(t.d[I][h0]), _mm512_cvtepi32_ps(isum[I]))), ...);
    for (size_t t0 = ah, h = h0 + 1; t0 < len; t0 += ah, ++h) {
      act_dots(wg, t.a, k0, t0, len - t0 < ah ? len - t0 : ah, isum, tok);
      ((f[I] = _mm512_add_ps(
            f[I], _mm512_mul_ps(_mm512_set1_ps(t.d[I][h]), _mm512_cvtepi32_ps(isum[I])))),
       ...);
    }
    const __m512 vs = load_params<kF16>(pg), vm = load_params<kF16>(pg + R * L.param_bytes);
    ((t.facc[I] = _mm512_add_ps(
          t.facc[I],
          _mm512_add_ps(_mm512_mul_ps(vs, f[I]), _mm512_mul_ps(vm, _mm512_set1_ps(t.msum[I][g]))))),
     ...);
  }
}

// One tile (u8s8-blocks.h) of the tokens t.i0 + I...: the rows outside [r0, r1) are masked off on
// load and store.
template <bool kF16, bool kSub, size_t... I>
void tile_of(const BlockTile& t, std::index_sequence<I...> tok) {
  constexpr size_t MR = sizeof...(I);
  const U8Blocks& L = *t.L;
  const S8Acts& x = *t.x;
  const __mmask16 mask = static_cast<__mmask16>(((1u << t.r1) - 1) & ~((1u << t.r0) - 1));
  TileRows<MR> rows{{x.a + (t.i0 + I) * L.k...},
                    {x.d + (t.i0 + I) * L.acts...},
                    {x.sum + (t.i0 + I) * L.acts...},
                    {x.msum + (t.i0 + I) * L.groups...},
                    {(t.g0 == 0 ? _mm512_setzero_ps()
                                : _mm512_maskz_loadu_ps(mask, t.yb + (t.i0 + I) * t.ldy))...}};
  tile_groups<kF16, kSub>(t.wb, t.pb, L, t.g0, t.g1, rows, tok);
  (_mm512_mask_storeu_ps(t.yb + (t.i0 + I) * t.ldy, mask, rows.facc[I]), ...);
}

template <bool kF16, bool kSub, size_t MR>
void tile(const BlockTile& t) {
  tile_of<kF16, kSub>(t, std::make_index_sequence<MR>());
}

template <bool kF16, bool kSub>
constexpr BlockTileFn kTiles[9] = {nullptr,
                                   tile<kF16, kSub, 1>,
                                   tile<kF16, kSub, 2>,
                                   tile<kF16, kSub, 3>,
                                   tile<kF16, kSub, 4>,
                                   tile<kF16, kSub, 5>,
                                   tile<kF16, kSub, 6>,
                                   tile<kF16, kSub, 7>,
                                   tile<kF16, kSub, 8>};

}  // namespace

void u8s8_matmul_avx512vnni(const U8Matrix& w, const S8Acts& x, size_t m, float* y, size_t ldy,
                            size_t n0, size_t n1) {
  const TileSets sets{kTiles<false, false>, kTiles<true, false>, kTiles<false, true>,
                      kTiles<true, true>};
  run_u8_blocks<8>(sets, w, x, m, y, ldy, n0, n1);
}

}  // namespace kernels
}  // namespace ember
