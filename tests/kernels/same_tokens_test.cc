// "Same tokens everywhere": the logits of a prompt batch are bit-identical, and greedy generation
// gives the same ids, for every kernel variant this CPU runs (forced one by one) and for 1 and 2
// threads — on the default model (stories260K converted with ember-convert, u8 / f16 / f32) and on
// a synthetic stories15m. Bit-identical floats are what make the ids identical (kernels.h float
// order), so the logits are compared with memcmp, not a tolerance. Also built in the aarch64 cross
// build (run under qemu-aarch64, the models converted by a host ember-convert), where it checks the
// ARM variants. And on every CPU, every variant and thread count generates llama2.c's greedy ids
// for the f32 stories260K (../shared/models/stories260K/expected/greedy.json, from run.c on another
// machine): the same tokens on x86 and on ARM, checked against something no one here wrote.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ember/ember.h"
#include "support/convert.h"
#include "support/test_support.h"

namespace {

struct Outcome {
  std::vector<float> logits;  // (n_prompt, vocab)
  std::vector<int32_t> ids;   // generated
};

Outcome run_model(const std::string& path, uint32_t threads, ember_kv_type kv_type) {
  Outcome out;
  ember_model* model = nullptr;
  EXPECT_EQ(ember_model_load_file(path.c_str(), &model), EMBER_OK) << ember_last_error();
  if (!model) return out;
  ember_model_info info;
  EXPECT_EQ(ember_model_get_info(model, &info), EMBER_OK);
  ember_context_params cp = ember_context_default_params();
  cp.n_ctx = 64;
  cp.n_batch_max = 16;
  cp.n_threads = threads;
  cp.kv_type = kv_type;
  ember_context* ctx = nullptr;
  EXPECT_EQ(ember_context_create(model, &cp, nullptr, 0, &ctx), EMBER_OK) << ember_last_error();
  if (ctx) {
    const uint32_t n = 11;
    std::vector<int32_t> tok(n), pos(n), seq(n, 0);
    std::vector<uint8_t> want(n, 1);
    for (uint32_t i = 0; i < n; ++i) {
      tok[i] = static_cast<int32_t>((i * 7919u + 3u) % info.vocab_size);
      pos[i] = static_cast<int32_t>(i);
    }
    ember_batch b{n, tok.data(), pos.data(), seq.data(), want.data()};
    EXPECT_EQ(ember_decode(ctx, &b), EMBER_OK) << ember_last_error();
    for (uint32_t i = 0; i < n; ++i) {
      const float* l = ember_get_logits(ctx, i);
      if (l) out.logits.insert(out.logits.end(), l, l + info.vocab_size);
    }
    EXPECT_EQ(ember_kv_clear(ctx, -1), EMBER_OK);
    ember_generate_params gp = ember_generate_default_params();
    gp.max_new_tokens = 24;
    gp.sampler.temperature = 0.0f;
    out.ids.resize(64);
    size_t n_ids = 0;
    const char* prompt = "Once upon a time";
    EXPECT_EQ(ember_generate(ctx, prompt, std::strlen(prompt), &gp, nullptr, nullptr,
                             out.ids.data(), out.ids.size(), &n_ids, nullptr),
              EMBER_OK)
        << ember_last_error();
    out.ids.resize(n_ids);
    ember_context_free(ctx);
  }
  ember_model_free(model);
  return out;
}

void expect_same_everywhere(const std::string& path, ember_kv_type kv_type = EMBER_KV_F32) {
  const std::string active = ember_kernel_variant();
  ASSERT_EQ(ember_force_kernel_variant("scalar"), EMBER_OK);
  const Outcome ref = run_model(path, 1, kv_type);
  ASSERT_FALSE(ref.logits.empty());
  ASSERT_FALSE(ref.ids.empty());
  for (uint32_t v = 0; v < ember_kernel_variant_count(); ++v) {
    const char* name = ember_kernel_variant_name(v);
    ASSERT_EQ(ember_force_kernel_variant(name), EMBER_OK);
    for (uint32_t threads : {1u, 2u}) {
      SCOPED_TRACE(testing::Message() << path << " variant " << name << " threads " << threads
                                      << " kv_type " << kv_type);
      const Outcome o = run_model(path, threads, kv_type);
      ASSERT_EQ(o.logits.size(), ref.logits.size());
      EXPECT_EQ(0,
                std::memcmp(o.logits.data(), ref.logits.data(), ref.logits.size() * sizeof(float)))
          << "logits differ from scalar / 1 thread";
      EXPECT_EQ(o.ids, ref.ids) << "generated ids differ from scalar / 1 thread";
    }
  }
  ASSERT_EQ(ember_force_kernel_variant(active.c_str()), EMBER_OK);
}

TEST(SameTokens, DefaultModelEveryVariantAndThreadCount) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  for (const char* quant : {"u8 --group 32", "u8 --group 0", "f16", "f32"}) {
    const std::string path = ember_test::converted_model(hf, std::string("--quant ") + quant);
    ASSERT_FALSE(path.empty());
    expect_same_everywhere(path);
  }
}

TEST(SameTokens, SyntheticModelEveryVariantAndThreadCount) {
  EMBER_REQUIRE_SHARED(tok, "tokenizers/llama2/tokenizer.json");
  const std::string dir = tok.substr(0, tok.size() - std::strlen("/tokenizer.json"));
  const std::string path = ember_test::converted_model(
      "", "--synthetic stories15m --seed 5 --synthetic-tokenizer " + dir);
  ASSERT_FALSE(path.empty());
  expect_same_everywhere(path);
}

// The f16 and u8 KV caches: attention reads them in every variant with the same bits (head_dim 8
// and 48: the vector paths with their key tails).
TEST(SameTokens, KvCacheTypesEveryVariantAndThreadCount) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  EMBER_REQUIRE_SHARED(tok, "tokenizers/llama2/tokenizer.json");
  const std::string dir = tok.substr(0, tok.size() - std::strlen("/tokenizer.json"));
  const std::string stories = ember_test::converted_model(hf, "--quant u8");
  const std::string synthetic = ember_test::converted_model(
      "", "--synthetic stories15m --seed 5 --synthetic-tokenizer " + dir);
  ASSERT_FALSE(stories.empty());
  ASSERT_FALSE(synthetic.empty());
  for (ember_kv_type kv : {EMBER_KV_F16, EMBER_KV_U8}) {
    expect_same_everywhere(stories, kv);
    expect_same_everywhere(synthetic, kv);
  }
}

TEST(SameTokens, F32StoriesGeneratesRunCIdsWithEveryVariant) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  EMBER_REQUIRE_SHARED(ref_path, "models/stories260K/expected/greedy.json");
  const nlohmann::json ref = nlohmann::json::parse(std::ifstream(ref_path));
  const std::string path = ember_test::converted_model(hf, "--quant f32");
  ASSERT_FALSE(path.empty());
  ember_model* model = nullptr;
  ASSERT_EQ(ember_model_load_file(path.c_str(), &model), EMBER_OK) << ember_last_error();
  const std::string active = ember_kernel_variant();
  const size_t n_new = 48;
  for (uint32_t v = 0; v < ember_kernel_variant_count(); ++v) {
    const char* name = ember_kernel_variant_name(v);
    ASSERT_EQ(ember_force_kernel_variant(name), EMBER_OK);
    for (uint32_t threads : {1u, 2u}) {
      ember_context_params cp = ember_context_default_params();
      cp.n_ctx = 128;
      cp.n_threads = threads;
      ember_context* ctx = nullptr;
      ASSERT_EQ(ember_context_create(model, &cp, nullptr, 0, &ctx), EMBER_OK) << ember_last_error();
      for (const auto& r : ref["results"]) {
        const std::string prompt = r["prompt"];
        SCOPED_TRACE(testing::Message() << "variant " << name << " threads " << threads
                                        << " prompt '" << prompt << "'");
        const auto want = r["generated_ids_ignoring_bos_stop"].get<std::vector<int32_t>>();
        ASSERT_GE(want.size(), n_new);
        ASSERT_EQ(ember_kv_clear(ctx, -1), EMBER_OK);
        ember_generate_params gp = ember_generate_default_params();
        gp.max_new_tokens = n_new;
        gp.stop_at_bos = 0;
        gp.sampler.temperature = 0.0f;
        std::vector<int32_t> ids(256);
        size_t n = 0;
        ember_generate_stats st;
        ASSERT_EQ(ember_generate(ctx, prompt.data(), prompt.size(), &gp, nullptr, nullptr,
                                 ids.data(), ids.size(), &n, &st),
                  EMBER_OK)
            << ember_last_error();
        const std::vector<int32_t> got(ids.begin() + st.n_prompt_tokens, ids.begin() + n);
        EXPECT_EQ(got, std::vector<int32_t>(want.begin(), want.begin() + n_new));
      }
      ember_context_free(ctx);
    }
  }
  ASSERT_EQ(ember_force_kernel_variant(active.c_str()), EMBER_OK);
  ember_model_free(model);
}

}  // namespace
