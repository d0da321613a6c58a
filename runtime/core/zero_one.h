// Zero-one (min-max, asymmetric uint8) quantization, shared by the converter (quantize) and the
// runtime (kernels, dequantize). See ../shared/docs/DESIGN.md.
//
// A weight matrix W of shape (rows, cols) — rows = outputs, cols = inputs (K) — is cut along each
// row into groups of `group` consecutive weights (group 0 = the whole row; the last group of a row
// is partial when cols % group != 0). Per group: min, max, scale = (max - min) / 255, q = round((x
// - min) / scale) in 0..255, x ~= min + q * scale. A constant group has scale 0 and dequantizes
// exactly to min.
//
// In the file: the row-block layout below (zero_one_pack), the same on every CPU.
#ifndef EMBER_CORE_ZERO_ONE_H_
#define EMBER_CORE_ZERO_ONE_H_

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "core/half.h"

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

// --- The stored layout: row blocks, one for every CPU, used in place -------------------------
// A quantized matrix is stored in blocks of kZeroOneBlockRows (16) rows, padded with zero rows
// (q = 0, scale = 0, min = 0). Inside a block, each group's weights come as units: 4 consecutive
// bytes of each of the 16 rows side by side (64 bytes, one cache line: a vector register holds
// one unit of 16 rows, so a kernel multiplies 16 outputs with one instruction and a broadcast
// activation word, and reads each weight once whatever the number of tokens). A group of `len`
// bytes has ceil(len / 4) units; the bytes past len in its last unit are 0.
//   data:   (blocks, groups, units of the group, 16 rows, 4 bytes) u8
//   params: (blocks, groups, {16 scales, 16 mins}) f32: 128 bytes per block and group, or IEEE
//           f16 (Tensor.params_dtype, format 3): 64 bytes, one cache line
// Element (r, c): block r / 16, lane r % 16, group g = c / group, unit (c % group) / 4, byte c % 4.
// Bits per weight: 8 + 2 * 32 / group with f32 params (9.0 at group 64), 8 + 2 * 16 / group with
// f16 (8.5 at group 64).
constexpr size_t kZeroOneBlockRows = 16;
constexpr size_t kZeroOneUnitBytes = 4;                                       // of one row
constexpr size_t kZeroOneUnitStride = kZeroOneBlockRows * kZeroOneUnitBytes;  // 64: of all rows
constexpr size_t kZeroOneParamFloats = 2 * kZeroOneBlockRows;  // values per block and group

// Bytes of one stored scale or min: 4 (kF32) or 2 (kF16); 0 for any other type (not a params
// type).
constexpr size_t zero_one_param_bytes(DType t) {
  return t == DType::kF32 ? 4 : (t == DType::kF16 ? 2 : 0);
}

struct ZeroOneShape {
  uint64_t rows = 0, cols = 0;
  uint64_t group = 0;               // bytes per group (the row length for group_size 0)
  uint64_t groups = 0;              // per row; the last may be partial
  uint64_t blocks = 0;              // ceil(rows / 16)
  uint64_t units_full = 0;          // units of a full group
  uint64_t units_row = 0;           // units of all the groups of a row
  DType params_type = DType::kF32;  // of the stored scales and mins: kF32 or kF16
  uint64_t block_bytes() const { return units_row * kZeroOneUnitStride; }
  uint64_t data_bytes() const { return blocks * block_bytes(); }
  // Values (scales and mins) of the params, padding included, and their bytes.
  uint64_t params_floats() const { return blocks * groups * kZeroOneParamFloats; }
  uint64_t params_bytes() const { return params_floats() * zero_one_param_bytes(params_type); }
  // Bytes of group g's weights in a block, from the block's start (every group before is full).
  uint64_t group_offset(uint64_t g) const { return g * units_full * kZeroOneUnitStride; }
  // Units of group g (the last one may have fewer).
  uint64_t units(uint64_t g) const {
    const uint64_t len = cols - g * group < group ? cols - g * group : group;
    return (len + kZeroOneUnitBytes - 1) / kZeroOneUnitBytes;
  }
};

// The layout of a (rows, cols) matrix with `group_size` (0 = a whole row) and params of
// `params_type`. False when a size does not fit in 64 bits (rows, cols from an untrusted file),
// rows / cols is 0 or params_type is neither kF32 nor kF16.
inline bool zero_one_shape(uint64_t rows, uint64_t cols, uint64_t group_size, ZeroOneShape* s,
                           DType params_type = DType::kF32) {
  if (rows == 0 || cols == 0 || group_size > cols) return false;
  if (zero_one_param_bytes(params_type) == 0) return false;
  s->params_type = params_type;
  constexpr uint64_t kMax = uint64_t{1} << 40;  // far above any real matrix, far below overflow
  if (rows > kMax || cols > kMax) return false;
  s->rows = rows;
  s->cols = cols;
  s->group = group_size == 0 ? cols : group_size;
  s->groups = (cols + s->group - 1) / s->group;
  s->blocks = (rows + kZeroOneBlockRows - 1) / kZeroOneBlockRows;
  s->units_full = (s->group + kZeroOneUnitBytes - 1) / kZeroOneUnitBytes;
  s->units_row = s->units_full * (s->groups - 1) + s->units(s->groups - 1);
  // blocks * units_row * 64 and blocks * groups * 128 stay below 2^40 * 2^39 * 2^7: check.
  return s->blocks <= kMax / (s->units_row * kZeroOneUnitStride) && s->blocks * s->groups <= kMax;
}

// Byte (r, c) of the stored data.
inline uint64_t zero_one_byte_offset(const ZeroOneShape& s, uint64_t r, uint64_t c) {
  const uint64_t g = c / s.group, t = c % s.group;
  return (r / kZeroOneBlockRows) * s.block_bytes() + s.group_offset(g) +
         (t / kZeroOneUnitBytes) * kZeroOneUnitStride +
         (r % kZeroOneBlockRows) * kZeroOneUnitBytes + t % kZeroOneUnitBytes;
}

// Activation groups (format 3): a matrix whose weight groups are `group` long may have its
// activations quantized in groups of act_group values, which divides the group and is a multiple
// of the 4-byte unit, so that no unit straddles two of them. 0 means the weight group. The act
// groups of a row are numbered from its start: group g holds act groups [g * group / act_group,
// ...), the last one partial where the row is.
inline bool zero_one_act_group_valid(uint64_t group, uint64_t act_group) {
  return act_group == 0 ||
         (act_group <= group && act_group % kZeroOneUnitBytes == 0 && group % act_group == 0);
}
inline size_t zero_one_act_group_len(size_t group, uint32_t act_group) {
  return act_group == 0 ? group : act_group;
}

// Internal linkage: these convert f16 params through core/half.h's helpers, which have it too.
namespace {

// One stored param value as float (exact for f16).
inline float zero_one_param(const void* params, DType t, uint64_t i) {
  if (t == DType::kF16) return f16_to_f32(static_cast<const uint16_t*>(params)[i]);
  return static_cast<const float*>(params)[i];
}

// (scale, min) of row r, group g in the stored params.
inline ZeroOneParams zero_one_params_at(const ZeroOneShape& s, const void* params, uint64_t r,
                                        uint64_t g) {
  const uint64_t p = ((r / kZeroOneBlockRows) * s.groups + g) * kZeroOneParamFloats;
  return ZeroOneParams{
      zero_one_param(params, s.params_type, p + r % kZeroOneBlockRows),
      zero_one_param(params, s.params_type, p + kZeroOneBlockRows + r % kZeroOneBlockRows)};
}

// Stores a row-major matrix q (rows, cols) with row-major params (rows, groups) in the layout
// above: data (data_bytes()) and params (params_bytes() of s.params_type, f16 rounded to nearest
// even), padding included.
inline void zero_one_pack(const ZeroOneShape& s, const uint8_t* q, const ZeroOneParams* p,
                          uint8_t* data, void* params) {
  for (uint64_t i = 0; i < s.data_bytes(); ++i) data[i] = 0;
  const bool f16 = s.params_type == DType::kF16;
  float* pf = static_cast<float*>(params);
  uint16_t* ph = static_cast<uint16_t*>(params);
  for (uint64_t i = 0; i < s.params_floats(); ++i) {
    if (f16) {
      ph[i] = 0;
    } else {
      pf[i] = 0.0f;
    }
  }
  for (uint64_t r = 0; r < s.rows; ++r) {
    for (uint64_t c = 0; c < s.cols; ++c) data[zero_one_byte_offset(s, r, c)] = q[r * s.cols + c];
    for (uint64_t g = 0; g < s.groups; ++g) {
      const uint64_t b = ((r / kZeroOneBlockRows) * s.groups + g) * kZeroOneParamFloats;
      const uint64_t is = b + r % kZeroOneBlockRows, im = is + kZeroOneBlockRows;
      const ZeroOneParams v = p[r * s.groups + g];
      if (f16) {
        ph[is] = f32_to_f16(v.scale);
        ph[im] = f32_to_f16(v.min);
      } else {
        pf[is] = v.scale;
        pf[im] = v.min;
      }
    }
  }
}

// Row r of a stored matrix as floats (cols values): min + q * scale per group.
inline void zero_one_dequantize_row(const ZeroOneShape& s, const uint8_t* data, const void* params,
                                    uint64_t r, float* out) {
  for (uint64_t g = 0; g < s.groups; ++g) {
    const ZeroOneParams p = zero_one_params_at(s, params, r, g);
    const uint64_t c1 = s.cols - g * s.group < s.group ? s.cols : (g + 1) * s.group;
    for (uint64_t c = g * s.group; c < c1; ++c) {
      out[c] = zero_one_dequantize(data[zero_one_byte_offset(s, r, c)], p);
    }
  }
}

// --- KV cache rows --------------------------------------------------------------------------
// The u8 KV cache quantizes each token's key (and value) of one KV head as one group of head_dim
// values, with an f16 scale and min: 8 + 32 / head_dim bits per value (8.5 at head_dim 64, which
// keeps the cache under 0.27x of float32; finer groups or f32 params would not). The min is
// rounded down and the scale up to f16, so that min + 255 * scale still covers the row's range and
// no value is clamped by more than rounding; values are clamped to the f16 range (|x| <= 65504).
constexpr float kZeroOneKvMaxAbs = 65504.0f;

// The f16 bits next to x on one side: the largest f16 <= x (up = false) or the smallest >= x.
inline uint16_t f16_round_toward(float x, bool up) {
  uint16_t h = f32_to_f16(x);
  const float f = f16_to_f32(h);
  if (up ? f < x : f > x) {
    const bool neg = (h & 0x8000u) != 0;
    if (up) {
      h = neg ? static_cast<uint16_t>(h == 0x8000u ? 0x0001u : h - 1)
              : static_cast<uint16_t>(h + 1);
    } else {
      h = neg ? static_cast<uint16_t>(h + 1) : static_cast<uint16_t>(h == 0 ? 0x8001u : h - 1);
    }
  }
  return h;
}

// Quantizes one row of n values into q (n bytes) with f16 *scale and *min: x ~= min + q * scale.
inline void zero_one_quantize_kv_row(const float* x, size_t n, uint8_t* q, uint16_t* scale,
                                     uint16_t* min) {
  float lo = kZeroOneKvMaxAbs, hi = -kZeroOneKvMaxAbs;
  for (size_t i = 0; i < n; ++i) {
    lo = x[i] < lo ? x[i] : lo;
    hi = x[i] > hi ? x[i] : hi;
  }
  lo = lo < -kZeroOneKvMaxAbs ? -kZeroOneKvMaxAbs : lo;
  hi = hi > kZeroOneKvMaxAbs ? kZeroOneKvMaxAbs : hi;
  lo = lo > hi ? hi : lo;  // n == 0, NaN only, or every value past the f16 range
  const uint16_t mh = f16_round_toward(lo, false);
  const float m = f16_to_f32(mh);
  const uint16_t sh = f16_round_toward((hi - m) / 255.0f, true);
  const float sc = f16_to_f32(sh);
  *min = mh;
  *scale = sh;
  const float inv = sc > 0.0f ? 1.0f / sc : 0.0f;
  for (size_t i = 0; i < n; ++i) {
    float v = std::nearbyint((x[i] - m) * inv);
    v = !(v >= 0.0f) ? 0.0f : (v > 255.0f ? 255.0f : v);  // NaN -> 0
    q[i] = static_cast<uint8_t>(v);
  }
}

}  // namespace

}  // namespace ember

#endif  // EMBER_CORE_ZERO_ONE_H_
