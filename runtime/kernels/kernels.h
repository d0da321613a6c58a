// The kernel seam. One function-pointer type per family; every variant of a family (scalar, avx2,
// neon, neon-dot, i8mm, ...) has exactly that signature. Kernels are stateless and compute any
// sub-range of output rows [n0, n1) so that threading stays outside them (the caller splits rows
// across a pthreadpool). Kernels never allocate and never test the ISA: dispatch.cc fills one
// KernelTable once, from cpuinfo, and nothing else looks at the CPU.
//
// Same tokens on every CPU: every variant of a family returns bit-identical floats for the same
// inputs. Integer parts are exact by construction; float parts are evaluated in the fixed order
// that the scalar variant documents (see each family), with no FMA contraction unless the family
// says so.
//
// Float order (the definition every variant reproduces; scalar helpers in kernels/common.h). It is
// llama2.c's run.c order, so that the f32 path reproduces run.c's logits (to ~1.4e-5 on
// stories260K; ~5e-8 with libm's expf, see exp below):
// - Float matmuls (f32 / f16 / bf16 weights widened exactly to f32): per output, one accumulator
//   from +0, acc = acc + w[t] * x[t] for t = 0..k-1 (the product rounded first: no FMA). SIMD
//   variants vectorize ACROSS OUTPUT ROWS (one register = the accumulators of 4 or 8 rows, W blocks
//   transposed in registers), never along k.
// - RMSNorm: sum = sum + x[i] * x[i] sequentially from +0, mean = sum / n,
//   scale = 1 / sqrt(mean + eps), y[i] = (x[i] * scale) * w[i].
// - Softmax: exact max; x[i] = exp(x[i] - max) with sum = sum + x[i] sequentially from +0; then
//   x[i] = x[i] / sum (a division, not a multiply by 1 / sum).
// - SiLU * mul: (g * (1 / (1 + exp(-g)))) * u.
// - exp is Ember's own exp_f32 (kernels/common.h): evaluated in double with plain multiplies and
//   adds (no FMA) — a fixed range reduction, a degree-10 Horner polynomial, scaling by 2^k through
//   exponent bits — and rounded once to float. SIMD variants evaluate it on 2 / 4 double lanes with
//   the same operations, so its bits are the same everywhere by construction (no libm). It is
//   nearly correctly rounded (< 0.5001 ulp on [-88, 88], every float measured): it differs from
//   glibc's expf on ~8e-5 of inputs (mostly glibc's own misroundings), which moves stories260K's
//   f32 logits from ~5e-8 to ~1.4e-5 off run.c's (criterion: max(1e-5, 1e-4 |ref|), met).
//   NaN passes unchanged, exp(-inf) = 0, exp(+inf) = +inf.
// - The reductions above (max, sums) are O(n) and stay sequential scalar loops in every variant;
//   exp and the element-wise multiplies / divides use SIMD (IEEE exact, hence the same bits).
// - u8 x s8: the integer dot of each activation group is exact (any order, any sign trick); s and
//   m are the weight group's scale and min (f16 params widened exactly to f32). Weight groups in
//   increasing order, acc from +0. Where the activation group is the weight group (one d and
//   asum per weight group; the only order before format 3):
//     acc = acc + ((s * d) * (float)isum + (m * d) * (float)asum)
//   Where a weight group holds H > 1 activation groups h = 0..H-1 (scales d_h, integer dots
//   isum_h):
//     f = d_0 * (float)isum_0;  f = f + d_h * (float)isum_h  for h = 1..H-1 in order;
//     acc = acc + (s * f + m * msum)
//   with msum the same sum over (d_h, (float)asum_h), computed once per token and weight group by
//   the activation quantization (below).
// - Activation quantization: d = amax / 127, a = nearbyint(x * (1 / d)) clamped to +-127 (ties to
//   even, as cvtps2dq / fcvtns do), per activation group; msum of each weight group as above,
//   in scalar code in every variant.
//
// Shapes: weights are (n, k) row-major — n outputs, k inputs, like nn.Linear.weight. Activations
// are (m, k) row-major: m tokens. Outputs are (m, ldy) with the result in columns [n0, n1).
#ifndef EMBER_KERNELS_KERNELS_H_
#define EMBER_KERNELS_KERNELS_H_

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "core/zero_one.h"

namespace ember {
namespace kernels {

// --- Activation quantization for the u8 x s8 matmul ---------------------------------------------
// x (m, k) float -> a (m, k) int8 with one scale per activation group of `act_group` values along
// k (act_group divides `group`, the weight's group, or equals it; group == k for per-row weights;
// the last group may be partial): d = max|x| / 127, a = round(x / d) in -127..127 (d = 0 and
// a = 0 for an all-zero group), sum = the sum of a in the group (for the weight-min correction);
// d, sum: (m, act groups). msum: (m, weight groups), each weight group's sum over its activation
// groups of d * (float)sum in the Float order above (the min term of the H > 1 order).
using QuantizeActsS8Fn = void (*)(const float* x, size_t m, size_t k, size_t group,
                                  size_t act_group, int8_t* a, float* d, int32_t* sum, float* msum);

// --- Zero-one u8 weight x s8 activation matmul ---------------------------------------------------
// A u8 matrix (n, k) as stored (core/zero_one.h): row blocks of 16 rows, units of 4 bytes per row,
// params (blocks, groups, {16 scales, 16 mins}) of params_type, groups of `group` bytes along k
// (the last may be partial).
struct U8Matrix {
  const uint8_t* data;  // (blocks, groups, units, 16, 4)
  const void* params;   // (blocks, groups, 32) f32 or f16
  DType params_type;    // kF32 or kF16
  size_t k, group;
};
// Activations (m, k) quantized by QuantizeActsS8Fn with the matrix's group and act_group.
struct S8Acts {
  const int8_t* a;     // (m, k)
  const float* d;      // (m, act groups)
  const int32_t* sum;  // (m, act groups)
  const float* msum;   // (m, groups); read only where act_group < group
  size_t act_group;    // divides group (or equals it)
};
// For rows j in [n0, n1) — any range: a variant computes the 16-row blocks that overlap it and
// writes only those rows —
// y[i][j] = sum over groups g of  s[j][g] * sum_h d[i][h] * (float)isum(q[j][h] . a[i][h])
//                               + min[j][g] * sum_h d[i][h] * (float)sum[i][h]
// (h: the activation groups of weight group g) accumulated in float in the Float order above.
// Each weight is read once per call whatever m is.
using MatmulU8S8Fn = void (*)(const U8Matrix& w, const S8Acts& x, size_t m, float* y, size_t ldy,
                              size_t n0, size_t n1);

// --- Float matmul: y[i][j] = dot(w[j], x[i]) over k, rows j in [n0, n1); w (n, k) f32 ------------
using MatmulF32Fn = void (*)(const float* w, size_t k, const float* x, size_t m, float* y,
                             size_t ldy, size_t n0, size_t n1);

// --- Half-precision weights: as MatmulF32Fn with w (n, k) IEEE f16 / bfloat16 bits, widened to
// f32.
using MatmulF16Fn = void (*)(const uint16_t* w, size_t k, const float* x, size_t m, float* y,
                             size_t ldy, size_t n0, size_t n1);

// --- Float matmuls on row-blocked weights (core/float_blocks.h): the signatures and results of
// MatmulF32Fn / MatmulF16Fn (the same order, so the same bits as the row-major kernels) with w
// blocked: value (j, t) at ((j / 16) * k + t) * 16 + j % 16, the last block padded with zero rows.
// A variant computes the 16-row blocks that overlap [n0, n1) and writes only rows in [n0, n1).
// SIMD variants keep a block's accumulators in registers and load 16 rows' values of one t at
// once: no transposes.

// --- Float ops of the forward pass
// ---------------------------------------------------------------- y = x / sqrt(mean(x^2) + eps) *
// w, n values.
using RmsNormFn = void (*)(const float* x, const float* w, size_t n, float eps, float* y);
// out[i] = silu(gate[i]) * up[i], n values.
using SiluMulFn = void (*)(const float* gate, const float* up, size_t n, float* out);
// In place: x[i] = exp(x[i] - max) / sum, n values.
using SoftmaxFn = void (*)(float* x, size_t n);
// y[i] = exp(x[i]), n values: the exp of the Float order (exp_f32). Not in the table: softmax and
// SiLU use it inside each variant; tests call the variants' f32_exp_* (variants.h) directly.
using ExpFn = void (*)(const float* x, size_t n, float* y);

// --- Attention of a group of query heads over one KV head's cache -----------------------------
// n_heads query heads that share one KV head (GQA: num_heads / num_kv_heads of them; 1 for MHA),
// q (n_heads, head_dim) row-major. Keys and values of position t at k + t * kv_stride and
// v + t * kv_stride (head_dim floats each; kv_stride >= head_dim, e.g. kv_dim with the KV head's
// offset folded into k and v). For each head h, with qh = q + h * head_dim:
//   s[t] = (sum over i of qh[d_i] * k_t[d_i]) / sqrt(head_dim)   for t < n_keys, where the sum
//          runs sequentially from +0 in run.c's order d_i = (i % 2) * (head_dim / 2) + i / 2
//          (RoPE pairs interleaved over our rotate_half layout) and sqrt is sqrtf(head_dim);
//   s = softmax(s)   (the Softmax order above);
//   out[h * head_dim + d] = sum over t of s[t] * v_t[d], t increasing, from +0 (out = out + p * v).
// s is scores + h * scores_stride (scores_stride >= n_keys; the probabilities on return);
// out: (n_heads, head_dim); n_keys >= 1, n_heads >= 1. Each head's results are those of a call
// with n_heads = 1: the grouping only lets a variant read (and transpose) each key and value once
// for several heads. SIMD variants compute the scores ACROSS KEYS (one lane per key, each lane the
// sequential sum above; K blocks transposed in registers) and the V sum ACROSS d: the same bits as
// scalar.
using AttentionFn = void (*)(const float* q, size_t n_heads, const float* k, const float* v,
                             size_t head_dim, size_t n_keys, size_t kv_stride, float* scores,
                             size_t scores_stride, float* out);

// --- Attention over an f16 or u8 cache ----------------------------------------------------------
// The same contract as AttentionFn with keys and values read from the cache as stored, never
// copied to float. f16: k_t[d] = f16_to_f32(k[t * kv_stride + d]) (exact widening), and then
// exactly AttentionFn's order.
using AttentionF16Fn = void (*)(const float* q, size_t n_heads, const uint16_t* k,
                                const uint16_t* v, size_t head_dim, size_t n_keys, size_t kv_stride,
                                float* scores, size_t scores_stride, float* out);
// u8: zero-one rows, one (scale, min) pair per key (per token and KV head, f16, widened exactly):
// x_t[d] = min_t + scale_t * q_t[d] (core/zero_one.h, zero_one_quantize_kv_row). The kernel uses
// the algebra instead of dequantizing, in this order (every step one rounding):
//   acc_t = sum over i of qh[d_i] * (float)kq_t[d_i], sequentially from +0 in the run.c order d_i;
//   qsum = sum over i of qh[d_i] in the same order (once per head);
//   s[t] = (k_scale_t * acc_t + k_min_t * qsum) / sqrt(head_dim);   s = softmax(s);
//   out[d] = sum over t of (s[t] * v_scale_t) * (float)vq_t[d], t increasing from +0,
//            then + pm, where pm = sum over t of s[t] * v_min_t, t increasing from +0.
struct KvRowsU8 {
  const uint8_t* q;       // (n_keys, stride): key / value t at q + t * stride, head_dim bytes
  const uint16_t* scale;  // (n_keys) f16
  const uint16_t* min;    // (n_keys) f16
  size_t stride;          // >= head_dim
};
using AttentionU8Fn = void (*)(const float* q, size_t n_heads, const KvRowsU8& k, const KvRowsU8& v,
                               size_t head_dim, size_t n_keys, float* scores, size_t scores_stride,
                               float* out);

struct KernelTable {
  const char* name;  // "scalar", "avx2", "neon", "neon-dot", "i8mm", ...
  QuantizeActsS8Fn quantize_acts_s8;
  MatmulU8S8Fn matmul_u8s8;
  MatmulF32Fn matmul_f32;
  MatmulF16Fn matmul_f16;
  MatmulF16Fn matmul_bf16;
  MatmulF32Fn matmul_f32_blocked;
  MatmulF16Fn matmul_f16_blocked;
  MatmulF16Fn matmul_bf16_blocked;
  RmsNormFn rmsnorm;
  SiluMulFn silu_mul;
  SoftmaxFn softmax;
  AttentionFn attention;
  AttentionF16Fn attention_f16;
  AttentionU8Fn attention_u8;
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
