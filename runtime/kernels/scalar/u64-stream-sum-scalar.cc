// Read probe (StreamSumFn), scalar: four independent 64-bit sums.
#include "kernels/variants.h"

namespace ember {
namespace kernels {

uint64_t u64_stream_sum_scalar(const uint64_t* p, size_t n) {
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a0 += p[i];
    a1 += p[i + 1];
    a2 += p[i + 2];
    a3 += p[i + 3];
  }
  for (; i < n; ++i) a0 += p[i];
  return a0 + a1 + a2 + a3;
}

}  // namespace kernels
}  // namespace ember
