// Every kernel variant the CPU can run, against the naive reference (tests/reference) over odd
// shapes, and bit for bit against the scalar variant (the "same tokens everywhere" guarantee).
// Variants this CPU (or this architecture's build) lacks are skipped with a message.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/kernels.h"
#include "reference/reference_kernels.h"

namespace {

using ember::ZeroOneParams;
using ember::kernels::KernelTable;

const KernelTable* find_variant(const std::string& name) {
  for (size_t i = 0; i < ember::kernels::variant_count(); ++i) {
    if (name == ember::kernels::variant(i).name) return &ember::kernels::variant(i);
  }
  return nullptr;
}

const KernelTable& scalar_table() { return *find_variant("scalar"); }

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

const size_t kDims[] = {1, 3, 7, 17, 33, 67, 255, 4096};

// (m, n, k) from kDims mixed, bounded in work so the naive reference stays quick.
std::vector<std::tuple<size_t, size_t, size_t>> odd_shapes(size_t max_work) {
  std::vector<std::tuple<size_t, size_t, size_t>> out;
  for (size_t m : kDims)
    for (size_t n : kDims)
      for (size_t k : kDims)
        if (m * n * k <= max_work) out.emplace_back(m, n, k);
  return out;
}

// Group sizes: 32, 64, 128 and whole row (0).
const uint32_t kGroups[] = {32, 64, 128, 0};

// ---------------------------------------------------------------------------------------------
class U8S8MatmulTester {
 public:
  U8S8MatmulTester& m(size_t v) { m_ = v; return *this; }
  U8S8MatmulTester& n(size_t v) { n_ = v; return *this; }
  U8S8MatmulTester& k(size_t v) { k_ = v; return *this; }
  U8S8MatmulTester& group(uint32_t v) { group_ = v; return *this; }
  U8S8MatmulTester& seed(uint32_t v) { seed_ = v; return *this; }

  void Test(const KernelTable& t) const {
    SCOPED_TRACE(testing::Message() << t.name << " m=" << m_ << " n=" << n_ << " k=" << k_
                                    << " group=" << group_);
    const size_t G = ember::zero_one_group_len(k_, group_);
    const size_t groups = ember::zero_one_groups_per_row(k_, group_);
    std::mt19937 rng(seed_);
    std::uniform_real_distribution<float> uw(-0.5f, 0.5f), ux(-3.0f, 3.0f);
    std::vector<float> w(n_ * k_), x(m_ * k_);
    for (auto& v : w) v = uw(rng);
    for (auto& v : x) v = ux(rng);
    // A few special groups: constant weights (scale 0), an all-zero activation group.
    if (n_ > 1) for (size_t t = 0; t < std::min(G, k_); ++t) w[1 * k_ + t] = 0.25f;
    if (m_ > 1) for (size_t t = 0; t < std::min(G, k_); ++t) x[1 * k_ + t] = 0.0f;
    std::vector<uint8_t> q(n_ * k_);
    std::vector<ZeroOneParams> p(n_ * groups);
    for (size_t j = 0; j < n_; ++j)
      for (size_t g = 0; g < groups; ++g) {
        const size_t k0 = g * G, len = std::min(G, k_ - k0);
        p[j * groups + g] = ember::zero_one_quantize_group(&w[j * k_ + k0], len, &q[j * k_ + k0]);
      }

    // Activation quantization: exact against the reference.
    std::vector<int8_t> a(m_ * k_), ar(m_ * k_);
    std::vector<float> d(m_ * groups), dr(m_ * groups);
    std::vector<int32_t> s(m_ * groups), sr(m_ * groups);
    t.quantize_acts_s8(x.data(), m_, k_, G, a.data(), d.data(), s.data());
    ember_ref::quantize_acts_s8(x.data(), m_, k_, G, ar.data(), dr.data(), sr.data());
    ASSERT_EQ(0, std::memcmp(a.data(), ar.data(), a.size())) << "quantized activations differ";
    for (size_t i = 0; i < d.size(); ++i) {
      ASSERT_EQ(bits(d[i]), bits(dr[i])) << "activation scale " << i;
      ASSERT_EQ(s[i], sr[i]) << "activation sum " << i;
    }

    // Matmul over a sub-range of rows [n0, n1) with guard values around it.
    const size_t n0 = n_ > 2 ? 1 : 0, n1 = n_ > 3 ? n_ - 1 : n_;
    const size_t ldy = n_ + 3;
    const float kGuard = -12345.0f;
    std::vector<float> y(m_ * ldy, kGuard);
    t.matmul_u8s8(q.data(), p.data(), k_, G, a.data(), d.data(), s.data(), m_, y.data(), ldy, n0,
                  n1);
    std::vector<double> yr(m_ * n_), mag(m_ * n_);
    ember_ref::matmul_u8s8(q.data(), p.data(), n_, k_, G, a.data(), d.data(), s.data(), m_,
                           yr.data(), mag.data());
    // Float part: groups float additions of exact-integer-based terms.
    const double rel = 2e-7 * static_cast<double>(groups + 4);
    for (size_t i = 0; i < m_; ++i)
      for (size_t j = 0; j < ldy; ++j) {
        const float v = y[i * ldy + j];
        if (j < n0 || j >= n1) {
          ASSERT_EQ(bits(v), bits(kGuard)) << "wrote outside [n0, n1) at " << i << "," << j;
          continue;
        }
        ASSERT_NEAR(v, yr[i * n_ + j], rel * mag[i * n_ + j] + 1e-30) << i << "," << j;
      }
    // Bit-identical to scalar.
    if (std::string(t.name) != "scalar") {
      std::vector<float> ys(m_ * ldy, kGuard);
      scalar_table().matmul_u8s8(q.data(), p.data(), k_, G, a.data(), d.data(), s.data(), m_,
                                 ys.data(), ldy, n0, n1);
      for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(bits(y[i]), bits(ys[i])) << "vs scalar at " << i;
    }
  }

 private:
  size_t m_ = 1, n_ = 1, k_ = 1;
  uint32_t group_ = 32, seed_ = 1;
};

// Integer part alone, exactly: only one group has d = 1 (the others 0) and the params are scale 1,
// min 0 (or scale 0, min 1 for the Σa correction), so y = (float)isum (or (float)asum) exactly.
// Activations are given directly, so any pattern (including the saturation worst case) is reachable.
class U8S8IntegerTester {
 public:
  U8S8IntegerTester& m(size_t v) { m_ = v; return *this; }
  U8S8IntegerTester& n(size_t v) { n_ = v; return *this; }
  U8S8IntegerTester& k(size_t v) { k_ = v; return *this; }
  U8S8IntegerTester& group(uint32_t v) { group_ = v; return *this; }
  // Fill patterns: -1 = random; otherwise the value (q in 0..255, a in -127..127); a_alt alternates.
  U8S8IntegerTester& q_fill(int v) { q_fill_ = v; return *this; }
  U8S8IntegerTester& a_fill(int v, bool alternate = false) { a_fill_ = v; a_alt_ = alternate; return *this; }

  void Test(const KernelTable& t) const {
    SCOPED_TRACE(testing::Message() << t.name << " m=" << m_ << " n=" << n_ << " k=" << k_
                                    << " group=" << group_ << " q=" << q_fill_ << " a=" << a_fill_);
    const size_t G = ember::zero_one_group_len(k_, group_);
    const size_t groups = ember::zero_one_groups_per_row(k_, group_);
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> uq(0, 255), ua(-127, 127);
    std::vector<uint8_t> q(n_ * k_);
    std::vector<int8_t> a(m_ * k_);
    for (auto& v : q) v = static_cast<uint8_t>(q_fill_ < 0 ? uq(rng) : q_fill_);
    for (size_t i = 0; i < a.size(); ++i) {
      int v = a_fill_ == -1000 ? ua(rng) : a_fill_;
      if (a_alt_ && (i % 2)) v = -v;
      a[i] = static_cast<int8_t>(v);
    }
    std::vector<int32_t> s(m_ * groups, 0);
    for (size_t i = 0; i < m_; ++i)
      for (size_t t2 = 0; t2 < k_; ++t2) s[i * groups + t2 / G] += a[i * k_ + t2];
    const std::vector<int64_t> dots = ember_ref::u8s8_group_dots(q.data(), n_, k_, G, a.data(), m_);

    const size_t probe[] = {0, groups / 2, groups - 1};
    for (size_t gi : probe) {
      std::vector<float> d(m_ * groups, 0.0f);
      for (size_t i = 0; i < m_; ++i) d[i * groups + gi] = 1.0f;
      for (int which = 0; which < 2; ++which) {
        std::vector<ZeroOneParams> p(n_ * groups, which == 0 ? ZeroOneParams{1.0f, 0.0f}
                                                             : ZeroOneParams{0.0f, 1.0f});
        std::vector<float> y(m_ * n_);
        t.matmul_u8s8(q.data(), p.data(), k_, G, a.data(), d.data(), s.data(), m_, y.data(), n_, 0,
                      n_);
        for (size_t i = 0; i < m_; ++i)
          for (size_t j = 0; j < n_; ++j) {
            const float expect = which == 0
                                     ? static_cast<float>(dots[(i * n_ + j) * groups + gi])
                                     : static_cast<float>(s[i * groups + gi]);
            ASSERT_EQ(bits(y[i * n_ + j]), bits(expect))
                << (which == 0 ? "sum q*a" : "sum a") << " of group " << gi << " at " << i << ","
                << j << ": " << y[i * n_ + j] << " vs " << expect;
          }
      }
    }
  }

 private:
  size_t m_ = 1, n_ = 1, k_ = 1;
  uint32_t group_ = 32;
  int q_fill_ = -1, a_fill_ = -1000;
  bool a_alt_ = false;
};

// ---------------------------------------------------------------------------------------------
class KernelVariantTest : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    table_ = find_variant(GetParam());
    if (table_ == nullptr) {
      GTEST_SKIP() << "variant '" << GetParam()
                   << "' is not runnable on this CPU or not built for this architecture";
    }
  }
  const KernelTable* table_ = nullptr;
};

TEST_P(KernelVariantTest, U8S8OddShapes) {
  uint32_t seed = 1;
  for (const auto& [m, n, k] : odd_shapes(size_t{1} << 21))
    for (uint32_t g : kGroups) {
      U8S8MatmulTester().m(m).n(n).k(k).group(g).seed(seed++).Test(*table_);
      if (HasFatalFailure()) return;
    }
}

TEST_P(KernelVariantTest, U8S8LargeShapes) {
  U8S8MatmulTester().m(1).n(4096).k(4096).group(64).Test(*table_);
  U8S8MatmulTester().m(255).n(67).k(255).group(32).Test(*table_);
  U8S8MatmulTester().m(33).n(255).k(4096).group(128).Test(*table_);
  U8S8MatmulTester().m(17).n(67).k(4096).group(0).Test(*table_);
}

TEST_P(KernelVariantTest, U8S8IntegerPartsExact) {
  for (const auto& [m, n, k] : odd_shapes(size_t{1} << 18))
    for (uint32_t g : kGroups) {
      U8S8IntegerTester().m(m).n(n).k(k).group(g).Test(*table_);
      if (HasFatalFailure()) return;
    }
}

// vpmaddubsw saturates a pair of u8 x s8 products at int16: 255*127*2 > 32767. Every variant must
// give the exact sums for the worst cases (and their neighbours).
TEST_P(KernelVariantTest, U8S8SaturationWorstCase) {
  struct Fill { int q, a; bool alt; };
  const Fill fills[] = {{255, 127, false}, {255, -127, false}, {255, 127, true}, {0, -127, false},
                        {0, 127, false},   {128, 127, false},  {127, -127, false}, {129, 127, true}};
  for (const Fill& f : fills)
    for (uint32_t g : kGroups)
      for (size_t k : {size_t{67}, size_t{4096}}) {
        U8S8IntegerTester().m(3).n(17).k(k).group(g).q_fill(f.q).a_fill(f.a, f.alt).Test(*table_);
        if (HasFatalFailure()) return;
      }
}

// ---------------------------------------------------------------------------------------------
enum class WType { kF32, kF16, kBF16 };

void float_matmul_case(const KernelTable& t, WType wt, size_t m, size_t n, size_t k, uint32_t seed) {
  SCOPED_TRACE(testing::Message() << t.name << " wtype=" << static_cast<int>(wt) << " m=" << m
                                  << " n=" << n << " k=" << k);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_int_distribution<int> ub(0, 65535);
  std::vector<float> wf(n * k), x(m * k);
  std::vector<uint16_t> wh(n * k);
  for (auto& v : x) v = u(rng);
  for (size_t i = 0; i < n * k; ++i) {
    if (wt == WType::kF32) {
      wf[i] = u(rng);
    } else {
      // Random sign and mantissa, exponent giving magnitudes ~2^-6..2^1 (plus some subnormal f16).
      uint16_t h = static_cast<uint16_t>(ub(rng));
      if (wt == WType::kF16) {
        const int e = (i % 97 == 0) ? 0 : 9 + (h >> 10) % 8;
        h = static_cast<uint16_t>((h & 0x83ffu) | (e << 10));
        wf[i] = ember_ref::f16_to_f32(h);
      } else {
        const int e = 121 + (h >> 7) % 8;
        h = static_cast<uint16_t>((h & 0x807fu) | (e << 7));
        wf[i] = ember_ref::bf16_to_f32(h);
      }
      wh[i] = h;
    }
  }
  const size_t n0 = n > 2 ? 1 : 0, n1 = n > 3 ? n - 1 : n, ldy = n + 1;
  auto run = [&](const KernelTable& tt, std::vector<float>& y) {
    y.assign(m * ldy, -7.0f);
    if (wt == WType::kF32) tt.matmul_f32(wf.data(), k, x.data(), m, y.data(), ldy, n0, n1);
    if (wt == WType::kF16) tt.matmul_f16(wh.data(), k, x.data(), m, y.data(), ldy, n0, n1);
    if (wt == WType::kBF16) tt.matmul_bf16(wh.data(), k, x.data(), m, y.data(), ldy, n0, n1);
  };
  std::vector<float> y;
  run(t, y);
  std::vector<double> yr(m * n), mag(m * n);
  ember_ref::matmul_f32(wf.data(), n, k, x.data(), m, yr.data(), mag.data());
  // Sequential float sum of k products: |error| <= k * 2^-24 * sum|w x| (gamma_k), with margin.
  const double rel = 6e-8 * (static_cast<double>(k) + 2);
  for (size_t i = 0; i < m; ++i)
    for (size_t j = 0; j < ldy; ++j) {
      if (j < n0 || j >= n1) {
        ASSERT_EQ(y[i * ldy + j], -7.0f) << "wrote outside [n0, n1)";
        continue;
      }
      ASSERT_NEAR(y[i * ldy + j], yr[i * n + j], rel * mag[i * n + j] + 1e-30) << i << "," << j;
    }
  if (std::string(t.name) != "scalar") {
    std::vector<float> ys;
    run(scalar_table(), ys);
    for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(bits(y[i]), bits(ys[i])) << "vs scalar at " << i;
  }
}

TEST_P(KernelVariantTest, FloatMatmulsOddShapes) {
  uint32_t seed = 3;
  for (const auto& [m, n, k] : odd_shapes(size_t{1} << 20))
    for (WType wt : {WType::kF32, WType::kF16, WType::kBF16}) {
      float_matmul_case(*table_, wt, m, n, k, seed++);
      if (HasFatalFailure()) return;
    }
}

const size_t kLens[] = {1, 3, 7, 8, 17, 33, 67, 255, 4096};

TEST_P(KernelVariantTest, RmsNorm) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-4.0f, 4.0f);
  for (size_t n : kLens) {
    std::vector<float> x(n), w(n), y(n), ys(n);
    for (auto& v : x) v = u(rng);
    for (auto& v : w) v = u(rng);
    table_->rmsnorm(x.data(), w.data(), n, 1e-5f, y.data());
    std::vector<double> yr(n);
    ember_ref::rmsnorm(x.data(), w.data(), n, 1e-5f, yr.data());
    for (size_t i = 0; i < n; ++i) ASSERT_NEAR(y[i], yr[i], 1e-5 * std::fabs(yr[i]) + 1e-30) << n;
    scalar_table().rmsnorm(x.data(), w.data(), n, 1e-5f, ys.data());
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(bits(y[i]), bits(ys[i])) << "vs scalar, n=" << n;
  }
}

TEST_P(KernelVariantTest, SiluMul) {
  std::mt19937 rng(12);
  std::uniform_real_distribution<float> u(-12.0f, 12.0f);
  for (size_t n : kLens) {
    std::vector<float> g(n), up(n), y(n), ys(n);
    for (auto& v : g) v = u(rng);
    for (auto& v : up) v = u(rng);
    if (n > 4) { g[0] = -100.0f; g[1] = 100.0f; g[2] = 0.0f; g[3] = -87.5f; }
    table_->silu_mul(g.data(), up.data(), n, y.data());
    std::vector<double> yr(n);
    ember_ref::silu_mul(g.data(), up.data(), n, yr.data());
    for (size_t i = 0; i < n; ++i)
      ASSERT_NEAR(y[i], yr[i], 4e-7 * std::fabs(yr[i]) + 1e-35) << "n=" << n << " g=" << g[i];
    scalar_table().silu_mul(g.data(), up.data(), n, ys.data());
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(bits(y[i]), bits(ys[i])) << "vs scalar, n=" << n;
  }
}

TEST_P(KernelVariantTest, Softmax) {
  std::mt19937 rng(13);
  std::uniform_real_distribution<float> u(-20.0f, 20.0f);
  for (size_t n : kLens) {
    std::vector<float> x(n);
    for (auto& v : x) v = u(rng);
    if (n > 4) x[n - 1] = -INFINITY;  // a masked position
    std::vector<double> yr(n);
    ember_ref::softmax(x.data(), n, yr.data());
    std::vector<float> y = x, ys = x;
    table_->softmax(y.data(), n);
    float mx = x[0];
    for (float v : x) mx = std::max(mx, v);
    // exp's own error (~1e-6), the rounding of x - max in float (|x - max| ulps of exp's argument)
    // and the sequential float sum's (~sqrt(n) roundings of 2^-24, with margin).
    const double sum_err = 1.2e-7 * std::sqrt(double(n));
    for (size_t i = 0; i < n; ++i)
      ASSERT_NEAR(y[i], yr[i], std::isinf(x[i]) ? 0.0 : (1e-6 + 1.2e-7 * std::fabs(x[i] - mx) + sum_err) * yr[i] + 1e-37) << "n=" << n;
    scalar_table().softmax(ys.data(), n);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(bits(y[i]), bits(ys[i])) << "vs scalar, n=" << n;
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, KernelVariantTest,
                         testing::Values("scalar", "avx2", "avx512vnni", "neon", "neon-dot", "i8mm"),
                         [](const testing::TestParamInfo<std::string>& i) {
                           std::string s = i.param;
                           for (auto& c : s) if (c == '-') c = '_';
                           return s;
                         });

// ---------------------------------------------------------------------------------------------
TEST(KernelDispatch, ScalarFirstAndForceable) {
  ASSERT_GE(ember::kernels::variant_count(), 1u);
  EXPECT_STREQ(ember::kernels::variant(0).name, "scalar");
  const std::string before = ember::kernels::active().name;
  EXPECT_TRUE(ember::kernels::force_variant("scalar"));
  EXPECT_STREQ(ember::kernels::active().name, "scalar");
  EXPECT_FALSE(ember::kernels::force_variant("no-such-isa"));
  EXPECT_STREQ(ember::kernels::active().name, "scalar");
  EXPECT_TRUE(ember::kernels::force_variant(before.c_str()));
  for (size_t i = 0; i < ember::kernels::variant_count(); ++i)
    std::printf("runnable variant: %s\n", ember::kernels::variant(i).name);
}

}  // namespace
