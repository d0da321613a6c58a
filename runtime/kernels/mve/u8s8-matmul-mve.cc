// Zero-one u8 x s8 matmul, Armv8.1-M Helium (MVE), for the Cortex-M55. A stored unit holds 4 bytes
// of each of 16 rows; one word gather (offsets 0, 64, 128, 192) collects 16 bytes of one row from
// 4 consecutive units, and vmladava.s8 adds their dot with 16 activations to the row's int32 sum.
// Weights are flipped to s8 (q ^ 0x80 = q - 128: vmladav needs one signedness) and 128 * sum(a) is
// added back per activation group. Lanes past a range are predicated off (loaded as zero, so a
// flipped -128 meets a zero activation). The float epilogue runs 4 rows per vector in the kernels.h
// order (-ffp-contract=off). One token per tile: MVE has 8 vector registers, and the M55 has no
// cache for weights to stay in, so more tokens per tile save no memory traffic.
#include "kernels/u8s8-blocks.h"
#include "kernels/variants.h"

#if !defined(__ARM_FEATURE_MVE) || (__ARM_FEATURE_MVE & 2) == 0
#error "compile mve/ with MVE and its float part (-mcpu=cortex-m55 or -march=armv8.1-m.main+mve.fp)"
#endif

#include <arm_mve.h>

namespace ember {
namespace kernels {
namespace {

constexpr size_t R = kZeroOneBlockRows, S = kZeroOneUnitStride;

// isum[r] += the dots of `len` bytes of the 16 rows, from the unit at wg, with a[0..len), each
// byte as q - 128 (the caller adds 128 * sum(a)). Chunks of 16 bytes = 4 units.
EMBER_KERNEL_INLINE void range_dots(const uint8_t* wg, const int8_t* a, size_t len,
                                    int32_t isum[R]) {
  const uint32x4_t units = vmulq_n_u32(vidupq_n_u32(0, 1), S);  // byte offsets of 4 units
  const uint32x4_t flip = vdupq_n_u32(0x80808080u);
  for (size_t t = 0; t < len; t += 16) {
    const uint32_t n = static_cast<uint32_t>(len - t < 16 ? len - t : 16);
    const int8x16_t av = vldrbq_z_s8(a + t, vctp8q(n));
    const mve_pred16_t pw = vctp32q((n + 3) / 4);  // the units this chunk has
    const uint32_t* col = reinterpret_cast<const uint32_t*>(wg + t / 4 * S);
#pragma GCC unroll 16
    for (size_t r = 0; r < R; ++r) {
      const uint32x4_t w = vldrwq_gather_offset_z_u32(col + r, units, pw);
      isum[r] = vmladavaq_s8(isum[r], vreinterpretq_s8_u32(veorq_u32(w, flip)), av);
    }
  }
}

// 4 f16 values (in the low halves of u32 lanes) widened exactly as f16_to_f32 does, in integer
// steps: GCC 12 miscompiles vcvtbq_f32_f16 (its vcvtb reads a register other than its operand).
// Normal, inf and NaN by moving the exponent; zero and subnormals as (float)mantissa * 2^-24.
EMBER_KERNEL_INLINE float32x4_t f16x4_to_f32(uint32x4_t h) {
  const uint32x4_t em = vandq_u32(h, vdupq_n_u32(0x7fffu));
  uint32x4_t n = vaddq_u32(vshlq_n_u32(em, 13), vdupq_n_u32(112u << 23));  // exponent 1..30
  n = vpselq_u32(vaddq_u32(n, vdupq_n_u32(112u << 23)), n, vcmpcsq_n_u32(em, 0x7c00u));
  const float32x4_t sub = vmulq_n_f32(vcvtq_f32_u32(em), 0x1p-24f);
  const uint32x4_t r = vpselq_u32(n, vreinterpretq_u32_f32(sub), vcmpcsq_n_u32(em, 0x400u));
  return vreinterpretq_f32_u32(vorrq_u32(r, vshlq_n_u32(vandq_u32(h, vdupq_n_u32(0x8000u)), 16)));
}

// 4 scales (or mins) at p: f32, or f16 widened exactly.
template <bool kF16>
EMBER_KERNEL_INLINE float32x4_t load_params4(const uint8_t* p) {
  if (kF16) return f16x4_to_f32(vldrhq_u32(reinterpret_cast<const uint16_t*>(p)));
  return vldrwq_f32(reinterpret_cast<const float*>(p));
}

// The integer dots of rows 4q..4q+3 with 128 * asum added back (the flip above).
EMBER_KERNEL_INLINE float32x4_t isum4(const int32_t* isum, int q, int32_t asum) {
  return vcvtq_f32_s32(vaddq_n_s32(vldrwq_s32(isum + 4 * q), 128 * asum));
}

// One group of one token: facc (16 rows) += its terms in the kernels.h order of an activation group
// equal to the weight group (kSub false) or smaller, 4 rows at a time.
template <bool kF16, bool kSub>
EMBER_KERNEL_INLINE void group_step(const uint8_t* wg, const uint8_t* pg, const U8Blocks& L,
                                    size_t g, const int8_t* ai, const float* di, const int32_t* si,
                                    const float* mi, float facc[R]) {
  const size_t k0 = g * L.group, len = L.len(g);
  alignas(16) int32_t isum[R];
  if (!kSub) {
    for (size_t r = 0; r < R; ++r) isum[r] = 0;
    range_dots(wg, ai + k0, len, isum);
    const float d = di[g], asum = static_cast<float>(si[g]);
    for (int q = 0; q < 4; ++q) {  // facc + ((s * d) * isum + (m * d) * asum)
      const float32x4_t sd = vmulq_n_f32(load_params4<kF16>(pg + 4 * q * L.param_bytes), d);
      const float32x4_t md = vmulq_n_f32(load_params4<kF16>(pg + (R + 4 * q) * L.param_bytes), d);
      const float32x4_t term =
          vaddq_f32(vmulq_f32(sd, isum4(isum, q, si[g])), vmulq_n_f32(md, asum));
      vstrwq_f32(facc + 4 * q, vaddq_f32(vldrwq_f32(facc + 4 * q), term));
    }
    return;
  }
  // f = d_0 * isum_0, then f + d_h * isum_h per activation group h; facc + (s * f + m * msum).
  alignas(16) float f[R];
  for (size_t t0 = 0, h = k0 / L.act_group; t0 < len; t0 += L.act_group, ++h) {
    for (size_t r = 0; r < R; ++r) isum[r] = 0;
    range_dots(wg + t0 / 4 * S, ai + k0 + t0, len - t0 < L.act_group ? len - t0 : L.act_group,
               isum);
    for (int q = 0; q < 4; ++q) {
      const float32x4_t p = vmulq_n_f32(isum4(isum, q, si[h]), di[h]);
      vstrwq_f32(f + 4 * q, t0 == 0 ? p : vaddq_f32(vldrwq_f32(f + 4 * q), p));
    }
  }
  for (int q = 0; q < 4; ++q) {
    const float32x4_t vs = load_params4<kF16>(pg + 4 * q * L.param_bytes);
    const float32x4_t vm = load_params4<kF16>(pg + (R + 4 * q) * L.param_bytes);
    const float32x4_t term =
        vaddq_f32(vmulq_f32(vs, vldrwq_f32(f + 4 * q)), vmulq_n_f32(vm, mi[g]));
    vstrwq_f32(facc + 4 * q, vaddq_f32(vldrwq_f32(facc + 4 * q), term));
  }
}

// One tile: token t.i0 x one 16-row block over groups [t.g0, t.g1) (kernels/u8s8-blocks.h).
template <bool kF16, bool kSub>
void u8s8_tile(const BlockTile& t) {
  const U8Blocks& L = *t.L;
  const S8Acts& x = *t.x;
  const int8_t* ai = x.a + t.i0 * L.k;         // (k)
  const float* di = x.d + t.i0 * L.acts;       // (act groups)
  const int32_t* si = x.sum + t.i0 * L.acts;   // (act groups)
  const float* mi = x.msum + t.i0 * L.groups;  // (groups)
  float* yr = t.yb + t.i0 * t.ldy;
  alignas(16) float facc[R];
  for (size_t r = 0; r < R; ++r)  // the running sums of the rows this tile stores
    facc[r] = t.g0 != 0 && r >= t.r0 && r < t.r1 ? yr[r] : 0.0f;
  for (size_t g = t.g0; g < t.g1; ++g) {
    group_step<kF16, kSub>(t.wb + g * L.group_bytes, t.pb + g * L.group_params_bytes, L, g, ai, di,
                           si, mi, facc);
  }
  for (size_t r = t.r0; r < t.r1; ++r) yr[r] = facc[r];
}

template <bool kF16, bool kSub>
constexpr BlockTileFn kMveTiles[2] = {nullptr, u8s8_tile<kF16, kSub>};

}  // namespace

void u8s8_matmul_mve(const U8Matrix& w, const S8Acts& x, size_t m, float* y, size_t ldy, size_t n0,
                     size_t n1) {
  const TileSets sets{kMveTiles<false, false>, kMveTiles<true, false>, kMveTiles<false, true>,
                      kMveTiles<true, true>};
  run_u8_blocks<1>(sets, w, x, m, y, ldy, n0, n1);
}

}  // namespace kernels
}  // namespace ember
