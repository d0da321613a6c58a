// Float matmuls (MatmulF32Fn / MatmulF16Fn), scalar, in the sequential order of kernels.h: one
// accumulator per output, acc = acc + w[t] * x[t] for t = 0..k-1 (no FMA), as llama2.c's run.c.
#include "core/float_blocks.h"
#include "kernels/common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {
namespace {

template <typename W, float (*Load)(W)>
void matmul_seq(const W* w, size_t k, const float* x, size_t m, float* y, size_t ldy, size_t n0,
                size_t n1) {
  for (size_t i = 0; i < m; ++i) {
    const float* xi = x + i * k;  // (k)
    size_t j = n0;
    // 4 rows at a time: 4 independent chains (each still summed in increasing t) for ILP.
    for (; j + 4 <= n1; j += 4) {
      const W* w0 = w + j * k;  // (4, k)
      const W* w1 = w0 + k;
      const W* w2 = w1 + k;
      const W* w3 = w2 + k;
      float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
      for (size_t t = 0; t < k; ++t) {
        const float xt = xi[t];
        a0 = a0 + Load(w0[t]) * xt;
        a1 = a1 + Load(w1[t]) * xt;
        a2 = a2 + Load(w2[t]) * xt;
        a3 = a3 + Load(w3[t]) * xt;
      }
      y[i * ldy + j] = a0;
      y[i * ldy + j + 1] = a1;
      y[i * ldy + j + 2] = a2;
      y[i * ldy + j + 3] = a3;
    }
    for (; j < n1; ++j) {
      const W* wj = w + j * k;  // (k)
      float acc = 0.0f;
      for (size_t t = 0; t < k; ++t) acc = acc + Load(wj[t]) * xi[t];
      y[i * ldy + j] = acc;
    }
  }
}

float load_f32(float v) { return v; }

// Row-blocked weights (core/float_blocks.h): per token and block, the block's 16 accumulators,
// each the sequential sum above; only rows in [n0, n1) are stored.
template <typename W, float (*Load)(W)>
void matmul_blocked(const W* w, size_t k, const float* x, size_t m, float* y, size_t ldy, size_t n0,
                    size_t n1) {
  constexpr size_t R = kFloatBlockRows;
  for (size_t b = n0 / R; b * R < n1; ++b) {
    const W* wb = w + b * k * R;  // (k, 16)
    const size_t r0 = n0 > b * R ? n0 - b * R : 0, r1 = n1 - b * R < R ? n1 - b * R : R;
    for (size_t i = 0; i < m; ++i) {
      const float* xi = x + i * k;
      float acc[R] = {};
      for (size_t t = 0; t < k; ++t) {
        const float xt = xi[t];
        for (size_t r = 0; r < R; ++r) acc[r] = acc[r] + Load(wb[t * R + r]) * xt;
      }
      for (size_t r = r0; r < r1; ++r) y[i * ldy + b * R + r] = acc[r];
    }
  }
}

}  // namespace

void f32_matmul_scalar(const float* w, size_t k, const float* x, size_t m, float* y, size_t ldy,
                       size_t n0, size_t n1) {
  matmul_seq<float, load_f32>(w, k, x, m, y, ldy, n0, n1);
}

void f16_matmul_scalar(const uint16_t* w, size_t k, const float* x, size_t m, float* y, size_t ldy,
                       size_t n0, size_t n1) {
  matmul_seq<uint16_t, f16_to_f32>(w, k, x, m, y, ldy, n0, n1);
}

void bf16_matmul_scalar(const uint16_t* w, size_t k, const float* x, size_t m, float* y, size_t ldy,
                        size_t n0, size_t n1) {
  matmul_seq<uint16_t, bf16_to_f32>(w, k, x, m, y, ldy, n0, n1);
}

void f32_matmul_blocked_scalar(const float* w, size_t k, const float* x, size_t m, float* y,
                               size_t ldy, size_t n0, size_t n1) {
  matmul_blocked<float, load_f32>(w, k, x, m, y, ldy, n0, n1);
}

void f16_matmul_blocked_scalar(const uint16_t* w, size_t k, const float* x, size_t m, float* y,
                               size_t ldy, size_t n0, size_t n1) {
  matmul_blocked<uint16_t, f16_to_f32>(w, k, x, m, y, ldy, n0, n1);
}

void bf16_matmul_blocked_scalar(const uint16_t* w, size_t k, const float* x, size_t m, float* y,
                                size_t ldy, size_t n0, size_t n1) {
  matmul_blocked<uint16_t, bf16_to_f32>(w, k, x, m, y, ldy, n0, n1);
}

}  // namespace kernels
}  // namespace ember
