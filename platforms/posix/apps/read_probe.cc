#include "read_probe.h"

#include <sys/mman.h>

#include <algorithm>
#include <thread>

#include "app_util.h"

namespace ember_app {

namespace {
typedef uint64_t WideWords __attribute__((vector_size(64), aligned(8)));
}  // namespace

// One body, compiled once per x86 level by the compiler (function multiversioning picks the clone
// at load time): the 64-byte vector type becomes zmm, ymm or xmm loads.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
uint64_t
wide_sum(const uint64_t* p, size_t n) {
  WideWords a0 = {}, a1 = {};
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 += *reinterpret_cast<const WideWords*>(p + i);
    a1 += *reinterpret_cast<const WideWords*>(p + i + 8);
  }
  const WideWords a = a0 + a1;
  uint64_t s = 0;
  for (int l = 0; l < 8; ++l) s += a[l];
  for (; i < n; ++i) s += p[i];
  return s;
}

bool ProbeBuffer::allocate(size_t n) {
  release();
  if (n == 0) return true;
  const size_t huge = size_t{2} << 20;
  len_ = (n * sizeof(uint64_t) + huge - 1) / huge * huge + huge;  // room to align the start
  void* m = mmap(nullptr, len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) {
    len_ = 0;
    return false;
  }
  map_ = m;
  const uintptr_t base = reinterpret_cast<uintptr_t>(m);
  const uintptr_t start = (base + huge - 1) / huge * huge;
  p_ = reinterpret_cast<uint64_t*>(start);
#ifdef MADV_HUGEPAGE
  (void)madvise(p_, len_ - (start - base), MADV_HUGEPAGE);  // a hint: 4 KiB pages still work
#endif
  n_ = n;
  for (size_t i = 0; i < n; ++i) p_[i] = (i + 1) * 0x9E3779B97F4A7C15ull;
  return true;
}

void ProbeBuffer::release() {
  if (map_ != nullptr) munmap(map_, len_);
  map_ = nullptr;
  p_ = nullptr;
  n_ = len_ = 0;
}

double measure_read_bandwidth(ProbeBuffer& buf, uint32_t threads, std::vector<double>* rounds) {
  const size_t n = buf.size();
  const uint64_t* words = buf.data();
  std::vector<uint64_t> sinks(size_t{threads} * 8);
  double best = 0.0, plain_rate = 0.0;
  for (int pass = 0; pass < 10; ++pass) {
    const bool wide = pass % 2 == 1;
    std::vector<std::thread> pool;
    const double t0 = now_seconds();
    for (uint32_t t = 0; t < threads; ++t) {
      pool.emplace_back([&, t, wide] {
        const size_t b = n * t / threads, e = n * (t + 1) / threads;
        if (wide) {
          sinks[t * 8] = wide_sum(words + b, e - b);
          return;
        }
        uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        size_t i = b;
        for (; i + 4 <= e; i += 4) {
          a0 += words[i];
          a1 += words[i + 1];
          a2 += words[i + 2];
          a3 += words[i + 3];
        }
        for (; i < e; ++i) a0 += words[i];
        sinks[t * 8] = a0 + a1 + a2 + a3;
      });
    }
    for (auto& th : pool) th.join();
    const double rate = static_cast<double>(n * sizeof(uint64_t)) / (now_seconds() - t0);
    if (wide) rounds->push_back(std::max(rate, plain_rate));
    plain_rate = rate;
    best = std::max(best, rate);
  }
  volatile uint64_t keep = 0;
  for (uint64_t v : sinks) keep = keep + v;
  (void)keep;
  return best;
}

}  // namespace ember_app
