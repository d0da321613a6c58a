// Turning float32 tensors into what the file stores: F32 as is, F16 (round to nearest even), or
// zero-one U8 (runtime/core/zero_one.h: the same zero_one_quantize_group the runtime's tests use).
// Only 2-D tensors (Linear weights (out, in) and the embedding (vocab, hidden)) are converted; 1-D
// tensors (norms, biases) stay F32 in every mode.
#ifndef EMBER_CONVERTER_QUANTIZE_H_
#define EMBER_CONVERTER_QUANTIZE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/zero_one.h"
#include "model_ir.h"

namespace ember {
namespace convert {

enum class QuantMode { F32, F16, U8 };

// "f32" | "f16" | "u8" (throws ConvertError otherwise).
QuantMode parse_quant_mode(const std::string& s);
const char* quant_mode_name(QuantMode m);

struct StoredTensor {
  DType dtype = DType::kF32;
  std::vector<uint64_t> shape;
  uint32_t group_size = 0;           // kU8ZeroOne only (0 = one group per row)
  DType params_dtype = DType::kF32;  // kU8ZeroOne: of the scales and mins, kF32 or kF16
  uint32_t act_group = 0;            // kU8ZeroOne: activation group (0 = the weight group)
  std::vector<uint8_t> data;         // F32/F16: little-endian values; U8: row blocks (zero_one.h)
  std::vector<uint8_t> params;       // U8: the row blocks' params (zero_one.h), of params_dtype
  double rel_rms_error = 0;          // ||W - stored|| / ||W|| (0 when W is all zeros)
  bool blocked = false;              // F32/F16 matrix in row blocks (core/float_blocks.h)
};

// How u8 (zero-one) tensors are stored.
struct U8Options {
  uint32_t group = 16;         // weights per group along a row (0 = a whole row)
  DType params = DType::kF32;  // scale and min: kF32 or kF16
  // Activation group: 0 = the weight group; kAutoActGroup: 16 where 16 divides a tensor's group
  // and is smaller, else the group; another value must divide every u8 tensor's group and be a
  // multiple of 4 (ConvertError otherwise).
  uint32_t act_group = 0;
};
constexpr uint32_t kAutoActGroup = 0xFFFFFFFFu;

// Whether `mode` converts this tensor (2-D) or keeps it F32 (anything else).
bool is_quantized_in(QuantMode mode, const FloatTensor& t);

// Converts one tensor. u8.group is the zero-one group along the last dimension (0 = a whole row);
// a group larger than the row is one partial group per row. Throws ConvertError on a bad shape.
StoredTensor store_tensor(const FloatTensor& t, QuantMode mode, const U8Options& u8);

// A stored F32 / F16 matrix (rank 2, row-major) rewritten in row blocks of 16
// (core/float_blocks.h, Tensor.layout BLOCKS16); anything else is left as it is.
void block_float_rows(StoredTensor* s);

// Zero-one quantization of a (rows, cols) matrix.
StoredTensor quantize_zero_one(const float* w, uint64_t rows, uint64_t cols, const U8Options& u8);

// One group's zero-one params with f16 scale and min, and its q: the best fit, by squared error,
// among the f16 neighbours of min (rounded down and to nearest) and of the scale that reaches max
// from it (rounded to nearest and up; also the f32 scale rounded), each with
// q = round((x - min16) / scale16) clamped to 0..255; or scale 0 and the nearest f16 min, which a
// constant group that f16 holds keeps (one it does not hold may fit closer on a grid). The returned
// scale and min are f16 values (exact as floats). Throws ConvertError where min or max is beyond
// f16's range (|x| > 65504).
ZeroOneParams zero_one_quantize_group_f16(const float* x, size_t n, uint8_t* q);

// ||a - b||_2 / ||a||_2 over n values, in double (0 when both are zero).
double relative_rms_error(const float* a, const float* b, size_t n);

// IEEE half, round to nearest even; overflow -> inf, subnormals kept, NaN stays NaN.
uint16_t f32_to_f16(float f);

}  // namespace convert
}  // namespace ember

#endif  // EMBER_CONVERTER_QUANTIZE_H_
