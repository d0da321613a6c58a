// The kernel seam. One function-pointer type per family; every variant of a family (scalar, avx2,
// neon, neon-dot, i8mm, ...) has exactly that signature. Kernels are stateless and compute any
// sub-range of output rows [n0, n1) so that threading stays outside them (the caller splits rows
// across a pthreadpool). Kernels never allocate and never test the ISA: dispatch.cc fills one
// KernelTable once, from cpuinfo, and nothing else looks at the CPU.
//
// Same tokens on every CPU: every variant of a family returns bit-identical floats for the same
// inputs. Integer parts are exact by construction; float parts are evaluated in the fixed order that
// the scalar variant documents (see each family), with no FMA contraction unless the family says so.
//
// Float order (the definition every variant reproduces; scalar helpers in kernels/common.h):
// - "8-lane order" for a sum over i of terms t_i (float matmuls, RMSNorm's sum of squares, softmax's
//   sum): lane l = i % 8 accumulates its terms in increasing i as lane = lane + t_i (the product
//   t_i = w_i * x_i rounded first: no FMA), starting at +0; then
//   ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)). An AVX2 vector accumulator reduced by halving
//   (256 -> 128 -> 64 -> 32 bits) or two NEON q registers give exactly this order.
// - u8 x s8: the integer dot of each group is exact (any order, any sign trick); the float part is
//   acc = acc + ((s * d) * (float)isum + (m * d) * (float)asum), groups in increasing order from +0.
// - exp (SiLU, softmax) is Ember's own: range reduction by round-to-nearest-even n = x * log2(e),
//   r = (x - n * ln2_hi) - n * ln2_lo, a degree-7 Horner polynomial without FMA, times 2^n; x < -87
//   gives 0 and x > 88 is clamped (common.h). libm's expf is never used by kernels.
// - Activation quantization: d = amax / 127, a = nearbyint(x * (1 / d)) clamped to +-127 (ties to
//   even, as cvtps2dq / fcvtns do).
//
// Shapes: weights are (n, k) row-major — n outputs, k inputs, like nn.Linear.weight. Activations are
// (m, k) row-major: m tokens. Outputs are (m, ldy) with the result in columns [n0, n1).
#ifndef EMBER_KERNELS_KERNELS_H_
#define EMBER_KERNELS_KERNELS_H_

#include <cstddef>
#include <cstdint>

#include "core/zero_one.h"

namespace ember {
namespace kernels {

// --- Activation quantization for the u8 x s8 matmul ---------------------------------------------
// x (m, k) float -> a (m, k) int8 with one scale per group of `group` values along k (the weight's
// group; group == k for per-row weights; the last group may be partial): d = max|x| / 127,
// a = round(x / d) in -127..127 (d = 0 and a = 0 for an all-zero group), plus sum[g] = sum of a in
// the group (for the weight-min correction). d, sum: (m, groups).
using QuantizeActsS8Fn = void (*)(const float* x, size_t m, size_t k, size_t group, int8_t* a,
                                  float* d, int32_t* sum);

// --- Zero-one u8 weight x s8 activation matmul (GEMV when m == 1) --------------------------------
// y[i][j] = sum over groups g of  s[j][g] * d[i][g] * (float)isum(q[j][g] . a[i][g])
//                               + min[j][g] * d[i][g] * (float)sum[i][g]
// accumulated in float in increasing g, for rows j in [n0, n1). q: (n, k) u8, p: (n, groups).
using MatmulU8S8Fn = void (*)(const uint8_t* q, const ZeroOneParams* p, size_t k, size_t group,
                              const int8_t* a, const float* d, const int32_t* sum, size_t m,
                              float* y, size_t ldy, size_t n0, size_t n1);

// --- Float matmul: y[i][j] = dot(w[j], x[i]) over k, rows j in [n0, n1); w (n, k) f32 ------------
using MatmulF32Fn = void (*)(const float* w, size_t k, const float* x, size_t m, float* y,
                             size_t ldy, size_t n0, size_t n1);

// --- Half-precision weights: as MatmulF32Fn with w (n, k) IEEE f16 / bfloat16 bits, widened to f32.
using MatmulF16Fn = void (*)(const uint16_t* w, size_t k, const float* x, size_t m, float* y,
                             size_t ldy, size_t n0, size_t n1);

// --- Float ops of the forward pass ----------------------------------------------------------------
// y = x / sqrt(mean(x^2) + eps) * w, n values.
using RmsNormFn = void (*)(const float* x, const float* w, size_t n, float eps, float* y);
// out[i] = silu(gate[i]) * up[i], n values.
using SiluMulFn = void (*)(const float* gate, const float* up, size_t n, float* out);
// In place: x[i] = exp(x[i] - max) / sum, n values.
using SoftmaxFn = void (*)(float* x, size_t n);

struct KernelTable {
  const char* name;  // "scalar", "avx2", "neon", "neon-dot", "i8mm", ...
  QuantizeActsS8Fn quantize_acts_s8;
  MatmulU8S8Fn matmul_u8s8;
  MatmulF32Fn matmul_f32;
  MatmulF16Fn matmul_f16;
  MatmulF16Fn matmul_bf16;
  RmsNormFn rmsnorm;
  SiluMulFn silu_mul;
  SoftmaxFn softmax;
};

// The table in use: chosen once (first call) from cpuinfo, or forced by force_variant() /
// the EMBER_KERNELS environment variable. Thread-safe after the first call.
const KernelTable& active();
// All variants this CPU can run, scalar first.
size_t variant_count();
const KernelTable& variant(size_t i);
// Makes the named variant active; false if unknown or not runnable here.
bool force_variant(const char* name);

}  // namespace kernels
}  // namespace ember

#endif  // EMBER_KERNELS_KERNELS_H_
