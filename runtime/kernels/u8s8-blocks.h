// The loop every u8 x s8 matmul variant shares (MatmulU8S8Fn): over the 16-row blocks that overlap
// [n0, n1) and over the tokens in register tiles of up to kMaxTile. With at most kMaxTile tokens
// one tile walks all of a block's groups (decode: the weights stream once); with more, the groups
// come in panels of about kPanelBytes that stay in L1 while the tiles pass over them, the running
// sums of each row kept in y between panels. A variant supplies tiles[mr] for mr = 1..kMaxTile.
#ifndef EMBER_KERNELS_U8S8_BLOCKS_H_
#define EMBER_KERNELS_U8S8_BLOCKS_H_

#include "kernels/common.h"

namespace ember {
namespace kernels {
namespace {  // internal linkage: compiled into files with different ISA flags (see common.h)

// One tile: tokens [i0, i0 + mr) x block rows [r0, r1) (of 16) over groups [g0, g1). yb is y
// shifted to the block's first row; sums start at 0 when g0 == 0, else from yb.
struct BlockTile {
  const uint8_t* wb;  // the block's weights: (groups, units, 16, 4)
  const uint8_t* pb;  // its params: (groups, {16 scales, 16 mins}) f32 or f16
  const U8Blocks* L;
  size_t g0, g1;
  const S8Acts* x;  // a (m, k), d and sum (m, act groups), msum (m, groups)
  size_t i0;
  float* yb;
  size_t ldy, r0, r1;
};
using BlockTileFn = void (*)(const BlockTile& t);

constexpr size_t kPanelBytes = 16384;

// A variant's tiles[mr] (mr = 1..kMaxTile) for each form of the matmul: f32 or f16 params, with
// the activation group equal to the weight group (kSub false) or smaller.
struct TileSets {
  const BlockTileFn* f32;
  const BlockTileFn* f16;
  const BlockTileFn* f32_sub;
  const BlockTileFn* f16_sub;
};

template <int kMaxTile>
void run_u8_blocks(const TileSets& sets, const U8Matrix& w, const S8Acts& x, size_t m, float* y,
                   size_t ldy, size_t n0, size_t n1) {
  if (n1 <= n0 || m == 0) return;
  constexpr size_t R = kZeroOneBlockRows;
  const U8Blocks L(w, x.act_group);
  const bool f16 = w.params_type == DType::kF16, sub = x.act_group < w.group;
  const BlockTileFn* tiles =
      sub ? (f16 ? sets.f16_sub : sets.f32_sub) : (f16 ? sets.f16 : sets.f32);
  const uint8_t* params = static_cast<const uint8_t*>(w.params);
  const size_t panel = L.group_bytes < kPanelBytes ? kPanelBytes / L.group_bytes : 1;  // groups
  for (size_t b = n0 / R; b * R < n1; ++b) {
    BlockTile t{w.data + b * L.block_bytes,
                params + b * L.groups * L.group_params_bytes,
                &L,
                0,
                L.groups,
                &x,
                0,
                y + b * R,
                ldy,
                b * R < n0 ? n0 - b * R : 0,
                n1 - b * R < R ? n1 - b * R : R};
    if (m <= static_cast<size_t>(kMaxTile)) {
      tiles[m](t);
      continue;
    }
    for (t.g0 = 0; t.g0 < L.groups; t.g0 += panel) {
      t.g1 = t.g0 + panel < L.groups ? t.g0 + panel : L.groups;
      for (t.i0 = 0; t.i0 < m; t.i0 += kMaxTile) {
        tiles[m - t.i0 < static_cast<size_t>(kMaxTile) ? m - t.i0 : kMaxTile](t);
      }
    }
  }
}

}  // namespace
}  // namespace kernels
}  // namespace ember

#endif  // EMBER_KERNELS_U8S8_BLOCKS_H_
