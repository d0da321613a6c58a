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

// silu(g) * u = (g * (1 / (1 + e^-g))) * u, run.c's order; e^x is libm's expf (std::exp on a
// float), called per element by every variant (glibc's expf on x86-64 and aarch64).
inline float silu_mul_one(float g, float u) { return (g * (1.0f / (1.0f + std::exp(-g)))) * u; }

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
