// Every kernel variant the CPU can run, against the naive reference (tests/reference) over odd
// shapes, and bit for bit against the scalar variant (the "same tokens everywhere" guarantee).
// Variants this CPU (or this architecture's build) lacks are skipped with a message;
// tests/support/kernel_variants_test checks that those are exactly the ones the CPU lacks.
#include "kernels/kernels.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/dtype.h"
#include "core/float_blocks.h"
#include "kernels/variants.h"
#include "reference/reference_kernels.h"

namespace {

using ember::DType;
using ember::ZeroOneParams;
using ember::kernels::KernelTable;
using ember::kernels::S8Acts;
using ember::kernels::U8Matrix;

const KernelTable* find_variant(const std::string& name) {
  for (size_t i = 0; i < ember::kernels::variant_count(); ++i) {
    if (name == ember::kernels::variant(i).name) return &ember::kernels::variant(i);
  }
  return nullptr;
}

const KernelTable& scalar_table() { return *find_variant("scalar"); }

// exp is not in the production table (nothing but these tests calls it on its own): each
// variant's exp, as its softmax and SiLU use it, by the variant's name.
ember::kernels::ExpFn exp_of(const KernelTable& t) {
  namespace k = ember::kernels;
  const std::string n = t.name;
#if defined(__x86_64__) || defined(__i386__)
  if (n == "avx2" || n == "avx512vnni") return k::f32_exp_avx2;
#endif
#if defined(__aarch64__) || defined(__ARM_NEON)
  if (n == "neon" || n == "neon-dot" || n == "i8mm") return k::f32_exp_neon;
#endif
  return k::f32_exp_scalar;
}

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
        if (uint64_t{m} * n * k <= max_work) out.emplace_back(m, n, k);  // 64-bit: 4096^3
  return out;
}

// Group sizes: 16 (the converter's default), 32, 64, 128, an odd one and whole row (0).
const uint32_t kGroups[] = {16, 32, 64, 128, 10, 0};

// A row-major (n, k) matrix q with row-major params (n, groups) in the stored row-block layout,
// params f32 or f16 (rounded to nearest even by zero_one_pack).
struct Packed {
  std::vector<uint8_t> data;
  std::vector<uint8_t> params;
  DType params_type;
};
Packed pack(const std::vector<uint8_t>& q, const std::vector<ZeroOneParams>& p, size_t n, size_t k,
            uint32_t group, DType params_type = DType::kF32) {
  ember::ZeroOneShape s;
  EXPECT_TRUE(ember::zero_one_shape(n, k, group > k ? k : group, &s, params_type));
  Packed out{std::vector<uint8_t>(s.data_bytes()), std::vector<uint8_t>(s.params_bytes()),
             params_type};
  ember::zero_one_pack(s, q.data(), p.data(), out.data.data(), out.params.data());
  return out;
}

// The params as the kernels see them: f16 ones rounded by the reference's own conversion.
std::vector<ZeroOneParams> as_stored(std::vector<ZeroOneParams> p, DType params_type) {
  if (params_type == DType::kF16)
    for (auto& v : p)
      v = {ember_ref::f16_to_f32(ember_ref::f32_to_f16_rne(v.scale)),
           ember_ref::f16_to_f32(ember_ref::f32_to_f16_rne(v.min))};
  return p;
}

// The activation group of a test: 0 = the weight group G, else `act` where it fits G, else G.
size_t act_group_for(size_t G, uint32_t act) {
  return act != 0 && ember::zero_one_act_group_valid(G, act) ? act : G;
}

// ---------------------------------------------------------------------------------------------
class U8S8MatmulTester {
 public:
  U8S8MatmulTester& m(size_t v) {
    m_ = v;
    return *this;
  }
  U8S8MatmulTester& n(size_t v) {
    n_ = v;
    return *this;
  }
  U8S8MatmulTester& k(size_t v) {
    k_ = v;
    return *this;
  }
  U8S8MatmulTester& group(uint32_t v) {
    group_ = v;
    return *this;
  }
  // Activation group (0: the weight group; a value that does not fit the group: the group).
  U8S8MatmulTester& act_group(uint32_t v) {
    act_ = v;
    return *this;
  }
  U8S8MatmulTester& params(DType v) {
    params_ = v;
    return *this;
  }
  U8S8MatmulTester& seed(uint32_t v) {
    seed_ = v;
    return *this;
  }

  void Test(const KernelTable& t) const {
    const size_t G = ember::zero_one_group_len(k_, group_);
    const size_t H = act_group_for(G, act_);
    SCOPED_TRACE(testing::Message()
                 << t.name << " m=" << m_ << " n=" << n_ << " k=" << k_ << " group=" << group_
                 << " act=" << H << " params=" << (params_ == DType::kF16 ? "f16" : "f32"));
    const size_t groups = ember::zero_one_groups_per_row(k_, group_);
    const size_t acts = (k_ + H - 1) / H;
    std::mt19937 rng(seed_);
    std::uniform_real_distribution<float> uw(-0.5f, 0.5f), ux(-3.0f, 3.0f);
    std::vector<float> w(n_ * k_), x(m_ * k_);
    for (auto& v : w) v = uw(rng);
    for (auto& v : x) v = ux(rng);
    // A few special groups: constant weights (scale 0), an all-zero activation group.
    if (n_ > 1)
      for (size_t t = 0; t < std::min(G, k_); ++t) w[1 * k_ + t] = 0.25f;
    if (m_ > 1)
      for (size_t t = 0; t < std::min(H, k_); ++t) x[1 * k_ + t] = 0.0f;
    std::vector<uint8_t> q(n_ * k_);
    std::vector<ZeroOneParams> p(n_ * groups);
    for (size_t j = 0; j < n_; ++j)
      for (size_t g = 0; g < groups; ++g) {
        const size_t k0 = g * G, len = std::min(G, k_ - k0);
        p[j * groups + g] = ember::zero_one_quantize_group(&w[j * k_ + k0], len, &q[j * k_ + k0]);
      }

    // Activation quantization: exact against the reference; msum within the float sum's error.
    std::vector<int8_t> a(m_ * k_), ar(m_ * k_);
    std::vector<float> d(m_ * acts), dr(m_ * acts), ms(m_ * groups);
    std::vector<int32_t> s(m_ * acts), sr(m_ * acts);
    std::vector<double> msr(m_ * groups);
    t.quantize_acts_s8(x.data(), m_, k_, G, H, a.data(), d.data(), s.data(), ms.data());
    ember_ref::quantize_acts_s8(x.data(), m_, k_, G, H, ar.data(), dr.data(), sr.data(),
                                msr.data());
    ASSERT_EQ(0, std::memcmp(a.data(), ar.data(), a.size())) << "quantized activations differ";
    for (size_t i = 0; i < d.size(); ++i) {
      ASSERT_EQ(bits(d[i]), bits(dr[i])) << "activation scale " << i;
      ASSERT_EQ(s[i], sr[i]) << "activation sum " << i;
    }
    for (size_t i = 0; i < ms.size(); ++i) {
      double mag = 0;  // sum of |d * sum| over the group
      for (size_t h = 0; h < acts; ++h)
        if (h * H / G == i % groups)
          mag += std::fabs(double(dr[(i / groups) * acts + h]) * sr[(i / groups) * acts + h]);
      ASSERT_NEAR(ms[i], msr[i], 2e-7 * double(G / H + 2) * mag + 1e-30) << "msum " << i;
    }
    const S8Acts acts_in{a.data(), d.data(), s.data(), ms.data(), H};

    // Matmul over a sub-range of rows [n0, n1) with guard values around it.
    const size_t n0 = n_ > 2 ? 1 : 0, n1 = n_ > 3 ? n_ - 1 : n_;
    const size_t ldy = n_ + 3;
    const float kGuard = -12345.0f;
    std::vector<float> y(m_ * ldy, kGuard);
    const Packed wp = pack(q, p, n_, k_, group_, params_);
    const U8Matrix mat{wp.data.data(), wp.params.data(), params_, k_, G};
    t.matmul_u8s8(mat, acts_in, m_, y.data(), ldy, n0, n1);
    std::vector<double> yr(m_ * n_), mag(m_ * n_);
    const std::vector<ZeroOneParams> ps = as_stored(p, params_);
    ember_ref::matmul_u8s8(q.data(), ps.data(), n_, k_, G, H, a.data(), d.data(), s.data(), m_,
                           yr.data(), mag.data());
    // Float part: float additions and multiplies of exact-integer-based terms.
    const double rel = 2e-7 * static_cast<double>(groups + acts + 4);
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
      scalar_table().matmul_u8s8(mat, acts_in, m_, ys.data(), ldy, n0, n1);
      for (size_t i = 0; i < y.size(); ++i)
        ASSERT_EQ(bits(y[i]), bits(ys[i])) << "vs scalar at " << i;
    }
  }

 private:
  size_t m_ = 1, n_ = 1, k_ = 1;
  uint32_t group_ = 32, act_ = 0, seed_ = 1;
  DType params_ = DType::kF32;
};

// Integer part alone, exactly: only one activation group has d = 1 (the others 0) and the params
// are scale 1, min 0 (or scale 0, min 1 for the sum-of-a correction), so y = (float)isum (or
// (float)asum) exactly. Activations are given directly, so any pattern (including the saturation
// worst case) is reachable.
class U8S8IntegerTester {
 public:
  U8S8IntegerTester& m(size_t v) {
    m_ = v;
    return *this;
  }
  U8S8IntegerTester& n(size_t v) {
    n_ = v;
    return *this;
  }
  U8S8IntegerTester& k(size_t v) {
    k_ = v;
    return *this;
  }
  U8S8IntegerTester& group(uint32_t v) {
    group_ = v;
    return *this;
  }
  U8S8IntegerTester& act_group(uint32_t v) {
    act_ = v;
    return *this;
  }
  // Fill patterns: -1 = random; otherwise the value (q in 0..255, a in -127..127); a_alt
  // alternates.
  U8S8IntegerTester& q_fill(int v) {
    q_fill_ = v;
    return *this;
  }
  U8S8IntegerTester& a_fill(int v, bool alternate = false) {
    a_fill_ = v;
    a_alt_ = alternate;
    return *this;
  }

  void Test(const KernelTable& t) const {
    const size_t G = ember::zero_one_group_len(k_, group_);
    const size_t H = act_group_for(G, act_);
    SCOPED_TRACE(testing::Message()
                 << t.name << " m=" << m_ << " n=" << n_ << " k=" << k_ << " group=" << group_
                 << " act=" << H << " q=" << q_fill_ << " a=" << a_fill_);
    const size_t groups = ember::zero_one_groups_per_row(k_, group_);
    const size_t acts = (k_ + H - 1) / H;
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
    std::vector<int32_t> s(m_ * acts, 0);
    for (size_t i = 0; i < m_; ++i)
      for (size_t t2 = 0; t2 < k_; ++t2) s[i * acts + t2 / H] += a[i * k_ + t2];
    const std::vector<int64_t> dots = ember_ref::u8s8_group_dots(q.data(), n_, k_, H, a.data(), m_);

    const size_t probe[] = {0, acts / 2, acts - 1};
    for (size_t hi : probe) {
      std::vector<float> d(m_ * acts, 0.0f), ms(m_ * groups, 0.0f);
      for (size_t i = 0; i < m_; ++i) {
        d[i * acts + hi] = 1.0f;
        ms[i * groups + hi * H / G] = static_cast<float>(s[i * acts + hi]);
      }
      for (DType pt : {DType::kF32, DType::kF16})
        for (int which = 0; which < 2; ++which) {
          std::vector<ZeroOneParams> p(
              n_ * groups, which == 0 ? ZeroOneParams{1.0f, 0.0f} : ZeroOneParams{0.0f, 1.0f});
          std::vector<float> y(m_ * n_);
          const Packed wp = pack(q, p, n_, k_, group_, pt);
          t.matmul_u8s8(U8Matrix{wp.data.data(), wp.params.data(), pt, k_, G},
                        S8Acts{a.data(), d.data(), s.data(), ms.data(), H}, m_, y.data(), n_, 0,
                        n_);
          for (size_t i = 0; i < m_; ++i)
            for (size_t j = 0; j < n_; ++j) {
              const float expect = which == 0 ? static_cast<float>(dots[(i * n_ + j) * acts + hi])
                                              : static_cast<float>(s[i * acts + hi]);
              ASSERT_EQ(bits(y[i * n_ + j]), bits(expect))
                  << (which == 0 ? "sum q*a" : "sum a") << " of act group " << hi << " at " << i
                  << "," << j << ": " << y[i * n_ + j] << " vs " << expect;
            }
        }
    }
  }

 private:
  size_t m_ = 1, n_ = 1, k_ = 1;
  uint32_t group_ = 32, act_ = 0;
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
  // Rows of many groups with a partial last group.
  U8S8MatmulTester().m(1).n(19).k(16415).group(32).Test(*table_);
  U8S8MatmulTester().m(1).n(19).k(16415).group(16).Test(*table_);
  U8S8MatmulTester().m(1).n(4096).k(4096).group(16).Test(*table_);
}

// Every batch size from 1 to 18 (register tiles of 3, 4 or 8 tokens, their remainders, and panels
// of several tiles), rows that start and end inside a 16-row block.
TEST_P(KernelVariantTest, U8S8BatchSizes) {
  for (size_t m = 1; m <= 18; ++m) {
    U8S8MatmulTester().m(m).n(45).k(2048).group(64).seed(static_cast<uint32_t>(m)).Test(*table_);
    U8S8MatmulTester().m(m).n(21).k(100).group(16).seed(static_cast<uint32_t>(m)).Test(*table_);
    if (HasFatalFailure()) return;
  }
}

// Activation groups smaller than the weight group (the H > 1 float order), f16 params with either
// order, over odd shapes: each shape and group takes the next of the act groups 4, 8, 16, 32
// (those that do not divide the group fall back to it) and alternates f32 / f16 params.
TEST_P(KernelVariantTest, U8S8ActGroupsAndF16ParamsOddShapes) {
  const uint32_t acts[] = {4, 8, 16, 32};
  uint32_t seed = 1, turn = 0;
  for (const auto& [m, n, k] : odd_shapes(size_t{1} << 20))
    for (uint32_t g : kGroups) {
      const DType pt = turn % 2 ? DType::kF16 : DType::kF32;
      U8S8MatmulTester()
          .m(m)
          .n(n)
          .k(k)
          .group(g)
          .act_group(acts[turn % 4])
          .params(pt)
          .seed(seed++)
          .Test(*table_);
      ++turn;
      if (HasFatalFailure()) return;
    }
  U8S8MatmulTester().m(1).n(4096).k(4096).group(64).act_group(16).params(DType::kF16).Test(*table_);
  U8S8MatmulTester().m(1).n(19).k(16415).group(128).act_group(32).params(DType::kF16).Test(*table_);
  U8S8MatmulTester().m(33).n(255).k(4096).group(0).act_group(64).params(DType::kF32).Test(*table_);
  U8S8MatmulTester().m(5).n(33).k(1000).group(64).params(DType::kF16).Test(*table_);
}

// The tiles and panels of every batch size with activation groups of 16 and f16 params.
TEST_P(KernelVariantTest, U8S8ActGroupsBatchSizes) {
  for (size_t m = 1; m <= 18; ++m) {
    U8S8MatmulTester()
        .m(m)
        .n(45)
        .k(2048)
        .group(64)
        .act_group(16)
        .params(DType::kF16)
        .seed(static_cast<uint32_t>(m))
        .Test(*table_);
    U8S8MatmulTester()
        .m(m)
        .n(21)
        .k(100)
        .group(32)
        .act_group(8)
        .params(DType::kF32)
        .seed(static_cast<uint32_t>(m))
        .Test(*table_);
    if (HasFatalFailure()) return;
  }
}

TEST_P(KernelVariantTest, U8S8ActGroupsIntegerPartsExact) {
  for (const auto& [m, n, k] : odd_shapes(size_t{1} << 17))
    for (uint32_t g : {16u, 64u, 0u})
      for (uint32_t h : {4u, 16u}) {
        U8S8IntegerTester().m(m).n(n).k(k).group(g).act_group(h).Test(*table_);
        if (HasFatalFailure()) return;
      }
  for (int qf : {255, 0, 129})
    for (int af : {127, -127}) {
      U8S8IntegerTester().m(3).n(17).k(4096).group(64).act_group(16).q_fill(qf).a_fill(af).Test(
          *table_);
      U8S8IntegerTester().m(3).n(17).k(67).group(0).act_group(4).q_fill(qf).a_fill(af, true).Test(
          *table_);
      if (HasFatalFailure()) return;
    }
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
  struct Fill {
    int q, a;
    bool alt;
  };
  const Fill fills[] = {{255, 127, false},  {255, -127, false}, {255, 127, true},
                        {0, -127, false},   {0, 127, false},    {128, 127, false},
                        {127, -127, false}, {129, 127, true}};
  for (const Fill& f : fills)
    for (uint32_t g : kGroups)
      for (size_t k : {size_t{67}, size_t{4096}}) {
        U8S8IntegerTester().m(3).n(17).k(k).group(g).q_fill(f.q).a_fill(f.a, f.alt).Test(*table_);
        if (HasFatalFailure()) return;
      }
}

// ---------------------------------------------------------------------------------------------
// blocked: the weights in row blocks (core/float_blocks.h) through the *_blocked kernels, which
// must give the row-major scalar kernel's bits.
void float_matmul_case(const KernelTable& t, DType wt, size_t m, size_t n, size_t k, uint32_t seed,
                       bool blocked = false) {
  SCOPED_TRACE(testing::Message() << t.name << " wtype=" << static_cast<int>(wt) << " m=" << m
                                  << " n=" << n << " k=" << k << (blocked ? " blocked" : ""));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_int_distribution<int> ub(0, 65535);
  std::vector<float> wf(n * k), x(m * k);
  std::vector<uint16_t> wh(n * k);
  for (auto& v : x) v = u(rng);
  for (size_t i = 0; i < n * k; ++i) {
    if (wt == DType::kF32) {
      wf[i] = u(rng);
    } else {
      // Random sign and mantissa, exponent giving magnitudes ~2^-6..2^1 (plus some subnormal f16).
      uint16_t h = static_cast<uint16_t>(ub(rng));
      if (wt == DType::kF16) {
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
    if (wt == DType::kF32) tt.matmul_f32(wf.data(), k, x.data(), m, y.data(), ldy, n0, n1);
    if (wt == DType::kF16) tt.matmul_f16(wh.data(), k, x.data(), m, y.data(), ldy, n0, n1);
    if (wt == DType::kBF16) tt.matmul_bf16(wh.data(), k, x.data(), m, y.data(), ldy, n0, n1);
  };
  std::vector<float> y;
  if (blocked) {
    uint64_t values = 0;
    ASSERT_TRUE(ember::float_blocked_values(n, k, &values));
    std::vector<float> bf(values, 99.0f);
    std::vector<uint16_t> bh(values, 0x7e00);  // packing must overwrite (NaN otherwise)
    ember::float_blocks_pack(wf.data(), n, k, bf.data());
    ember::float_blocks_pack(wh.data(), n, k, bh.data());
    y.assign(m * ldy, -7.0f);
    if (wt == DType::kF32) t.matmul_f32_blocked(bf.data(), k, x.data(), m, y.data(), ldy, n0, n1);
    if (wt == DType::kF16) t.matmul_f16_blocked(bh.data(), k, x.data(), m, y.data(), ldy, n0, n1);
    if (wt == DType::kBF16) t.matmul_bf16_blocked(bh.data(), k, x.data(), m, y.data(), ldy, n0, n1);
  } else {
    run(t, y);
  }
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
  if (blocked || std::string(t.name) != "scalar") {
    std::vector<float> ys;
    run(scalar_table(), ys);
    for (size_t i = 0; i < y.size(); ++i)
      ASSERT_EQ(bits(y[i]), bits(ys[i])) << "vs scalar (row-major) at " << i;
  }
}

TEST_P(KernelVariantTest, FloatMatmulsOddShapes) {
  uint32_t seed = 3;
  for (const auto& [m, n, k] : odd_shapes(size_t{1} << 20))
    for (DType wt : {DType::kF32, DType::kF16, DType::kBF16}) {
      float_matmul_case(*table_, wt, m, n, k, seed++);
      if (HasFatalFailure()) return;
    }
}

TEST_P(KernelVariantTest, FloatMatmulsRowBlockedOddShapes) {
  uint32_t seed = 5;
  for (const auto& [m, n, k] : odd_shapes(size_t{1} << 20))
    for (DType wt : {DType::kF32, DType::kF16, DType::kBF16}) {
      float_matmul_case(*table_, wt, m, n, k, seed++, /*blocked=*/true);
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
    if (n > 4) {
      g[0] = -100.0f;
      g[1] = 100.0f;
      g[2] = 0.0f;
      g[3] = -87.5f;
    }
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
      ASSERT_NEAR(
          y[i], yr[i],
          std::isinf(x[i]) ? 0.0 : (1e-6 + 1.2e-7 * std::fabs(x[i] - mx) + sum_err) * yr[i] + 1e-37)
          << "n=" << n;
    scalar_table().softmax(ys.data(), n);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(bits(y[i]), bits(ys[i])) << "vs scalar, n=" << n;
  }
}

// Error of y against the exact e^x, in ulps of the float format at e^x (subnormal results in
// ulps of the smallest subnormal, 2^-149).
double exp_ulp_error(float x, float y) {
  const double e = std::exp(static_cast<double>(x));
  double ulp = std::ldexp(1.0, -149);
  if (e >= std::ldexp(1.0, -126)) {
    int ex = 0;
    std::frexp(e, &ex);
    ulp = std::ldexp(1.0, ex - 24);
  }
  return std::fabs(static_cast<double>(y) - e) / ulp;
}

// exp (the Float order's exp_f32): bits vs scalar on every lane position, error vs double exp.
// Bound: 0.50001 ulp on [-88, 88] (nearly correctly rounded; the exhaustive figures are in
// docs/performance.md). Here a dense sample (every 97th float, or every EMBER_EXP_STRIDE-th:
// 1 = exhaustive) plus the ends of the range (overflow, subnormal results) and special values.
TEST_P(KernelVariantTest, ExpUlp) {
  uint32_t stride = 97;
  if (const char* e = std::getenv("EMBER_EXP_STRIDE")) stride = std::max(1, std::atoi(e));
  std::vector<float> x, y(4096), ys(4096);
  x.reserve(4096);
  double worst = 0.0;
  float worst_x = 0.0f;
  auto check = [&]() {
    exp_of (*table_)(x.data(), x.size(), y.data());
    exp_of(scalar_table())(x.data(), x.size(), ys.data());
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_EQ(bits(y[i]), bits(ys[i])) << "vs scalar, x=" << x[i] << " (lane " << i % 8 << ")";
      const double err = exp_ulp_error(x[i], y[i]);
      if (err > worst) worst = err, worst_x = x[i];
    }
    x.clear();
  };
  for (uint32_t sign : {0u, 0x80000000u}) {
    const uint32_t last = bits(88.0f);  // positive magnitudes 0 .. 88 in bit order
    for (uint64_t u = 0; u <= last; u += stride) {
      float v;
      const uint32_t b = static_cast<uint32_t>(u) | sign;
      std::memcpy(&v, &b, 4);
      x.push_back(v);
      if (x.size() == 4096) check();
      if (HasFatalFailure()) return;
    }
  }
  // Around the overflow (88.7228) and into the subnormal results (-87.34 .. -103.97).
  for (float v : {88.0f, 88.5f, 88.72f, 88.7228f, -87.0f, -87.33f, -87.34f, -90.0f, -100.0f,
                  -103.0f, -103.9f}) {
    for (int d = -300; d <= 300; ++d) {
      const float w = std::nextafter(v, d < 0 ? -INFINITY : INFINITY);
      float t = v;
      for (int j = 0; j < std::abs(d); ++j) t = std::nextafter(t, w);
      x.push_back(t);
    }
    check();
    if (HasFatalFailure()) return;
  }
  std::printf("[%s] exp max error %.4f ulp at x = %.9g\n", table_->name, worst, worst_x);
  EXPECT_LE(worst, 0.50001) << "at x = " << worst_x;

  // Special values, exact: the overflow and the underflow to zero, NaN passes with its bits.
  const uint32_t nan_bits = 0x7fc01234u;
  float nan_in;
  std::memcpy(&nan_in, &nan_bits, 4);
  const float sv[] = {0.0f,  -0.0f,   INFINITY, -INFINITY, 88.7229f, 89.0f,   100.0f,
                      1e30f, -104.0f, -110.0f,  -1e30f,    1e-30f,   -1e-40f, nan_in,
                      1.0f,  -1.0f,   0.5f,     3.0f,      -3.0f};
  const float want[] = {1.0f,
                        1.0f,
                        INFINITY,
                        0.0f,
                        INFINITY,
                        INFINITY,
                        INFINITY,
                        INFINITY,
                        0.0f,
                        0.0f,
                        0.0f,
                        1.0f,
                        1.0f,
                        nan_in,
                        static_cast<float>(std::exp(1.0)),
                        static_cast<float>(std::exp(-1.0)),
                        static_cast<float>(std::exp(0.5)),
                        static_cast<float>(std::exp(3.0)),
                        static_cast<float>(std::exp(-3.0))};
  for (size_t rep = 0; rep < 8; ++rep) {  // each special value in every lane position
    x.assign(sv, sv + std::size(sv));
    std::rotate(x.begin(), x.begin() + rep, x.end());
    exp_of (*table_)(x.data(), x.size(), y.data());
    for (size_t i = 0; i < x.size(); ++i) {
      const size_t k = (i + rep) % std::size(sv);
      if (k >= 14) {  // ordinary values: within the bound (correct rounding not promised)
        EXPECT_LE(exp_ulp_error(x[i], y[i]), 0.50001) << "x=" << x[i];
      } else {
        EXPECT_EQ(bits(y[i]), bits(want[k])) << "x=" << x[i] << " lane " << i;
      }
    }
  }
}

// Attention of a group of heads sharing one KV head: bits (probabilities and output) vs the scalar
// kernel, and each head vs the double reference. Head dims with a whole 4-dim block per half (8,
// 16, 48, 64, 128) take the SIMD score path, 12 and 6 the per-key fallback; key counts around the
// 4 / 8-key blocks; 1 head (MHA), 3 and 8 (GQA; chunks of 4 heads plus a partial one, and whole
// chunks); a scores stride past n_keys; kv strides of GQA (the head's keys inside a row of
// kv_heads * head_dim floats, at kv head 1 when there are two).
TEST_P(KernelVariantTest, Attention) {
  std::mt19937 rng(14);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (size_t hd : {8, 16, 48, 64, 128, 12, 6})
    for (size_t n_keys : {1, 3, 7, 17, 33, 255, 600})
      for (size_t kv_heads : {1, 2, 3})
        for (size_t heads : {1, 3, 8}) {
          if (heads == 3 && kv_heads != 2)
            continue;  // (fewer combinations; 3 heads once per shape)
          SCOPED_TRACE(testing::Message()
                       << table_->name << " head_dim=" << hd << " n_keys=" << n_keys
                       << " kv_heads=" << kv_heads << " heads=" << heads);
          const size_t stride = kv_heads * hd, off = kv_heads > 1 ? hd : 0, ss = n_keys + 5;
          std::vector<float> q(heads * hd), kc(n_keys * stride), vc(n_keys * stride);
          for (auto& x : q) x = 3.0f * u(rng);  // scores of a few units: a peaked softmax
          for (auto& x : kc) x = u(rng);
          for (auto& x : vc) x = u(rng);
          std::vector<float> p(heads * ss, -7.0f), out(heads * hd), ps(heads * ss, -7.0f),
              outs(heads * hd);
          table_->attention(q.data(), heads, kc.data() + off, vc.data() + off, hd, n_keys, stride,
                            p.data(), ss, out.data());
          scalar_table().attention(q.data(), heads, kc.data() + off, vc.data() + off, hd, n_keys,
                                   stride, ps.data(), ss, outs.data());
          for (size_t i = 0; i < heads * ss; ++i)
            ASSERT_EQ(bits(p[i]), bits(ps[i])) << "p, i=" << i;
          for (size_t i = 0; i < heads * hd; ++i)
            ASSERT_EQ(bits(out[i]), bits(outs[i])) << "out, i=" << i;
          for (size_t h = 0; h < heads; ++h) {
            // The padding between heads' scores is not written.
            for (size_t t = n_keys; t < ss; ++t) ASSERT_EQ(p[h * ss + t], -7.0f) << "h=" << h;
            std::vector<double> pr(n_keys), outr(hd), mag(hd);
            ember_ref::attention(q.data() + h * hd, kc.data() + off, vc.data() + off, hd, n_keys,
                                 stride, pr.data(), outr.data(), mag.data());
            // Scores: hd float roundings of |q.k| <= 3 hd (then / sqrt(hd)): p_t relative error a
            // few 1e-6 at hd 128; the V sum adds n_keys roundings of the running sum.
            for (size_t t = 0; t < n_keys; ++t)
              ASSERT_NEAR(p[h * ss + t], pr[t], 2e-5 * pr[t] + 1e-12) << "h=" << h << " t=" << t;
            for (size_t d = 0; d < hd; ++d)
              ASSERT_NEAR(out[h * hd + d], outr[d], (2e-5 + 1.2e-7 * n_keys) * mag[d] + 1e-9)
                  << "h=" << h << " d=" << d;
          }
        }
}

// The shapes of the Attention test above, for the f16 and u8 caches: (head_dim, n_keys, kv_heads,
// heads) where heads == 3 only with two KV heads.
template <class F>
void for_attention_shapes(F&& f) {
  for (size_t hd : {8, 16, 48, 64, 128, 12, 6})
    for (size_t n_keys : {1, 3, 7, 17, 33, 255, 600})
      for (size_t kv_heads : {1, 2, 3})
        for (size_t heads : {1, 3, 8})
          if (heads != 3 || kv_heads == 2) f(hd, n_keys, kv_heads, heads);
}

// f16 cache: bits vs the scalar kernel, and vs the double reference on the widened values.
TEST_P(KernelVariantTest, AttentionF16) {
  std::mt19937 rng(15);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for_attention_shapes([&](size_t hd, size_t n_keys, size_t kv_heads, size_t heads) {
    SCOPED_TRACE(testing::Message() << table_->name << " head_dim=" << hd << " n_keys=" << n_keys
                                    << " kv_heads=" << kv_heads << " heads=" << heads);
    const size_t stride = kv_heads * hd, off = kv_heads > 1 ? hd : 0, ss = n_keys + 5;
    std::vector<float> q(heads * hd), kf(n_keys * stride), vf(n_keys * stride);
    std::vector<uint16_t> kc(n_keys * stride), vc(n_keys * stride);
    for (auto& x : q) x = 3.0f * u(rng);
    for (size_t i = 0; i < kc.size(); ++i) {
      kc[i] = ember_ref::f32_to_f16_rne(u(rng));
      vc[i] = ember_ref::f32_to_f16_rne(u(rng));
      kf[i] = ember_ref::f16_to_f32(kc[i]);
      vf[i] = ember_ref::f16_to_f32(vc[i]);
    }
    std::vector<float> p(heads * ss, -7.0f), out(heads * hd), ps(heads * ss, -7.0f),
        outs(heads * hd), pf(heads * ss, -7.0f), outf(heads * hd);
    table_->attention_f16(q.data(), heads, kc.data() + off, vc.data() + off, hd, n_keys, stride,
                          p.data(), ss, out.data());
    scalar_table().attention_f16(q.data(), heads, kc.data() + off, vc.data() + off, hd, n_keys,
                                 stride, ps.data(), ss, outs.data());
    // The f16 cache is the f32 kernel on the widened values, bit for bit.
    scalar_table().attention(q.data(), heads, kf.data() + off, vf.data() + off, hd, n_keys, stride,
                             pf.data(), ss, outf.data());
    for (size_t i = 0; i < heads * ss; ++i) {
      ASSERT_EQ(bits(p[i]), bits(ps[i])) << "p, i=" << i;
      ASSERT_EQ(bits(p[i]), bits(pf[i])) << "p vs f32, i=" << i;
    }
    for (size_t i = 0; i < heads * hd; ++i) {
      ASSERT_EQ(bits(out[i]), bits(outs[i])) << "out, i=" << i;
      ASSERT_EQ(bits(out[i]), bits(outf[i])) << "out vs f32, i=" << i;
    }
  });
}

// u8 cache: bits vs the scalar kernel, and each head vs the double reference on the dequantized
// rows (min + q * scale): the algebraic order (scale * q.k8 + min * sum q) adds roundings of
// terms larger than the score, hence the wider bounds than the float cache's.
TEST_P(KernelVariantTest, AttentionU8) {
  std::mt19937 rng(16);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for_attention_shapes([&](size_t hd, size_t n_keys, size_t kv_heads, size_t heads) {
    SCOPED_TRACE(testing::Message() << table_->name << " head_dim=" << hd << " n_keys=" << n_keys
                                    << " kv_heads=" << kv_heads << " heads=" << heads);
    const size_t stride = kv_heads * hd, off = kv_heads > 1 ? hd : 0, ss = n_keys + 5;
    std::vector<float> q(heads * hd), row(hd), kd(n_keys * stride), vd(n_keys * stride);
    std::vector<uint8_t> kc(n_keys * stride), vc(n_keys * stride);
    std::vector<uint16_t> ksc(n_keys), kmn(n_keys), vsc(n_keys), vmn(n_keys);
    for (auto& x : q) x = 3.0f * u(rng);
    for (size_t t = 0; t < n_keys; ++t) {
      // Rows with an offset, as real keys have; every fifth one constant (scale 0).
      const float shift = 0.5f * u(rng);
      for (int which = 0; which < 2; ++which) {
        for (auto& x : row) x = t % 5 == 4 ? shift : u(rng) + shift;
        uint8_t* qrow = (which ? vc.data() : kc.data()) + t * stride + off;
        uint16_t* sc = which ? &vsc[t] : &ksc[t];
        uint16_t* mn = which ? &vmn[t] : &kmn[t];
        ember::zero_one_quantize_kv_row(row.data(), hd, qrow, sc, mn);
        float* deq = (which ? vd.data() : kd.data()) + t * stride + off;
        for (size_t d = 0; d < hd; ++d) {
          deq[d] = static_cast<float>(ember_ref::f16_to_f32(*mn) +
                                      double(qrow[d]) * ember_ref::f16_to_f32(*sc));
        }
      }
    }
    const ember::kernels::KvRowsU8 kr{kc.data() + off, ksc.data(), kmn.data(), stride};
    const ember::kernels::KvRowsU8 vr{vc.data() + off, vsc.data(), vmn.data(), stride};
    std::vector<float> p(heads * ss, -7.0f), out(heads * hd), ps(heads * ss, -7.0f),
        outs(heads * hd);
    table_->attention_u8(q.data(), heads, kr, vr, hd, n_keys, p.data(), ss, out.data());
    scalar_table().attention_u8(q.data(), heads, kr, vr, hd, n_keys, ps.data(), ss, outs.data());
    for (size_t i = 0; i < heads * ss; ++i) ASSERT_EQ(bits(p[i]), bits(ps[i])) << "p, i=" << i;
    for (size_t i = 0; i < heads * hd; ++i)
      ASSERT_EQ(bits(out[i]), bits(outs[i])) << "out, i=" << i;
    for (size_t h = 0; h < heads; ++h) {
      for (size_t t = n_keys; t < ss; ++t) ASSERT_EQ(p[h * ss + t], -7.0f) << "h=" << h;
      std::vector<double> pr(n_keys), outr(hd), mag(hd);
      ember_ref::attention(q.data() + h * hd, kd.data() + off, vd.data() + off, hd, n_keys, stride,
                           pr.data(), outr.data(), mag.data());
      for (size_t t = 0; t < n_keys; ++t)
        ASSERT_NEAR(p[h * ss + t], pr[t], 1e-4 * pr[t] + 1e-12) << "h=" << h << " t=" << t;
      for (size_t d = 0; d < hd; ++d)
        ASSERT_NEAR(out[h * hd + d], outr[d], (1e-4 + 1.2e-7 * n_keys) * mag[d] + 1e-6)
            << "h=" << h << " d=" << d;
    }
  });
}

INSTANTIATE_TEST_SUITE_P(Variants, KernelVariantTest,
                         testing::Values("scalar", "avx2", "avx512vnni", "neon", "neon-dot", "i8mm",
                                         "mve"),
                         [](const testing::TestParamInfo<std::string>& i) {
                           std::string s = i.param;
                           for (auto& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

// The u8 KV row quantizer: min rounded down and scale up to f16, so every value is within half a
// step of its grid point (the grid covers the row); a constant row is exact; huge values clamp
// to the f16 range; NaN gives q = 0, never undefined behaviour.
TEST(KvRowQuantize, WithinHalfAStep) {
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (size_t n : {1, 2, 7, 8, 16, 64, 128}) {
    for (float offset : {0.0f, 3.0f, -1000.0f, 1e-6f}) {
      for (float range : {1.0f, 1e-3f, 100.0f, 0.0f}) {
        std::vector<float> x(n);
        for (auto& v : x) v = offset + range * u(rng);
        std::vector<uint8_t> q(n);
        uint16_t sc = 0, mn = 0;
        ember::zero_one_quantize_kv_row(x.data(), n, q.data(), &sc, &mn);
        const double s = ember_ref::f16_to_f32(sc), m = ember_ref::f16_to_f32(mn);
        const double lo = *std::min_element(x.begin(), x.end());
        const double hi = *std::max_element(x.begin(), x.end());
        ASSERT_LE(m, lo);
        // (float rounding of hi - m and of (x - m) / scale: a few 1e-7 of |x - m|)
        ASSERT_GE(m + 255.0 * s, hi - 1e-6 * (hi - m));
        for (size_t i = 0; i < n; ++i) {
          ASSERT_LE(std::fabs(m + q[i] * s - x[i]), 0.5 * s * (1 + 1e-4) + 1e-6 * (x[i] - m))
              << "n=" << n << " offset=" << offset << " range=" << range << " i=" << i;
        }
        if (range == 0.0f && ember_ref::f16_to_f32(ember_ref::f32_to_f16_rne(offset)) == offset) {
          for (size_t i = 0; i < n; ++i) ASSERT_EQ(m + q[i] * s, x[i]);
        }
      }
    }
  }
  const float odd[4] = {1e9f, -1e9f, NAN, 2.0f};
  uint8_t q[4];
  uint16_t sc = 0, mn = 0;
  ember::zero_one_quantize_kv_row(odd, 4, q, &sc, &mn);
  EXPECT_EQ(ember_ref::f16_to_f32(mn), -65504.0f);
  EXPECT_EQ(q[0], 255);
  EXPECT_EQ(q[1], 0);
  EXPECT_EQ(q[2], 0);
}

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
