// Scalar building blocks that fix the float evaluation order shared by every kernel variant (see
// kernels.h, "Float order"). SIMD variants reproduce these exactly; their tails call them directly.
// Included only by kernel sources (compiled with -ffp-contract=off).
#ifndef EMBER_KERNELS_COMMON_H_
#define EMBER_KERNELS_COMMON_H_

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/half.h"
#include "core/zero_one.h"
#include "kernels/kernels.h"

// Inner steps of a tile that must inline into it: an out-of-line call spills the tile's
// accumulators through memory (GCC declines to inline them at 8 tokens by its size limits).
#if defined(__GNUC__)
#define EMBER_KERNEL_INLINE inline __attribute__((always_inline))
#else
#define EMBER_KERNEL_INLINE inline
#endif

namespace ember {
namespace kernels {
// Internal linkage on purpose: these helpers are compiled into files with different ISA flags
// (scalar, -mavx2, -march=armv8.2-a+i8mm...); one shared inline definition could let the linker
// run the AVX2 copy on a CPU without AVX2.
namespace {

using ::ember::bf16_to_f32;
using ::ember::bits_to_f32;
using ::ember::f16_to_f32;
inline uint32_t f32_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// --- exp: Ember's own, the same bits in every variant by construction -------------------------
// Evaluated in double and rounded once to float, so that it is correctly rounded except in rare
// near-midpoint cases: it then agrees with glibc's expf (also nearly correctly rounded) almost
// always, which keeps the f32 path at run.c's logits (an exp with <= 1 ulp error moved
// stories260K's logits by 1.6e-5, past the 1e-5 criterion: attention amplifies 1-ulp differences).
// The definition (SIMD variants reproduce it lane for lane, every step one IEEE operation with one
// rounding, no FMA):
//   NaN -> returned unchanged; x clamped to [-104, 89] in float (below, e^x rounds to 0; above,
//   to +inf); then in double: z = x * log2e; k = nearbyint(z) by the 1.5 * 2^52 trick
//   (k = (z + 0x1.8p52) - 0x1.8p52); r = x - k * ln2 (|r| <= 0.347; k * ln2's rounding is
//   <= 2^-47 absolute); p = Taylor series of e^r to degree 10 in Horner form from 1/10! down to
//   1/0! (truncation < 2.2e-13 relative); e^x = (float)(p * 2^k), 2^k from exponent bits (exact);
//   the one rounding to float also gives the subnormal results and the overflow to +inf.
// Error, measured by tests/kernels/kernels_test.cc (ExpUlp) against the exact e^x: < 0.5001 ulp
// over every float in [-88, 88] (subnormal results in ulps of 2^-149). exp(0) = 1 exactly,
// exp(-inf) = +0, exp(+inf) = +inf.
constexpr float kExpLo = -104.0f;
constexpr float kExpHi = 89.0f;
constexpr double kExpLog2e = 1.4426950408889634;  // 0x1.71547652b82fep0
constexpr double kExpLn2 = 0.6931471805599453;    // 0x1.62e42fefa39efp-1
constexpr double kExpRound = 6755399441055744.0;  // 1.5 * 2^52
// 1 / j! for j = 10 .. 0 (Horner from the highest degree).
constexpr double kExpC[11] = {
    1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0,
    1.0 / 24.0,      1.0 / 6.0,      0.5,           1.0,          1.0};

inline float exp_f32(float x) {
  if (x != x) return x;
  x = x < kExpLo ? kExpLo : x;
  x = x > kExpHi ? kExpHi : x;
  const double xd = x;
  const double k = (xd * kExpLog2e + kExpRound) - kExpRound;
  const double r = xd - k * kExpLn2;
  double p = kExpC[0];
  for (int j = 1; j <= 10; ++j) p = p * r + kExpC[j];
  const uint64_t u = static_cast<uint64_t>(static_cast<int64_t>(k) + 1023) << 52;
  double s;
  std::memcpy(&s, &u, sizeof s);
  return static_cast<float>(p * s);
}

// silu(g) * u = (g * (1 / (1 + e^-g))) * u, run.c's order, e^x = exp_f32.
inline float silu_mul_one(float g, float u) { return (g * (1.0f / (1.0f + exp_f32(-g)))) * u; }

// A cached key or value element as float: exact for each cache type (f32, f16 bits, u8 q).
inline float kv_widen(float x) { return x; }
inline float kv_widen(uint16_t h) { return f16_to_f32(h); }
inline float kv_widen(uint8_t q) { return static_cast<float>(q); }

// q . k of one key (AttentionFn): s = s + q[d] * k[d] sequentially from +0 over run.c's head layout
// (RoPE pairs interleaved (2j, 2j + 1); ours are rotate_half (j, j + half), so step i reads
// d = (i % 2) * half + i / 2), k widened exactly from the cache type.
template <class E>
inline float attention_dot_one(const float* q, const E* k, size_t hd) {
  const size_t half = hd / 2;
  float s = 0.0f;
  for (size_t i = 0; i < hd; ++i) {
    const size_t d = (i % 2) * half + i / 2;
    s = s + q[d] * kv_widen(k[d]);
  }
  return s;
}

// Attention score of one float key: the dot above / sqrt(head_dim) (a division, as run.c).
inline float attention_score_one(const float* q, const float* k, size_t hd, float sqrt_hd) {
  return attention_dot_one(q, k, hd) / sqrt_hd;
}

// The sum of a query head's values in the dot's order (the min term of a u8 key, AttentionU8Fn).
inline float attention_qsum(const float* q, size_t hd) {
  const size_t half = hd / 2;
  float s = 0.0f;
  for (size_t i = 0; i < hd; ++i) s = s + q[(i % 2) * half + i / 2];
  return s;
}

// The score of a u8 key from its dot with the key's q bytes (AttentionU8Fn).
inline float u8_attention_score(float acc, float scale, float min, float qsum, float sqrt_hd) {
  return (scale * acc + min * qsum) / sqrt_hd;
}

// pm = sum over t of p[t] * v_min[t] from +0 (the min term of a u8 value row, AttentionU8Fn).
inline float u8_attention_pmin(const float* p, const uint16_t* v_min, size_t n_keys) {
  float s = 0.0f;
  for (size_t t = 0; t < n_keys; ++t) s = s + p[t] * f16_to_f32(v_min[t]);
  return s;
}

// Activation quantization of one group (the quantize_acts_s8 contract): returns d, writes a, *sum.
inline float quantize_group_s8(const float* x, size_t n, int8_t* a, int32_t* sum) {
  float amax = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    const float v = std::fabs(x[i]);
    amax = v > amax ? v : amax;
  }
  const float d = amax / 127.0f;
  const float id = d > 0.0f ? 1.0f / d : 0.0f;
  int32_t s = 0;
  for (size_t i = 0; i < n; ++i) {
    float v = std::nearbyint(x[i] * id);
    v = v > 127.0f ? 127.0f : (v >= -127.0f ? v : -127.0f);  // NaN: -127, as the x86 lanes
    const int32_t q = static_cast<int32_t>(v);
    a[i] = static_cast<int8_t>(q);
    s += q;
  }
  *sum = s;
  return d;
}

// msum of one token (QuantizeActsS8Fn): for each weight group of `group` values, the sum over its
// activation groups h of d[h] * (float)sum[h], in order from the first product (kernels.h).
inline void act_group_msums(size_t k, size_t group, size_t act_group, const float* d,
                            const int32_t* sum, float* msum) {
  const size_t groups = (k + group - 1) / group, acts = (k + act_group - 1) / act_group;
  const size_t per = group / act_group;
  for (size_t g = 0; g < groups; ++g) {
    const size_t h0 = g * per, h1 = h0 + per < acts ? h0 + per : acts;
    float f = d[h0] * static_cast<float>(sum[h0]);
    for (size_t h = h0 + 1; h < h1; ++h) f = f + d[h] * static_cast<float>(sum[h]);
    msum[g] = f;
  }
}

// The stored row blocks of a u8 matrix with k columns and groups of `group` bytes
// (core/zero_one.h), in the sizes a kernel walks them by (the model verifier checked the sizes),
// and the activation groups of `act_group` bytes it is multiplied with.
struct U8Blocks {
  size_t k, group, groups, units_full, group_bytes, block_bytes;
  size_t act_group, acts;     // activation group length, activation groups per row
  size_t param_bytes;         // of one scale or min: 4 (f32) or 2 (f16)
  size_t group_params_bytes;  // of one block's group: 32 values
  U8Blocks(const U8Matrix& w, size_t act_group_)
      : k(w.k),
        group(w.group),
        groups((w.k + w.group - 1) / w.group),
        units_full((w.group + kZeroOneUnitBytes - 1) / kZeroOneUnitBytes),
        group_bytes(units_full * kZeroOneUnitStride),
        block_bytes(group_bytes * (groups - 1) + (len(groups - 1) + kZeroOneUnitBytes - 1) /
                                                     kZeroOneUnitBytes * kZeroOneUnitStride),
        act_group(act_group_),
        acts((w.k + act_group_ - 1) / act_group_),
        param_bytes(zero_one_param_bytes(w.params_type)),
        group_params_bytes(kZeroOneParamFloats * param_bytes) {}
  // Bytes of group g (the last may be partial).
  size_t len(size_t g) const { return k - g * group < group ? k - g * group : group; }
  // Bytes of activation group h (the last may be partial).
  size_t act_len(size_t h) const {
    return k - h * act_group < act_group ? k - h * act_group : act_group;
  }
};

// The float epilogue of one (token, row, group) of the u8 x s8 matmul where the activation group
// is the weight group.
inline float u8s8_group_term(float scale, float min, float d, int32_t isum, int32_t asum) {
  const float sd = scale * d;
  const float md = min * d;
  return sd * static_cast<float>(isum) + md * static_cast<float>(asum);
}

// Param i of a group's 32 (16 scales, 16 mins) stored as f32 or f16 (exact widening).
template <bool kF16>
inline float u8_param(const uint8_t* pg, size_t i) {
  if (kF16) {
    uint16_t h;
    std::memcpy(&h, pg + 2 * i, 2);
    return f16_to_f32(h);
  }
  float f;
  std::memcpy(&f, pg + 4 * i, 4);
  return f;
}

}  // namespace
}  // namespace kernels
}  // namespace ember

#endif  // EMBER_KERNELS_COMMON_H_
