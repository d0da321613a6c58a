// Zero-one (min-max, asymmetric uint8) quantization, shared by the converter (quantize) and the
// runtime (kernels, dequantize). See ../shared/docs/DESIGN.md.
//
// A weight matrix W of shape (rows, cols) — rows = outputs, cols = inputs (K) — is cut along each row
// into groups of `group` consecutive weights (group 0 = the whole row; the last group of a row is
// partial when cols % group != 0). Per group: min, max, scale = (max - min) / 255,
// q = round((x - min) / scale) in 0..255, x ~= min + q * scale. A constant group has scale 0 and
// dequantizes exactly to min.
//
// In the file: data = (rows, cols) uint8 row-major; params = (rows, groups_per_row) ZeroOneParams.
#ifndef EMBER_CORE_ZERO_ONE_H_
#define EMBER_CORE_ZERO_ONE_H_

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace ember {

struct ZeroOneParams {
  float scale;  // (max - min) / 255, 0 for a constant group
  float min;
};
static_assert(sizeof(ZeroOneParams) == 8, "ZeroOneParams is two packed floats in the file");

// Weights per group for a row of `cols` (group 0 means one group per row).
inline size_t zero_one_group_len(size_t cols, uint32_t group) { return group == 0 ? cols : group; }
inline size_t zero_one_groups_per_row(size_t cols, uint32_t group) {
  const size_t g = zero_one_group_len(cols, group);
  return g == 0 ? 0 : (cols + g - 1) / g;
}

// Quantizes n values into q (n bytes) and returns the group's params.
inline ZeroOneParams zero_one_quantize_group(const float* x, size_t n, uint8_t* q) {
  float lo = x[0], hi = x[0];
  for (size_t i = 1; i < n; ++i) {
    lo = x[i] < lo ? x[i] : lo;
    hi = x[i] > hi ? x[i] : hi;
  }
  ZeroOneParams p{(hi - lo) / 255.0f, lo};
  if (!(p.scale > 0.0f)) {  // constant group (or a range too small for float): all q = 0
    p.scale = 0.0f;
    for (size_t i = 0; i < n; ++i) q[i] = 0;
    return p;
  }
  const float inv = 1.0f / p.scale;
  for (size_t i = 0; i < n; ++i) {
    float v = std::nearbyint((x[i] - lo) * inv);
    v = v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v);
    q[i] = static_cast<uint8_t>(v);
  }
  return p;
}

inline float zero_one_dequantize(uint8_t q, ZeroOneParams p) { return p.min + q * p.scale; }

}  // namespace ember

#endif  // EMBER_CORE_ZERO_ONE_H_
