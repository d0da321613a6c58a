// LinearExecutor: every weight type through the active kernels, bit-identical for 1, 2 and 3
// threads and for every kernel variant; scratch checks; parallel_for covers every index once.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/zero_one.h"
#include "kernels/kernels.h"
#include "linear.h"

namespace {

using ember::LinearExecutor;
using ember::WeightRef;
using ember::WeightType;

struct Weights {
  std::vector<float> f32;
  std::vector<uint16_t> h16;
  std::vector<uint8_t> q;
  std::vector<ember::ZeroOneParams> p;
  WeightRef ref;
};

Weights make_weights(WeightType type, uint32_t rows, uint32_t cols, uint32_t group, uint32_t seed) {
  Weights w;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(size_t{rows} * cols);
  for (auto& x : v) x = u(rng);
  w.ref.type = type;
  w.ref.rows = rows;
  w.ref.cols = cols;
  w.ref.group = group;
  switch (type) {
    case WeightType::kF32:
      w.f32 = v;
      w.ref.data = w.f32.data();
      break;
    case WeightType::kF16:
    case WeightType::kBF16:
      w.h16.resize(v.size());
      for (size_t i = 0; i < v.size(); ++i) {
        uint32_t b;
        std::memcpy(&b, &v[i], 4);
        // bf16: truncate; f16 test data: a normal half with the same sign and top mantissa bits.
        w.h16[i] = type == WeightType::kBF16
                       ? static_cast<uint16_t>(b >> 16)
                       : static_cast<uint16_t>(((b >> 16) & 0x8000u) | (14u << 10) | ((b >> 13) & 0x3ffu));
      }
      w.ref.data = w.h16.data();
      break;
    case WeightType::kU8ZeroOne: {
      const size_t g = ember::zero_one_group_len(cols, group);
      const size_t groups = ember::zero_one_groups_per_row(cols, group);
      w.q.resize(v.size());
      w.p.resize(size_t{rows} * groups);
      for (size_t r = 0; r < rows; ++r)
        for (size_t gi = 0; gi < groups; ++gi) {
          const size_t k0 = gi * g, len = std::min(g, size_t{cols} - k0);
          w.p[r * groups + gi] = ember::zero_one_quantize_group(&v[r * cols + k0], len, &w.q[r * cols + k0]);
        }
      w.ref.data = w.q.data();
      w.ref.params = w.p.data();
      break;
    }
  }
  return w;
}

std::vector<float> run_linear(const WeightRef& w, const std::vector<float>& x, size_t m, uint32_t threads) {
  const size_t groups = ember::zero_one_groups_per_row(w.cols, w.group == 0 ? 0 : w.group);
  const size_t bytes = LinearExecutor::scratch_bytes(m, w.cols, groups);
  std::vector<uint8_t> scratch(bytes);
  LinearExecutor lin;
  EXPECT_EQ(lin.init(threads, scratch.data(), scratch.size(), m, w.cols, groups), ember::Status::kOk);
  std::vector<float> y(m * w.rows, -1.0f);
  lin.linear(w, x.data(), m, y.data());
  return y;
}

TEST(LinearExecutor, SameBitsForAnyThreadCountAndVariant) {
  struct Case { WeightType type; uint32_t rows, cols, group; size_t m; };
  const Case cases[] = {
      {WeightType::kU8ZeroOne, 67, 255, 64, 1},   {WeightType::kU8ZeroOne, 255, 128, 32, 7},
      {WeightType::kU8ZeroOne, 129, 200, 0, 17},  {WeightType::kU8ZeroOne, 1000, 96, 128, 33},
      {WeightType::kF32, 67, 33, 0, 3},           {WeightType::kF16, 130, 67, 0, 5},
      {WeightType::kBF16, 33, 255, 0, 1},
  };
  const std::string active = ember::kernels::active().name;
  uint32_t seed = 1;
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "type " << static_cast<int>(c.type) << " " << c.rows << "x" << c.cols
                                    << " group " << c.group << " m " << c.m);
    Weights w = make_weights(c.type, c.rows, c.cols, c.group, seed++);
    std::vector<float> x(c.m * c.cols);
    std::mt19937 rng(seed++);
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    for (auto& v : x) v = u(rng);
    ASSERT_TRUE(ember::kernels::force_variant("scalar"));
    const std::vector<float> ref = run_linear(w.ref, x, c.m, 1);
    for (size_t vi = 0; vi < ember::kernels::variant_count(); ++vi) {
      ASSERT_TRUE(ember::kernels::force_variant(ember::kernels::variant(vi).name));
      for (uint32_t threads : {1u, 2u, 3u}) {
        const std::vector<float> y = run_linear(w.ref, x, c.m, threads);
        ASSERT_EQ(0, std::memcmp(y.data(), ref.data(), y.size() * sizeof(float)))
            << ember::kernels::variant(vi).name << " with " << threads << " threads differs from scalar/1";
      }
    }
  }
  ASSERT_TRUE(ember::kernels::force_variant(active.c_str()));
}

TEST(LinearExecutor, RejectsSmallScratch) {
  std::vector<uint8_t> scratch(16);
  LinearExecutor lin;
  EXPECT_EQ(lin.init(1, scratch.data(), scratch.size(), 4, 256, 8), ember::Status::kBufferTooSmall);
  EXPECT_EQ(lin.init(1, nullptr, 0, 4, 256, 8), ember::Status::kBufferTooSmall);
}

TEST(LinearExecutor, ParallelForVisitsEachIndexOnce) {
  std::vector<uint8_t> scratch(LinearExecutor::scratch_bytes(1, 1, 1));
  for (uint32_t threads : {1u, 2u}) {
    LinearExecutor lin;
    ASSERT_EQ(lin.init(threads, scratch.data(), scratch.size(), 1, 1, 1), ember::Status::kOk);
    std::vector<std::atomic<int>> hits(1000);
    lin.parallel_for(hits.size(), [](void* arg, size_t i) {
      (*static_cast<std::vector<std::atomic<int>>*>(arg))[i]++;
    }, &hits);
    for (auto& h : hits) ASSERT_EQ(h.load(), 1);
  }
}

}  // namespace
