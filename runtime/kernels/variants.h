// Declarations of every kernel variant, for dispatch.cc and the kernel tests. Each function has its
// family's signature from kernels.h; names are <dtype>_<op>[_<tile>]_<isa>.
#ifndef EMBER_KERNELS_VARIANTS_H_
#define EMBER_KERNELS_VARIANTS_H_

#include "kernels/kernels.h"

namespace ember {
namespace kernels {

#define EMBER_DECLARE_BLOCKED_MATMULS(isa)                                                        \
  void f32_matmul_blocked_##isa(const float* w, size_t k, const float* x, size_t m, float* y,     \
                                size_t ldy, size_t n0, size_t n1);                                \
  void f16_matmul_blocked_##isa(const uint16_t* w, size_t k, const float* x, size_t m, float* y,  \
                                size_t ldy, size_t n0, size_t n1);                                \
  void bf16_matmul_blocked_##isa(const uint16_t* w, size_t k, const float* x, size_t m, float* y, \
                                 size_t ldy, size_t n0, size_t n1);

#define EMBER_DECLARE_VARIANT_SET(isa)                                                            \
  void f32_s8_quantize_##isa(const float* x, size_t m, size_t k, size_t group, size_t act_group,  \
                             int8_t* a, float* d, int32_t* sum, float* msum);                     \
  void u8s8_matmul_##isa(const U8Matrix& w, const S8Acts& x, size_t m, float* y, size_t ldy,      \
                         size_t n0, size_t n1);                                                   \
  void f32_matmul_##isa(const float* w, size_t k, const float* x, size_t m, float* y, size_t ldy, \
                        size_t n0, size_t n1);                                                    \
  void f16_matmul_##isa(const uint16_t* w, size_t k, const float* x, size_t m, float* y,          \
                        size_t ldy, size_t n0, size_t n1);                                        \
  void bf16_matmul_##isa(const uint16_t* w, size_t k, const float* x, size_t m, float* y,         \
                         size_t ldy, size_t n0, size_t n1);                                       \
  EMBER_DECLARE_BLOCKED_MATMULS(isa)                                                              \
  void f32_rmsnorm_##isa(const float* x, const float* w, size_t n, float eps, float* y);          \
  void f32_silumul_##isa(const float* gate, const float* up, size_t n, float* out);               \
  void f32_softmax_##isa(float* x, size_t n);                                                     \
  void f32_exp_##isa(const float* x, size_t n, float* y);                                         \
  void f32_attention_##isa(const float* q, size_t n_heads, const float* k, const float* v,        \
                           size_t head_dim, size_t n_keys, size_t kv_stride, float* scores,       \
                           size_t scores_stride, float* out);                                     \
  void f16_attention_##isa(const float* q, size_t n_heads, const uint16_t* k, const uint16_t* v,  \
                           size_t head_dim, size_t n_keys, size_t kv_stride, float* scores,       \
                           size_t scores_stride, float* out);                                     \
  void u8_attention_##isa(const float* q, size_t n_heads, const KvRowsU8& k, const KvRowsU8& v,   \
                          size_t head_dim, size_t n_keys, float* scores, size_t scores_stride,    \
                          float* out);

EMBER_DECLARE_VARIANT_SET(scalar)
#if defined(__x86_64__) || defined(__i386__)
EMBER_DECLARE_VARIANT_SET(avx2)
// avx512vnni differs from avx2 in the integer dot and the float matmuls (16 rows per register);
// its table reuses avx2's other kernels.
void f32_matmul_avx512vnni(const float* w, size_t k, const float* x, size_t m, float* y, size_t ldy,
                           size_t n0, size_t n1);
void f16_matmul_avx512vnni(const uint16_t* w, size_t k, const float* x, size_t m, float* y,
                           size_t ldy, size_t n0, size_t n1);
void bf16_matmul_avx512vnni(const uint16_t* w, size_t k, const float* x, size_t m, float* y,
                            size_t ldy, size_t n0, size_t n1);
EMBER_DECLARE_BLOCKED_MATMULS(avx512vnni)
void u8s8_matmul_avx512vnni(const U8Matrix& w, const S8Acts& x, size_t m, float* y, size_t ldy,
                            size_t n0, size_t n1);
#endif
#if defined(__aarch64__) || defined(__ARM_NEON)
EMBER_DECLARE_VARIANT_SET(neon)
#endif
#if defined(__aarch64__)
// neon-dot and i8mm differ from neon only in the integer dot; their tables reuse neon's float ops.
void u8s8_matmul_neondot(const U8Matrix& w, const S8Acts& x, size_t m, float* y, size_t ldy,
                         size_t n0, size_t n1);
void u8s8_matmul_i8mm(const U8Matrix& w, const S8Acts& x, size_t m, float* y, size_t ldy, size_t n0,
                      size_t n1);
#endif

#if defined(__ARM_FEATURE_MVE)
// mve (Armv8.1-M Helium) differs from scalar only in the u8 x s8 matmul; its table reuses the rest.
void u8s8_matmul_mve(const U8Matrix& w, const S8Acts& x, size_t m, float* y, size_t ldy, size_t n0,
                     size_t n1);
#endif

#undef EMBER_DECLARE_VARIANT_SET
#undef EMBER_DECLARE_BLOCKED_MATMULS

}  // namespace kernels
}  // namespace ember

#endif  // EMBER_KERNELS_VARIANTS_H_
