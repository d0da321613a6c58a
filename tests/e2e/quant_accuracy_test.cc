// Teacher-forced accuracy of u8 configurations against float32, on both shared models and on the
// same tokens for every configuration: the greedy continuations of stories260K's reference prompts
// (expected/greedy.json, llama2.c's) and, for aidreams260K (no expected file), Ember's f32 greedy
// continuations of the same prompts to its 128-token context. The f32 logits are Ember's f32 model
// (llama2.c's to ~1e-5); the quantized ones come through the C API (ember_decode +
// ember_get_logits). The 8-bit block format of llama.cpp (Q8_0) is emulated by the numpy reference
// (reference_forward.py --q8_0) on the same tokens; its float path is checked against Ember's f32
// first, so that the comparison measures quantization only.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "e2e/e2e_util.h"

#ifndef EMBER_E2E_SOURCE_DIR
#error "EMBER_E2E_SOURCE_DIR must point at tests/e2e"
#endif

namespace ember_test {
namespace {

struct SharedModel {
  const char* name;
  const char* hf;  // under ../shared
};
const SharedModel kModels[] = {{"stories260K", "models/stories260K/hf"},
                               {"aidreams260K", "models/aidreams260K/hf"}};

using Logits = std::vector<std::vector<float>>;  // (positions, vocab), sequence after sequence

struct Score {
  double mean_kl = 0, top1 = 0;
  size_t n = 0;
};

Score score(const Logits& ref, const Logits& got) {
  Score s;
  EXPECT_EQ(ref.size(), got.size());
  s.n = std::min(ref.size(), got.size());
  size_t agree = 0;
  for (size_t p = 0; p < s.n; ++p) {
    s.mean_kl += kl_divergence(ref[p], got[p]);
    agree += argmax_of(ref[p]) == argmax_of(got[p]);
  }
  s.mean_kl /= double(s.n);
  s.top1 = double(agree) / double(s.n);
  return s;
}

// The prompts of stories260K's expected/greedy.json.
std::vector<std::string> reference_prompts() {
  const std::string path = shared_path("models/stories260K/expected/greedy.json");
  std::vector<std::string> out;
  if (path.empty()) return out;
  const nlohmann::json ref = read_json(path);  // (kept: the loop reads into it)
  for (const auto& r : ref["results"]) out.push_back(r["prompt"]);
  return out;
}

// The token sequences of one model (see the file comment); f32_ctx runs its f32 greedy decoding.
std::vector<std::vector<int32_t>> sequences(const SharedModel& sm, const ember_model* f32,
                                            ember_context* f32_ctx) {
  std::vector<std::vector<int32_t>> out;
  if (std::strcmp(sm.name, "stories260K") == 0) {
    const auto ref = read_json(shared_path("models/stories260K/expected/greedy.json"));
    for (const auto& r : ref["results"]) {
      auto ids = r["prompt_ids"].get<std::vector<int32_t>>();
      const auto gen = r["generated_ids_ignoring_bos_stop"].get<std::vector<int32_t>>();
      ids.insert(ids.end(), gen.begin(), gen.end());
      out.push_back(ids);
    }
    return out;
  }
  ember_model_info info;
  EXPECT_EQ(ember_model_get_info(f32, &info), EMBER_OK);
  for (const std::string& prompt : reference_prompts()) {
    size_t n_prompt = 0;
    auto ids = tokenize(f32, prompt);
    const auto gen =
        generate_greedy(f32_ctx, prompt, info.max_context - uint32_t(ids.size()), false, &n_prompt);
    ids.insert(ids.end(), gen.begin(), gen.end());
    out.push_back(ids);
  }
  return out;
}

Logits ember_logits(const std::string& path, const std::vector<std::vector<int32_t>>& seqs) {
  ModelPtr model = load_model(path);
  if (!model) return {};
  ContextPtr ctx = make_context(model.get());
  if (!ctx) return {};
  ember_model_info info;
  EXPECT_EQ(ember_model_get_info(model.get(), &info), EMBER_OK);
  Logits out;
  for (const auto& ids : seqs) {
    const Logits l = teacher_forced_logits(ctx.get(), info.vocab_size, ids, 64);
    out.insert(out.end(), l.begin(), l.end());
  }
  return out;
}

// The numpy reference's logits for every sequence (`q8`: the Q8_0 emulation); empty, with
// *missing_numpy set, where python3's numpy is absent.
Logits numpy_logits(const std::string& hf, const std::vector<std::vector<int32_t>>& seqs,
                    size_t vocab, bool q8, bool* missing_numpy) {
  std::string list;
  size_t positions = 0;
  for (const auto& ids : seqs) {
    if (!list.empty()) list += ";";
    for (size_t i = 0; i < ids.size(); ++i) list += (i ? "," : "") + std::to_string(ids[i]);
    positions += ids.size();
  }
  const std::string out = temp_path(q8 ? "numpy_q8_0.bin" : "numpy_f32.bin");
  const std::string cmd = "/usr/bin/python3 '" + std::string(EMBER_E2E_SOURCE_DIR) +
                          "/reference_forward.py' '" + hf + "' '" + list + "' '" + out + "'" +
                          (q8 ? " --q8_0" : "");
  std::string log;
  const int rc = run_command(cmd, &log);
  *missing_numpy = rc != 0 && log.find("No module named 'numpy'") != std::string::npos;
  if (*missing_numpy) return {};
  EXPECT_EQ(rc, 0) << log;
  const std::vector<unsigned char> bytes = read_file(out);
  EXPECT_EQ(bytes.size(), positions * vocab * sizeof(float));
  if (bytes.size() != positions * vocab * sizeof(float)) return {};
  Logits l(positions, std::vector<float>(vocab));
  for (size_t p = 0; p < positions; ++p)
    std::memcpy(l[p].data(), bytes.data() + p * vocab * sizeof(float), vocab * sizeof(float));
  return l;
}

// One model's f32 reference: its sequences and Ember's f32 logits on them.
struct Reference {
  std::string hf;
  std::vector<std::vector<int32_t>> seqs;
  Logits f32;
  uint32_t vocab = 0;
};

Reference reference(const SharedModel& sm) {
  Reference r;
  r.hf = shared_path(sm.hf);
  const std::string p32 = converted_model(r.hf, "--quant f32");
  ModelPtr m32 = load_model(p32);
  if (!m32) return r;
  ContextPtr c32 = make_context(m32.get());
  if (!c32) return r;
  ember_model_info info;
  EXPECT_EQ(ember_model_get_info(m32.get(), &info), EMBER_OK);
  r.vocab = info.vocab_size;
  r.seqs = sequences(sm, m32.get(), c32.get());
  r.f32 = ember_logits(p32, r.seqs);
  return r;
}

// Score of `sm` converted with `options` against its f32 reference.
Score u8_score(const Reference& r, const std::string& options) {
  const std::string path = converted_model(r.hf, options);
  if (path.empty()) return {};
  return score(r.f32, ember_logits(path, r.seqs));
}

// The converter's default u8 at group 64 (8.5 bits per weight: f16 params) has a lower mean KL
// against f32 than llama.cpp's Q8_0 (8.5 bits per weight) emulated on the same tokens, on both
// models; and it meets the accuracy budget of u8 group 64 (mean KL <= 0.002, top-1 >= 98%). Format
// 2's group 64 (f32 params, activation group = group) stays within the KL budget.
TEST(QuantAccuracy, DefaultU8AtGroup64BeatsQ8_0) {
  EMBER_REQUIRE_SHARED(greedy, "models/stories260K/expected/greedy.json");
  for (const SharedModel& sm : kModels) {
    SCOPED_TRACE(sm.name);
    EMBER_REQUIRE_SHARED(hf, sm.hf);
    const Reference r = reference(sm);
    ASSERT_FALSE(r.f32.empty());
    bool missing_numpy = false;
    const Logits np32 = numpy_logits(hf, r.seqs, r.vocab, false, &missing_numpy);
    if (missing_numpy) EMBER_SKIP_OR_FAIL_IN_CI() << "python3-numpy is not installed";
    const Score np = score(r.f32, np32);
    ASSERT_LT(np.mean_kl, 1e-7) << "the numpy float path differs from Ember's f32";
    const Score q8 = score(r.f32, numpy_logits(hf, r.seqs, r.vocab, true, &missing_numpy));

    const std::string def_path = converted_model(hf, "--quant u8 --group 64");
    ASSERT_FALSE(def_path.empty());
    ModelPtr def_model = load_model(def_path);
    ASSERT_TRUE(def_model);
    std::vector<char> desc(1 << 16);
    ASSERT_EQ(ember_model_describe(def_model.get(), desc.data(), desc.size(), nullptr), EMBER_OK);
    const std::string d = desc.data();
    EXPECT_NE(d.find("F16 params"), std::string::npos) << "the default is not 8.5 bits per weight";
    EXPECT_EQ(d.find("F32 params"), std::string::npos) << "the default is not 8.5 bits per weight";
    const Score def = u8_score(r, "--quant u8 --group 64");
    const Score fmt2 = u8_score(r, "--quant u8 --group 64 --params f32 --act-group 0");
    std::printf(
        "[ %s ] %zu positions, mean KL vs f32 / top-1: u8 g64 default %.6f / %.2f%%, u8 g64 f32 "
        "params + act group 64 %.6f / %.2f%%, Q8_0 emulated %.6f / %.2f%% (numpy f32 vs Ember "
        "f32: %.2g)\n",
        sm.name, def.n, def.mean_kl, 100 * def.top1, fmt2.mean_kl, 100 * fmt2.top1, q8.mean_kl,
        100 * q8.top1, np.mean_kl);
    EXPECT_LT(def.mean_kl, q8.mean_kl);
    EXPECT_LE(def.mean_kl, 0.002);
    EXPECT_GE(def.top1, 0.98);
    EXPECT_LE(fmt2.mean_kl, 0.002);  // (its top-1 on stories260K is 97.9%: format 2 missed it)
  }
}

// The grid: weight group {16, 32, 64, 128} x activation group {16, 32, = group} x params {f32,
// f16}, printed per model (docs/performance.md has the table). Every configuration stays within a
// loose budget (mean KL <= 0.005, top-1 >= 95%), and at each group and activation group f16 params
// cost at most 25% more mean KL than f32 (the scale and min round to 11 bits).
TEST(QuantAccuracy, GroupGrid) {
  EMBER_REQUIRE_SHARED(greedy, "models/stories260K/expected/greedy.json");
  for (const SharedModel& sm : kModels) {
    SCOPED_TRACE(sm.name);
    EMBER_REQUIRE_SHARED(hf, sm.hf);
    const Reference r = reference(sm);
    ASSERT_FALSE(r.f32.empty());
    std::printf("[ %s ] %zu positions; mean KL(f32 || u8) / top-1\n", sm.name, r.f32.size());
    std::printf("[ %s ] group  act   f32 params           f16 params\n", sm.name);
    for (int g : {16, 32, 64, 128}) {
      for (int a : {16, 32, 0}) {
        if (a >= g) continue;  // (the same as = group, or not a divisor)
        Score s[2];
        for (int f16 = 0; f16 < 2; ++f16) {
          const std::string opts = "--quant u8 --group " + std::to_string(g) + " --params " +
                                   (f16 ? "f16" : "f32") + " --act-group " + std::to_string(a);
          SCOPED_TRACE(opts);
          s[f16] = u8_score(r, opts);
          EXPECT_LE(s[f16].mean_kl, 0.005);
          EXPECT_GE(s[f16].top1, 0.95);
        }
        EXPECT_LE(s[1].mean_kl, 1.25 * s[0].mean_kl) << "group " << g << " act " << a;
        std::printf("[ %s ] %5d  %-4s  %.6f / %6.2f%%  %.6f / %6.2f%%\n", sm.name, g,
                    a == 0 ? "=g" : std::to_string(a).c_str(), s[0].mean_kl, 100 * s[0].top1,
                    s[1].mean_kl, 100 * s[1].top1);
      }
    }
  }
}

}  // namespace
}  // namespace ember_test
