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

// Attention score of one key (AttentionFn): s = s + q[d] * k[d] sequentially from +0 over run.c's
// head layout (RoPE pairs interleaved (2j, 2j + 1); ours are rotate_half (j, j + half), so step i
// reads d = (i % 2) * half + i / 2), then s / sqrt(head_dim) (a division, as run.c).
inline float attention_score_one(const float* q, const float* k, size_t hd, float sqrt_hd) {
  const size_t half = hd / 2;
  float s = 0.0f;
  for (size_t i = 0; i < hd; ++i) {
    const size_t d = (i % 2) * half + i / 2;
    s = s + q[d] * k[d];
  }
  return s / sqrt_hd;
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
    v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
    const int32_t q = static_cast<int32_t>(v);
    a[i] = static_cast<int8_t>(q);
    s += q;
  }
  *sum = s;
  return d;
}

// The stored row blocks of a u8 matrix with k columns and groups of `group` bytes
// (core/zero_one.h), in the sizes a kernel walks them by (the model verifier checked the sizes).
struct U8Blocks {
  size_t k, group, groups, units_full, group_bytes, block_bytes;
  U8Blocks(size_t k_, size_t group_)
      : k(k_),
        group(group_),
        groups((k_ + group_ - 1) / group_),
        units_full((group_ + kZeroOneUnitBytes - 1) / kZeroOneUnitBytes),
        group_bytes(units_full * kZeroOneUnitStride),
        block_bytes(group_bytes * (groups - 1) + (len(groups - 1) + kZeroOneUnitBytes - 1) /
                                                     kZeroOneUnitBytes * kZeroOneUnitStride) {}
  // Bytes of group g (the last may be partial).
  size_t len(size_t g) const { return k - g * group < group ? k - g * group : group; }
};

// The float epilogue of one (token, row, group) of the u8 x s8 matmul.
inline float u8s8_group_term(float scale, float min, float d, int32_t isum, int32_t asum) {
  const float sd = scale * d;
  const float md = min * d;
  return sd * static_cast<float>(isum) + md * static_cast<float>(asum);
}

}  // namespace
}  // namespace kernels
}  // namespace ember

#endif  // EMBER_KERNELS_COMMON_H_
