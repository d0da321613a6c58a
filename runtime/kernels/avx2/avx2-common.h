// What every avx2/ kernel file includes: the intrinsics, the scalar order helpers, and a check that
// the file is compiled with -mavx2 -mfma -mf16c (and -ffp-contract=off: multiplies and adds stay
// separate, as the float order in kernels.h requires).
#ifndef EMBER_KERNELS_AVX2_AVX2_COMMON_H_
#define EMBER_KERNELS_AVX2_AVX2_COMMON_H_

#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "runtime/kernels/avx2/ files must be compiled with -mavx2 -mfma -mf16c"
#endif

#include <immintrin.h>

#include "kernels/common.h"

#endif  // EMBER_KERNELS_AVX2_AVX2_COMMON_H_
