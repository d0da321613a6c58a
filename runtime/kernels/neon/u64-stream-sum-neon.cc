// Read probe (StreamSumFn), NEON: 16-byte loads, 64 bytes per step into four sums.
#include <arm_neon.h>

#include "kernels/variants.h"

namespace ember {
namespace kernels {

uint64_t u64_stream_sum_neon(const uint64_t* p, size_t n) {
  uint64x2_t a0 = vdupq_n_u64(0), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    a0 = vaddq_u64(a0, vld1q_u64(p + i));
    a1 = vaddq_u64(a1, vld1q_u64(p + i + 2));
    a2 = vaddq_u64(a2, vld1q_u64(p + i + 4));
    a3 = vaddq_u64(a3, vld1q_u64(p + i + 6));
  }
  uint64_t s = vaddvq_u64(vaddq_u64(vaddq_u64(a0, a1), vaddq_u64(a2, a3)));
  for (; i < n; ++i) s += p[i];
  return s;
}

}  // namespace kernels
}  // namespace ember
