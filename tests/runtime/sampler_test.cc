// Sampler: greedy ties, seeds, temperature/top-k/top-p against plain probabilities.
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "e2e/e2e_util.h"

namespace ember_test {
namespace {

class SamplerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EMBER_REQUIRE_CONVERTED(p, "models/stories260K/hf", "--quant f32");
    model_ = load_model(p);
    ASSERT_TRUE(model_);
    ctx_ = make_context(model_.get(), 64);
    ASSERT_TRUE(ctx_);
  }
  int32_t sample(const std::vector<float>& logits, const ember_sampler_params& sp, uint64_t* rng) {
    int32_t id = -1;
    EXPECT_EQ(ember_sample(ctx_.get(), logits.data(), &sp, rng, &id), EMBER_OK)
        << ember_last_error();
    return id;
  }
  ModelPtr model_;
  ContextPtr ctx_;
};

TEST_F(SamplerTest, GreedyTiesGoToTheLowestId) {
  std::vector<float> l(512, -1.0f);
  l[300] = 5.0f;
  l[7] = 5.0f;
  l[400] = 5.0f;
  uint64_t rng = ember_rng_seed(0);
  EXPECT_EQ(sample(l, ember_sampler_default_params(), &rng), 7);
  ember_sampler_params sp = ember_sampler_default_params();
  sp.temperature = 0.8f;
  sp.top_k = 1;
  EXPECT_EQ(sample(l, sp, &rng), 7);
}

TEST_F(SamplerTest, SameSeedSameTokens) {
  std::vector<float> l(512);
  for (int i = 0; i < 512; ++i) l[i] = std::sin(i * 0.37f) * 3.0f;
  ember_sampler_params sp = ember_sampler_default_params();
  sp.temperature = 1.0f;
  sp.top_p = 0.9f;
  auto run = [&](uint64_t seed) {
    uint64_t rng = ember_rng_seed(seed);
    std::vector<int32_t> ids;
    for (int i = 0; i < 64; ++i) ids.push_back(sample(l, sp, &rng));
    return ids;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

TEST_F(SamplerTest, FrequenciesFollowTheTemperedSoftmax) {
  std::vector<float> l(512, -1e9f);
  l[10] = 0.0f;
  l[20] = std::log(3.0f);  // p = 0.25 / 0.75 at temperature 1
  ember_sampler_params sp = ember_sampler_default_params();
  sp.temperature = 1.0f;
  uint64_t rng = ember_rng_seed(7);
  std::map<int32_t, int> count;
  const int n = 8000;
  for (int i = 0; i < n; ++i) ++count[sample(l, sp, &rng)];
  EXPECT_EQ(count.size(), 2u);
  EXPECT_NEAR(count[20] / double(n), 0.75, 0.02);
  // Temperature 0.5 squares the odds: 9:1.
  sp.temperature = 0.5f;
  count.clear();
  for (int i = 0; i < n; ++i) ++count[sample(l, sp, &rng)];
  EXPECT_NEAR(count[20] / double(n), 0.9, 0.015);
}

TEST_F(SamplerTest, TopKAndTopPTruncate) {
  std::vector<float> l(512, 0.0f);
  l[5] = std::log(60.0f);
  l[6] = std::log(30.0f);
  l[9] = std::log(10.0f);  // the rest: 509 ids of weight 1 each
  ember_sampler_params sp = ember_sampler_default_params();
  sp.temperature = 1.0f;
  sp.top_k = 2;
  uint64_t rng = ember_rng_seed(3);
  std::map<int32_t, int> count;
  for (int i = 0; i < 3000; ++i) ++count[sample(l, sp, &rng)];
  EXPECT_EQ(count.size(), 2u);
  EXPECT_NEAR(count[5] / 3000.0, 2.0 / 3.0, 0.03);
  sp.top_k = 0;
  sp.top_p = 0.05f;  // id 5 alone holds 60/609 ~ 0.099 >= 0.05
  count.clear();
  for (int i = 0; i < 200; ++i) ++count[sample(l, sp, &rng)];
  EXPECT_EQ(count.size(), 1u);
  EXPECT_EQ(count.begin()->first, 5);
  sp.top_p = 0.12f;  // needs ids 5 and 6 (0.099 + 0.049)
  count.clear();
  for (int i = 0; i < 2000; ++i) ++count[sample(l, sp, &rng)];
  EXPECT_EQ(count.size(), 2u);
  EXPECT_TRUE(count.count(5) && count.count(6));
}

TEST_F(SamplerTest, GenerateWithSamplingIsReproducible) {
  ember_generate_params gp = ember_generate_default_params();
  gp.max_new_tokens = 40;
  gp.sampler.temperature = 0.9f;
  gp.sampler.top_k = 40;
  gp.sampler.top_p = 0.95f;
  gp.sampler.seed = 1234;
  auto run = [&]() {
    std::vector<int32_t> ids(128);
    size_t n = 0;
    EXPECT_EQ(ember_generate(ctx_.get(), "Once upon a time", 16, &gp, nullptr, nullptr, ids.data(),
                             ids.size(), &n, nullptr),
              EMBER_OK)
        << ember_last_error();
    ids.resize(n);
    return ids;
  };
  const auto a = run(), b = run();
  EXPECT_EQ(a, b);
  EXPECT_GT(a.size(), 5u);
}

}  // namespace
}  // namespace ember_test
