// IEEE binary16 and bfloat16 -> binary32, exact (subnormals, inf, NaN included); equal to F16C /
// NEON fcvtl; and binary32 -> binary16, rounded to nearest even. Shared by the converter (reading
// safetensors, writing f16), the model loader and the kernels.
#ifndef EMBER_CORE_HALF_H_
#define EMBER_CORE_HALF_H_

#include <cmath>
#include <cstdint>
#include <cstring>

namespace ember {
// Internal linkage on purpose: kernel sources include this under different ISA flags (scalar,
// -mavx2, -march=armv8.2-a+i8mm...); one shared inline definition could let the linker run the
// AVX2-compiled copy on a CPU without AVX2.
namespace {

inline float bits_to_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (man << 13));  // inf / NaN
  if (exp == 0) {
    if (man == 0) return bits_to_f32(sign);
    exp = 127 - 15 + 1;  // subnormal: normalise
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

// IEEE half, round to nearest even; overflow -> inf, subnormals kept, NaN stays NaN.
inline uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t a = x & 0x7FFFFFFFu;
  if (a > 0x7F800000u)
    return sign | 0x7E00u | static_cast<uint16_t>((a >> 13) & 0x3FFu);  // NaN stays NaN
  // 65520 = 0x477FF000 is halfway between 65504 (odd mantissa) and 2^16: ties-to-even goes to inf.
  if (a >= 0x477FF000u) return sign | 0x7C00u;
  if (a < 0x38800000u) {
    // Below 2^-14: a half subnormal q * 2^-24. Scaling by 2^24 is exact; nearbyint rounds to even.
    // q == 1024 is the encoding of the smallest normal, which is then also right.
    const float v = bits_to_f32(a);
    return sign | static_cast<uint16_t>(std::nearbyint(v * 16777216.0f));
  }
  // Normal: rebias the exponent (127 -> 15) and round the 13 dropped bits to nearest even.
  const uint32_t r = a + 0xC8000FFFu + ((a >> 13) & 1u);
  return sign | static_cast<uint16_t>(r >> 13);
}

}  // namespace
}  // namespace ember

#endif  // EMBER_CORE_HALF_H_
