// The kernel variants the runtime runs on this CPU are the ones it should: every variant whose
// features /proc/cpuinfo reports (or, under qemu-user, the emulated CPU has) and no other. The
// variant tests in tests/kernels skip what the CPU lacks, so without this check a broken feature
// detection would pass as a row of skips.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "ember/ember.h"
#include "support/test_support.h"

namespace {

// The feature words of the first processor in /proc/cpuinfo ("flags" on x86, "Features" on ARM);
// empty if there is none.
[[maybe_unused]] std::set<std::string> cpuinfo_features() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::istringstream key(line.substr(0, colon));
    std::string k;
    key >> k;
    if (k != "flags" && k != "Features") continue;
    std::istringstream words(line.substr(colon + 1));
    std::set<std::string> out;
    for (std::string w; words >> w;) out.insert(w);
    return out;
  }
  return {};
}

std::set<std::string> runtime_variants() {
  std::set<std::string> out;
  for (uint32_t i = 0; i < ember_kernel_variant_count(); ++i)
    out.insert(ember_kernel_variant_name(i));
  return out;
}

TEST(KernelVariants, RuntimeRunsEveryVariantThisCpuHas) {
  std::set<std::string> expected = {"scalar"};
#if defined(__x86_64__) || defined(__i386__)
  const std::set<std::string> f = cpuinfo_features();
  if (f.empty()) EMBER_SKIP_OR_FAIL_IN_CI() << "no CPU flags in /proc/cpuinfo";
  auto has = [&](const char* feature) { return f.count(feature) > 0; };
  // As runtime/kernels/dispatch.cc asks: AVX2 with FMA and F16C; VNNI on AVX-512 F, BW and VL.
  if (has("avx2") && has("fma") && has("f16c")) {
    expected.insert("avx2");
    if (has("avx512f") && has("avx512bw") && has("avx512vl") && has("avx512_vnni"))
      expected.insert("avx512vnni");
  }
#elif defined(__aarch64__)
#ifdef EMBER_QEMU_CPU
  const std::string cpu = EMBER_QEMU_CPU;
  if (cpu == "max") {
    expected.insert({"neon", "neon-dot", "i8mm"});
  } else if (cpu == "cortex-a53" || cpu == "cortex-a57" || cpu == "cortex-a72") {
    expected.insert("neon");  // ARMv8.0: Advanced SIMD only
  } else {
    EMBER_SKIP_OR_FAIL_IN_CI() << "the features of qemu's -cpu " << cpu << " are not listed here";
  }
#else
  const std::set<std::string> f = cpuinfo_features();
  if (f.empty()) EMBER_SKIP_OR_FAIL_IN_CI() << "no CPU features in /proc/cpuinfo";
  if (f.count("asimd")) {
    expected.insert("neon");
    if (f.count("asimddp")) {
      expected.insert("neon-dot");
      if (f.count("i8mm")) expected.insert("i8mm");
    }
  }
#endif
#elif defined(__arm__) && defined(__linux__)
#ifdef EMBER_QEMU_CPU
  const std::string cpu = EMBER_QEMU_CPU;
  if (cpu == "cortex-a7" || cpu == "cortex-a9" || cpu == "cortex-a15" || cpu == "max") {
    expected.insert("neon");
  } else {
    EMBER_SKIP_OR_FAIL_IN_CI() << "the features of qemu's -cpu " << cpu << " are not listed here";
  }
#else
  const std::set<std::string> f = cpuinfo_features();
  if (f.empty()) EMBER_SKIP_OR_FAIL_IN_CI() << "no CPU features in /proc/cpuinfo";
  if (f.count("neon")) expected.insert("neon");
#endif
#endif
  EXPECT_EQ(runtime_variants(), expected)
      << "the runtime's kernel variants (left) differ from what this CPU reports (right)";
}

}  // namespace
