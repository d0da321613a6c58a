#include "quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/float_blocks.h"
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

uint16_t f32_to_f16(float f) { return ::ember::f32_to_f16(f); }

namespace {

float f16_round(float v) { return f16_to_f32(f32_to_f16(v)); }

// The f16 value next to v (an f16 value) towards -inf (down) or +inf (up).
float f16_next(float v, bool up) {
  const uint16_t h = f32_to_f16(v);
  const bool neg = (h & 0x8000u) != 0, zero = (h & 0x7FFFu) == 0;
  uint16_t r;
  if (zero) {
    r = up ? 0x0001u : 0x8001u;
  } else if (neg != up) {  // away from zero
    r = static_cast<uint16_t>(h + 1);
  } else {
    r = static_cast<uint16_t>(h - 1);
  }
  return f16_to_f32(r);
}

// Squared error of x ~= m + q * s with q = round((x - m) / s) in 0..255 (s > 0), or q = 0 (s == 0);
// writes q when `out` is not null.
double fit_error(const float* x, size_t n, float m, float s, uint8_t* out) {
  double e = 0;
  for (size_t i = 0; i < n; ++i) {
    double v = 0;
    if (s > 0.0f) {
      v = std::nearbyint((static_cast<double>(x[i]) - m) / s);
      v = v < 0 ? 0 : (v > 255 ? 255 : v);
    }
    const double d = static_cast<double>(m) + v * static_cast<double>(s) - x[i];
    e += d * d;
    if (out) out[i] = static_cast<uint8_t>(v);
  }
  return e;
}

// The activation group stored for a tensor whose groups are g long (kAutoActGroup resolved; 0 for
// the weight group).
uint32_t resolve_act_group(uint32_t act_group, uint64_t g) {
  if (act_group == kAutoActGroup) return g > 16 && g % 16 == 0 ? 16 : 0;
  if (act_group == 0 || act_group == g) return 0;
  if (!zero_one_act_group_valid(g, act_group)) {
    throw ConvertError("--act-group " + std::to_string(act_group) + " does not fit groups of " +
                       std::to_string(g) + " (it must divide the group and be a multiple of 4)");
  }
  return act_group;
}

}  // namespace

ZeroOneParams zero_one_quantize_group_f16(const float* x, size_t n, uint8_t* q) {
  float lo = x[0], hi = x[0];
  for (size_t i = 1; i < n; ++i) {
    lo = x[i] < lo ? x[i] : lo;
    hi = x[i] > hi ? x[i] : hi;
  }
  if (!(std::fabs(lo) <= 65504.0f && std::fabs(hi) <= 65504.0f)) {
    throw ConvertError("weights up to " + std::to_string(std::max(std::fabs(lo), std::fabs(hi))) +
                       " do not fit f16 params (|x| <= 65504): use --params f32");
  }
  const float m_near = f16_round(lo);
  const float m_down = m_near > lo ? f16_next(m_near, false) : m_near;
  ZeroOneParams best{0.0f, m_near};
  double best_err = fit_error(x, n, m_near, 0.0f, nullptr);  // the constant candidate
  for (float m : {m_near, m_down}) {
    if (!std::isfinite(m) || hi - m <= 0.0f) continue;
    const float exact = (hi - m) / 255.0f;
    const float s_near = f16_round(exact);
    const float s_up = s_near < exact ? f16_next(s_near, true) : s_near;
    // (and the f32 scale rounded, the naive choice, so that the fit is never worse than it)
    for (float sc : {s_near, s_up, f16_round((hi - lo) / 255.0f)}) {
      if (!(sc > 0.0f)) continue;
      const double e = fit_error(x, n, m, sc, nullptr);
      if (e < best_err) {
        best_err = e;
        best = ZeroOneParams{sc, m};
      }
    }
  }
  fit_error(x, n, best.min, best.scale, q);
  return best;
}

StoredTensor quantize_zero_one(const float* w, uint64_t rows, uint64_t cols, const U8Options& u8) {
  uint32_t group = u8.group;
  if (group > cols) group = static_cast<uint32_t>(cols);  // one partial group per row
  ZeroOneShape shape;
  if (!zero_one_shape(rows, cols, group, &shape, u8.params)) {
    throw ConvertError("zero-one quantization of a " + std::to_string(rows) + " x " +
                       std::to_string(cols) + " matrix: empty or too large");
  }
  StoredTensor s;
  s.dtype = DType::kU8ZeroOne;
  s.shape = {rows, cols};
  s.group_size = group;
  s.params_dtype = u8.params;
  s.act_group = resolve_act_group(u8.act_group, shape.group);
  const bool f16 = u8.params == DType::kF16;
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
      const ZeroOneParams p = f16 ? zero_one_quantize_group_f16(wr + k0, n, qr + k0)
                                  : zero_one_quantize_group(wr + k0, n, qr + k0);
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
  s.params.resize(shape.params_bytes());
  zero_one_pack(shape, q.data(), params.data(), s.data.data(), s.params.data());
  return s;
}

void block_float_rows(StoredTensor* s) {
  if (s->blocked || s->shape.size() != 2 || (s->dtype != DType::kF32 && s->dtype != DType::kF16)) {
    return;
  }
  const size_t rows = s->shape[0], cols = s->shape[1];
  uint64_t values = 0;
  if (!float_blocked_values(rows, cols, &values)) throw ConvertError("matrix too large");
  const size_t e = dtype_element_bytes(s->dtype);
  std::vector<uint8_t> out(values * e, 0);  // padding rows: +0
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c)
      std::memcpy(&out[float_blocked_index(cols, r, c) * e], &s->data[(r * cols + c) * e], e);
  s->data = std::move(out);
  s->blocked = true;
}

StoredTensor store_tensor(const FloatTensor& t, QuantMode mode, const U8Options& u8) {
  uint64_t count = 1;
  for (uint64_t d : t.shape) count *= d;  // equals data.size() (the readers checked the shape)
  if (count != t.data.size()) {
    throw ConvertError("tensor shape holds " + std::to_string(count) + " values but " +
                       std::to_string(t.data.size()) + " are present");
  }
  if (is_quantized_in(mode, t) && mode == QuantMode::U8) {
    return quantize_zero_one(t.data.data(), t.shape[0], t.shape[1], u8);
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
      if (std::isinf(back[i]) && std::isfinite(t.data[i])) {
        throw ConvertError("value " + std::to_string(t.data[i]) + " at index " + std::to_string(i) +
                           " does not fit f16 (|x| < 65520 rounds to at most 65504): keep it in "
                           "f32 (--keep-float NAME:f32, or --quant f32)");
      }
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
