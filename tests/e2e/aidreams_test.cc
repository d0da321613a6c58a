// aidreams260K: a second real model with other shapes (4 layers, no GQA, head_dim 16, 128-token
// context, its own tokenizer). No expected file exists, so the check is an independent float32
// numpy forward (reference_forward.py, reading the safetensors) plus determinism and f32-vs-u8.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "e2e/e2e_util.h"

#ifndef EMBER_E2E_SOURCE_DIR
#error "EMBER_E2E_SOURCE_DIR must point at tests/e2e"
#endif

namespace ember_test {
namespace {

constexpr const char* kPrompt = "Once upon a time";

TEST(Aidreams260K, GreedyIsDeterministicAndFinite) {
  EMBER_REQUIRE_CONVERTED(path, "models/aidreams260K/hf", "--quant f32");
  ModelPtr model = load_model(path);
  ASSERT_TRUE(model);
  ember_model_info info;
  ASSERT_EQ(ember_model_get_info(model.get(), &info), EMBER_OK);
  EXPECT_EQ(info.num_layers, 4u);
  EXPECT_EQ(info.num_heads, 4u);
  EXPECT_EQ(info.num_kv_heads, 4u);
  EXPECT_EQ(info.head_dim, 16u);
  EXPECT_EQ(info.max_context, 128u);
  ContextPtr ctx = make_context(model.get());
  ASSERT_TRUE(ctx);
  const auto a = generate_greedy(ctx.get(), kPrompt, 100, false);
  const auto b = generate_greedy(ctx.get(), kPrompt, 100, false);
  EXPECT_EQ(a.size(), 100u);
  EXPECT_EQ(a, b);
  // A second context with 2 threads and another batch size gives the same ids.
  ContextPtr ctx2 = make_context(model.get(), 0, 3, 2);
  ASSERT_TRUE(ctx2);
  EXPECT_EQ(generate_greedy(ctx2.get(), kPrompt, 100, false), a);
  auto ids = tokenize(model.get(), kPrompt);
  ids.insert(ids.end(), a.begin(), a.end());
  ids.resize(std::min<size_t>(ids.size(), 128));
  const auto logits = teacher_forced_logits(ctx.get(), info.vocab_size, ids, 64);
  for (const auto& row : logits)
    for (float v : row) ASSERT_TRUE(std::isfinite(v));
}

TEST(Aidreams260K, LogitsMatchNumpyReference) {
  EMBER_REQUIRE_SHARED(hf, "models/aidreams260K/hf");
  const std::string path = converted_model(hf, "--quant f32");
  ASSERT_FALSE(path.empty());
  EMBER_LOAD_MODEL_AND_CONTEXT(model, ctx, path);
  auto ids = tokenize(model.get(), kPrompt);
  const size_t n_prompt = ids.size();
  const auto gen = generate_greedy(ctx.get(), kPrompt, 128 - n_prompt, false);
  ids.insert(ids.end(), gen.begin(), gen.end());
  ASSERT_EQ(ids.size(), 128u);  // the whole trained context
  std::string list;
  for (size_t i = 0; i < ids.size(); ++i) list += (i ? "," : "") + std::to_string(ids[i]);
  const std::string out = temp_path("aidreams_numpy.json");
  std::string log;
  const std::string cmd = "/usr/bin/python3 '" + std::string(EMBER_E2E_SOURCE_DIR) +
                          "/reference_forward.py' '" + hf + "' " + list + " '" + out + "'";
  const int rc = run_command(cmd, &log);
  if (rc != 0 && log.find("No module named 'numpy'") != std::string::npos) {
    EMBER_SKIP_OR_FAIL_IN_CI() << "python3-numpy is not installed: " << log;
  }
  ASSERT_EQ(rc, 0) << log;
  const auto ref = read_json(out)["logits"];
  const auto got = teacher_forced_logits(ctx.get(), 512, ids, 64);
  ASSERT_EQ(got.size(), ref.size());
  double max_abs = 0;
  size_t argmax_same = 0, checked = 0;
  for (size_t p = 0; p < got.size(); ++p) {
    const auto want = ref[p].get<std::vector<float>>();
    for (size_t j = 0; j < want.size(); ++j) {
      const double d = std::fabs(double(got[p][j]) - want[j]);
      max_abs = std::max(max_abs, d);
      ASSERT_LE(d, 1e-4 + 1e-4 * std::fabs(want[j])) << "position " << p << " logit " << j;
    }
    // Where numpy's best logit is clearly ahead, greedy must have picked it.
    std::vector<float> sorted = want;
    std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<float>());
    if (p + 1 >= n_prompt && p + 1 < ids.size() && sorted[0] - sorted[1] > 1e-3f) {
      ++checked;
      argmax_same += argmax_of(want) == ids[p + 1];
    }
  }
  std::printf(
      "[ aidreams ] 128 positions: max |ember - numpy| = %.3g; greedy = numpy argmax at "
      "%zu of %zu generated positions\n",
      max_abs, argmax_same, checked);
  EXPECT_EQ(argmax_same, checked);
}

TEST(Aidreams260K, U8AgreesWithF32) {
  EMBER_REQUIRE_SHARED(hf, "models/aidreams260K/hf");
  const std::string p32 = converted_model(hf, "--quant f32");
  const std::string p8 = converted_model(hf, "--quant u8");
  ASSERT_FALSE(p32.empty());
  ASSERT_FALSE(p8.empty());
  ModelPtr m32 = load_model(p32), m8 = load_model(p8);
  ASSERT_TRUE(m32 && m8);
  ContextPtr c32 = make_context(m32.get()), c8 = make_context(m8.get());
  ASSERT_TRUE(c32 && c8);
  auto ids = tokenize(m32.get(), kPrompt);
  const auto gen = generate_greedy(c32.get(), kPrompt, 128 - ids.size(), false);
  ids.insert(ids.end(), gen.begin(), gen.end());
  const auto l32 = teacher_forced_logits(c32.get(), 512, ids, 64);
  const auto l8 = teacher_forced_logits(c8.get(), 512, ids, 64);
  ASSERT_EQ(l32.size(), l8.size());
  size_t agree = 0;
  double kl = 0;
  for (size_t p = 0; p < l32.size(); ++p) {
    agree += argmax_of(l32[p]) == argmax_of(l8[p]);
    kl += kl_divergence(l32[p], l8[p]);
  }
  std::printf("[ aidreams u8 ] top-1 agreement %zu/%zu, mean KL(f32 || u8) %.6f\n", agree,
              l32.size(), kl / l32.size());
  EXPECT_GE(double(agree) / l32.size(), 0.95);
  EXPECT_LE(kl / l32.size(), 0.01);
}

}  // namespace
}  // namespace ember_test
