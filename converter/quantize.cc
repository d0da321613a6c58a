#include "quantize.h"

#include <cmath>
#include <cstring>

#include "core/half.h"
#include "safetensors.h"

namespace ember {
namespace convert {

QuantMode parse_quant_mode(const std::string& s) {
  if (s == "f32") return QuantMode::F32;
  if (s == "f16") return QuantMode::F16;
  if (s == "u8") return QuantMode::U8;
  throw ConvertError("--quant: unknown mode '" + s + "' (expected f32, f16 or u8)");
}

const char* quant_mode_name(QuantMode m) {
  switch (m) {
    case QuantMode::F32:
      return "f32";
    case QuantMode::F16:
      return "f16";
    case QuantMode::U8:
      return "u8";
  }
  return "?";
}

bool is_quantized_in(QuantMode mode, const FloatTensor& t) {
  return mode != QuantMode::F32 && t.shape.size() == 2;
}

double relative_rms_error(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    num += d * d;
    den += static_cast<double>(a[i]) * static_cast<double>(a[i]);
  }
  if (den == 0) return num == 0 ? 0.0 : INFINITY;
  return std::sqrt(num / den);
}

uint16_t f32_to_f16(float f) {
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
    float v;
    std::memcpy(&v, &a, 4);
    return sign | static_cast<uint16_t>(std::nearbyint(v * 16777216.0f));
  }
  // Normal: rebias the exponent (127 -> 15) and round the 13 dropped bits to nearest even.
  const uint32_t r = a + 0xC8000FFFu + ((a >> 13) & 1u);
  return sign | static_cast<uint16_t>(r >> 13);
}

StoredTensor quantize_zero_one(const float* w, uint64_t rows, uint64_t cols, uint32_t group) {
  if (group > cols) group = static_cast<uint32_t>(cols);  // one partial group per row
  ZeroOneShape shape;
  if (!zero_one_shape(rows, cols, group, &shape)) {
    throw ConvertError("zero-one quantization of a " + std::to_string(rows) + " x " +
                       std::to_string(cols) + " matrix: empty or too large");
  }
  StoredTensor s;
  s.dtype = DType::kU8ZeroOne;
  s.shape = {rows, cols};
  s.group_size = group;
  const size_t glen = zero_one_group_len(cols, group);
  const size_t gpr = zero_one_groups_per_row(cols, group);
  std::vector<uint8_t> q(rows * cols);            // (rows, cols) row-major, then stored in blocks
  std::vector<ZeroOneParams> params(rows * gpr);  // (rows, groups)
  double num = 0, den = 0;
  for (uint64_t r = 0; r < rows; ++r) {
    const float* wr = w + r * cols;
    uint8_t* qr = q.data() + r * cols;
    for (size_t g = 0; g < gpr; ++g) {
      const size_t k0 = g * glen;
      const size_t n = cols - k0 < glen ? cols - k0 : glen;  // the last group may be partial
      const ZeroOneParams p = zero_one_quantize_group(wr + k0, n, qr + k0);
      if (!std::isfinite(p.scale) || !std::isfinite(p.min)) {
        throw ConvertError("zero-one quantization: row " + std::to_string(r) + " group " +
                           std::to_string(g) + " has a range too large for float32");
      }
      params[r * gpr + g] = p;
      for (size_t i = 0; i < n; ++i) {
        const double x = wr[k0 + i];
        const double d = x - static_cast<double>(zero_one_dequantize(qr[k0 + i], p));
        num += d * d;
        den += x * x;
      }
    }
  }
  s.rel_rms_error = den == 0 ? (num == 0 ? 0.0 : INFINITY) : std::sqrt(num / den);
  s.data.resize(shape.data_bytes());
  s.params.resize(shape.params_floats());
  zero_one_pack(shape, q.data(), params.data(), s.data.data(), s.params.data());
  return s;
}

StoredTensor store_tensor(const FloatTensor& t, QuantMode mode, uint32_t group) {
  uint64_t count = 1;
  for (uint64_t d : t.shape) count *= d;  // equals data.size() (the readers checked the shape)
  if (count != t.data.size()) {
    throw ConvertError("tensor shape holds " + std::to_string(count) + " values but " +
                       std::to_string(t.data.size()) + " are present");
  }
  if (is_quantized_in(mode, t) && mode == QuantMode::U8) {
    return quantize_zero_one(t.data.data(), t.shape[0], t.shape[1], group);
  }
  StoredTensor s;
  s.shape = t.shape;
  if (is_quantized_in(mode, t) && mode == QuantMode::F16) {
    s.dtype = DType::kF16;
    s.data.resize(t.data.size() * 2);
    std::vector<float> back(t.data.size());
    for (size_t i = 0; i < t.data.size(); ++i) {
      const uint16_t h = f32_to_f16(t.data[i]);
      std::memcpy(s.data.data() + 2 * i, &h, 2);
      back[i] = f16_to_f32(h);  // exact widening, for the error figure
    }
    s.rel_rms_error = relative_rms_error(t.data.data(), back.data(), t.data.size());
    return s;
  }
  s.dtype = DType::kF32;
  s.data.resize(t.data.size() * 4);
  if (!t.data.empty()) std::memcpy(s.data.data(), t.data.data(), s.data.size());
  s.rel_rms_error = 0;
  return s;
}

}  // namespace convert
}  // namespace ember
