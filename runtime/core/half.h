// IEEE binary16 and bfloat16 -> binary32, exact (subnormals, inf, NaN included); equal to F16C /
// NEON fcvtl. Shared by the converter (reading safetensors), the model loader and the kernels.
#ifndef EMBER_CORE_HALF_H_
#define EMBER_CORE_HALF_H_

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

}  // namespace
}  // namespace ember

#endif  // EMBER_CORE_HALF_H_
