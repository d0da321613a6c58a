// AVX2 helpers shared by the avx2/ kernel files (each compiled with -mavx2 -mfma -mf16c and
// -ffp-contract=off: multiplies and adds stay separate, as the float order in kernels.h requires).
#ifndef EMBER_KERNELS_AVX2_AVX2_COMMON_H_
#define EMBER_KERNELS_AVX2_AVX2_COMMON_H_

#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "runtime/kernels/avx2/ files must be compiled with -mavx2 -mfma -mf16c"
#endif

#include <immintrin.h>

#include "kernels/common.h"

namespace ember {
namespace kernels {
namespace avx2 {
namespace {  // internal linkage: see common.h
// (No shared AVX2 helper at present: the float order is sequential, see kernels.h.)
}  // namespace
}  // namespace avx2
}  // namespace kernels
}  // namespace ember

#endif  // EMBER_KERNELS_AVX2_AVX2_COMMON_H_
