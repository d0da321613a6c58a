// ember::DType <-> the file's fb::DType (generated from schema/ember.fbs): for the two places that
// cross between them, the converter's writer and the runtime's model loader. The static_asserts
// make a schema change that the enum does not follow a compile error in both.
#ifndef EMBER_CORE_DTYPE_FB_H_
#define EMBER_CORE_DTYPE_FB_H_

#include "core/dtype.h"
#include "ember_generated.h"

namespace ember {

static_assert(static_cast<uint8_t>(DType::kF32) == static_cast<uint8_t>(fb::DType::F32),
              "DType::kF32 must equal the schema's F32");
static_assert(static_cast<uint8_t>(DType::kF16) == static_cast<uint8_t>(fb::DType::F16),
              "DType::kF16 must equal the schema's F16");
static_assert(static_cast<uint8_t>(DType::kBF16) == static_cast<uint8_t>(fb::DType::BF16),
              "DType::kBF16 must equal the schema's BF16");
static_assert(static_cast<uint8_t>(DType::kU8ZeroOne) ==
                  static_cast<uint8_t>(fb::DType::U8_ZERO_ONE),
              "DType::kU8ZeroOne must equal the schema's U8_ZERO_ONE");
static_assert(fb::DType::MIN == fb::DType::F32 && fb::DType::MAX == fb::DType::U8_ZERO_ONE,
              "the schema's DType has values that ember::DType lacks");

constexpr fb::DType dtype_to_fb(DType t) { return static_cast<fb::DType>(t); }

// A file's dtype as a DType; false for a value outside the schema this code was built with (a
// newer or a corrupted file: the byte comes from outside).
constexpr bool dtype_from_fb(fb::DType t, DType* out) {
  if (static_cast<uint8_t>(t) > static_cast<uint8_t>(fb::DType::MAX)) return false;  // MIN is 0
  *out = static_cast<DType>(t);
  return true;
}

}  // namespace ember

#endif  // EMBER_CORE_DTYPE_FB_H_
