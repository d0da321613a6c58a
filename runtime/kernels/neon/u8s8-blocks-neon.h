// The u8 x s8 matmul tile shared by the neon, neon-dot and i8mm variants (MatmulU8S8Fn through
// kernels/u8s8-blocks.h); each variant supplies only its integer step, `Dot` (below).
#ifndef EMBER_KERNELS_NEON_U8S8_BLOCKS_NEON_H_
#define EMBER_KERNELS_NEON_U8S8_BLOCKS_NEON_H_

#include <cstring>

#include "kernels/neon/neon-common.h"
#include "kernels/u8s8-blocks.h"

namespace ember {
namespace kernels {
namespace neon {
namespace {  // internal linkage: see common.h

// A stored unit (core/zero_one.h) is 4 q registers of 4 rows each, every row's 4 bytes in one
// int32 lane; the unit's 4 activation bytes, broadcast to every lane, give each lane its row's 4
// products. The variants differ only in that step, `Dot`:
//   W: the weight register type; static W load(const uint8_t* p): 16 bytes of a unit;
//   static int32x4_t dot(int32x4_t acc, W w, int8x16_t a): acc += the 4 rows' dots with the
//     activation word broadcast in a;
//   static constexpr bool kFlip: load gives q - 128 (as s8), and 128 * sum(a) is added back.
// With kFlip the bytes of a partial unit past the group (q = 0, -128 once flipped) must meet zero
// activations: bcast_partial loads only the unit's valid bytes.

// The 4 activation bytes at a, broadcast.
inline int8x16_t bcast_word(const int8_t* a) {
  int32_t v;
  std::memcpy(&v, a, 4);
  return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

// The first n (< 4) activation bytes at a, the rest zero, broadcast.
inline int8x16_t bcast_partial(const int8_t* a, size_t n) {
  uint32_t v = 0;
  std::memcpy(&v, a, n);
  return vreinterpretq_s8_u32(vdupq_n_u32(v));
}

// One unit of 16 rows (4 registers) times each token's activation word av[i].
template <class Dot, int MR>
inline void u8s8_unit(const uint8_t* line, const int8x16_t* av, int32x4_t acc[MR][4]) {
  typename Dot::W w[4];
  for (int q = 0; q < 4; ++q) w[q] = Dot::load(line + 16 * q);
  for (int i = 0; i < MR; ++i)
    for (int q = 0; q < 4; ++q) acc[i][q] = Dot::dot(acc[i][q], w[q], av[i]);
}

// 4 scales (or mins) at p: f32, or f16 widened exactly (fcvtl).
template <bool kF16>
inline float32x4_t load_params4(const uint8_t* p) {
  if (kF16)
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(p))));
  return vld1q_f32(reinterpret_cast<const float*>(p));
}

// acc[i][q] (rows 4q..4q+3) = the integer dots of MR tokens with `len` bytes of a group's weights
// from the unit at wg, their activations at ar[i] + k0 (with kFlip: of q - 128; see above).
template <class Dot, int MR>
inline void range_dots(const uint8_t* wg, const int8_t* const* ar, size_t k0, size_t len,
                       int32x4_t acc[MR][4]) {
  constexpr size_t S = kZeroOneUnitStride;
  const size_t full = len / 4, rest = len % 4;
  for (int i = 0; i < MR; ++i)
    for (int q = 0; q < 4; ++q) acc[i][q] = vdupq_n_s32(0);
  for (size_t u = 0; u < full; ++u) {
    int8x16_t av[MR];
    for (int i = 0; i < MR; ++i) av[i] = bcast_word(ar[i] + k0 + 4 * u);
    u8s8_unit<Dot, MR>(wg + u * S, av, acc);
  }
  if (rest != 0) {
    int8x16_t av[MR];
    for (int i = 0; i < MR; ++i) av[i] = bcast_partial(ar[i] + k0 + 4 * full, rest);
    u8s8_unit<Dot, MR>(wg + full * S, av, acc);
  }
}

// One group of MR tokens: facc[i] (16 rows) += its terms in the kernels.h order of an activation
// group equal to the weight group (kSub false) or smaller, 4 rows at a time.
template <class Dot, bool kF16, bool kSub, int MR>
inline void group_step(const uint8_t* wg, const uint8_t* pg, const U8Blocks& L, size_t g,
                       const int8_t* const* ar, const float* const* dr, const int32_t* const* sr,
                       const float* const* mr, float facc[][kZeroOneBlockRows]) {
  constexpr size_t R = kZeroOneBlockRows;
  const size_t k0 = g * L.group, len = L.len(g);
  int32x4_t acc[MR][4];
  if (!kSub) {
    range_dots<Dot, MR>(wg, ar, k0, len, acc);
    // facc + ((s * d) * isum + (m * d) * asum).
    for (int q = 0; q < 4; ++q) {
      const float32x4_t vs = load_params4<kF16>(pg + 4 * q * L.param_bytes);
      const float32x4_t vm = load_params4<kF16>(pg + (R + 4 * q) * L.param_bytes);
      for (int i = 0; i < MR; ++i) {
        int32x4_t isum = acc[i][q];
        if constexpr (Dot::kFlip) isum = vaddq_s32(isum, vdupq_n_s32(128 * sr[i][g]));
        const float32x4_t vd = vdupq_n_f32(dr[i][g]);
        const float32x4_t va = vdupq_n_f32(static_cast<float>(sr[i][g]));
        const float32x4_t sd = vmulq_f32(vs, vd);
        const float32x4_t md = vmulq_f32(vm, vd);
        const float32x4_t term = vaddq_f32(vmulq_f32(sd, vcvtq_f32_s32(isum)), vmulq_f32(md, va));
        vst1q_f32(facc[i] + 4 * q, vaddq_f32(vld1q_f32(facc[i] + 4 * q), term));
      }
    }
    return;
  }
  // f = d_0 * isum_0, then f + d_h * isum_h per activation group h; facc + (s * f + m * msum).
  alignas(16) float f[MR][R] = {};  // (each set by the first activation group)
  for (size_t t0 = 0, a = k0 / L.act_group; t0 < len; t0 += L.act_group, ++a) {
    range_dots<Dot, MR>(wg + t0 / 4 * kZeroOneUnitStride, ar, k0 + t0,
                        len - t0 < L.act_group ? len - t0 : L.act_group, acc);
    for (int i = 0; i < MR; ++i) {
      const float32x4_t vd = vdupq_n_f32(dr[i][a]);
      for (int q = 0; q < 4; ++q) {
        int32x4_t isum = acc[i][q];
        if constexpr (Dot::kFlip) isum = vaddq_s32(isum, vdupq_n_s32(128 * sr[i][a]));
        const float32x4_t p = vmulq_f32(vd, vcvtq_f32_s32(isum));
        vst1q_f32(f[i] + 4 * q, t0 == 0 ? p : vaddq_f32(vld1q_f32(f[i] + 4 * q), p));
      }
    }
  }
  for (int q = 0; q < 4; ++q) {
    const float32x4_t vs = load_params4<kF16>(pg + 4 * q * L.param_bytes);
    const float32x4_t vm = load_params4<kF16>(pg + (R + 4 * q) * L.param_bytes);
    for (int i = 0; i < MR; ++i) {
      const float32x4_t term =
          vaddq_f32(vmulq_f32(vs, vld1q_f32(f[i] + 4 * q)), vmulq_f32(vm, vdupq_n_f32(mr[i][g])));
      vst1q_f32(facc[i] + 4 * q, vaddq_f32(vld1q_f32(facc[i] + 4 * q), term));
    }
  }
}

// One tile: MR tokens x one 16-row block over groups [t.g0, t.g1). A group's integer sums stay in
// registers (4 x MR int32x4: 16 for 4 tokens, plus 4 weight registers); the float sums of the
// 16 rows live in facc, in memory: 16 more registers would not fit beside them.
template <class Dot, bool kF16, bool kSub, int MR>
void u8s8_tile(const BlockTile& t) {
  constexpr size_t R = kZeroOneBlockRows;
  const U8Blocks& L = *t.L;
  const S8Acts& x = *t.x;
  const int8_t* ar[MR];
  const float* dr[MR];
  const int32_t* sr[MR];
  const float* mr[MR];
  alignas(16) float facc[MR][R];
  for (int i = 0; i < MR; ++i) {
    ar[i] = x.a + (t.i0 + i) * L.k;
    dr[i] = x.d + (t.i0 + i) * L.acts;
    sr[i] = x.sum + (t.i0 + i) * L.acts;
    mr[i] = x.msum + (t.i0 + i) * L.groups;
    const float* yr = t.yb + (t.i0 + i) * t.ldy;
    for (size_t r = 0; r < R; ++r)  // the running sums of the rows this tile stores
      facc[i][r] = t.g0 != 0 && r >= t.r0 && r < t.r1 ? yr[r] : 0.0f;
  }
  for (size_t g = t.g0; g < t.g1; ++g) {
    group_step<Dot, kF16, kSub, MR>(t.wb + g * L.group_bytes, t.pb + g * L.group_params_bytes, L, g,
                                    ar, dr, sr, mr, facc);
  }
  for (int i = 0; i < MR; ++i) {
    float* yr = t.yb + (t.i0 + i) * t.ldy;
    if (t.r0 == 0 && t.r1 == R) {
      for (int q = 0; q < 4; ++q) vst1q_f32(yr + 4 * q, vld1q_f32(facc[i] + 4 * q));
      continue;
    }
    for (size_t r = t.r0; r < t.r1; ++r) yr[r] = facc[i][r];
  }
}

// The tiles of one Dot for run_u8_blocks: tiles[mr] for mr = 1..kMaxTile of each form.
template <class Dot, bool kF16, bool kSub>
constexpr BlockTileFn kNeonTiles[5] = {nullptr, u8s8_tile<Dot, kF16, kSub, 1>,
                                       u8s8_tile<Dot, kF16, kSub, 2>, u8s8_tile<Dot, kF16, kSub, 3>,
                                       u8s8_tile<Dot, kF16, kSub, 4>};

template <class Dot>
TileSets neon_tile_sets() {
  return TileSets{kNeonTiles<Dot, false, false>, kNeonTiles<Dot, true, false>,
                  kNeonTiles<Dot, false, true>, kNeonTiles<Dot, true, true>};
}

}  // namespace
}  // namespace neon
}  // namespace kernels
}  // namespace ember

#endif  // EMBER_KERNELS_NEON_U8S8_BLOCKS_NEON_H_
