// LinearExecutor: every weight type through the active kernels, bit-identical for 1, 2 and 3
// threads and for every kernel variant; linear_multi and prepare + rows equal to linear(); scratch
// checks; the thread pool's parallel_for / parallel_ranges cover every index once.
#include "linear.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/zero_one.h"
#include "kernels/kernels.h"

namespace {

using ember::DType;
using ember::LinearExecutor;
using ember::WeightRef;

struct Weights {
  std::vector<float> f32;
  std::vector<uint16_t> h16;
  std::vector<uint8_t> q;  // row blocks
  std::vector<uint8_t> p;  // their params (f32 or f16)
  WeightRef ref;
};

// u8 weights have `params` (kF32 / kF16) and activation group `act` (0 = the weight group).
Weights make_weights(DType type, uint32_t rows, uint32_t cols, uint32_t group, uint32_t seed,
                     DType params = DType::kF32, uint32_t act = 0) {
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
    case DType::kF32:
      w.f32 = v;
      w.ref.data = w.f32.data();
      break;
    case DType::kF16:
    case DType::kBF16:
      w.h16.resize(v.size());
      for (size_t i = 0; i < v.size(); ++i) {
        uint32_t b;
        std::memcpy(&b, &v[i], 4);
        // bf16: truncate; f16 test data: a normal half with the same sign and top mantissa bits.
        w.h16[i] =
            type == DType::kBF16
                ? static_cast<uint16_t>(b >> 16)
                : static_cast<uint16_t>(((b >> 16) & 0x8000u) | (14u << 10) | ((b >> 13) & 0x3ffu));
      }
      w.ref.data = w.h16.data();
      break;
    case DType::kU8ZeroOne: {
      const size_t g = ember::zero_one_group_len(cols, group);
      const size_t groups = ember::zero_one_groups_per_row(cols, group);
      std::vector<uint8_t> q(v.size());
      std::vector<ember::ZeroOneParams> p(size_t{rows} * groups);
      for (size_t r = 0; r < rows; ++r)
        for (size_t gi = 0; gi < groups; ++gi) {
          const size_t k0 = gi * g, len = std::min(g, size_t{cols} - k0);
          p[r * groups + gi] =
              ember::zero_one_quantize_group(&v[r * cols + k0], len, &q[r * cols + k0]);
        }
      ember::ZeroOneShape shape;
      EXPECT_TRUE(ember::zero_one_shape(rows, cols, std::min(group, cols), &shape, params));
      w.q.resize(shape.data_bytes());
      w.p.resize(shape.params_bytes());
      ember::zero_one_pack(shape, q.data(), p.data(), w.q.data(), w.p.data());
      w.ref.data = w.q.data();
      w.ref.params = w.p.data();
      w.ref.params_type = params;
      w.ref.act_group = act;
      break;
    }
  }
  return w;
}

std::vector<float> run_linear(const WeightRef& w, const std::vector<float>& x, size_t m,
                              uint32_t threads) {
  const size_t groups = ember::zero_one_groups_per_row(w.cols, w.group == 0 ? 0 : w.group);
  const size_t bytes = LinearExecutor::scratch_bytes(m, w.cols, groups, w.cols);
  std::vector<uint8_t> scratch(bytes);
  ember::ThreadPool pool;
  EXPECT_EQ(pool.init(threads), ember::Status::kOk);
  LinearExecutor lin;
  EXPECT_EQ(lin.init(&pool, scratch.data(), scratch.size(), m, w.cols, groups, w.cols),
            ember::Status::kOk);
  std::vector<float> y(m * w.rows, -1.0f);
  lin.linear(w, x.data(), m, y.data());
  return y;
}

TEST(LinearExecutor, SameBitsForAnyThreadCountAndVariant) {
  struct Case {
    DType type;
    uint32_t rows, cols, group;
    size_t m;
    DType params = DType::kF32;
    uint32_t act = 0;
  };
  const Case cases[] = {
      {DType::kU8ZeroOne, 67, 255, 64, 1},
      {DType::kU8ZeroOne, 255, 128, 32, 7},
      {DType::kU8ZeroOne, 129, 200, 0, 17},
      {DType::kU8ZeroOne, 1000, 96, 128, 33},
      {DType::kU8ZeroOne, 67, 255, 64, 1, DType::kF16, 16},
      {DType::kU8ZeroOne, 255, 128, 32, 7, DType::kF32, 8},
      {DType::kU8ZeroOne, 129, 200, 0, 17, DType::kF16, 20},
      {DType::kU8ZeroOne, 1000, 96, 128, 33, DType::kF16},
      {DType::kF32, 67, 33, 0, 3},
      {DType::kF16, 130, 67, 0, 5},
      {DType::kBF16, 33, 255, 0, 1},
  };
  const std::string active = ember::kernels::active().name;
  uint32_t seed = 1;
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "type " << static_cast<int>(c.type) << " " << c.rows << "x"
                                    << c.cols << " group " << c.group << " m " << c.m);
    Weights w = make_weights(c.type, c.rows, c.cols, c.group, seed++, c.params, c.act);
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
            << ember::kernels::variant(vi).name << " with " << threads
            << " threads differs from scalar/1";
      }
    }
  }
  ASSERT_TRUE(ember::kernels::force_variant(active.c_str()));
}

// (Shapes under LinearExecutor::kMinParallelWork multiply-adds run on the calling thread; the
// 1000-row u8 case, the 67 + 200 rows x 255 x 9 multi case and the first 8 weights of the 10-weight
// case are large enough for the pool.)
// linear_multi: each output bit-identical to linear() of that weight alone (scalar, 1 thread), for
// shared quantization (u8, one cols / group), the per-weight fallback (u8 of different groups, u8
// mixed with float), all-float weights, more weights than one dispatch holds, any thread count and
// variant.
TEST(LinearExecutor, MultiMatchesSeparateLinears) {
  struct Spec {
    DType type;
    uint32_t rows, group;
    uint32_t act = 0;  // u8: activation group
  };
  struct Case {
    std::vector<Spec> specs;
    uint32_t cols;
    size_t m;
  };
  const std::vector<Case> cases = {
      {{{DType::kU8ZeroOne, 96, 32}, {DType::kU8ZeroOne, 40, 32}, {DType::kU8ZeroOne, 40, 32}},
       160,
       1},
      {{{DType::kU8ZeroOne, 67, 64}, {DType::kU8ZeroOne, 200, 64}}, 255, 9},
      {{{DType::kU8ZeroOne, 33, 0}, {DType::kU8ZeroOne, 17, 0}}, 100, 5},
      {{{DType::kU8ZeroOne, 48, 32}, {DType::kU8ZeroOne, 48, 16}}, 96, 3},
      {{{DType::kU8ZeroOne, 67, 64, 16}, {DType::kU8ZeroOne, 200, 64, 16}}, 255, 9},
      {{{DType::kU8ZeroOne, 48, 64, 16}, {DType::kU8ZeroOne, 48, 64, 32}}, 128, 3},
      {{{DType::kU8ZeroOne, 48, 64, 16}, {DType::kU8ZeroOne, 48, 64}}, 128, 2},
      {{{DType::kU8ZeroOne, 48, 32}, {DType::kF32, 31, 0}}, 96, 2},
      {{{DType::kF32, 35, 0}, {DType::kF16, 50, 0}, {DType::kBF16, 18, 0}}, 67, 4},
      {{{DType::kU8ZeroOne, 16, 32},
        {DType::kU8ZeroOne, 5, 32},
        {DType::kU8ZeroOne, 33, 32},
        {DType::kU8ZeroOne, 16, 32},
        {DType::kU8ZeroOne, 1, 32},
        {DType::kU8ZeroOne, 64, 32},
        {DType::kU8ZeroOne, 7, 32},
        {DType::kU8ZeroOne, 16, 32},
        {DType::kU8ZeroOne, 90, 32},
        {DType::kU8ZeroOne, 3, 32}},
       256,
       8},
  };
  const std::string active = ember::kernels::active().name;
  uint32_t seed = 100;
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message()
                 << c.specs.size() << " weights, cols " << c.cols << " m " << c.m);
    std::vector<Weights> ws;
    size_t max_groups = 1;
    for (const Spec& sp : c.specs) {
      const DType pt = seed % 2 ? DType::kF16 : DType::kF32;
      ws.push_back(make_weights(sp.type, sp.rows, c.cols, sp.group, seed++, pt, sp.act));
      const size_t g = ember::zero_one_groups_per_row(c.cols, sp.group);
      if (g > max_groups) max_groups = g;
    }
    std::vector<const WeightRef*> refs;
    for (const Weights& w : ws) refs.push_back(&w.ref);
    std::vector<float> x(c.m * c.cols);
    std::mt19937 rng(seed++);
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    for (auto& v : x) v = u(rng);
    ASSERT_TRUE(ember::kernels::force_variant("scalar"));
    std::vector<std::vector<float>> ref;
    for (const Weights& w : ws) ref.push_back(run_linear(w.ref, x, c.m, 1));
    for (size_t vi = 0; vi < ember::kernels::variant_count(); ++vi) {
      ASSERT_TRUE(ember::kernels::force_variant(ember::kernels::variant(vi).name));
      for (uint32_t threads : {1u, 2u, 3u}) {
        std::vector<uint8_t> scratch(
            LinearExecutor::scratch_bytes(c.m, c.cols, max_groups, c.cols));
        ember::ThreadPool pool;
        ASSERT_EQ(pool.init(threads), ember::Status::kOk);
        LinearExecutor lin;
        ASSERT_EQ(lin.init(&pool, scratch.data(), scratch.size(), c.m, c.cols, max_groups, c.cols),
                  ember::Status::kOk);
        std::vector<std::vector<float>> ys;
        std::vector<float*> outs;
        for (const Weights& w : ws) ys.emplace_back(c.m * w.ref.rows, -1.0f);
        for (auto& y : ys) outs.push_back(y.data());
        lin.linear_multi(refs.data(), outs.data(), refs.size(), x.data(), c.m);
        for (size_t j = 0; j < ws.size(); ++j) {
          ASSERT_EQ(0, std::memcmp(ys[j].data(), ref[j].data(), ref[j].size() * sizeof(float)))
              << "weight " << j << ": " << ember::kernels::variant(vi).name << " with " << threads
              << " threads differs from linear() scalar/1";
        }
      }
    }
  }
  ASSERT_TRUE(ember::kernels::force_variant(active.c_str()));
}

// prepare() + rows() over uneven row ranges (as forward.cc's pool tasks call them) give the same
// bits as linear(); prepare() refuses weights that do not share one quantized input.
TEST(LinearExecutor, PreparedRowsMatchLinear) {
  const uint32_t cols = 200, group = 32;
  const size_t m = 5, groups = ember::zero_one_groups_per_row(cols, group);
  Weights a = make_weights(DType::kU8ZeroOne, 96, cols, group, 7);
  Weights b = make_weights(DType::kU8ZeroOne, 33, cols, group, 8);
  Weights other_group = make_weights(DType::kU8ZeroOne, 16, cols, 64, 9);
  Weights other_act = make_weights(DType::kU8ZeroOne, 16, cols, group, 9, DType::kF32, 16);
  Weights f = make_weights(DType::kF32, 16, cols, 0, 10);
  std::vector<float> x(m * cols);
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  for (auto& v : x) v = u(rng);
  const std::string active = ember::kernels::active().name;
  ASSERT_TRUE(ember::kernels::force_variant("scalar"));
  const std::vector<float> ref_a = run_linear(a.ref, x, m, 1), ref_b = run_linear(b.ref, x, m, 1);
  for (size_t vi = 0; vi < ember::kernels::variant_count(); ++vi) {
    ASSERT_TRUE(ember::kernels::force_variant(ember::kernels::variant(vi).name));
    std::vector<uint8_t> scratch(LinearExecutor::scratch_bytes(m, cols, groups, cols));
    ember::ThreadPool pool;
    ASSERT_EQ(pool.init(2), ember::Status::kOk);
    LinearExecutor lin;
    ASSERT_EQ(lin.init(&pool, scratch.data(), scratch.size(), m, cols, groups, cols),
              ember::Status::kOk);
    const WeightRef* mixed[2] = {&a.ref, &other_group.ref};
    const WeightRef* mixed_act[2] = {&a.ref, &other_act.ref};
    const WeightRef* floats[1] = {&f.ref};
    EXPECT_FALSE(lin.prepare(mixed, 2, x.data(), m));
    EXPECT_FALSE(lin.prepare(mixed_act, 2, x.data(), m));
    EXPECT_FALSE(lin.prepare(floats, 1, x.data(), m));
    const WeightRef* ab[2] = {&a.ref, &b.ref};
    ASSERT_TRUE(lin.prepare(ab, 2, x.data(), m));
    std::vector<float> ya(m * 96, -1.0f), yb(m * 33, -1.0f);
    for (size_t r0 : {size_t{0}, size_t{7}, size_t{40}, size_t{64}}) {
      const size_t r1 = r0 == 64 ? 96 : (r0 == 0 ? 7 : (r0 == 7 ? 40 : 64));
      lin.rows(a.ref, ya.data(), r0, r1);
    }
    lin.rows(b.ref, yb.data(), 20, 33);
    lin.rows(b.ref, yb.data(), 0, 20);
    EXPECT_EQ(0, std::memcmp(ya.data(), ref_a.data(), ya.size() * sizeof(float)))
        << ember::kernels::variant(vi).name;
    EXPECT_EQ(0, std::memcmp(yb.data(), ref_b.data(), yb.size() * sizeof(float)))
        << ember::kernels::variant(vi).name;
  }
  ASSERT_TRUE(ember::kernels::force_variant(active.c_str()));
}

TEST(LinearExecutor, RejectsSmallScratch) {
  std::vector<uint8_t> scratch(16);
  ember::ThreadPool pool;
  ASSERT_EQ(pool.init(1), ember::Status::kOk);
  LinearExecutor lin;
  EXPECT_EQ(lin.init(&pool, scratch.data(), scratch.size(), 4, 256, 8, 16),
            ember::Status::kBufferTooSmall);
  EXPECT_EQ(lin.init(&pool, nullptr, 0, 4, 256, 8, 16), ember::Status::kBufferTooSmall);
}

TEST(ThreadPool, ParallelForVisitsEachIndexOnce) {
  for (uint32_t threads : {1u, 2u}) {
    ember::ThreadPool pool;
    ASSERT_EQ(pool.init(threads), ember::Status::kOk);
    std::vector<std::atomic<int>> hits(1000);
    pool.parallel_for(
        hits.size(),
        [](void* arg, size_t i) { (*static_cast<std::vector<std::atomic<int>>*>(arg))[i]++; },
        &hits);
    for (auto& h : hits) ASSERT_EQ(h.load(), 1);
  }
}

TEST(ThreadPool, ParallelRangesCoverEachIndexOnce) {
  for (uint32_t threads : {1u, 2u, 3u}) {
    ember::ThreadPool pool;
    ASSERT_EQ(pool.init(threads), ember::Status::kOk);
    for (size_t n : {size_t{1}, size_t{5}, size_t{513}}) {
      for (size_t tile : {size_t{0}, size_t{1}, size_t{7}}) {
        struct Arg {
          std::vector<std::atomic<int>> hits;
          size_t tile;
          std::atomic<int> bad{0};
        } arg{std::vector<std::atomic<int>>(n), tile};
        pool.parallel_ranges(
            n, tile,
            [](void* p, size_t start, size_t count) {
              Arg& a = *static_cast<Arg*>(p);
              if (count == 0 || (a.tile != 0 && count > a.tile)) a.bad++;
              for (size_t i = start; i < start + count; ++i) a.hits[i]++;
            },
            &arg);
        EXPECT_EQ(arg.bad.load(), 0) << "n " << n << " tile " << tile;
        for (auto& h : arg.hits) ASSERT_EQ(h.load(), 1) << "n " << n << " tile " << tile;
      }
    }
  }
}

}  // namespace
