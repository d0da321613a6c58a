// Scalar building blocks that fix the float evaluation order shared by every kernel variant (see
// kernels.h, "Float order"). SIMD variants reproduce these exactly; their tails call them directly.
// Included only by kernel sources (compiled with -ffp-contract=off).
#ifndef EMBER_KERNELS_COMMON_H_
#define EMBER_KERNELS_COMMON_H_

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ember {
namespace kernels {
// Internal linkage on purpose: these helpers are compiled into files with different ISA flags
// (scalar, -mavx2, -march=armv8.2-a+i8mm...); one shared inline definition could let the linker
// run the AVX2 copy on a CPU without AVX2.
namespace {

inline float bits_to_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline uint32_t f32_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// IEEE binary16 -> binary32, exact (subnormals, inf, NaN included); equals F16C / NEON fcvtl.
inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (man << 13));  // inf / NaN
  if (exp == 0) {
    if (man == 0) return bits_to_f32(sign);
    // Subnormal: normalise.
    exp = 127 - 15 + 1;
    while ((man & 0x400u) == 0) {
      man <<= 1;
      --exp;
    }
    man &= 0x3ffu;
    return bits_to_f32(sign | (exp << 23) | (man << 13));
  }
  return bits_to_f32(sign | ((exp + 127 - 15) << 23) | (man << 13));
}

inline float bf16_to_f32(uint16_t h) { return bits_to_f32(static_cast<uint32_t>(h) << 16); }

// The fixed 8-lane reduction: lane l holds the sum of terms with index i % 8 == l (each added in
// increasing i); the lanes are combined as ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)) — what an AVX2
// 256->128->64->32 halving tree (or two NEON q registers) gives.
inline float reduce8(const float* l) {
  return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}

// Ember's exp: e^x with ~1 ulp-level error in [-87, 88], computed in a fixed order (no FMA) so that
// SIMD variants give the same bits. x < -87 gives 0; x > 88 is clamped to 88. NaN is not handled.
constexpr float kExpLo = -87.0f;
constexpr float kExpHi = 88.0f;
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693145751953125f;      // 12 significant bits: n * kLn2Hi is exact
constexpr float kLn2Lo = 1.42860682030941723e-06f;
constexpr float kExpC2 = 0.5f;
constexpr float kExpC3 = 0.166666671633720398f;
constexpr float kExpC4 = 0.0416664853692054749f;
constexpr float kExpC5 = 0.00833336077630519867f;
constexpr float kExpC6 = 0.00139304355252534151f;
constexpr float kExpC7 = 0.000198527617612853646f;

inline float exp_ember(float x) {
  if (x < kExpLo) return 0.0f;
  if (x > kExpHi) x = kExpHi;
  const float n = std::nearbyint(x * kLog2e);  // round to nearest even (default mode)
  float r = x - n * kLn2Hi;
  r = r - n * kLn2Lo;
  float p = kExpC7;
  p = p * r + kExpC6;
  p = p * r + kExpC5;
  p = p * r + kExpC4;
  p = p * r + kExpC3;
  p = p * r + kExpC2;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // n in [-126, 127]: 2^n is a normal float.
  const float scale = bits_to_f32(static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23);
  return p * scale;
}

// silu(g) * u = (g / (1 + e^-g)) * u.
inline float silu_mul_one(float g, float u) { return (g / (1.0f + exp_ember(-g))) * u; }

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
