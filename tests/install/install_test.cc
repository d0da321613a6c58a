// cmake --install of this build, used the way a product uses it: the consumer project (consumer/)
// finds the package with find_package(Ember) and links Ember::ember + Ember::platform_posix; the
// same C file also builds with `pkg-config --cflags --libs ember`. Each binary generates greedily
// from stories260K (u8) and must print the ids this process's runtime generates.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "ember/ember.h"
#include "support/convert.h"
#include "support/test_support.h"

namespace {

using ember_test::run_command;

// "ids: ..." of the consumer's output, or "" where there is none.
std::string ids_line(const std::string& out) {
  const size_t at = out.find("\nids:");
  if (at == std::string::npos) return "";
  const size_t end = out.find('\n', at + 1);
  return out.substr(at + 1, end == std::string::npos ? std::string::npos : end - at - 1);
}

// The ids line this runtime prints for `model` (as consumer.c does).
std::string expected_ids(const std::string& model, uint32_t n) {
  ember_model* m = nullptr;
  ember_context* ctx = nullptr;
  if (ember_model_load_file(model.c_str(), &m) != EMBER_OK) return "load failed";
  ember_context_params cp = ember_context_default_params();
  cp.n_ctx = 64;
  if (ember_context_create(m, &cp, nullptr, 0, &ctx) != EMBER_OK) return "context failed";
  ember_generate_params gp = ember_generate_default_params();
  gp.max_new_tokens = n;
  gp.sampler.temperature = 0.0f;
  const char* prompt = "Once upon a time";
  int32_t ids[64];
  size_t n_ids = 0;
  std::string line = "ids:";
  if (ember_generate(ctx, prompt, std::strlen(prompt), &gp, nullptr, nullptr, ids, 64, &n_ids,
                     nullptr) != EMBER_OK)
    line = "generate failed";
  for (size_t i = 0; i < n_ids; ++i) line += " " + std::to_string(ids[i]);
  ember_context_free(ctx);
  ember_model_free(m);
  return line;
}

TEST(Install, ConsumerBuildsAgainstThePrefixAndGenerates) {
  EMBER_REQUIRE_CONVERTED(model, "models/stories260K/hf", "--quant u8");
  const std::string want = expected_ids(model, 8);
  ASSERT_EQ(want.rfind("ids:", 0), 0u) << want;
  const std::string dir = ember_test::make_temp_dir("install");
  const std::string prefix = dir + "/prefix", cmake = EMBER_INSTALL_CMAKE;
  std::string out;
  ASSERT_EQ(run_command("'" + cmake + "' --install '" + ember_test::build_dir() + "' --prefix '" +
                            prefix + "'",
                        &out),
            0)
      << out;
  for (const char* f : {"include/ember/ember.h", "include/ember/platform.h", "lib/libember.a",
                        "lib/libember_platform_posix.a", "lib/cmake/Ember/EmberConfig.cmake",
                        "lib/pkgconfig/ember.pc"})
    EXPECT_EQ(run_command("test -f '" + prefix + "/" + f + "'", &out), 0) << f << " not installed";

  // find_package(Ember) in an out-of-tree project.
  const std::string b = dir + "/consumer";
  ASSERT_EQ(
      run_command("'" + cmake + "' -S '" EMBER_CONSUMER_DIR "' -B '" + b + "' -G '" +
                      EMBER_INSTALL_GENERATOR + "' -DCMAKE_BUILD_TYPE=Release " +
                      "-DCMAKE_PREFIX_PATH='" + prefix + "' && '" + cmake + "' --build '" + b + "'",
                  &out),
      0)
      << out;
  ASSERT_EQ(run_command("'" + b + "/ember-consumer' '" + model + "' 8", &out), 0) << out;
  EXPECT_EQ(ids_line(out), want) << out;

  // pkg-config, for a build without CMake.
  const std::string bin = dir + "/consumer-pc";
  ASSERT_EQ(run_command("PKG_CONFIG_PATH='" + prefix + "/lib/pkgconfig' && export PKG_CONFIG_PATH" +
                            " && '" EMBER_INSTALL_C_COMPILER "' -O2 '" EMBER_CONSUMER_DIR
                            "/consumer.c' -o '" +
                            bin + "' $(pkg-config --cflags --libs ember)",
                        &out),
            0)
      << out;
  ASSERT_EQ(run_command("'" + bin + "' '" + model + "' 8", &out), 0) << out;
  EXPECT_EQ(ids_line(out), want) << out;
}

}  // namespace
