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
  const float* pb;    // its params: (groups, {16 scales, 16 mins})
  const U8Blocks* L;
  size_t g0, g1;
  const int8_t* a;  // (m, k)
  const float* d;   // (m, groups)
  const int32_t* sum;
  size_t i0;
  float* yb;
  size_t ldy, r0, r1;
};
using BlockTileFn = void (*)(const BlockTile& t);

constexpr size_t kPanelBytes = 16384;

template <int kMaxTile>
void run_u8_blocks(const BlockTileFn* tiles, const uint8_t* w, const float* p, size_t k,
                   size_t group, const int8_t* a, const float* d, const int32_t* sum, size_t m,
                   float* y, size_t ldy, size_t n0, size_t n1) {
  if (n1 <= n0 || m == 0) return;
  constexpr size_t R = kZeroOneBlockRows;
  const U8Blocks L(k, group);
  const size_t panel = L.group_bytes < kPanelBytes ? kPanelBytes / L.group_bytes : 1;  // groups
  for (size_t b = n0 / R; b * R < n1; ++b) {
    BlockTile t{w + b * L.block_bytes,
                p + b * L.groups * kZeroOneParamFloats,
                &L,
                0,
                L.groups,
                a,
                d,
                sum,
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
