// Element types of stored tensors: what the converter writes and the runtime reads and computes
// with. One enum for both, with the values of the file's DType (schema/ember.fbs); core/dtype_fb.h
// converts between the two and checks at compile time that they agree.
#ifndef EMBER_CORE_DTYPE_H_
#define EMBER_CORE_DTYPE_H_

#include <cstddef>
#include <cstdint>

namespace ember {

enum class DType : uint8_t {
  kF32 = 0,
  kF16 = 1,        // IEEE binary16 (core/half.h)
  kBF16 = 2,       // bfloat16
  kU8ZeroOne = 3,  // zero-one uint8 in row blocks, with per-group {scale, min} (core/zero_one.h)
};

// Bytes of one element; for kU8ZeroOne the quantized byte only (its params come on top).
constexpr size_t dtype_element_bytes(DType t) {
  switch (t) {
    case DType::kF32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
      return 2;
    case DType::kU8ZeroOne:
      return 1;
  }
  return 0;
}

}  // namespace ember

#endif  // EMBER_CORE_DTYPE_H_
