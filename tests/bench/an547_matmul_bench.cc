// Instructions per u8 x s8 matmul call on the Cortex-M55 (MPS3 AN547 under qemu-system-arm), for
// each variant built (scalar, mve) on stories260K's shapes with the converter's default storage
// (group 64, activation group 16, f16 params) and with group 16 = activation group, f32 params.
// Each call sits between two calls of an547_insn_mark(), whose address .ci/m55-insn-count hands to
// the counting plugin (tests/bench/qemu_insn_count.c): the plugin's "insns:" line printed just
// before a case's label is that call's count. Decode: one token (m = 1); prefill: m = 5.
#include <cstddef>
#include <cstdio>
#include <random>
#include <vector>

#include "core/zero_one.h"
#include "kernels/kernels.h"

extern "C" {
#include "an547.h"
}

extern "C" __attribute__((noinline, used)) void an547_insn_mark(void) { __asm__ volatile(""); }

namespace {

using ember::DType;
using ember::kernels::KernelTable;

void bench(const char* name, size_t n, size_t k, size_t m, uint32_t group, uint32_t act, DType pt) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uw(-0.5f, 0.5f), ux(-3.0f, 3.0f);
  ember::ZeroOneShape s;
  ember::zero_one_shape(n, k, group, &s, pt);
  const size_t groups = ember::zero_one_groups_per_row(k, group), acts = (k + act - 1) / act;
  std::vector<float> w(n * k), x(m * k), y(m * n);
  for (auto& v : w) v = uw(rng);
  for (auto& v : x) v = ux(rng);
  std::vector<uint8_t> q(n * k);
  std::vector<ember::ZeroOneParams> p(n * groups);
  for (size_t j = 0; j < n; ++j)
    for (size_t g = 0; g < groups; ++g) {
      const size_t k0 = g * group, len = k - k0 < group ? k - k0 : group;
      p[j * groups + g] = ember::zero_one_quantize_group(&w[j * k + k0], len, &q[j * k + k0]);
    }
  std::vector<uint8_t> data(s.data_bytes()), params(s.params_bytes());
  ember::zero_one_pack(s, q.data(), p.data(), data.data(), params.data());
  std::vector<int8_t> a(m * k);
  std::vector<float> d(m * acts), ms(m * groups);
  std::vector<int32_t> sum(m * acts);
  namespace kn = ember::kernels;
  kn::variant(0).quantize_acts_s8(x.data(), m, k, group, act, a.data(), d.data(), sum.data(),
                                  ms.data());
  const kn::U8Matrix mat{data.data(), params.data(), pt, k, group};
  const kn::S8Acts in{a.data(), d.data(), sum.data(), ms.data(), act};
  for (size_t i = 0; i < kn::variant_count(); ++i) {
    const KernelTable& t = kn::variant(i);
    an547_insn_mark();
    t.matmul_u8s8(mat, in, m, y.data(), n, 0, n);
    an547_insn_mark();
    char line[160];
    std::snprintf(line, sizeof line, "case %s %s n=%u k=%u m=%u group=%u act=%u params=%s\n",
                  t.name, name, unsigned(n), unsigned(k), unsigned(m), unsigned(group),
                  unsigned(act), pt == DType::kF16 ? "f16" : "f32");
    an547_puts(line);
  }
}

}  // namespace

int main() {
  struct Shape {
    const char* name;
    size_t n, k;
  };
  const Shape shapes[] = {{"wq/wo", 64, 64},
                          {"wk/wv", 32, 64},
                          {"w1/w3", 172, 64},
                          {"w2", 64, 172},
                          {"classifier", 512, 64}};
  for (const Shape& s : shapes) {
    bench(s.name, s.n, s.k, 1, 64, 16, DType::kF16);
    bench(s.name, s.n, s.k, 1, 16, 16, DType::kF32);
  }
  bench("w1/w3", 172, 64, 5, 64, 16, DType::kF16);
  return 0;
}

// The vectors above need a heap: newlib's malloc takes it from _sbrk, here 1 MB of the SRAM.
AN547_SBRK_HEAP(1u << 20)
