// NEON helpers shared by the kernel files of the neon, neon-dot and i8mm variants (AArch64 only;
// compiled with -ffp-contract=off: every multiply and add stays separate, as kernels.h requires).
#ifndef EMBER_KERNELS_NEON_NEON_COMMON_H_
#define EMBER_KERNELS_NEON_NEON_COMMON_H_

#if !defined(__aarch64__) || !defined(__ARM_NEON)
#error "runtime/kernels/neon*/ and i8mm/ files are for AArch64 with Advanced SIMD"
#endif

#include <arm_neon.h>

#include "kernels/common.h"

#endif  // EMBER_KERNELS_NEON_NEON_COMMON_H_
