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
    EXPECT_TRUE(zero_one_shape(rows, cols, t.group_size, &shape));
  }
  uint8_t q(uint64_t r, uint64_t c) const { return s.data[zero_one_byte_offset(shape, r, c)]; }
  ZeroOneParams p(uint64_t r, uint64_t g) const {
    return zero_one_params_at(shape, s.params.data(), r, g);
  }
};

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
  const StoredTensor s = quantize_zero_one(w.data(), rows, cols, group);
  const size_t glen = group == 0 || group > cols ? cols : group;
  const size_t gpr = (cols + glen - 1) / glen;
  const size_t blocks = (rows + 15) / 16;
  ASSERT_EQ(s.dtype, DType::kU8ZeroOne);
  ASSERT_EQ(s.group_size, group > cols ? cols : group);  // a group past the row is the whole row
  ASSERT_EQ(s.data.size(), blocks * 16 * (gpr - 1) * ((glen + 3) / 4 * 4) +
                               blocks * 16 * ((cols - (gpr - 1) * glen + 3) / 4 * 4));
  ASSERT_EQ(s.params.size(), blocks * gpr * 32);
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
  const StoredTensor s = quantize_zero_one(w.data(), rows, cols, 8);
  const std::vector<float> d = dequant(s, rows, cols, 8);
  for (uint64_t i = 0; i < 3 * cols + 8; ++i) EXPECT_EQ(d[i], w[i]) << i;  // exact, no NaN from 0/0
  EXPECT_EQ(StoredView(s, rows, cols).p(0, 0).scale, 0.0f);
  EXPECT_EQ(StoredView(s, rows, cols).p(1, 0).scale, 0.0f);
  check_zero_one(w, rows, cols, 8);
}

TEST(ZeroOneQuantize, PartialLastGroup) {
  // stories260K's down_proj: K = 172 = 64 + 64 + 44.
  check_zero_one(random_matrix(5 * 172, 1), 5, 172, 64);
  const StoredTensor s = quantize_zero_one(random_matrix(5 * 172, 1).data(), 5, 172, 64);
  EXPECT_EQ(s.params.size(), 1u * 3u * 32u);  // one row block, 3 groups, 16 scales + 16 mins
  // Odd shapes: K smaller than the group, K = group + 1, group 1.
  check_zero_one(random_matrix(3 * 7, 2), 3, 7, 64);
  check_zero_one(random_matrix(3 * 65, 3), 3, 65, 64);
  check_zero_one(random_matrix(2 * 9, 4), 2, 9, 1);
  check_zero_one(random_matrix(7 * 100, 5, -3, 0.5f), 7, 100, 32);
}

TEST(ZeroOneQuantize, GroupZeroIsOneGroupPerRow) {
  const auto w = random_matrix(6 * 50, 7);
  check_zero_one(w, 6, 50, 0);
  EXPECT_EQ(quantize_zero_one(w.data(), 6, 50, 0).params.size(), 32u);
}

// The stored layout as core/zero_one.h states it, checked at hand-computed positions: 16-row
// blocks, units of 4 bytes of each row side by side, zero padding, params per block and group.
TEST(ZeroOneQuantize, StoredLayout) {
  const uint64_t rows = 18, cols = 70;  // 2 blocks (the second holds 2 rows); groups 32, 32, 6
  std::vector<float> w(rows * cols);
  for (uint64_t r = 0; r < rows; ++r)
    for (uint64_t c = 0; c < cols; ++c) w[r * cols + c] = c == 0 ? 0.0f : (c == 1 ? 255.0f : 7.0f);
  const StoredTensor s = quantize_zero_one(w.data(), rows, cols, 32);
  // Per block: group 0 and 1 have 8 units of 64 bytes, group 2 has 2 (6 bytes, 2 of them padding).
  const size_t block = (8 + 8 + 2) * 64;
  ASSERT_EQ(s.data.size(), 2 * block);
  ASSERT_EQ(s.params.size(), 2u * 3u * 32u);
  // Row 17, column 1 (group 0, unit 0, byte 1): block 1, lane 1. Its group spans 0..255: q = 255.
  EXPECT_EQ(s.data[block + 0 * 64 + 1 * 4 + 1], 255);
  EXPECT_EQ(s.data[block + 0 * 64 + 1 * 4 + 0], 0);  // column 0: the group's min
  EXPECT_EQ(s.data[block + 0 * 64 + 1 * 4 + 2], 7);  // column 2: 7 of 255 steps
  // Row 3, column 69 (group 2 at unit 16, byte 5 of the group: unit 17, byte 1): q of a constant
  // group is 0. Column 70's byte (padding) is 0 too.
  EXPECT_EQ(s.data[(16 + 1) * 64 + 3 * 4 + 1], 0);
  // Params: block 0, group 0: 16 scales then 16 mins; block 1, group 2: row 16 (lane 0) has scale
  // 0 (constant 7s) and min 7; the padding lanes 2..15 are 0.
  EXPECT_FLOAT_EQ(s.params[0], 1.0f);
  EXPECT_EQ(s.params[16], 0.0f);
  EXPECT_EQ(s.params[(1 * 3 + 2) * 32 + 0], 0.0f);
  EXPECT_EQ(s.params[(1 * 3 + 2) * 32 + 16], 7.0f);
  for (size_t lane = 2; lane < 16; ++lane) {
    EXPECT_EQ(s.params[(1 * 3 + 2) * 32 + lane], 0.0f);
    EXPECT_EQ(s.params[(1 * 3 + 2) * 32 + 16 + lane], 0.0f);
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
  const StoredTensor s = quantize_zero_one(t.data.data(), 64, 172, 64);
  // 8-bit min-max on trained weights: well under 1% relative error.
  EXPECT_LT(s.rel_rms_error, 0.01);
  EXPECT_GT(s.rel_rms_error, 0.0);
}

TEST(ZeroOneQuantize, StoreTensorQuantizesOnly2D) {
  FloatTensor norm{{8}, {1, 2, 3, 4, 5, 6, 7, 8}, "F32"};
  FloatTensor mat{{2, 4}, {1, 2, 3, 4, -1, -2, -3, -4}, "F32"};
  for (QuantMode m : {QuantMode::F32, QuantMode::F16, QuantMode::U8}) {
    const StoredTensor sn = store_tensor(norm, m, 64);
    EXPECT_EQ(sn.dtype, DType::kF32);
    EXPECT_EQ(sn.data.size(), 32u);
    EXPECT_EQ(std::memcmp(sn.data.data(), norm.data.data(), 32), 0);
  }
  EXPECT_EQ(store_tensor(mat, QuantMode::F32, 64).dtype, DType::kF32);
  EXPECT_EQ(store_tensor(mat, QuantMode::F16, 64).dtype, DType::kF16);
  EXPECT_EQ(store_tensor(mat, QuantMode::U8, 64).dtype, DType::kU8ZeroOne);
  EXPECT_THROW(parse_quant_mode("q4"), ConvertError);
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
