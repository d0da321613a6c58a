// Float matrices (f32 / f16 / bf16) in row blocks, the layout of Tensor.layout BLOCKS16 (file
// format 4): rows in blocks of 16, each block stored input column by input column, so the 16 rows'
// values of one column are contiguous. A GEMV then reads 16 rows' accumulators' worth of weights
// with one load and no transposes. The last block is padded with zero rows.
#ifndef EMBER_CORE_FLOAT_BLOCKS_H_
#define EMBER_CORE_FLOAT_BLOCKS_H_

#include <cstddef>
#include <cstdint>

namespace ember {

constexpr size_t kFloatBlockRows = 16;

// Values stored for a (rows, cols) matrix: whole blocks. False if that overflows 64 bits.
inline bool float_blocked_values(uint64_t rows, uint64_t cols, uint64_t* out) {
  const uint64_t padded =
      (rows / kFloatBlockRows + (rows % kFloatBlockRows != 0)) * kFloatBlockRows;
  if (cols != 0 && padded > UINT64_MAX / cols) return false;
  *out = padded * cols;
  return true;
}

// Index of value (r, t) of a blocked matrix with `cols` columns.
inline size_t float_blocked_index(size_t cols, size_t r, size_t t) {
  return ((r / kFloatBlockRows) * cols + t) * kFloatBlockRows + r % kFloatBlockRows;
}

// Row-major src (rows, cols) -> blocked dst (float_blocked_values), padding rows zero.
template <typename T>
void float_blocks_pack(const T* src, size_t rows, size_t cols, T* dst) {
  const size_t blocks = (rows + kFloatBlockRows - 1) / kFloatBlockRows;
  for (size_t i = 0; i < blocks * kFloatBlockRows * cols; ++i) dst[i] = T{};
  for (size_t r = 0; r < rows; ++r)
    for (size_t t = 0; t < cols; ++t) dst[float_blocked_index(cols, r, t)] = src[r * cols + t];
}

}  // namespace ember

#endif  // EMBER_CORE_FLOAT_BLOCKS_H_
