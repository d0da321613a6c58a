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
  uint32_t group_size = 0;    // kU8ZeroOne only (0 = one group per row)
  std::vector<uint8_t> data;  // F32/F16: little-endian values; U8: row blocks (zero_one.h)
  std::vector<float> params;  // U8: the row blocks' params (zero_one.h)
  double rel_rms_error = 0;   // ||W - stored|| / ||W|| (0 when W is all zeros)
};

// Whether `mode` converts this tensor (2-D) or keeps it F32 (anything else).
bool is_quantized_in(QuantMode mode, const FloatTensor& t);

// Converts one tensor. `group` is the zero-one group along the last dimension (0 = a whole row);
// a group larger than the row is one partial group per row. Throws ConvertError on a bad shape.
StoredTensor store_tensor(const FloatTensor& t, QuantMode mode, uint32_t group);

// Zero-one quantization of a (rows, cols) matrix.
StoredTensor quantize_zero_one(const float* w, uint64_t rows, uint64_t cols, uint32_t group);

// ||a - b||_2 / ||a||_2 over n values, in double (0 when both are zero).
double relative_rms_error(const float* a, const float* b, size_t n);

// IEEE half, round to nearest even; overflow -> inf, subnormals kept, NaN stays NaN.
uint16_t f32_to_f16(float f);

}  // namespace convert
}  // namespace ember

#endif  // EMBER_CONVERTER_QUANTIZE_H_
