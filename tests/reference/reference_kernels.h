// Naive reference kernels, used only by tests: the plainest loops that state each kernel family's
// contract (kernels.h), in double where the contract allows, never optimised. Fast kernels are
// compared against these; they must never call into runtime/kernels.
#ifndef EMBER_TESTS_REFERENCE_REFERENCE_KERNELS_H_
#define EMBER_TESTS_REFERENCE_REFERENCE_KERNELS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/zero_one.h"

namespace ember_ref {

// Activation quantization per the contract, in activation groups of `act_group` values: d = max|x|
// / 127 (float), a = round-half-even(x * (1/d)) clamped to +-127, sum = sum of a; and, per weight
// group of `group`, msum = the sum of its activation groups' d * sum (in double, then rounded).
// x (m, k); a (m, k); d, sum (m, act groups); msum (m, groups).
void quantize_acts_s8(const float* x, size_t m, size_t k, size_t group, size_t act_group, int8_t* a,
                      float* d, int32_t* sum, double* msum);

// Exact integer dots: isum[(i * n + j) * groups + g] = sum over the group of q[j][t] * a[i][t].
std::vector<int64_t> u8s8_group_dots(const uint8_t* q, size_t n, size_t k, size_t group,
                                     const int8_t* a, size_t m);

// y[i][j] = sum over weight groups g of s * sum_h d_h * isum_h + m * sum_h d_h * asum_h (h: the
// activation groups of g), in double. Also returns the sum of |terms| per output in *mag (for
// relative tolerances) when mag != nullptr. d, sum: (m, act groups).
void matmul_u8s8(const uint8_t* q, const ember::ZeroOneParams* p, size_t n, size_t k, size_t group,
                 size_t act_group, const int8_t* a, const float* d, const int32_t* sum, size_t m,
                 double* y, double* mag);

// y[i][j] = sum_t w[j][t] * x[i][t] in double (w already widened to float); mag = sum |w x|.
void matmul_f32(const float* w, size_t n, size_t k, const float* x, size_t m, double* y,
                double* mag);

float f16_to_f32(uint16_t h);      // via ldexp, independent of the kernels' bit twiddling
uint16_t f32_to_f16_rne(float f);  // nearest f16, ties to even, by arithmetic
float bf16_to_f32(uint16_t h);

void rmsnorm(const float* x, const float* w, size_t n, float eps, double* y);
void silu_mul(const float* gate, const float* up, size_t n, double* y);
void softmax(const float* x, size_t n, double* y);

// One query head over a cache, in double: p = softmax(q . k_t / sqrt(head_dim)) over t < n_keys,
// out[d] = sum_t p_t v_t[d]; key / value t at k / v + t * kv_stride. mag[d] = sum_t p_t |v_t[d]|.
void attention(const float* q, const float* k, const float* v, size_t head_dim, size_t n_keys,
               size_t kv_stride, double* p, double* out, double* mag);

}  // namespace ember_ref

#endif  // EMBER_TESTS_REFERENCE_REFERENCE_KERNELS_H_
