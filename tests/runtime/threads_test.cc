// The forward pass gives the same bits whatever the thread count and however a prompt is cut into
// batches: 1 to 4 threads (3 threads do not divide 4 KV heads, 4 do not divide 6, so the u8 models
// take the separate q/k/v + attention path there, the fused KV-group path otherwise), one batch
// of P tokens or batches of 1 and 5, two sequence slots interleaved in one batch. Models:
// stories260K (u8 group 32, u8 per row, f32), aidreams260K (u8), a synthetic stories15m (u8), and
// stories260K with every bias term added (attention_bias and mlp_bias: random biases written into
// a copy of its checkpoint here), u8 and f32.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "converter/converter_test_util.h"
#include "ember/ember.h"
#include "support/convert.h"
#include "support/test_support.h"

namespace {

// Logits of every prompt token (prompt split into batches of `chunk`, tokens alternating between
// slots 0 and 1 as (0, 0, 1) repeating), then of `gen` greedy single-token steps on slot 0.
std::vector<float> run(const std::string& path, uint32_t threads, uint32_t chunk, uint32_t P) {
  std::vector<float> out;
  ember_model* model = nullptr;
  EXPECT_EQ(ember_model_load_file(path.c_str(), &model), EMBER_OK) << ember_last_error();
  if (!model) return out;
  ember_model_info info;
  EXPECT_EQ(ember_model_get_info(model, &info), EMBER_OK);
  const uint32_t gen = 6;
  ember_context_params cp = ember_context_default_params();
  cp.n_ctx = P + gen + 8;
  cp.n_batch_max = P;
  cp.n_seq_max = 2;
  cp.n_threads = threads;
  ember_context* ctx = nullptr;
  EXPECT_EQ(ember_context_create(model, &cp, nullptr, 0, &ctx), EMBER_OK) << ember_last_error();
  if (ctx) {
    std::vector<int32_t> tok(P), pos(P), seq(P);
    std::vector<uint8_t> want(P, 1);
    int32_t len[2] = {0, 0};
    for (uint32_t i = 0; i < P; ++i) {
      tok[i] = static_cast<int32_t>((i * 7919u + 11u) % info.vocab_size);
      seq[i] = i % 3 == 2 ? 1 : 0;
      pos[i] = len[seq[i]]++;
    }
    for (uint32_t i0 = 0; i0 < P; i0 += chunk) {
      const uint32_t n = P - i0 < chunk ? P - i0 : chunk;
      ember_batch b{n, tok.data() + i0, pos.data() + i0, seq.data() + i0, want.data() + i0};
      EXPECT_EQ(ember_decode(ctx, &b), EMBER_OK) << ember_last_error();
      for (uint32_t i = 0; i < n; ++i) {
        const float* l = ember_get_logits(ctx, i);
        EXPECT_NE(l, nullptr);
        if (l) out.insert(out.end(), l, l + info.vocab_size);
      }
    }
    int32_t t = 1;
    for (uint32_t g = 0; g < gen; ++g) {
      int32_t p = len[0]++, s = 0;
      ember_batch one{1, &t, &p, &s, nullptr};
      EXPECT_EQ(ember_decode(ctx, &one), EMBER_OK) << ember_last_error();
      const float* l = ember_get_logits(ctx, 0);
      if (!l) break;
      out.insert(out.end(), l, l + info.vocab_size);
      int32_t best = 0;
      for (uint32_t v = 1; v < info.vocab_size; ++v)
        best = l[v] > l[best] ? static_cast<int32_t>(v) : best;
      t = best;
    }
    ember_context_free(ctx);
  }
  ember_model_free(model);
  return out;
}

// Models this small run mostly on the calling thread (LinearExecutor::kMinParallelWork); the
// synthetic stories15m below is large enough for every pool path.
void expect_same_bits(const std::string& path, uint32_t P = 29, uint32_t max_threads = 3) {
  const std::vector<float> ref = run(path, 1, P, P);
  ASSERT_FALSE(ref.empty());
  // (More threads than this machine's 2 cores are slow: one run of them.)
  const struct {
    uint32_t threads, chunk;
  } runs[] = {{1, 5}, {1, 1}, {2, P}, {2, 5}, {2, 1}, {3, P}, {4, P}};
  for (const auto& r : runs) {
    const uint32_t threads = r.threads, chunk = r.chunk;
    if (threads > max_threads) continue;
    SCOPED_TRACE(testing::Message() << path << " threads " << threads << " batches of " << chunk);
    const std::vector<float> o = run(path, threads, chunk, P);
    ASSERT_EQ(o.size(), ref.size());
    EXPECT_EQ(0, std::memcmp(o.data(), ref.data(), ref.size() * sizeof(float)))
        << "logits differ from 1 thread, one batch";
  }
}

// A copy of the stories260K checkpoint with attention_bias and mlp_bias set and a random bias
// (N(0, 0.1)) for every projection; returns its directory.
std::string biased_checkpoint(const std::string& hf) {
  const int layers = ember_test::read_json(hf + "/config.json")["num_hidden_layers"].get<int>();
  return ember_test::derived_checkpoint(
      hf, "biased260K",
      [](nlohmann::json& c) {
        c["attention_bias"] = true;
        c["mlp_bias"] = true;
      },
      [layers](std::map<std::string, ember_test::RawTensor>& t) {
        std::mt19937 rng(3);
        std::normal_distribution<float> dist(0.0f, 0.1f);
        for (int l = 0; l < layers; ++l) {
          for (const char* proj :
               {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}) {
            const std::string p = "model.layers." + std::to_string(l) + "." + proj;
            const uint64_t rows = t.at(p + ".weight").shape[0];
            std::vector<float> bias(rows);
            for (float& b : bias) b = dist(rng);
            t[p + ".bias"] = {"F32", {rows}, ember_test::f32_bytes(bias)};
          }
        }
      });
}

TEST(ForwardThreads, Stories260K) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  for (const char* quant : {"u8 --group 32", "u8 --group 0", "f32"}) {
    const std::string path = ember_test::converted_model(hf, std::string("--quant ") + quant);
    ASSERT_FALSE(path.empty());
    expect_same_bits(path);
  }
}

TEST(ForwardThreads, Aidreams260K) {
  EMBER_REQUIRE_CONVERTED(path, "models/aidreams260K/hf", "--quant u8");
  expect_same_bits(path);
}

// 6 KV heads: 2 and 3 threads take the fused KV-group path, 4 the separate one; 120 tokens of
// dim 288 split their element-wise work across the pool.
TEST(ForwardThreads, SyntheticStories15M) {
  EMBER_REQUIRE_SHARED(tok, "tokenizers/llama2/tokenizer.json");
  const std::string dir = tok.substr(0, tok.size() - std::strlen("/tokenizer.json"));
  const std::string path = ember_test::converted_model(
      "", "--synthetic stories15m --seed 7 --group 32 --synthetic-tokenizer " + dir);
  ASSERT_FALSE(path.empty());
  expect_same_bits(path, 120, 4);
}

TEST(ForwardThreads, EveryBiasTerm) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  const std::string dir = biased_checkpoint(hf);
  for (const char* quant : {"u8 --group 32", "f32"}) {
    const std::string path = ember_test::converted_model(dir, std::string("--quant ") + quant);
    ASSERT_FALSE(path.empty());
    expect_same_bits(path);
  }
  // The biases are used: the same prompt gives other logits than the model without them.
  const std::string plain = ember_test::converted_model(hf, "--quant f32");
  const std::string biased = ember_test::converted_model(dir, "--quant f32");
  const std::vector<float> a = run(plain, 1, 29, 29), b = run(biased, 1, 29, 29);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_NE(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
}

}  // namespace
