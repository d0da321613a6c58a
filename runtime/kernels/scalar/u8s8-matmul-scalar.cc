// Zero-one u8 weight x s8 activation matmul (MatmulU8S8Fn), scalar: one 16-row block and one token
// at a time, 16 integer sums per activation group side by side as the stored units lay them out.
#include "kernels/common.h"
#include "kernels/variants.h"

namespace ember {
namespace kernels {
namespace {

constexpr size_t R = kZeroOneBlockRows, U = kZeroOneUnitBytes, S = kZeroOneUnitStride;

// isum[r] = the dot of bytes [t0, t0 + len) of group g's weights (row r) with ag[0..len).
inline void dots16(const uint8_t* wg, size_t t0, size_t len, const int8_t* ag, int32_t* isum) {
  for (size_t r = 0; r < R; ++r) isum[r] = 0;
  for (size_t t = t0; t < t0 + len; ++t) {
    const uint8_t* col = wg + (t / U) * S + t % U;  // byte t of the group, row r at r * U
    const int32_t av = ag[t - t0];
    for (size_t r = 0; r < R; ++r) isum[r] += static_cast<int32_t>(col[r * U]) * av;
  }
}

// Token i's 16 rows of one block, groups in order (kernels.h Float order, both forms).
template <bool kF16>
void block_token(const uint8_t* wb, const uint8_t* pb, const U8Blocks& L, const S8Acts& x, size_t i,
                 float* facc) {
  const bool sub = L.act_group < L.group;
  const int8_t* ai = x.a + i * L.k;         // (k)
  const float* di = x.d + i * L.acts;       // (act groups)
  const int32_t* si = x.sum + i * L.acts;   // (act groups)
  const float* mi = x.msum + i * L.groups;  // (groups)
  for (size_t r = 0; r < R; ++r) facc[r] = 0.0f;
  for (size_t g = 0; g < L.groups; ++g) {
    const uint8_t* wg = wb + g * L.group_bytes;
    const uint8_t* pg = pb + g * L.group_params_bytes;
    const size_t k0 = g * L.group, len = L.len(g);
    int32_t isum[R];
    if (!sub) {
      dots16(wg, 0, len, ai + k0, isum);
      for (size_t r = 0; r < R; ++r) {
        facc[r] = facc[r] + u8s8_group_term(u8_param<kF16>(pg, r), u8_param<kF16>(pg, R + r), di[g],
                                            isum[r], si[g]);
      }
      continue;
    }
    float f[R] = {};  // (each set by the first activation group)
    for (size_t t0 = 0; t0 < len; t0 += L.act_group) {
      const size_t h = (k0 + t0) / L.act_group;
      dots16(wg, t0, L.act_len(h), ai + k0 + t0, isum);
      for (size_t r = 0; r < R; ++r) {
        const float p = di[h] * static_cast<float>(isum[r]);
        f[r] = t0 == 0 ? p : f[r] + p;
      }
    }
    for (size_t r = 0; r < R; ++r) {
      facc[r] = facc[r] + (u8_param<kF16>(pg, r) * f[r] + u8_param<kF16>(pg, R + r) * mi[g]);
    }
  }
}

template <bool kF16>
void matmul(const U8Matrix& w, const S8Acts& x, size_t m, float* y, size_t ldy, size_t n0,
            size_t n1) {
  const U8Blocks L(w, x.act_group);
  const uint8_t* params = static_cast<const uint8_t*>(w.params);
  for (size_t b = n0 / R; b * R < n1; ++b) {
    const uint8_t* wb = w.data + b * L.block_bytes;                    // (groups, units, 16, 4)
    const uint8_t* pb = params + b * L.groups * L.group_params_bytes;  // (groups, 32 params)
    const size_t r0 = b * R < n0 ? n0 - b * R : 0;
    const size_t r1 = n1 - b * R < R ? n1 - b * R : R;
    for (size_t i = 0; i < m; ++i) {
      float facc[R];
      block_token<kF16>(wb, pb, L, x, i, facc);
      for (size_t r = r0; r < r1; ++r) y[i * ldy + b * R + r] = facc[r];
    }
  }
}

}  // namespace

void u8s8_matmul_scalar(const U8Matrix& w, const S8Acts& x, size_t m, float* y, size_t ldy,
                        size_t n0, size_t n1) {
  if (n1 <= n0 || m == 0) return;
  if (w.params_type == DType::kF16) {
    matmul<true>(w, x, m, y, ldy, n0, n1);
  } else {
    matmul<false>(w, x, m, y, ldy, n0, n1);
  }
}

}  // namespace kernels
}  // namespace ember
