// The u8 x s8 matmul of every kernel variant built for the Cortex-M55 (scalar, mve), run on the
// MPS3 AN547 under qemu-system-arm (no GoogleTest on bare metal): against the naive reference
// (tests/reference) over odd shapes, group and activation-group sizes and both params types, bit
// for bit against scalar, and the integer parts exactly (saturation fills). The same checks as
// kernels_test.cc's U8S8 testers, in plain code; prints one line per variant and PASS or FAIL.
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "core/zero_one.h"
#include "kernels/kernels.h"
#include "reference/reference_kernels.h"

extern "C" {
#include "an547.h"
}

namespace {

using ember::DType;
using ember::ZeroOneParams;
using ember::kernels::KernelTable;
using ember::kernels::S8Acts;
using ember::kernels::U8Matrix;

int g_failures = 0;

void fail(const char* what, const KernelTable& t, size_t m, size_t n, size_t k, size_t G, size_t H,
          DType pt, size_t at) {
  char line[200];
  std::snprintf(line, sizeof line, "FAIL %s: %s m=%u n=%u k=%u group=%u act=%u params=%s at %u\n",
                what, t.name, unsigned(m), unsigned(n), unsigned(k), unsigned(G), unsigned(H),
                pt == DType::kF16 ? "f16" : "f32", unsigned(at));
  an547_puts(line);
  ++g_failures;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

struct Packed {
  std::vector<uint8_t> data, params;
};

Packed pack(const std::vector<uint8_t>& q, const std::vector<ZeroOneParams>& p, size_t n, size_t k,
            uint32_t group, DType pt) {
  ember::ZeroOneShape s;
  ember::zero_one_shape(n, k, group > k ? k : group, &s, pt);
  Packed out{std::vector<uint8_t>(s.data_bytes()), std::vector<uint8_t>(s.params_bytes())};
  ember::zero_one_pack(s, q.data(), p.data(), out.data.data(), out.params.data());
  return out;
}

// Random weights and activations: y against the reference within the float sums' error, rows
// [n0, n1) only (guards around), and bit for bit against scalar.
void check_random(const KernelTable& t, const KernelTable& scalar, size_t m, size_t n, size_t k,
                  uint32_t group, uint32_t act, DType pt, uint32_t seed) {
  const size_t G = ember::zero_one_group_len(k, group);
  const size_t H = act != 0 && ember::zero_one_act_group_valid(G, act) ? act : G;
  const size_t groups = ember::zero_one_groups_per_row(k, group), acts = (k + H - 1) / H;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uw(-0.5f, 0.5f), ux(-3.0f, 3.0f);
  std::vector<float> w(n * k), x(m * k);
  for (auto& v : w) v = uw(rng);
  for (auto& v : x) v = ux(rng);
  if (n > 1)  // constant weights (scale 0)
    for (size_t i = 0; i < G && i < k; ++i) w[k + i] = 0.25f;
  if (m > 1)  // an all-zero activation group
    for (size_t i = 0; i < H && i < k; ++i) x[k + i] = 0.0f;
  std::vector<uint8_t> q(n * k);
  std::vector<ZeroOneParams> p(n * groups);
  for (size_t j = 0; j < n; ++j)
    for (size_t g = 0; g < groups; ++g) {
      const size_t k0 = g * G, len = k - k0 < G ? k - k0 : G;
      p[j * groups + g] = ember::zero_one_quantize_group(&w[j * k + k0], len, &q[j * k + k0]);
    }
  std::vector<int8_t> a(m * k);
  std::vector<float> d(m * acts), ms(m * groups);
  std::vector<int32_t> s(m * acts);
  t.quantize_acts_s8(x.data(), m, k, G, H, a.data(), d.data(), s.data(), ms.data());
  const Packed wp = pack(q, p, n, k, group, pt);
  const U8Matrix mat{wp.data.data(), wp.params.data(), pt, k, G};
  const S8Acts in{a.data(), d.data(), s.data(), ms.data(), H};
  const size_t n0 = n > 2 ? 1 : 0, n1 = n > 3 ? n - 1 : n, ldy = n + 3;
  const float kGuard = -12345.0f;
  std::vector<float> y(m * ldy, kGuard), ys(m * ldy, kGuard);
  t.matmul_u8s8(mat, in, m, y.data(), ldy, n0, n1);
  scalar.matmul_u8s8(mat, in, m, ys.data(), ldy, n0, n1);
  std::vector<ZeroOneParams> ps = p;  // as the kernels see them
  if (pt == DType::kF16)
    for (auto& v : ps)
      v = {ember_ref::f16_to_f32(ember_ref::f32_to_f16_rne(v.scale)),
           ember_ref::f16_to_f32(ember_ref::f32_to_f16_rne(v.min))};
  std::vector<double> yr(m * n), mag(m * n);
  ember_ref::matmul_u8s8(q.data(), ps.data(), n, k, G, H, a.data(), d.data(), s.data(), m,
                         yr.data(), mag.data());
  const double rel = 2e-7 * static_cast<double>(groups + acts + 4);
  for (size_t i = 0; i < m; ++i)
    for (size_t j = 0; j < ldy; ++j) {
      const float v = y[i * ldy + j];
      if (bits(v) != bits(ys[i * ldy + j])) return fail("vs scalar", t, m, n, k, G, H, pt, j);
      if (j < n0 || j >= n1) {
        if (bits(v) != bits(kGuard)) return fail("wrote outside", t, m, n, k, G, H, pt, j);
      } else if (std::fabs(v - yr[i * n + j]) > rel * mag[i * n + j] + 1e-30) {
        return fail("vs reference", t, m, n, k, G, H, pt, j);
      }
    }
}

// The integer part exactly: one activation group with d = 1, params (1, 0) or (0, 1), so y is
// (float)isum or (float)asum; q and a filled with a value (the extremes) or random (-1, -1000).
void check_integer(const KernelTable& t, size_t m, size_t n, size_t k, uint32_t group, uint32_t act,
                   int q_fill, int a_fill, bool a_alt) {
  const size_t G = ember::zero_one_group_len(k, group);
  const size_t H = act != 0 && ember::zero_one_act_group_valid(G, act) ? act : G;
  const size_t groups = ember::zero_one_groups_per_row(k, group), acts = (k + H - 1) / H;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> uq(0, 255), ua(-127, 127);
  std::vector<uint8_t> q(n * k);
  std::vector<int8_t> a(m * k);
  for (auto& v : q) v = static_cast<uint8_t>(q_fill < 0 ? uq(rng) : q_fill);
  for (size_t i = 0; i < a.size(); ++i)
    a[i] = static_cast<int8_t>((a_fill == -1000 ? ua(rng) : a_fill) * (a_alt && i % 2 ? -1 : 1));
  std::vector<int32_t> s(m * acts, 0);
  for (size_t i = 0; i < m; ++i)
    for (size_t c = 0; c < k; ++c) s[i * acts + c / H] += a[i * k + c];
  const std::vector<int64_t> dots = ember_ref::u8s8_group_dots(q.data(), n, k, H, a.data(), m);
  for (size_t hi : {size_t{0}, acts - 1}) {
    std::vector<float> d(m * acts, 0.0f), ms(m * groups, 0.0f);
    for (size_t i = 0; i < m; ++i) {
      d[i * acts + hi] = 1.0f;
      ms[i * groups + hi * H / G] = static_cast<float>(s[i * acts + hi]);
    }
    for (DType pt : {DType::kF32, DType::kF16})
      for (int which = 0; which < 2; ++which) {
        const std::vector<ZeroOneParams> p(
            n * groups, which == 0 ? ZeroOneParams{1.0f, 0.0f} : ZeroOneParams{0.0f, 1.0f});
        const Packed wp = pack(q, p, n, k, group, pt);
        std::vector<float> y(m * n);
        t.matmul_u8s8(U8Matrix{wp.data.data(), wp.params.data(), pt, k, G},
                      S8Acts{a.data(), d.data(), s.data(), ms.data(), H}, m, y.data(), n, 0, n);
        for (size_t i = 0; i < m * n; ++i) {
          const float want = which == 0 ? static_cast<float>(dots[i * acts + hi])
                                        : static_cast<float>(s[(i / n) * acts + hi]);
          if (bits(y[i]) != bits(want)) return fail("integer part", t, m, n, k, G, H, pt, i);
        }
      }
  }
}

// f16 params widened exactly: every finite f16 as a scale, with isum = 1, d = 1 and min 0, so that
// y is the scale itself (bit for bit, as scalar and the reference widen it).
void check_f16_scales(const KernelTable& t, const KernelTable& scalar) {
  const size_t n = 2 * 31744, k = 4;  // the finite f16 values: exponent 0..30, either sign
  std::vector<uint8_t> q(n * k, 0);
  std::vector<ZeroOneParams> p(n);
  for (size_t j = 0; j < n; ++j) {
    const uint16_t h = static_cast<uint16_t>(j < n / 2 ? j : 0x8000u + (j - n / 2));
    p[j] = {ember_ref::f16_to_f32(h), 0.0f};
    q[j * k] = 1;
  }
  const int8_t a[k] = {1, 0, 0, 0};
  const float d = 1.0f, ms = 1.0f;
  const int32_t s = 1;
  const Packed wp = pack(q, p, n, k, k, DType::kF16);
  std::vector<float> y(n), ys(n);
  const U8Matrix mat{wp.data.data(), wp.params.data(), DType::kF16, k, k};
  t.matmul_u8s8(mat, S8Acts{a, &d, &s, &ms, k}, 1, y.data(), n, 0, n);
  scalar.matmul_u8s8(mat, S8Acts{a, &d, &s, &ms, k}, 1, ys.data(), n, 0, n);
  for (size_t j = 0; j < n; ++j) {
    if (bits(y[j]) != bits(ys[j]) || y[j] != p[j].scale)
      return fail("f16 scale", t, 1, n, k, k, k, DType::kF16, j);
  }
}

void test_variant(const KernelTable& t, const KernelTable& scalar) {
  const int before = g_failures;
  const size_t dims[] = {1, 3, 7, 17, 33, 67, 255};
  const uint32_t groups[] = {16, 32, 64, 128, 10, 0}, acts[] = {0, 4, 8, 16, 32};
  uint32_t seed = 1, turn = 0, cases = 0;
  for (size_t m : {size_t{1}, size_t{2}, size_t{5}})
    for (size_t n : dims)
      for (size_t k : dims) {
        if (m * n * k > (size_t{1} << 15)) continue;
        for (uint32_t g : groups) {
          const DType pt = turn % 2 ? DType::kF16 : DType::kF32;
          check_random(t, scalar, m, n, k, g, acts[turn % 5], pt, seed++);
          ++turn;
          ++cases;
        }
      }
  // stories260K's shapes (dim 64, hidden 172, vocab 512; group 16), long rows, partial groups.
  const size_t model[][2] = {{64, 64}, {172, 64}, {64, 172}, {512, 64}, {19, 4103}, {33, 1000}};
  for (const auto& nk : model)
    for (DType pt : {DType::kF32, DType::kF16})
      for (uint32_t act : {0u, 4u}) {
        check_random(t, scalar, 1, nk[0], nk[1], 16, act, pt, seed++);
        check_random(t, scalar, 3, nk[0], nk[1], 64, act * 4, pt, seed++);
        cases += 2;
      }
  for (uint32_t g : {16u, 64u, 0u})
    for (uint32_t h : {0u, 4u, 16u})
      for (size_t k : {size_t{67}, size_t{1000}}) {
        check_integer(t, 2, 17, k, g, h, -1, -1000, false);
        ++cases;
      }
  // Saturation extremes: every product at its largest magnitude, one sign or alternating.
  const int fills[][3] = {{255, 127, 0}, {255, -127, 0}, {255, 127, 1}, {0, -127, 0},
                          {128, 127, 0}, {127, -127, 0}, {129, 127, 1}};
  for (const auto& f : fills)
    for (uint32_t g : {16u, 10u, 0u}) {
      check_integer(t, 2, 17, 4096, g, 0, f[0], f[1], f[2] != 0);
      check_integer(t, 1, 17, 67, g, 4, f[0], f[1], f[2] != 0);
      cases += 2;
    }
  check_f16_scales(t, scalar);
  ++cases;
  char line[120];
  std::snprintf(line, sizeof line, "%s: u8s8 matmul %u cases, %d failed\n", t.name, unsigned(cases),
                g_failures - before);
  an547_puts(line);
}

}  // namespace

int main() {
  namespace k = ember::kernels;
  for (size_t i = 0; i < k::variant_count(); ++i) test_variant(k::variant(i), k::variant(0));
  an547_puts(g_failures == 0 ? "PASS\n" : "FAIL\n");
  return g_failures == 0 ? 0 : 1;
}

// The vectors above need a heap: newlib's malloc takes it from _sbrk, here 2 MB of the SRAM.
AN547_SBRK_HEAP(2u << 20)
