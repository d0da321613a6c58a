// Models with some matrices kept in float (ember-convert --keep-float) through the public API:
// a mixed f32 / f16 / u8 stories260K loads, ember_model_describe lists each tensor's stored type,
// it generates the same tokens with 1 and 2 threads and in an arena of exactly
// ember_context_required_bytes; every matrix kept in f32 gives the --quant f32 model's logits bit
// for bit; and keeping layers in float brings the teacher-forced logits closer to the reference
// (../shared's logits.json, from outside this code) than plain u8.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "converter/converter_test_util.h"
#include "e2e/e2e_util.h"

namespace ember_test {
namespace {

const char kMixed[] =
    "--quant u8 --group 16 --keep-float 'model.layers.0.*' --keep-float lm_head.weight:f16";

std::string describe(const ember_model* m) {
  size_t need = 0;
  EXPECT_EQ(ember_model_describe(m, nullptr, 0, &need), EMBER_OK);
  std::vector<char> buf(need);
  EXPECT_EQ(ember_model_describe(m, buf.data(), buf.size(), nullptr), EMBER_OK);
  return std::string(buf.data());
}

// The describe line of tensor `name` ("  name  TYPE [shape] ..."), or "".
std::string tensor_line(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string first;
    words >> first;
    if (first == name && line.rfind("  ", 0) == 0) return line;
  }
  return "";
}

TEST(KeepFloat, MixedModelDescribesEveryTensorsType) {
  EMBER_REQUIRE_CONVERTED(path, "models/stories260K/hf", kMixed);
  ModelPtr model = load_model(path);
  ASSERT_TRUE(model);
  const std::string text = describe(model.get());
  const char* modules[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                           "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                           "mlp.down_proj"};
  for (int l = 0; l < 5; ++l) {
    for (const char* mod : modules) {
      const std::string name = "model.layers." + std::to_string(l) + "." + mod + ".weight";
      const std::string line = tensor_line(text, name);
      SCOPED_TRACE(line);
      ASSERT_FALSE(line.empty()) << name << " not listed in:\n" << text;
      std::istringstream words(line);
      std::string n, type;
      words >> n >> type;
      if (l == 0) {
        EXPECT_EQ(type, "F32");
        EXPECT_NE(line.find("kept float by 'model.layers.0.*:f32'"), std::string::npos);
        EXPECT_EQ(line.find("group"), std::string::npos);
      } else {
        EXPECT_EQ(type, "U8_ZERO_ONE");
        EXPECT_NE(line.find("group 16, rel rms error 0.00"), std::string::npos);
        EXPECT_EQ(line.find("kept float"), std::string::npos);
      }
    }
    const std::string norm =
        tensor_line(text, "model.layers." + std::to_string(l) + ".input_layernorm.weight");
    EXPECT_NE(norm.find(" F32 "), std::string::npos) << norm;
    EXPECT_EQ(norm.find("kept float"), std::string::npos) << norm;
  }
  const std::string emb = tensor_line(text, "model.embed_tokens.weight");
  EXPECT_NE(emb.find(" F16 "), std::string::npos) << emb;
  EXPECT_NE(emb.find("[512, 64]"), std::string::npos) << emb;
  EXPECT_NE(emb.find("kept float by 'lm_head.weight:f16'"), std::string::npos) << emb;
  EXPECT_NE(text.find("keep-float: 'model.layers.0.*:f32' 'lm_head.weight:f16' (8 tensors kept "
                      "in float)"),
            std::string::npos)
      << text;
  // The buffer-size contract: a short buffer gets a NUL-terminated prefix, `needed` the full size.
  char small[64];
  size_t need = 0;
  ASSERT_EQ(ember_model_describe(model.get(), small, sizeof small, &need), EMBER_OK);
  EXPECT_EQ(need, text.size() + 1);
  EXPECT_EQ(std::string(small), text.substr(0, sizeof small - 1));
}

// Greedy ids of `prompt` from a context in an arena of exactly the required bytes (one byte less
// is refused), with `threads` threads.
std::vector<int32_t> generate_in_exact_arena(const ember_model* m, const std::string& prompt,
                                             uint32_t threads) {
  ember_context_params cp = ember_context_default_params();
  cp.n_ctx = 256;
  cp.n_threads = threads;
  size_t need = 0;
  EXPECT_EQ(ember_context_required_bytes(m, &cp, &need), EMBER_OK);
  void* arena = nullptr;
  if (posix_memalign(&arena, 64, need) != 0) return {};
  ember_context* ctx = nullptr;
  EXPECT_EQ(ember_context_create(m, &cp, arena, need - 1, &ctx), EMBER_ERR_OUT_OF_MEMORY);
  EXPECT_EQ(ember_context_create(m, &cp, arena, need, &ctx), EMBER_OK) << ember_last_error();
  std::vector<int32_t> ids;
  if (ctx) {
    ids = generate_greedy(ctx, prompt, 120, /*stop_at_bos=*/false);
    ember_context_free(ctx);
  }
  std::free(arena);
  return ids;
}

TEST(KeepFloat, MixedModelGeneratesInAnExactArena) {
  EMBER_REQUIRE_CONVERTED(path, "models/stories260K/hf", kMixed);
  EMBER_REQUIRE_CONVERTED(u8_path, "models/stories260K/hf", "--quant u8 --group 16");
  ModelPtr model = load_model(path);
  ASSERT_TRUE(model);
  const std::string prompt = "Once upon a time, there was a little girl";
  const std::vector<int32_t> one = generate_in_exact_arena(model.get(), prompt, 1);
  ASSERT_EQ(one.size(), 120u);
  EXPECT_EQ(generate_in_exact_arena(model.get(), prompt, 2), one) << "threads change the tokens";
  // The heap context and the decode path of ember_generate give the same ids.
  ContextPtr ctx = make_context(model.get(), 256);
  ASSERT_TRUE(ctx);
  EXPECT_EQ(generate_greedy(ctx.get(), prompt, 120, false), one);
  // Float matrices need no activation-quantization scratch: keeping the widest-input matrices
  // (down_proj, 172 inputs) of every layer in float shrinks the context; no u8 matrix at all
  // (every matrix kept f32) needs as little as --quant f32.
  ember_context_params cp = ember_context_default_params();
  auto bytes = [&](const std::string& p) {
    ModelPtr m = load_model(p);
    size_t b = 0;
    EXPECT_TRUE(m);
    if (m) {
      EXPECT_EQ(ember_context_required_bytes(m.get(), &cp, &b), EMBER_OK);
    }
    return b;
  };
  const std::string down =
      converted_model(u8_path_source_, "--quant u8 --group 16 --keep-float '*.down_proj.*:f16'");
  const std::string all = converted_model(u8_path_source_, "--quant u8 --keep-float '*'");
  const std::string f32 = converted_model(u8_path_source_, "--quant f32");
  ASSERT_FALSE(down.empty() || all.empty() || f32.empty());
  EXPECT_LT(bytes(down), bytes(u8_path));
  EXPECT_EQ(bytes(all), bytes(f32));
  EXPECT_LT(bytes(f32), bytes(down));
}

// Teacher-forced logits of logits.json's input ids, fed in batches of `batch` tokens.
std::vector<std::vector<float>> forced(const std::string& path, const std::vector<int32_t>& ids,
                                       size_t batch, uint32_t threads) {
  ModelPtr model = load_model(path);
  if (!model) return {};
  ContextPtr ctx = make_context(model.get(), 0, 64, threads);
  if (!ctx) return {};
  return teacher_forced_logits(ctx.get(), 512, ids, batch);
}

TEST(KeepFloat, EveryMatrixKeptF32IsTheF32ModelBitForBit) {
  EMBER_REQUIRE_SHARED(ref_path, "models/stories260K/expected/logits.json");
  EMBER_REQUIRE_CONVERTED(all, "models/stories260K/hf", "--quant u8 --keep-float '*'");
  EMBER_REQUIRE_CONVERTED(f32, "models/stories260K/hf", "--quant f32");
  const auto ids = read_json(ref_path)["input_ids"].get<std::vector<int32_t>>();
  for (size_t batch : {size_t{1}, size_t{64}}) {
    for (uint32_t threads : {1u, 2u}) {
      SCOPED_TRACE(testing::Message() << "batch " << batch << ", " << threads << " thread(s)");
      const auto a = forced(all, ids, batch, threads);
      const auto b = forced(f32, ids, batch, threads);
      ASSERT_EQ(a.size(), ids.size());
      ASSERT_EQ(b.size(), ids.size());
      for (size_t p = 0; p < a.size(); ++p)
        ASSERT_EQ(std::memcmp(a[p].data(), b[p].data(), 512 * sizeof(float)), 0)
            << "position " << p;
    }
  }
  ModelPtr ma = load_model(all), mb = load_model(f32);
  ASSERT_TRUE(ma && mb);
  ember_model_info ia, ib;
  ASSERT_EQ(ember_model_get_info(ma.get(), &ia), EMBER_OK);
  ASSERT_EQ(ember_model_get_info(mb.get(), &ib), EMBER_OK);
  EXPECT_EQ(ia.weight_bytes, ib.weight_bytes);
  EXPECT_EQ(ia.token_read_bytes, ib.token_read_bytes);
}

// Float matrices in row blocks (the default) and row-major (--float-layout rows) are the same
// model: the blocked GEMVs sum in the row-major kernels' order, so the logits are equal bit for bit
// (prefill and decode, 1 and 2 threads), for f32 and f16, on both shared models' shapes.
TEST(KeepFloat, RowBlocksGiveTheRowMajorLogitsBitForBit) {
  EMBER_REQUIRE_SHARED(ref_path, "models/stories260K/expected/logits.json");
  const auto ids = read_json(ref_path)["input_ids"].get<std::vector<int32_t>>();
  for (const char* model : {"models/stories260K/hf", "models/aidreams260K/hf"}) {
    for (const char* quant : {"--quant f32", "--quant f16", "--keep-float '*.down_proj.*:f16'"}) {
      EMBER_REQUIRE_CONVERTED(blocks, model, quant);
      EMBER_REQUIRE_CONVERTED(rows, model, std::string(quant) + " --float-layout rows");
      ModelPtr mb = load_model(blocks), mr = load_model(rows);
      ASSERT_TRUE(mb && mr);
      const char* down = "model.layers.0.mlp.down_proj.weight";  // float in every case here
      EXPECT_NE(tensor_line(describe(mb.get()), down).find("row blocks of 16"), std::string::npos);
      EXPECT_EQ(tensor_line(describe(mr.get()), down).find("row blocks"), std::string::npos);
      ember_model_info info;
      ASSERT_EQ(ember_model_get_info(mb.get(), &info), EMBER_OK);
      for (size_t batch : {size_t{1}, size_t{64}}) {
        for (uint32_t threads : {1u, 2u}) {
          SCOPED_TRACE(testing::Message() << model << " " << quant << ", batch " << batch << ", "
                                          << threads << " thread(s)");
          const auto a = forced(blocks, ids, batch, threads);
          const auto b = forced(rows, ids, batch, threads);
          ASSERT_EQ(a.size(), ids.size());
          ASSERT_EQ(b.size(), ids.size());
          for (size_t p = 0; p < a.size(); ++p)
            ASSERT_EQ(std::memcmp(a[p].data(), b[p].data(), info.vocab_size * sizeof(float)), 0)
                << "position " << p;
        }
      }
    }
  }
}

struct Closeness {
  double mean_kl = 0, max_abs = 0;
};

// Teacher-forced logits of `path` against logits.json's reference logits.
Closeness closeness(const std::string& path, const nlohmann::json& ref) {
  const auto ids = ref["input_ids"].get<std::vector<int32_t>>();
  const auto got = forced(path, ids, 64, 1);
  Closeness c;
  EXPECT_EQ(got.size(), ids.size());
  for (size_t p = 0; p < got.size(); ++p) {
    const auto want = ref["logits"][p].get<std::vector<float>>();
    c.mean_kl += kl_divergence(want, got[p]) / got.size();
    for (size_t v = 0; v < want.size(); ++v)
      c.max_abs = std::max(c.max_abs, double(std::fabs(want[v] - got[p][v])));
  }
  return c;
}

TEST(KeepFloat, KeptLayersAreCloserToTheReferenceThanPlainU8) {
  EMBER_REQUIRE_SHARED(ref_path, "models/stories260K/expected/logits.json");
  const nlohmann::json ref = read_json(ref_path);
  for (const char* group : {"16", "64"}) {
    const std::string u8 = std::string("--quant u8 --group ") + group;
    EMBER_REQUIRE_CONVERTED(plain, "models/stories260K/hf", u8);
    EMBER_REQUIRE_CONVERTED(mixed, "models/stories260K/hf",
                            u8 + " --keep-float 'model.layers.0.*' --keep-float lm_head.weight");
    EMBER_REQUIRE_CONVERTED(halves, "models/stories260K/hf", u8 + " --keep-float '*:f16'");
    const Closeness p = closeness(plain, ref), m = closeness(mixed, ref),
                    h = closeness(halves, ref);
    std::printf(
        "[ keep-float ] group %s, teacher-forced against the reference: mean KL / max |logit "
        "diff|: u8 %.6f / %.4f, layer 0 + head kept f32 %.6f / %.4f, every matrix f16 %.6f / "
        "%.4f\n",
        group, p.mean_kl, p.max_abs, m.mean_kl, m.max_abs, h.mean_kl, h.max_abs);
    EXPECT_LT(m.mean_kl, p.mean_kl) << "group " << group;
    EXPECT_LT(m.max_abs, p.max_abs) << "group " << group;
    EXPECT_LT(h.mean_kl, m.mean_kl) << "group " << group;
  }
}

// An untied head kept in float alone: stories260K with lm_head.weight a copy of the embedding (the
// same model, so the reference logits hold), converted to u8 with only the head in f32. The head
// is the one float matrix (the embedding stays u8), and the logits are closer to the reference
// than with everything u8.
TEST(KeepFloat, UntiedHeadKeptInFloatAlone) {
  EMBER_REQUIRE_SHARED(ref_path, "models/stories260K/expected/logits.json");
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  const nlohmann::json ref = read_json(ref_path);
  const std::string dir = derived_checkpoint(
      hf, "untied_keep_float", [](nlohmann::json& c) { c["tie_word_embeddings"] = false; },
      [](std::map<std::string, RawTensor>& t) {
        t["lm_head.weight"] = t.at("model.embed_tokens.weight");
      });
  const std::string plain = converted_model(dir, "--quant u8 --group 64");
  const std::string head =
      converted_model(dir, "--quant u8 --group 64 --keep-float lm_head.weight");
  ASSERT_FALSE(plain.empty() || head.empty());
  ModelPtr model = load_model(head);
  ASSERT_TRUE(model);
  const std::string text = describe(model.get());
  const std::string lm = tensor_line(text, "lm_head.weight");
  EXPECT_NE(lm.find(" F32 "), std::string::npos) << lm;
  EXPECT_NE(lm.find("kept float by 'lm_head.weight:f32'"), std::string::npos) << lm;
  const std::string emb = tensor_line(text, "model.embed_tokens.weight");
  EXPECT_NE(emb.find(" U8_ZERO_ONE "), std::string::npos) << emb;
  EXPECT_NE(text.find("(1 tensors kept in float)"), std::string::npos) << text;
  const Closeness p = closeness(plain, ref), h = closeness(head, ref);
  std::printf(
      "[ keep-float ] untied head alone in f32: mean KL / max |logit diff| against the "
      "reference: u8 %.6f / %.4f, head f32 %.6f / %.4f\n",
      p.mean_kl, p.max_abs, h.mean_kl, h.max_abs);
  EXPECT_LT(h.mean_kl, p.mean_kl);
}

}  // namespace
}  // namespace ember_test
