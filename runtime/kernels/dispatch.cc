// The one place that looks at the CPU: builds the list of runnable variants once (cpuinfo, or
// getauxval / compiler builtins when cpuinfo is off), picks the best, honours EMBER_KERNELS.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "ember/platform.h"
#include "kernels/kernels.h"
#include "kernels/variants.h"

#if EMBER_USE_CPUINFO
#include <cpuinfo.h>
#endif
#if (defined(__aarch64__) || defined(__arm__)) && defined(__linux__)
#include <sys/auxv.h>
#endif

namespace ember {
namespace kernels {
namespace {

#define EMBER_TABLE(isa_name, isa)                                                          \
  KernelTable {                                                                             \
    isa_name, f32_s8_quantize_##isa, u8s8_matmul_##isa, f32_matmul_##isa, f16_matmul_##isa, \
        bf16_matmul_##isa, f32_matmul_blocked_##isa, f16_matmul_blocked_##isa,              \
        bf16_matmul_blocked_##isa, f32_rmsnorm_##isa, f32_silumul_##isa, f32_softmax_##isa, \
        f32_attention_##isa, f16_attention_##isa, u8_attention_##isa                        \
  }

// A variant that differs from `base` only in its name and the u8 x s8 matmul.
constexpr KernelTable with_u8s8(const KernelTable& base, const char* name, MatmulU8S8Fn u8s8) {
  KernelTable t = base;
  t.name = name;
  t.matmul_u8s8 = u8s8;
  return t;
}

constexpr KernelTable kScalar = EMBER_TABLE("scalar", scalar);
#if EMBER_KERNELS_AVX2
constexpr KernelTable kAvx2 = EMBER_TABLE("avx2", avx2);
// avx512vnni differs from avx2 in the integer dot (vpdpbusd) and the float matmuls (16 rows per
// register); it reuses avx2's other float ops.
constexpr KernelTable avx512vnni_table() {
  KernelTable t = with_u8s8(kAvx2, "avx512vnni", u8s8_matmul_avx512vnni);
  t.matmul_f32 = f32_matmul_avx512vnni;
  t.matmul_f16 = f16_matmul_avx512vnni;
  t.matmul_bf16 = bf16_matmul_avx512vnni;
  t.matmul_f32_blocked = f32_matmul_blocked_avx512vnni;
  t.matmul_f16_blocked = f16_matmul_blocked_avx512vnni;
  t.matmul_bf16_blocked = bf16_matmul_blocked_avx512vnni;
  return t;
}
constexpr KernelTable kAvx512Vnni = avx512vnni_table();
#endif
#if EMBER_KERNELS_NEON
constexpr KernelTable kNeon = EMBER_TABLE("neon", neon);
#endif
#if EMBER_KERNELS_NEON && defined(__aarch64__)
// neon-dot and i8mm: neon with the dot-product / matrix-multiply integer dot.
constexpr KernelTable kNeonDot = with_u8s8(kNeon, "neon-dot", u8s8_matmul_neondot);
constexpr KernelTable kI8mm = with_u8s8(kNeon, "i8mm", u8s8_matmul_i8mm);
#endif

#if EMBER_KERNELS_MVE
// Helium on a Cortex-M: the u8 x s8 matmul, where decode spends its time; the other kernels are
// the scalar ones (docs/porting.md has the instruction counts).
constexpr KernelTable kMve = with_u8s8(kScalar, "mve", u8s8_matmul_mve);
#endif

struct Features {
  bool avx2_fma_f16c = false;
  bool avx512vnni = false;  // with AVX512F/BW/VL
  bool neon = false, neon_dot = false, i8mm = false;
  bool mve = false;  // Armv8.1-M Helium with its float part
};

Features detect() {
  Features f;
#if EMBER_USE_CPUINFO
  if (cpuinfo_initialize()) {
#if defined(__x86_64__) || defined(__i386__)
    f.avx2_fma_f16c = cpuinfo_has_x86_avx2() && cpuinfo_has_x86_fma3() && cpuinfo_has_x86_f16c();
    f.avx512vnni = cpuinfo_has_x86_avx512f() && cpuinfo_has_x86_avx512bw() &&
                   cpuinfo_has_x86_avx512vl() && cpuinfo_has_x86_avx512vnni();
#endif
#if defined(__aarch64__)
    f.neon = cpuinfo_has_arm_neon();
    f.neon_dot = cpuinfo_has_arm_neon_dot();
#endif
  }
#else
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
  __builtin_cpu_init();
  f.avx2_fma_f16c = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c");
  f.avx512vnni = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#endif
#if defined(__aarch64__)
  f.neon = true;  // Advanced SIMD is mandatory in ARMv8-A
#elif defined(__arm__) && defined(__ARM_NEON) && !defined(__linux__)
  f.neon = true;  // the whole build targets NEON (a bare-metal image has no hwcaps to read)
#endif
#endif
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 2) != 0
  f.mve = true;  // the whole build targets an M-profile core with Helium: no feature registers read
#endif
#if defined(__arm__) && !defined(__aarch64__) && defined(__linux__)
  f.neon = f.neon || (getauxval(AT_HWCAP) & (1ul << 12)) != 0;  // HWCAP_NEON
#endif
#if defined(__aarch64__) && defined(__linux__)
  // cpuinfo 2022 has no i8mm query (and may be off): read the kernel's hwcaps.
  const unsigned long hwcap = getauxval(AT_HWCAP);
  const unsigned long hwcap2 = getauxval(AT_HWCAP2);
  f.neon = f.neon || (hwcap & (1ul << 1)) != 0;           // HWCAP_ASIMD
  f.neon_dot = f.neon_dot || (hwcap & (1ul << 20)) != 0;  // HWCAP_ASIMDDP
  f.i8mm = (hwcap2 & (1ul << 13)) != 0;                   // HWCAP2_I8MM
  f.i8mm = f.i8mm && f.neon_dot;
#endif
  return f;
}

struct Registry {
  const KernelTable* list[8];
  size_t count = 0;
  std::atomic<const KernelTable*> active{nullptr};

  Registry() {
    const Features f = detect();
    list[count++] = &kScalar;
#if EMBER_KERNELS_AVX2
    if (f.avx2_fma_f16c) list[count++] = &kAvx2;
    if (f.avx2_fma_f16c && f.avx512vnni) list[count++] = &kAvx512Vnni;
#endif
#if EMBER_KERNELS_NEON
    if (f.neon) list[count++] = &kNeon;
#endif
#if EMBER_KERNELS_NEON && defined(__aarch64__)
    if (f.neon && f.neon_dot) list[count++] = &kNeonDot;
    if (f.neon && f.neon_dot && f.i8mm) list[count++] = &kI8mm;
#endif
#if EMBER_KERNELS_MVE
    if (f.mve) list[count++] = &kMve;
#endif
    (void)f;
    const KernelTable* pick = list[count - 1];
    const char* env = std::getenv("EMBER_KERNELS");
    if (env != nullptr && env[0] != '\0') {
      const KernelTable* forced = find(env);
      if (forced != nullptr) {
        pick = forced;
      } else {
        char msg[160];
        std::snprintf(msg, sizeof msg,
                      "EMBER_KERNELS=%.40s is unknown or not runnable on this CPU; using '%s'", env,
                      pick->name);
        ember_platform_log(msg);
      }
    }
    active.store(pick, std::memory_order_release);
  }

  const KernelTable* find(const char* name) const {
    for (size_t i = 0; i < count; ++i) {
      if (std::strcmp(list[i]->name, name) == 0) return list[i];
    }
    return nullptr;
  }
};

Registry& registry() {
  static Registry r;  // initialised once, thread-safe
  return r;
}

}  // namespace

const KernelTable& active() { return *registry().active.load(std::memory_order_acquire); }

size_t variant_count() { return registry().count; }

const KernelTable& variant(size_t i) {
  Registry& r = registry();
  return *r.list[i < r.count ? i : 0];
}

bool force_variant(const char* name) {
  Registry& r = registry();
  const KernelTable* t = name != nullptr ? r.find(name) : nullptr;
  if (t == nullptr) return false;
  r.active.store(t, std::memory_order_release);
  return true;
}

}  // namespace kernels
}  // namespace ember
