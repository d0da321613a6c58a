// Read probe (StreamSumFn), AVX-512: one cache line per load, two per step into two sums.
#include <immintrin.h>

#include "kernels/variants.h"

namespace ember {
namespace kernels {

uint64_t u64_stream_sum_avx512vnni(const uint64_t* p, size_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm512_add_epi64(a0, _mm512_loadu_si512(p + i));
    a1 = _mm512_add_epi64(a1, _mm512_loadu_si512(p + i + 8));
  }
  // (Not _mm512_reduce_add_epi64: GCC's adds its lanes as signed long long, which may overflow.)
  alignas(64) uint64_t lanes[8];
  _mm512_store_si512(lanes, _mm512_add_epi64(a0, a1));
  uint64_t s = 0;
  for (uint64_t v : lanes) s += v;
  for (; i < n; ++i) s += p[i];
  return s;
}

}  // namespace kernels
}  // namespace ember
