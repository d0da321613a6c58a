// Kernel-level benchmarks (programs, not tests): u8 x s8 GEMV / GEMM at the tinyllama-1.1b and
// stories110m layer shapes, float matmuls, softmax / SiLU*mul / attention (with libm-expf loops,
// the code before exp_f32, for comparison), for every runnable variant.
//   ./kernels_bench --benchmark_filter=u8s8
// Counters: MAC/s (int8 multiply-accumulates) and weight bytes/s; .../dram: the same kernel (or the
// read probe, stream/...) on weights that come from DRAM, bytes/s. Float GEMVs: f32/ and f16/, from
// cache and (tl-up/.../dram) from DRAM.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "kernels/kernels.h"
#include "read_probe.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace {

using ember::ZeroOneParams;
using ember::kernels::KernelTable;

// An (n, k) u8 matrix in the stored row-block layout (params f32 or f16), m tokens of activations
// quantized in groups of `act` (0: the weight group).
struct U8Problem {
  size_t m, n, k, group, groups, act, acts;
  ember::DType pt;
  std::vector<uint8_t> q;  // row blocks
  std::vector<uint8_t> p;  // their params
  std::vector<float> x, d, ms, y;
  std::vector<int8_t> a;
  std::vector<int32_t> s;
  U8Problem(size_t m_, size_t n_, size_t k_, size_t g_, size_t act_ = 0,
            ember::DType pt_ = ember::DType::kF32)
      : m(m_), n(n_), k(k_), group(g_), act(act_ == 0 ? g_ : act_), pt(pt_) {
    groups = (k + group - 1) / group;
    acts = (k + act - 1) / act;
    std::mt19937 rng(1);
    std::uniform_int_distribution<int> u8(0, 255);
    std::uniform_real_distribution<float> uf(-1, 1);
    std::vector<uint8_t> rows(n * k);
    for (auto& v : rows) v = static_cast<uint8_t>(u8(rng));
    std::vector<ZeroOneParams> rp(n * groups);
    for (auto& v : rp) v = {uf(rng) * 0.01f, uf(rng)};
    ember::ZeroOneShape shape;
    if (!ember::zero_one_shape(n, k, group, &shape, pt)) std::abort();
    q.resize(shape.data_bytes());
    p.resize(shape.params_bytes());
    ember::zero_one_pack(shape, rows.data(), rp.data(), q.data(), p.data());
    x.resize(m * k);
    for (auto& v : x) v = uf(rng);
    a.resize(m * k);
    d.resize(m * acts);
    s.resize(m * acts);
    ms.resize(m * groups);
    y.resize(m * n);
  }
  void quantize(const KernelTable* t) {
    t->quantize_acts_s8(x.data(), m, k, group, act, a.data(), d.data(), s.data(), ms.data());
  }
  ember::kernels::U8Matrix matrix() const {
    return ember::kernels::U8Matrix{q.data(), p.data(), pt, k, group};
  }
  ember::kernels::S8Acts in() const {
    return ember::kernels::S8Acts{a.data(), d.data(), s.data(), ms.data(), act};
  }
};

void BM_u8s8(benchmark::State& st, const KernelTable* t, size_t m, size_t n, size_t k, size_t g,
             size_t act, ember::DType pt) {
  U8Problem pr(m, n, k, g, act, pt);
  pr.quantize(t);
  const ember::kernels::U8Matrix w = pr.matrix();
  const ember::kernels::S8Acts x = pr.in();
  for (auto _ : st) {
    t->matmul_u8s8(w, x, m, pr.y.data(), n, 0, n);
    benchmark::ClobberMemory();
  }
  st.counters["MAC/s"] =
      benchmark::Counter(double(m) * n * k * st.iterations(), benchmark::Counter::kIsRate);
  st.counters["wB/s"] = benchmark::Counter(double(pr.q.size() + pr.p.size()) * st.iterations(),
                                           benchmark::Counter::kIsRate);
}

// Decode's case: the weights come from DRAM. 1 GiB of matrices of one shape (row blocks and their
// params, as a model file lays them out) in 2 MiB pages where the OS gives them (a model file is
// mapped so), taken in turn; "stream" reads the same bytes with ember-bench's wide read probe, one
// thread: what the kernel reads against what a plain read of the same memory gives.
struct DramSet {
  size_t n, k, groups, count, bytes;
  ember::ZeroOneShape shape;
  uint8_t* base = nullptr;
  DramSet(size_t n_, size_t k_, size_t group, ember::DType pt) : n(n_), k(k_) {
    groups = (k + group - 1) / group;
    if (!ember::zero_one_shape(n, k, group, &shape, pt)) std::abort();
    const size_t mat = shape.data_bytes() + shape.params_bytes();  // (a multiple of 64)
    count = (size_t{1} << 30) / mat;
    bytes = count * mat;
    const size_t huge = size_t{2} << 20, len = (bytes + huge - 1) / huge * huge;
#if defined(__linux__)
    void* m = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) std::abort();
#ifdef MADV_HUGEPAGE
    (void)madvise(m, len, MADV_HUGEPAGE);
#endif
    base = static_cast<uint8_t*>(m);
#else
    base = static_cast<uint8_t*>(std::aligned_alloc(huge, len));
    if (base == nullptr) std::abort();
#endif
    std::mt19937 rng(5);
    for (size_t i = 0; i < bytes; i += 4) {
      const uint32_t v = static_cast<uint32_t>(rng());
      std::memcpy(base + i, &v, 4);
    }
    for (size_t c = 0; c < count; ++c) {  // finite, small scales / mins
      uint8_t* p = params(c);
      for (size_t i = 0; i < shape.params_floats(); ++i) {
        const float v = i % 32 < 16 ? 0.001f * float(i % 7 + 1) : -0.01f * float(i % 5);
        if (pt == ember::DType::kF16) {
          const uint16_t h = ember::f32_to_f16(v);
          std::memcpy(p + 2 * i, &h, 2);
        } else {
          std::memcpy(p + 4 * i, &v, 4);
        }
      }
    }
  }
  const uint8_t* q(size_t c) const { return base + c * (bytes / count); }
  uint8_t* params(size_t c) const { return base + c * (bytes / count) + shape.data_bytes(); }
};

// Built once each, shared by the dram benchmarks (tinyllama's gate / up shape): f32 or f16 params.
DramSet& dram_set(ember::DType pt) {
  static DramSet f32(5632, 2048, 64, ember::DType::kF32);
  if (pt == ember::DType::kF32) return f32;
  static DramSet f16(5632, 2048, 64, ember::DType::kF16);
  return f16;
}

void BM_u8s8_dram(benchmark::State& st, const KernelTable* t, size_t m, size_t act,
                  ember::DType pt) {
  DramSet& ds = dram_set(pt);
  const size_t acts = ds.k / act;
  std::vector<float> x(m * ds.k, 0.5f), d(m * acts), ms(m * ds.groups), y(m * ds.n);
  std::vector<int8_t> a(m * ds.k);
  std::vector<int32_t> s(m * acts);
  t->quantize_acts_s8(x.data(), m, ds.k, 64, act, a.data(), d.data(), s.data(), ms.data());
  const ember::kernels::S8Acts in{a.data(), d.data(), s.data(), ms.data(), act};
  size_t c = 0;
  for (auto _ : st) {
    t->matmul_u8s8(ember::kernels::U8Matrix{ds.q(c), ds.params(c), pt, ds.k, 64}, in, m, y.data(),
                   ds.n, 0, ds.n);
    benchmark::ClobberMemory();
    c = c + 1 == ds.count ? 0 : c + 1;
  }
  st.counters["B/s"] = benchmark::Counter(double(ds.bytes / ds.count) * st.iterations(),
                                          benchmark::Counter::kIsRate);
}

void BM_stream_dram(benchmark::State& st) {
  DramSet& ds = dram_set(ember::DType::kF32);
  const size_t mat = ds.bytes / ds.count;
  size_t c = 0;
  uint64_t sink = 0;
  for (auto _ : st) {
    sink += ember_app::wide_sum(reinterpret_cast<const uint64_t*>(ds.q(c)), mat / sizeof(uint64_t));
    benchmark::DoNotOptimize(sink);
    c = c + 1 == ds.count ? 0 : c + 1;
  }
  st.counters["B/s"] =
      benchmark::Counter(double(mat) * st.iterations(), benchmark::Counter::kIsRate);
}

void BM_quant(benchmark::State& st, const KernelTable* t, size_t m, size_t k, size_t g) {
  U8Problem pr(m, 1, k, g);
  for (auto _ : st) {
    pr.quantize(t);
    benchmark::ClobberMemory();
  }
  st.counters["val/s"] =
      benchmark::Counter(double(m) * k * st.iterations(), benchmark::Counter::kIsRate);
}

// blocked: the row-blocked kernels (core/float_blocks.h; n is a multiple of 16 here, so the same
// bytes serve both layouts).
void BM_f32(benchmark::State& st, const KernelTable* t, size_t m, size_t n, size_t k,
            bool blocked) {
  std::vector<float> w(n * k, 0.5f), x(m * k, 0.25f), y(m * n);
  const auto fn = blocked ? t->matmul_f32_blocked : t->matmul_f32;
  for (auto _ : st) {
    fn(w.data(), k, x.data(), m, y.data(), n, 0, n);
    benchmark::ClobberMemory();
  }
  st.counters["MAC/s"] =
      benchmark::Counter(double(m) * n * k * st.iterations(), benchmark::Counter::kIsRate);
}

void BM_f16(benchmark::State& st, const KernelTable* t, size_t m, size_t n, size_t k,
            bool blocked) {
  std::vector<uint16_t> w(n * k, 0x3800);  // 0.5
  std::vector<float> x(m * k, 0.25f), y(m * n);
  const auto fn = blocked ? t->matmul_f16_blocked : t->matmul_f16;
  for (auto _ : st) {
    fn(w.data(), k, x.data(), m, y.data(), n, 0, n);
    benchmark::ClobberMemory();
  }
  st.counters["MAC/s"] =
      benchmark::Counter(double(m) * n * k * st.iterations(), benchmark::Counter::kIsRate);
}

// Float weights from DRAM, as decode reads them: 1 GiB of (n, k) matrices of `esize`-byte values
// (f32: 4, f16: 2) in 2 MiB pages where the OS gives them, taken in turn; B/s = weight bytes read.
// k is 2048 (tinyllama's), or BENCH_K: a row stride that is not a multiple of 4 KiB (e.g. 2064)
// shows what the L1 set conflicts of such strides cost.
struct FloatDramSet {
  size_t n, k, esize, count, mat;
  uint8_t* base = nullptr;
  FloatDramSet(size_t n_, size_t k_, size_t esize_) : n(n_), k(k_), esize(esize_) {
    mat = n * k * esize;  // a multiple of 64 for the shapes used
    count = (size_t{1} << 30) / mat;
    const size_t huge = size_t{2} << 20, len = (count * mat + huge - 1) / huge * huge;
#if defined(__linux__)
    void* m = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) std::abort();
#ifdef MADV_HUGEPAGE
    (void)madvise(m, len, MADV_HUGEPAGE);
#endif
    base = static_cast<uint8_t*>(m);
#else
    base = static_cast<uint8_t*>(std::aligned_alloc(huge, len));
    if (base == nullptr) std::abort();
#endif
    std::mt19937 rng(6);
    std::uniform_real_distribution<float> u(-0.03f, 0.03f);
    for (size_t i = 0; i < count * n * k; ++i) {
      if (esize == 4) {
        const float v = u(rng);
        std::memcpy(base + 4 * i, &v, 4);
      } else {
        const uint16_t h = 0x2000 | static_cast<uint16_t>(rng() & 0x13FF);  // small normal halves
        std::memcpy(base + 2 * i, &h, 2);
      }
    }
  }
  const void* w(size_t c) const { return base + c * mat; }
};

void BM_float_dram(benchmark::State& st, const KernelTable* t, size_t esize, size_t m,
                   bool blocked) {
  static const size_t bk = getenv("BENCH_K") ? atoi(getenv("BENCH_K")) : 2048;
  static FloatDramSet f32set(5632, bk, 4), f16set(5632, bk, 2);
  const FloatDramSet& ds = esize == 4 ? f32set : f16set;
  std::vector<float> x(m * ds.k, 0.5f), y(m * ds.n);
  size_t c = 0;
  for (auto _ : st) {
    if (esize == 4) {
      (blocked ? t->matmul_f32_blocked : t->matmul_f32)(static_cast<const float*>(ds.w(c)), ds.k,
                                                        x.data(), m, y.data(), ds.n, 0, ds.n);
    } else {
      (blocked ? t->matmul_f16_blocked : t->matmul_f16)(static_cast<const uint16_t*>(ds.w(c)), ds.k,
                                                        x.data(), m, y.data(), ds.n, 0, ds.n);
    }
    benchmark::ClobberMemory();
    c = c + 1 == ds.count ? 0 : c + 1;
  }
  st.counters["B/s"] =
      benchmark::Counter(double(ds.mat) * st.iterations(), benchmark::Counter::kIsRate);
}

// Float ops of the forward pass at stories110m's shapes: softmax over n keys, SiLU*mul over a
// prefill's hidden activations, one attention head (head_dim 64, kv_dim 768) over n keys.
void BM_softmax(benchmark::State& st, const KernelTable* t, size_t n) {
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> u(-8, 8);
  std::vector<float> x0(n), x(n);
  for (auto& v : x0) v = u(rng);
  for (auto _ : st) {
    x = x0;
    t->softmax(x.data(), n);
    benchmark::ClobberMemory();
  }
  st.counters["val/s"] =
      benchmark::Counter(double(n) * st.iterations(), benchmark::Counter::kIsRate);
}

// The same softmax with libm's expf per element (the kernels' code before exp_f32), for comparison.
void BM_softmax_libm(benchmark::State& st, size_t n) {
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> u(-8, 8);
  std::vector<float> x0(n), x(n);
  for (auto& v : x0) v = u(rng);
  for (auto _ : st) {
    x = x0;
    float mx = x[0];
    for (size_t i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
    float sum = 0.0f;
    for (size_t i = 0; i < n; ++i) {
      x[i] = std::exp(x[i] - mx);
      sum = sum + x[i];
    }
    for (size_t i = 0; i < n; ++i) x[i] = x[i] / sum;
    benchmark::ClobberMemory();
  }
  st.counters["val/s"] =
      benchmark::Counter(double(n) * st.iterations(), benchmark::Counter::kIsRate);
}

void BM_silu(benchmark::State& st, const KernelTable* t, size_t n) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-6, 6);
  std::vector<float> g(n), up(n), y(n);
  for (auto& v : g) v = u(rng);
  for (auto& v : up) v = u(rng);
  for (auto _ : st) {
    if (t != nullptr) {
      t->silu_mul(g.data(), up.data(), n, y.data());
    } else {  // libm's expf per element (before exp_f32)
      for (size_t i = 0; i < n; ++i) y[i] = (g[i] * (1.0f / (1.0f + std::exp(-g[i])))) * up[i];
    }
    benchmark::ClobberMemory();
  }
  st.counters["val/s"] =
      benchmark::Counter(double(n) * st.iterations(), benchmark::Counter::kIsRate);
}

// `heads` query heads sharing one KV head (8: TinyLlama's GQA group; 1: MHA) over n_keys keys.
// sets > 1: that many caches (the head's keys contiguous, as the runtime lays them out) taken in
// turn, so that they come from DRAM as in decode; 1: the same one every time (from cache).
void BM_attention(benchmark::State& st, const KernelTable* t, size_t heads, size_t n_keys,
                  size_t sets) {
  const size_t hd = 64, stride = sets > 1 ? hd : 768, set_floats = 2 * n_keys * stride;
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> q(heads * hd), kv(sets * set_floats), p(heads * n_keys), out(heads * hd);
  for (auto& x : q) x = u(rng);
  for (auto& x : kv) x = u(rng);
  size_t s = 0;
  for (auto _ : st) {
    const float* k = kv.data() + s * set_floats;
    t->attention(q.data(), heads, k, k + n_keys * stride, hd, n_keys, stride, p.data(), n_keys,
                 out.data());
    benchmark::ClobberMemory();
    s = s + 1 == sets ? 0 : s + 1;
  }
  st.counters["MAC/s"] =
      benchmark::Counter(2.0 * hd * n_keys * heads * st.iterations(), benchmark::Counter::kIsRate);
}

void register_all() {
  struct Shape {
    const char* name;
    size_t n, k;
  };
  const Shape shapes[] = {{"tl-qkv", 2048, 2048},
                          {"tl-up", 5632, 2048},
                          {"tl-down", 2048, 5632},
                          {"s110-up", 2048, 768},
                          {"s110-down", 768, 2048}};
  benchmark::RegisterBenchmark("softmax/libm-expf/n512", BM_softmax_libm, size_t{512})
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("silu/libm-expf/n131072", BM_silu, nullptr, size_t{131072})
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("stream/tl-up/dram", BM_stream_dram)->Unit(benchmark::kMillisecond);
  for (size_t vi = 0; vi < ember::kernels::variant_count(); ++vi) {
    const KernelTable* t = &ember::kernels::variant(vi);
    const std::string v = t->name;
    benchmark::RegisterBenchmark(("softmax/" + v + "/n512").c_str(), BM_softmax, t, size_t{512})
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("silu/" + v + "/n131072").c_str(), BM_silu, t, size_t{131072})
        ->Unit(benchmark::kMicrosecond);
    for (size_t heads : {size_t{1}, size_t{8}})
      for (size_t n : {size_t{64}, size_t{128}, size_t{512}, size_t{2048}})
        benchmark::RegisterBenchmark(
            ("attention/" + v + "/hd64/h" + std::to_string(heads) + "/n" + std::to_string(n))
                .c_str(),
            BM_attention, t, heads, n, size_t{1})
            ->Unit(benchmark::kMicrosecond);
    // 256 caches of 1024 keys x 64 dims (K and V, 512 KiB each): 128 MiB, from DRAM.
    benchmark::RegisterBenchmark(("attention/" + v + "/hd64/h8/n1024/dram").c_str(), BM_attention,
                                 t, size_t{8}, size_t{1024}, size_t{256})
        ->Unit(benchmark::kMicrosecond);
    for (const Shape& s : shapes)
      for (size_t m :
           {size_t{1}, size_t{2}, size_t{4}, size_t{8}, size_t{16}, size_t{64}, size_t{512}}) {
        if (v == "scalar" && m > 4) continue;
        const size_t g =
            size_t(std::getenv("BENCH_GROUP") ? std::atoi(std::getenv("BENCH_GROUP")) : 64);
        benchmark::RegisterBenchmark(
            ("u8s8/" + v + "/" + s.name + "/m" + std::to_string(m) + "/g64").c_str(), BM_u8s8, t, m,
            s.n, s.k, g, size_t{0}, ember::DType::kF32)
            ->Unit(benchmark::kMillisecond);
        // f16 params, activation groups of 16 (format 3).
        benchmark::RegisterBenchmark(
            ("u8s8/" + v + "/" + s.name + "/m" + std::to_string(m) + "/g64-f16-a16").c_str(),
            BM_u8s8, t, m, s.n, s.k, g, size_t{16}, ember::DType::kF16)
            ->Unit(benchmark::kMillisecond);
      }
    for (size_t m : {size_t{1}, size_t{2}, size_t{8}}) {
      benchmark::RegisterBenchmark(
          ("u8s8/" + v + "/tl-up/m" + std::to_string(m) + "/g64/dram").c_str(), BM_u8s8_dram, t, m,
          size_t{64}, ember::DType::kF32)
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(
          ("u8s8/" + v + "/tl-up/m" + std::to_string(m) + "/g64-f16-a16/dram").c_str(),
          BM_u8s8_dram, t, m, size_t{16}, ember::DType::kF16)
          ->Unit(benchmark::kMillisecond);
    }
    benchmark::RegisterBenchmark(("quant/" + v + "/m512/k2048/g64").c_str(), BM_quant, t,
                                 size_t{512}, size_t{2048}, size_t{64})
        ->Unit(benchmark::kMicrosecond);
    for (size_t m : {size_t{1}, size_t{64}}) {
      for (bool bl : {false, true}) {
        const std::string lay = bl ? "-blocked/" : "/";
        benchmark::RegisterBenchmark(("f32" + lay + v + "/2048x2048/m" + std::to_string(m)).c_str(),
                                     BM_f32, t, m, size_t{2048}, size_t{2048}, bl)
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark(("f16" + lay + v + "/2048x2048/m" + std::to_string(m)).c_str(),
                                     BM_f16, t, m, size_t{2048}, size_t{2048}, bl)
            ->Unit(benchmark::kMillisecond);
      }
    }
    // The L2-resident case: a 256 x 1024 matrix (1 MiB in f32). "-blocked": row-blocked weights.
    for (bool bl : {false, true}) {
      const std::string lay = bl ? "-blocked/" : "/";
      benchmark::RegisterBenchmark(("f32" + lay + v + "/256x1024/m1").c_str(), BM_f32, t, size_t{1},
                                   size_t{256}, size_t{1024}, bl)
          ->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark(("f16" + lay + v + "/256x1024/m1").c_str(), BM_f16, t, size_t{1},
                                   size_t{256}, size_t{1024}, bl)
          ->Unit(benchmark::kMicrosecond);
    }
    for (size_t m : {size_t{1}, size_t{2}}) {
      for (size_t esize : {size_t{4}, size_t{2}}) {
        for (bool bl : {false, true}) {
          benchmark::RegisterBenchmark(
              ((esize == 4 ? "f32" : "f16") + std::string(bl ? "-blocked/" : "/") + v + "/tl-up/m" +
               std::to_string(m) + "/dram")
                  .c_str(),
              BM_float_dram, t, esize, m, bl)
              ->Unit(benchmark::kMillisecond);
        }
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
