// Zero-one quantization and f16 rounding, checked against bounds and formulas computed here, and
// against the f16/bf16 checkpoints in ../shared (rounded by numpy, not by this code).
#include "quantize.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "converter_test_util.h"
#include "core/half.h"
#include "safetensors.h"

namespace ember {
namespace convert {
namespace {

// A stored u8 tensor read back element by element through the layout's addressing.
struct StoredView {
  const StoredTensor& s;
  ZeroOneShape shape;
  StoredView(const StoredTensor& t, uint64_t rows, uint64_t cols) : s(t) {
    EXPECT_TRUE(zero_one_shape(rows, cols, t.group_size, &shape, t.params_dtype));
  }
  uint8_t q(uint64_t r, uint64_t c) const { return s.data[zero_one_byte_offset(shape, r, c)]; }
  ZeroOneParams p(uint64_t r, uint64_t g) const {
    return zero_one_params_at(shape, s.params.data(), r, g);
  }
};

// Stored f32 param i (of the row blocks' params).
float param_f32(const StoredTensor& s, size_t i) {
  float f;
  std::memcpy(&f, s.params.data() + 4 * i, 4);
  return f;
}

// The test's own dequantization: x ~= min + q * scale, straight from DESIGN.md.
std::vector<float> dequant(const StoredTensor& s, uint64_t rows, uint64_t cols, size_t glen) {
  const StoredView v(s, rows, cols);
  std::vector<float> out(rows * cols);
  for (uint64_t r = 0; r < rows; ++r)
    for (uint64_t c = 0; c < cols; ++c) {
      const ZeroOneParams p = v.p(r, c / glen);
      out[r * cols + c] = p.min + static_cast<float>(v.q(r, c)) * p.scale;
    }
  return out;
}

// Checks every group of `w` against its own min/max: params, q range, |x - deq| <= scale/2, and the
// reported relative RMS error against one computed here in long double.
void check_zero_one(const std::vector<float>& w, uint64_t rows, uint64_t cols, uint32_t group) {
  SCOPED_TRACE("rows=" + std::to_string(rows) + " cols=" + std::to_string(cols) +
               " group=" + std::to_string(group));
  const StoredTensor s = quantize_zero_one(w.data(), rows, cols, U8Options{group});
  const size_t glen = group == 0 || group > cols ? cols : group;
  const size_t gpr = (cols + glen - 1) / glen;
  const size_t blocks = (rows + 15) / 16;
  ASSERT_EQ(s.dtype, DType::kU8ZeroOne);
  ASSERT_EQ(s.group_size, group > cols ? cols : group);  // a group past the row is the whole row
  ASSERT_EQ(s.data.size(), blocks * 16 * (gpr - 1) * ((glen + 3) / 4 * 4) +
                               blocks * 16 * ((cols - (gpr - 1) * glen + 3) / 4 * 4));
  ASSERT_EQ(s.params.size(), blocks * gpr * 32 * 4);
  const StoredView v(s, rows, cols);
  for (uint64_t r = 0; r < rows; ++r) {
    for (size_t g = 0; g < gpr; ++g) {
      const size_t k0 = g * glen, k1 = std::min<size_t>(cols, k0 + glen);
      const auto mm = std::minmax_element(w.begin() + r * cols + k0, w.begin() + r * cols + k1);
      const ZeroOneParams p = v.p(r, g);
      EXPECT_EQ(p.min, *mm.first);
      EXPECT_FLOAT_EQ(p.scale, (*mm.second - *mm.first) / 255.0f);
      for (size_t k = k0; k < k1; ++k) {
        const float x = w[r * cols + k];
        const float deq = p.min + v.q(r, k) * p.scale;
        EXPECT_LE(std::fabs(x - deq), p.scale * 0.5f * 1.001f + 1e-7f * std::fabs(x))
            << "r=" << r << " k=" << k;
      }
      // The extremes are represented (q = 0 at the min, q = 255 at the max unless constant).
      const size_t imin = static_cast<size_t>(mm.first - w.begin()),
                   imax = static_cast<size_t>(mm.second - w.begin());
      EXPECT_EQ(v.q(imin / cols, imin % cols), 0);
      if (p.scale > 0) {
        EXPECT_EQ(v.q(imax / cols, imax % cols), 255);
      }
    }
  }
  const std::vector<float> d = dequant(s, rows, cols, glen);
  long double num = 0, den = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    num += (static_cast<long double>(w[i]) - d[i]) * (static_cast<long double>(w[i]) - d[i]);
    den += static_cast<long double>(w[i]) * w[i];
  }
  const double expect = den == 0 ? 0.0 : static_cast<double>(std::sqrt(num / den));
  EXPECT_NEAR(s.rel_rms_error, expect, 1e-9 + 1e-6 * expect);
  // Uniform rounding error is at most scale/2 per weight: rel error <= (max scale / 2) * sqrt(n) /
  // ||w||.
  float max_scale = 0;
  for (uint64_t r = 0; r < rows; ++r)
    for (size_t g = 0; g < gpr; ++g) max_scale = std::max(max_scale, v.p(r, g).scale);
  if (den > 0) {
    EXPECT_LE(s.rel_rms_error,
              max_scale / 2 * std::sqrt(double(w.size())) / std::sqrt(double(den)) * 1.001);
  }
}

std::vector<float> random_matrix(size_t n, uint32_t seed, float lo = -1, float hi = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

TEST(ZeroOneQuantize, ConstantGroupsDequantizeExactly) {
  // Row 0 constant positive, row 1 constant negative, row 2 zeros, row 3: constant first group
  // only.
  const uint64_t rows = 4, cols = 16;
  std::vector<float> w(rows * cols);
  for (uint64_t c = 0; c < cols; ++c) {
    w[0 * cols + c] = 0.3125f;
    w[1 * cols + c] = -7.75f;
    w[2 * cols + c] = 0.0f;
    w[3 * cols + c] = c < 8 ? 1.1f : static_cast<float>(c);
  }
  const StoredTensor s = quantize_zero_one(w.data(), rows, cols, U8Options{8});
  const std::vector<float> d = dequant(s, rows, cols, 8);
  for (uint64_t i = 0; i < 3 * cols + 8; ++i) EXPECT_EQ(d[i], w[i]) << i;  // exact, no NaN from 0/0
  EXPECT_EQ(StoredView(s, rows, cols).p(0, 0).scale, 0.0f);
  EXPECT_EQ(StoredView(s, rows, cols).p(1, 0).scale, 0.0f);
  check_zero_one(w, rows, cols, 8);
}

TEST(ZeroOneQuantize, PartialLastGroup) {
  // stories260K's down_proj: K = 172 = 64 + 64 + 44.
  check_zero_one(random_matrix(5 * 172, 1), 5, 172, 64);
  const StoredTensor s = quantize_zero_one(random_matrix(5 * 172, 1).data(), 5, 172, U8Options{64});
  EXPECT_EQ(s.params.size(), 1u * 3u * 32u * 4u);  // one row block, 3 groups, 16 scales + 16 mins
  // Odd shapes: K smaller than the group, K = group + 1, group 1.
  check_zero_one(random_matrix(3 * 7, 2), 3, 7, 64);
  check_zero_one(random_matrix(3 * 65, 3), 3, 65, 64);
  check_zero_one(random_matrix(2 * 9, 4), 2, 9, 1);
  check_zero_one(random_matrix(7 * 100, 5, -3, 0.5f), 7, 100, 32);
}

TEST(ZeroOneQuantize, GroupZeroIsOneGroupPerRow) {
  const auto w = random_matrix(6 * 50, 7);
  check_zero_one(w, 6, 50, 0);
  EXPECT_EQ(quantize_zero_one(w.data(), 6, 50, U8Options{0}).params.size(), 32u * 4u);
}

// The stored layout as core/zero_one.h states it, checked at hand-computed positions: 16-row
// blocks, units of 4 bytes of each row side by side, zero padding, params per block and group.
TEST(ZeroOneQuantize, StoredLayout) {
  const uint64_t rows = 18, cols = 70;  // 2 blocks (the second holds 2 rows); groups 32, 32, 6
  std::vector<float> w(rows * cols);
  for (uint64_t r = 0; r < rows; ++r)
    for (uint64_t c = 0; c < cols; ++c) w[r * cols + c] = c == 0 ? 0.0f : (c == 1 ? 255.0f : 7.0f);
  const StoredTensor s = quantize_zero_one(w.data(), rows, cols, U8Options{32});
  // Per block: group 0 and 1 have 8 units of 64 bytes, group 2 has 2 (6 bytes, 2 of them padding).
  const size_t block = (8 + 8 + 2) * 64;
  ASSERT_EQ(s.data.size(), 2 * block);
  ASSERT_EQ(s.params.size(), 2u * 3u * 32u * 4u);
  // Row 17, column 1 (group 0, unit 0, byte 1): block 1, lane 1. Its group spans 0..255: q = 255.
  EXPECT_EQ(s.data[block + 0 * 64 + 1 * 4 + 1], 255);
  EXPECT_EQ(s.data[block + 0 * 64 + 1 * 4 + 0], 0);  // column 0: the group's min
  EXPECT_EQ(s.data[block + 0 * 64 + 1 * 4 + 2], 7);  // column 2: 7 of 255 steps
  // Row 3, column 69 (group 2 at unit 16, byte 5 of the group: unit 17, byte 1): q of a constant
  // group is 0. Column 70's byte (padding) is 0 too.
  EXPECT_EQ(s.data[(16 + 1) * 64 + 3 * 4 + 1], 0);
  // Params: block 0, group 0: 16 scales then 16 mins; block 1, group 2: row 16 (lane 0) has scale
  // 0 (constant 7s) and min 7; the padding lanes 2..15 are 0.
  EXPECT_FLOAT_EQ(param_f32(s, 0), 1.0f);
  EXPECT_EQ(param_f32(s, 16), 0.0f);
  EXPECT_EQ(param_f32(s, (1 * 3 + 2) * 32 + 0), 0.0f);
  EXPECT_EQ(param_f32(s, (1 * 3 + 2) * 32 + 16), 7.0f);
  for (size_t lane = 2; lane < 16; ++lane) {
    EXPECT_EQ(param_f32(s, (1 * 3 + 2) * 32 + lane), 0.0f);
    EXPECT_EQ(param_f32(s, (1 * 3 + 2) * 32 + 16 + lane), 0.0f);
    for (size_t u = 0; u < 18; ++u)
      for (size_t b = 0; b < 4; ++b) EXPECT_EQ(s.data[block + u * 64 + lane * 4 + b], 0);
  }
}

TEST(ZeroOneQuantize, RoundTripErrorOnRealWeights) {
  EMBER_REQUIRE_SHARED(path, "models/stories260K/hf/model.safetensors");
  SafetensorsFile f(path);
  const FloatTensor t = f.read("model.layers.0.mlp.down_proj.weight");
  ASSERT_EQ(t.shape, (std::vector<uint64_t>{64, 172}));
  check_zero_one(t.data, 64, 172, 64);
  const StoredTensor s = quantize_zero_one(t.data.data(), 64, 172, U8Options{64});
  // 8-bit min-max on trained weights: well under 1% relative error.
  EXPECT_LT(s.rel_rms_error, 0.01);
  EXPECT_GT(s.rel_rms_error, 0.0);
}

// f16 params: the returned scale and min are f16 values; q is fitted against them, so the fit is at
// least as good as rounding the f32 params to f16 and keeping their q (and than rounding to nearest
// alone); every weight inside the f16 grid lies within half a step of its dequantized value.
TEST(ZeroOneQuantizeF16, FitsAgainstRoundedParams) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> spread(1e-4f, 2.0f), centre(-1.0f, 1.0f);
  for (int trial = 0; trial < 2000; ++trial) {
    const float c = centre(rng), w = spread(rng);
    std::uniform_real_distribution<float> dist(c - w, c + w);
    const size_t n = 1 + trial % 64;
    std::vector<float> x(n);
    for (auto& v : x) v = dist(rng);
    std::vector<uint8_t> q(n), q32(n);
    const ZeroOneParams p = zero_one_quantize_group_f16(x.data(), n, q.data());
    ASSERT_EQ(f16_to_f32(f32_to_f16(p.scale)), p.scale);
    ASSERT_EQ(f16_to_f32(f32_to_f16(p.min)), p.min);
    ASSERT_GE(p.scale, 0.0f);
    const ZeroOneParams p32 = zero_one_quantize_group(x.data(), n, q32.data());
    const ZeroOneParams naive{f16_to_f32(f32_to_f16(p32.scale)), f16_to_f32(f32_to_f16(p32.min))};
    double e16 = 0, enaive = 0;
    for (size_t i = 0; i < n; ++i) {
      const double d = double(p.min) + double(q[i]) * p.scale - x[i];
      const double dn = double(naive.min) + double(q32[i]) * naive.scale - x[i];
      e16 += d * d;
      enaive += dn * dn;
      if (p.scale > 0 && x[i] >= p.min && x[i] <= p.min + 255.0 * p.scale) {
        ASSERT_LE(std::fabs(d), 0.5 * p.scale * 1.0001 + 1e-7) << "trial " << trial << " i " << i;
      }
    }
    ASSERT_LE(e16, enaive * (1 + 1e-12) + 1e-30) << "trial " << trial;
  }
}

TEST(ZeroOneQuantizeF16, ConstantTinyAndHugeGroups) {
  uint8_t q[4];
  // A constant that f16 holds: scale 0, exact. One it does not: min + q * scale at least as close
  // as the nearest f16 (here much closer: 0.299805 + 252 * 7.7e-7).
  const float c[4] = {0.25f, 0.25f, 0.25f, 0.25f};
  ZeroOneParams p = zero_one_quantize_group_f16(c, 4, q);
  EXPECT_EQ(p.scale, 0.0f);
  EXPECT_EQ(p.min, 0.25f);
  for (uint8_t v : q) EXPECT_EQ(v, 0);
  const float c3[4] = {0.3f, 0.3f, 0.3f, 0.3f};
  p = zero_one_quantize_group_f16(c3, 4, q);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(q[i], q[0]);
    EXPECT_LE(std::fabs(p.min + q[i] * p.scale - 0.3f),
              std::fabs(f16_to_f32(f32_to_f16(0.3f)) - 0.3f));
  }
  EXPECT_LT(std::fabs(p.min + q[0] * p.scale - 0.3f), 1e-6f);
  const float z[2] = {0.0f, 0.0f};
  p = zero_one_quantize_group_f16(z, 2, q);
  EXPECT_EQ(p.scale, 0.0f);
  EXPECT_EQ(p.min, 0.0f);
  // A range far below f16's smallest scale step: still finite, error within the range.
  const float tiny[3] = {1.0f, 1.0f + 1e-7f, 1.0f + 2e-7f};
  p = zero_one_quantize_group_f16(tiny, 3, q);
  EXPECT_TRUE(std::isfinite(p.scale) && std::isfinite(p.min));
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(p.min + q[i] * p.scale, tiny[i], 1e-3);
  const float big[2] = {-70000.0f, 1.0f};
  EXPECT_THROW(zero_one_quantize_group_f16(big, 2, q), ConvertError);
}

// f16 params and activation groups in a stored tensor: sizes, types, the act group each tensor
// gets (auto: 16 where it divides a larger group), and the error for one that does not fit.
TEST(ZeroOneQuantizeF16, StoredTensorParamsAndActGroup) {
  const auto w = random_matrix(20 * 172, 9);
  U8Options o{64, DType::kF16, kAutoActGroup};
  const StoredTensor s = quantize_zero_one(w.data(), 20, 172, o);
  EXPECT_EQ(s.params_dtype, DType::kF16);
  EXPECT_EQ(s.act_group, 16u);
  EXPECT_EQ(s.params.size(), 2u * 3u * 32u * 2u);  // 2 row blocks, 3 groups, 32 f16 values
  EXPECT_LT(s.rel_rms_error, 0.01);
  EXPECT_EQ(
      quantize_zero_one(w.data(), 20, 172, U8Options{16, DType::kF16, kAutoActGroup}).act_group,
      0u);  // group 16: the act group is the group
  EXPECT_EQ(quantize_zero_one(w.data(), 20, 172, U8Options{64, DType::kF32, 64}).act_group, 0u);
  EXPECT_EQ(quantize_zero_one(w.data(), 20, 172, U8Options{64, DType::kF32, 32}).act_group, 32u);
  const std::string e = ember_test::error_message<ConvertError>([&] {
    quantize_zero_one(w.data(), 20, 172, U8Options{64, DType::kF32, 24});
  });
  EXPECT_NE(e.find("--act-group 24"), std::string::npos) << e;
  EXPECT_THROW(quantize_zero_one(w.data(), 20, 172, U8Options{0, DType::kF32, 8}), ConvertError);
  EXPECT_EQ(quantize_zero_one(w.data(), 20, 172, U8Options{0, DType::kF32, 4}).act_group, 4u);
}

TEST(ZeroOneQuantize, StoreTensorQuantizesOnly2D) {
  FloatTensor norm{{8}, {1, 2, 3, 4, 5, 6, 7, 8}, "F32"};
  FloatTensor mat{{2, 4}, {1, 2, 3, 4, -1, -2, -3, -4}, "F32"};
  for (QuantMode m : {QuantMode::F32, QuantMode::F16, QuantMode::U8}) {
    const StoredTensor sn = store_tensor(norm, m, U8Options{64});
    EXPECT_EQ(sn.dtype, DType::kF32);
    EXPECT_EQ(sn.data.size(), 32u);
    EXPECT_EQ(std::memcmp(sn.data.data(), norm.data.data(), 32), 0);
  }
  EXPECT_EQ(store_tensor(mat, QuantMode::F32, U8Options{64}).dtype, DType::kF32);
  EXPECT_EQ(store_tensor(mat, QuantMode::F16, U8Options{64}).dtype, DType::kF16);
  EXPECT_EQ(store_tensor(mat, QuantMode::U8, U8Options{64}).dtype, DType::kU8ZeroOne);
  EXPECT_THROW(parse_quant_mode("q4"), ConvertError);
}

// f16 storage of a value past f16's range is an error naming the value, not an infinity in the
// file; 65519 still rounds to 65504 and is stored.
TEST(ZeroOneQuantize, StoreTensorF16RefusesOverflow) {
  FloatTensor edge{{1, 2}, {65519.0f, -65519.0f}, "F32"};
  const StoredTensor s = store_tensor(edge, QuantMode::F16, U8Options{64});
  uint16_t h[2];
  std::memcpy(h, s.data.data(), 4);
  EXPECT_EQ(f16_to_f32(h[0]), 65504.0f);
  EXPECT_EQ(f16_to_f32(h[1]), -65504.0f);
  FloatTensor big{{2, 2}, {1.0f, 2.0f, -70000.0f, 3.0f}, "F32"};
  const std::string e = ember_test::error_message<ConvertError>(
      [&] { store_tensor(big, QuantMode::F16, U8Options{64}); });
  EXPECT_NE(e.find("-70000"), std::string::npos) << e;
  EXPECT_NE(e.find("index 2"), std::string::npos) << e;
  EXPECT_NE(e.find("f32"), std::string::npos) << e;
  EXPECT_EQ(store_tensor(big, QuantMode::F32, U8Options{64}).dtype, DType::kF32);
}

TEST(F16, EdgeValuesFromTheIeeeDefinition) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3C00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xC000);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7BFF);    // largest half
  EXPECT_EQ(f32_to_f16(65519.996f), 0x7BFF);  // below the halfway point
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00);    // tie -> even -> inf
  EXPECT_EQ(f32_to_f16(1e30f), 0x7C00);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14)), 0x0400);         // smallest normal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);         // smallest subnormal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);         // tie -> even (0)
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);         // 1.5 ulp -> 2
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // tie between 1 and 1+2^-10 -> even
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(3.0f, -11)), 0x3C02);  // tie -> even (up)
  const uint16_t nan = f32_to_f16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x3FF, 0);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x03FF), std::ldexp(1023.0f, -24));
  EXPECT_EQ(f16_to_f32(0xFBFF), -65504.0f);
  EXPECT_TRUE(std::isinf(f16_to_f32(0x7C00)));
  EXPECT_EQ(bf16_to_f32(0x3F80), 1.0f);
  EXPECT_EQ(bf16_to_f32(0xC040), -3.0f);
}

TEST(F16, MatchesNumpyRoundingOfStories260K) {
  // hf-f16 holds numpy's round-to-nearest-even of every hf float32: our rounding must agree on all.
  EMBER_REQUIRE_SHARED(f32_path, "models/stories260K/hf/model.safetensors");
  EMBER_REQUIRE_SHARED(f16_path, "models/stories260K/hf-f16/model.safetensors");
  SafetensorsFile a(f32_path), b(f16_path);
  size_t n = 0;
  for (const auto& e : a.entries()) {
    const FloatTensor x = a.read(e.name), y = b.read(e.name);
    ASSERT_EQ(y.source_dtype, "F16");
    ASSERT_EQ(x.data.size(), y.data.size()) << e.name;
    for (size_t i = 0; i < x.data.size(); ++i, ++n) {
      ASSERT_EQ(f16_to_f32(f32_to_f16(x.data[i])), y.data[i])
          << e.name << "[" << i << "] = " << x.data[i];
    }
  }
  EXPECT_EQ(n, 260032u);
}

TEST(BF16, WideningMatchesRoundedStories260K) {
  // The test's own bf16 rounding (RNE on the top 16 bits) of hf must equal what the reader widens
  // from hf-bf16.
  EMBER_REQUIRE_SHARED(f32_path, "models/stories260K/hf/model.safetensors");
  EMBER_REQUIRE_SHARED(bf16_path, "models/stories260K/hf-bf16/model.safetensors");
  SafetensorsFile a(f32_path), b(bf16_path);
  for (const auto& e : a.entries()) {
    const FloatTensor x = a.read(e.name), y = b.read(e.name);
    ASSERT_EQ(y.source_dtype, "BF16");
    for (size_t i = 0; i < x.data.size(); ++i) {
      uint32_t u;
      std::memcpy(&u, &x.data[i], 4);
      u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
      float r;
      std::memcpy(&r, &u, 4);
      ASSERT_EQ(r, y.data[i]) << e.name << "[" << i << "]";
    }
  }
}

}  // namespace
}  // namespace convert
}  // namespace ember
