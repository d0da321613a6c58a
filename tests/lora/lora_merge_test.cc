// LoRA merge: the shared attn-r8 adapter against the independent float64 reference merge
// in ../shared, self-built PEFT adapters against a plain reference merge written below, and every
// refusal. The adapters are written by a small safetensors writer here (test code).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "lora.h"
#include "model_ir.h"
#include "safetensors.h"
#include "support/test_support.h"

namespace {

using ember::convert::AdapterRecord;
using ember::convert::apply_loras;
using ember::convert::ConvertError;
using ember::convert::FloatTensor;
using ember::convert::LoraRequest;
using ember::convert::ModelIR;
using ember::convert::parse_lora_arg;
using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

// ------------------------------------------------------------------ a tiny safetensors writer ----

struct TestTensor {
  std::vector<uint64_t> shape;
  std::vector<float> data;
  std::string dtype = "F32";  // F32, F16 (values must be exact halves), BF16 (exact bfloat16)
};

uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Exact only for zero and normal halves, which is all the tests write.
uint16_t exact_f16(float f) {
  const uint32_t u = f32_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  if ((u & 0x7fffffffu) == 0) return sign;
  const int exp = static_cast<int>((u >> 23) & 0xff) - 127 + 15;
  EXPECT_TRUE(exp > 0 && exp < 31 && (u & 0x1fffu) == 0) << f << " is not an exact half";
  return static_cast<uint16_t>(sign | (exp << 10) | ((u >> 13) & 0x3ffu));
}

void write_safetensors(const std::string& path, const std::map<std::string, TestTensor>& tensors) {
  ojson header;
  header["__metadata__"] = {{"format", "pt"}};
  std::string data;
  for (const auto& kv : tensors) {
    const TestTensor& t = kv.second;
    const size_t begin = data.size();
    for (float v : t.data) {
      if (t.dtype == "F32") {
        uint32_t u = f32_bits(v);
        data.append(reinterpret_cast<const char*>(&u), 4);
      } else if (t.dtype == "BF16") {
        EXPECT_EQ(f32_bits(v) & 0xffffu, 0u) << v << " is not an exact bfloat16";
        uint16_t h = static_cast<uint16_t>(f32_bits(v) >> 16);
        data.append(reinterpret_cast<const char*>(&h), 2);
      } else {
        uint16_t h = exact_f16(v);
        data.append(reinterpret_cast<const char*>(&h), 2);
      }
    }
    header[kv.first] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
  }
  std::string h = header.dump();
  while (h.size() % 8) h += ' ';
  uint64_t n = h.size();
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(&n), 8);
  f.write(h.data(), static_cast<std::streamsize>(h.size()));
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// ------------------------------------------------------------------------- a small base model ----

// A 3-layer Llama-shaped model: hidden 8, 4 heads / 2 KV heads of 2, MLP 12, vocab 32, tied head.
constexpr uint64_t kHidden = 8, kKv = 4, kMlp = 12, kVocab = 32, kLayers = 3;

std::vector<float> random_values(size_t n, uint32_t seed, float stddev) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Values m/256, |m| <= 127: exact in F32, F16 and BF16.
std::vector<float> grid_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(-127, 127);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(dist(rng)) / 256.0f;
  return v;
}

FloatTensor make_tensor(std::vector<uint64_t> shape, uint32_t seed) {
  FloatTensor t;
  size_t n = 1;
  for (uint64_t d : shape) n *= d;
  t.shape = shape;
  t.data = random_values(n, seed, 0.1f);
  t.source_dtype = "F32";
  return t;
}

ModelIR make_base() {
  ModelIR ir;
  ir.config.hidden_size = kHidden;
  ir.config.num_layers = kLayers;
  ir.config.num_heads = 4;
  ir.config.num_kv_heads = 2;
  ir.config.head_dim = 2;
  ir.config.intermediate_size = kMlp;
  ir.config.vocab_size = kVocab;
  ir.config.tie_embeddings = true;
  uint32_t seed = 100;
  ir.tensors["model.embed_tokens.weight"] = make_tensor({kVocab, kHidden}, seed++);
  ir.tensors["model.norm.weight"] = make_tensor({kHidden}, seed++);
  for (uint64_t l = 0; l < kLayers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    ir.tensors[p + "input_layernorm.weight"] = make_tensor({kHidden}, seed++);
    ir.tensors[p + "post_attention_layernorm.weight"] = make_tensor({kHidden}, seed++);
    ir.tensors[p + "self_attn.q_proj.weight"] = make_tensor({kHidden, kHidden}, seed++);
    ir.tensors[p + "self_attn.k_proj.weight"] = make_tensor({kKv, kHidden}, seed++);
    ir.tensors[p + "self_attn.v_proj.weight"] = make_tensor({kKv, kHidden}, seed++);
    ir.tensors[p + "self_attn.o_proj.weight"] = make_tensor({kHidden, kHidden}, seed++);
    ir.tensors[p + "mlp.gate_proj.weight"] = make_tensor({kMlp, kHidden}, seed++);
    ir.tensors[p + "mlp.up_proj.weight"] = make_tensor({kMlp, kHidden}, seed++);
    ir.tensors[p + "mlp.down_proj.weight"] = make_tensor({kHidden, kMlp}, seed++);
  }
  return ir;
}

// ------------------------------------------------------------------------ adapter builder ----

// One PEFT adapter directory, built with fluent setters (XNNPACK tester style).
class AdapterBuilder {
 public:
  explicit AdapterBuilder(const std::string& name) : dir_(ember_test::temp_path(name)) {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    config_ = ojson{{"peft_type", "LORA"},
                    {"task_type", "CAUSAL_LM"},
                    {"r", 4},
                    {"lora_alpha", 8},
                    {"lora_dropout", 0.0},
                    {"bias", "none"},
                    {"fan_in_fan_out", false},
                    {"use_rslora", false},
                    {"use_dora", false},
                    {"layers_to_transform", nullptr},
                    {"target_modules", {"q_proj", "v_proj"}}};
  }
  ojson& config() { return config_; }
  AdapterBuilder& set(const std::string& key, const ojson& value) {
    config_[key] = value;
    return *this;
  }
  // lora_A [r, in], lora_B [out, r] for `module` (an HF module name without ".weight").
  AdapterBuilder& lora(const std::string& module, uint64_t r, uint64_t in, uint64_t out,
                       const std::string& adapter_segment = "", const std::string& dtype = "F32") {
    const std::string seg = adapter_segment.empty() ? "" : "." + adapter_segment;
    TestTensor a{{r, in}, {}, dtype}, b{{out, r}, {}, dtype};
    if (dtype == "F32") {
      a.data = random_values(r * in, seed_++, 1.0f / std::sqrt(static_cast<float>(in)));
      b.data = random_values(out * r, seed_++, 0.3f);
    } else {
      a.data = grid_values(r * in, seed_++);
      b.data = grid_values(out * r, seed_++);
    }
    tensors_["base_model.model." + module + ".lora_A" + seg + ".weight"] = a;
    tensors_["base_model.model." + module + ".lora_B" + seg + ".weight"] = b;
    return *this;
  }
  AdapterBuilder& tensor(const std::string& key, const TestTensor& t) {
    tensors_[key] = t;
    return *this;
  }
  AdapterBuilder& erase(const std::string& key) {
    tensors_.erase(key);
    return *this;
  }
  std::map<std::string, TestTensor>& tensors() { return tensors_; }
  const TestTensor& at(const std::string& key) const { return tensors_.at(key); }
  // Writes the directory and returns its path.
  std::string write() const {
    std::ofstream(dir_ + "/adapter_config.json") << config_.dump(2);
    write_safetensors(dir_ + "/adapter_model.safetensors", tensors_);
    return dir_;
  }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  ojson config_;
  std::map<std::string, TestTensor> tensors_;
  uint32_t seed_ = 7;
};

std::string attn(uint64_t layer, const std::string& proj) {
  return "model.layers." + std::to_string(layer) + ".self_attn." + proj;
}
std::string mlp(uint64_t layer, const std::string& proj) {
  return "model.layers." + std::to_string(layer) + ".mlp." + proj;
}

// The reference merge, plainly: W[o][i] += factor * sum_k B[o][k] * A[k][i], in double, rounded
// once.
void reference_merge(FloatTensor* w, const TestTensor& a, const TestTensor& b, double factor) {
  const uint64_t out = w->shape[0], in = w->shape[1], r = a.shape[0];
  for (uint64_t o = 0; o < out; ++o) {
    for (uint64_t i = 0; i < in; ++i) {
      double s = 0;
      for (uint64_t k = 0; k < r; ++k)
        s += static_cast<double>(b.data[o * r + k]) * a.data[k * in + i];
      w->data[o * in + i] = static_cast<float>(w->data[o * in + i] + factor * s);
    }
  }
}

void reference_merge_module(ModelIR* ir, const AdapterBuilder& ad, const std::string& module,
                            double factor, const std::string& seg = "") {
  const std::string s = seg.empty() ? "" : "." + seg;
  reference_merge(&ir->tensors.at(module + ".weight"),
                  ad.at("base_model.model." + module + ".lora_A" + s + ".weight"),
                  ad.at("base_model.model." + module + ".lora_B" + s + ".weight"), factor);
}

// Every tensor equal within 1e-6 relative; the same names and shapes.
void expect_same_tensors(const ModelIR& got, const ModelIR& want) {
  ASSERT_EQ(got.tensors.size(), want.tensors.size());
  for (const auto& kv : want.tensors) {
    auto it = got.tensors.find(kv.first);
    ASSERT_NE(it, got.tensors.end()) << kv.first;
    ASSERT_EQ(it->second.shape, kv.second.shape) << kv.first;
    for (size_t i = 0; i < kv.second.data.size(); ++i) {
      const float w = kv.second.data[i], g = it->second.data[i];
      ASSERT_LE(std::fabs(g - w), 1e-6 * std::max(std::fabs(w), 1e-6f))
          << kv.first << "[" << i << "]";
    }
  }
}

bool same_data(const ModelIR& a, const ModelIR& b, const std::string& name) {
  return a.tensors.at(name).data == b.tensors.at(name).data;
}

// Runs apply_loras on a fresh base; returns the log.
std::string merge(ModelIR* ir, const std::vector<LoraRequest>& reqs) {
  std::ostringstream log;
  apply_loras(*ir, reqs, log);
  return log.str();
}

// ---------------------------------------------------------------- the shared attn-r8 adapter ----

TEST(LoraShared, AttnR8MatchesReferenceMerge) {
  EMBER_REQUIRE_SHARED(base_file, "models/stories260K/hf/model.safetensors");
  EMBER_REQUIRE_SHARED(expected_file,
                       "models/stories260K/expected/lora_attn_r8_merged.safetensors");
  EMBER_REQUIRE_SHARED(adapter_dir, "models/stories260K/lora/attn-r8");
  ModelIR ir;
  ir.config.tie_embeddings = true;
  ir.tensors = ember::convert::read_safetensors(base_file);
  ModelIR base = ir;
  ModelIR expected;
  expected.tensors = ember::convert::read_safetensors(expected_file);

  const std::string log = merge(&ir, {parse_lora_arg(adapter_dir)});
  double max_rel = 0;
  for (const auto& kv : expected.tensors) {
    ASSERT_TRUE(ir.tensors.count(kv.first)) << kv.first;
    const FloatTensor& got = ir.tensors.at(kv.first);
    ASSERT_EQ(got.shape, kv.second.shape) << kv.first;
    for (size_t i = 0; i < got.data.size(); ++i) {
      const double w = kv.second.data[i], g = got.data[i];
      const double rel = std::fabs(g - w) / std::max(std::fabs(w), 1e-12);
      max_rel = std::max(max_rel, rel);
      ASSERT_LE(rel, 1e-6) << kv.first << "[" << i << "] got " << g << " want " << w;
    }
  }
  EXPECT_EQ(ir.tensors.size(), expected.tensors.size());
  std::printf("attn-r8: max relative difference from the float64 reference merge %.3g\n", max_rel);

  // 20 changed tensors (q, k, v, o of 5 layers), the rest bit-identical to the base.
  int changed = 0;
  for (const auto& kv : base.tensors) changed += same_data(ir, base, kv.first) ? 0 : 1;
  EXPECT_EQ(changed, 20);

  ASSERT_EQ(ir.adapters.size(), 1u);
  const AdapterRecord& rec = ir.adapters[0];
  EXPECT_EQ(rec.name, "attn-r8");
  // sha256 listed in ../shared/models/stories260K/README.md.
  EXPECT_EQ(rec.sha256, "5b234a059db87ce04338bcec886415c30d90b652c201945dce12699a5d9f949f");
  EXPECT_EQ(rec.r, 8u);
  EXPECT_EQ(rec.alpha, 16.0f);
  EXPECT_EQ(rec.scale, 1.0f);
  EXPECT_FALSE(rec.use_rslora);
  ASSERT_EQ(rec.modules.size(), 20u);
  for (const std::string& m : rec.modules) EXPECT_FALSE(same_data(ir, base, m)) << m;

  // One |dW|/|W| line per adapted tensor.
  size_t lines = 0;
  for (size_t pos = log.find("|dW|/|W|"); pos != std::string::npos;
       pos = log.find("|dW|/|W|", pos + 1))
    ++lines;
  EXPECT_EQ(lines, 20u) << log;
  EXPECT_NE(log.find("model.layers.4.self_attn.o_proj.weight: |dW|/|W|"), std::string::npos) << log;
}

// ------------------------------------------------------------------- self-built adapters ----

TEST(LoraMerge, OneLayerOnly) {
  AdapterBuilder ad("one-layer");
  ad.set("layers_to_transform", {1})
      .lora(attn(1, "q_proj"), 4, kHidden, kHidden)
      .lora(attn(1, "v_proj"), 4, kHidden, kKv);
  ModelIR ir = make_base(), want = make_base();
  merge(&ir, {{ad.write(), 1.0f}});
  reference_merge_module(&want, ad, attn(1, "q_proj"), 8.0 / 4);
  reference_merge_module(&want, ad, attn(1, "v_proj"), 8.0 / 4);
  expect_same_tensors(ir, want);
  EXPECT_FALSE(same_data(ir, make_base(), attn(1, "q_proj") + ".weight"));
  ASSERT_EQ(ir.adapters.size(), 1u);
  EXPECT_EQ(ir.adapters[0].modules, (std::vector<std::string>{attn(1, "q_proj") + ".weight",
                                                              attn(1, "v_proj") + ".weight"}));
}

TEST(LoraMerge, LayersPatternAndIntegerLayer) {
  AdapterBuilder ad("layers-pattern");
  ad.set("layers_to_transform", 2)
      .set("layers_pattern", "layers")
      .set("target_modules", {"o_proj"});
  ad.lora(attn(2, "o_proj"), 4, kHidden, kHidden);
  ModelIR ir = make_base(), want = make_base();
  merge(&ir, {{ad.write(), 1.0f}});
  reference_merge_module(&want, ad, attn(2, "o_proj"), 2.0);
  expect_same_tensors(ir, want);
}

TEST(LoraMerge, MlpOnly) {
  AdapterBuilder ad("mlp-only");
  ad.set("r", 3).set("lora_alpha", 6).set("target_modules", {"gate_proj", "up_proj", "down_proj"});
  for (uint64_t l = 0; l < kLayers; ++l) {
    ad.lora(mlp(l, "gate_proj"), 3, kHidden, kMlp).lora(mlp(l, "up_proj"), 3, kHidden, kMlp);
    ad.lora(mlp(l, "down_proj"), 3, kMlp, kHidden);
  }
  ModelIR ir = make_base(), want = make_base();
  merge(&ir, {{ad.write(), 1.0f}});
  for (uint64_t l = 0; l < kLayers; ++l)
    for (const char* p : {"gate_proj", "up_proj", "down_proj"})
      reference_merge_module(&want, ad, mlp(l, p), 2.0);
  expect_same_tensors(ir, want);
  EXPECT_EQ(ir.adapters.at(0).modules.size(), 9u);
}

TEST(LoraMerge, RsLora) {
  AdapterBuilder ad("rslora");
  ad.set("use_rslora", true).set("r", 4).set("lora_alpha", 6).set("target_modules", {"k_proj"});
  for (uint64_t l = 0; l < kLayers; ++l) ad.lora(attn(l, "k_proj"), 4, kHidden, kKv);
  ModelIR ir = make_base(), want = make_base();
  merge(&ir, {{ad.write(), 1.0f}});
  for (uint64_t l = 0; l < kLayers; ++l)
    reference_merge_module(&want, ad, attn(l, "k_proj"), 6.0 / 2.0);  // alpha/sqrt(r)
  expect_same_tensors(ir, want);
  EXPECT_TRUE(ir.adapters.at(0).use_rslora);
}

TEST(LoraMerge, TwoAdaptersWithScales) {
  AdapterBuilder a1("two-a"), a2("two-b");
  a1.set("target_modules", {"q_proj"});
  for (uint64_t l = 0; l < kLayers; ++l) a1.lora(attn(l, "q_proj"), 4, kHidden, kHidden);
  a2.set("r", 2)
      .set("lora_alpha", 2)
      .set("target_modules", {"q_proj", "up_proj"})
      .set("layers_to_transform", {0, 2});
  for (uint64_t l : {0, 2})
    a2.lora(attn(l, "q_proj"), 2, kHidden, kHidden).lora(mlp(l, "up_proj"), 2, kHidden, kMlp);
  ModelIR ir = make_base(), want = make_base();
  const std::string d1 = a1.write(), d2 = a2.write();
  merge(&ir, {parse_lora_arg(d1 + ":1.0"), parse_lora_arg(d2 + ":0.5")});
  for (uint64_t l = 0; l < kLayers; ++l)
    reference_merge_module(&want, a1, attn(l, "q_proj"), 1.0 * 8 / 4);
  for (uint64_t l : {0, 2}) {
    reference_merge_module(&want, a2, attn(l, "q_proj"), 0.5 * 2 / 2);
    reference_merge_module(&want, a2, mlp(l, "up_proj"), 0.5 * 2 / 2);
  }
  expect_same_tensors(ir, want);
  ASSERT_EQ(ir.adapters.size(), 2u);
  EXPECT_EQ(ir.adapters[0].name, "two-a");
  EXPECT_EQ(ir.adapters[1].name, "two-b");
  EXPECT_EQ(ir.adapters[0].scale, 1.0f);
  EXPECT_EQ(ir.adapters[1].scale, 0.5f);
  EXPECT_EQ(ir.adapters[1].modules.size(), 4u);
  EXPECT_EQ(ir.adapters[0].sha256.size(), 64u);
  EXPECT_NE(ir.adapters[0].sha256, ir.adapters[1].sha256);
}

// fan_in_fan_out describes a Conv1D base weight stored (in, out); lora_A / lora_B are nn.Linear
// weights [r, in] / [out, r] either way, and the IR holds (out, in), so the update is B·A.
TEST(LoraMerge, FanInFanOut) {
  AdapterBuilder ad("fan-in-fan-out");
  ad.set("fan_in_fan_out", true).set("target_modules", {"k_proj", "down_proj"});
  for (uint64_t l = 0; l < kLayers; ++l)
    ad.lora(attn(l, "k_proj"), 4, kHidden, kKv).lora(mlp(l, "down_proj"), 4, kMlp, kHidden);
  ModelIR ir = make_base(), want = make_base();
  const std::string log = merge(&ir, {{ad.write(), 1.0f}});
  for (uint64_t l = 0; l < kLayers; ++l) {
    reference_merge_module(&want, ad, attn(l, "k_proj"), 2.0);
    reference_merge_module(&want, ad, mlp(l, "down_proj"), 2.0);
  }
  expect_same_tensors(ir, want);
  EXPECT_NE(log.find("fan_in_fan_out"), std::string::npos) << log;
}

TEST(LoraMerge, RegexTargetModules) {
  AdapterBuilder ad("regex");
  ad.set("target_modules", R"(model\.layers\.[02]\.self_attn\.(q|v)_proj)");
  for (uint64_t l : {0, 2})
    ad.lora(attn(l, "q_proj"), 4, kHidden, kHidden).lora(attn(l, "v_proj"), 4, kHidden, kKv);
  ModelIR ir = make_base(), want = make_base();
  merge(&ir, {{ad.write(), 1.0f}});
  for (uint64_t l : {0, 2}) {
    reference_merge_module(&want, ad, attn(l, "q_proj"), 2.0);
    reference_merge_module(&want, ad, attn(l, "v_proj"), 2.0);
  }
  expect_same_tensors(ir, want);
}

TEST(LoraMerge, RankAndAlphaPatterns) {
  AdapterBuilder ad("patterns");
  ad.set("r", 4).set("lora_alpha", 8);
  ad.set("rank_pattern", {{"q_proj", 2}});
  ad.set("alpha_pattern", {{"model.layers.1.self_attn.v_proj", 3}, {"v_proj", 12}});
  for (uint64_t l = 0; l < kLayers; ++l)
    ad.lora(attn(l, "q_proj"), 2, kHidden, kHidden).lora(attn(l, "v_proj"), 4, kHidden, kKv);
  ModelIR ir = make_base(), want = make_base();
  merge(&ir, {{ad.write(), 1.0f}});
  for (uint64_t l = 0; l < kLayers; ++l) {
    reference_merge_module(&want, ad, attn(l, "q_proj"), 8.0 / 2);
    reference_merge_module(&want, ad, attn(l, "v_proj"), (l == 1 ? 3.0 : 12.0) / 4);
  }
  expect_same_tensors(ir, want);
}

TEST(LoraMerge, AdapterNameSegmentAndHalfPrecision) {
  for (const char* dtype : {"F16", "BF16"}) {
    AdapterBuilder ad(std::string("named-") + dtype);
    for (uint64_t l = 0; l < kLayers; ++l)
      ad.lora(attn(l, "q_proj"), 4, kHidden, kHidden, "default", dtype)
          .lora(attn(l, "v_proj"), 4, kHidden, kKv, "default", dtype);
    ModelIR ir = make_base(), want = make_base();
    merge(&ir, {{ad.write(), 1.0f}});
    for (uint64_t l = 0; l < kLayers; ++l) {
      reference_merge_module(&want, ad, attn(l, "q_proj"), 2.0, "default");
      reference_merge_module(&want, ad, attn(l, "v_proj"), 2.0, "default");
    }
    expect_same_tensors(ir, want);
  }
}

TEST(LoraMerge, AllLinear) {
  AdapterBuilder ad("all-linear");
  ad.set("target_modules", "all-linear");  // a string, but PEFT's shorthand, not a regex
  for (uint64_t l = 0; l < kLayers; ++l) {
    ad.lora(attn(l, "q_proj"), 4, kHidden, kHidden).lora(attn(l, "k_proj"), 4, kHidden, kKv);
    ad.lora(attn(l, "v_proj"), 4, kHidden, kKv).lora(attn(l, "o_proj"), 4, kHidden, kHidden);
    ad.lora(mlp(l, "gate_proj"), 4, kHidden, kMlp).lora(mlp(l, "up_proj"), 4, kHidden, kMlp);
    ad.lora(mlp(l, "down_proj"), 4, kMlp, kHidden);
  }
  ModelIR ir = make_base(), want = make_base();
  merge(&ir, {{ad.write(), 1.0f}});
  for (uint64_t l = 0; l < kLayers; ++l) {
    for (const char* p : {"q_proj", "k_proj", "v_proj", "o_proj"})
      reference_merge_module(&want, ad, attn(l, p), 2.0);
    for (const char* p : {"gate_proj", "up_proj", "down_proj"})
      reference_merge_module(&want, ad, mlp(l, p), 2.0);
  }
  expect_same_tensors(ir, want);
}

// PEFT saves a modules_to_save tensor as base_model.model.<module>.weight. The tied head keeps the
// original embedding (PEFT replaces a copy of the embedding module), so the head is untied.
TEST(LoraMerge, ModulesToSaveEmbeddingUntiesHead) {
  AdapterBuilder ad("save-embed");
  ad.set("modules_to_save", {"embed_tokens"});
  for (uint64_t l = 0; l < kLayers; ++l)
    ad.lora(attn(l, "q_proj"), 4, kHidden, kHidden).lora(attn(l, "v_proj"), 4, kHidden, kKv);
  TestTensor emb{{kVocab, kHidden}, random_values(kVocab * kHidden, 99, 0.2f)};
  ad.tensor("base_model.model.model.embed_tokens.weight", emb);
  ModelIR ir = make_base(), want = make_base();
  merge(&ir, {{ad.write(), 1.0f}});
  for (uint64_t l = 0; l < kLayers; ++l) {
    reference_merge_module(&want, ad, attn(l, "q_proj"), 2.0);
    reference_merge_module(&want, ad, attn(l, "v_proj"), 2.0);
  }
  want.tensors["lm_head.weight"] = want.tensors.at("model.embed_tokens.weight");
  want.tensors.at("model.embed_tokens.weight").data = emb.data;
  expect_same_tensors(ir, want);
  EXPECT_FALSE(ir.config.tie_embeddings);
}

TEST(LoraMerge, ModulesToSaveHeadWithAdapterSegment) {
  AdapterBuilder ad("save-head");
  ad.set("modules_to_save", {"lm_head"}).set("target_modules", {"o_proj"});
  for (uint64_t l = 0; l < kLayers; ++l) ad.lora(attn(l, "o_proj"), 4, kHidden, kHidden);
  TestTensor head{{kVocab, kHidden}, random_values(kVocab * kHidden, 98, 0.2f)};
  ad.tensor("base_model.model.lm_head.modules_to_save.default.weight", head);
  ModelIR ir = make_base(), want = make_base();
  merge(&ir, {{ad.write(), 1.0f}});
  for (uint64_t l = 0; l < kLayers; ++l) reference_merge_module(&want, ad, attn(l, "o_proj"), 2.0);
  FloatTensor h = want.tensors.at("model.embed_tokens.weight");
  h.data = head.data;
  want.tensors["lm_head.weight"] = h;
  expect_same_tensors(ir, want);
  EXPECT_FALSE(ir.config.tie_embeddings);
  const auto& mods = ir.adapters.at(0).modules;
  EXPECT_NE(std::find(mods.begin(), mods.end(), "lm_head.weight"), mods.end());
}

// PEFT's Embedding LoRA: lora_embedding_A [r, vocab], lora_embedding_B [dim, r], update (B·A)^T.
TEST(LoraMerge, EmbeddingLora) {
  AdapterBuilder ad("embed-lora");
  ad.set("target_modules", {"embed_tokens"});
  TestTensor a{{4, kVocab}, random_values(4 * kVocab, 5, 0.5f)},
      b{{kHidden, 4}, random_values(kHidden * 4, 6, 0.3f)};
  ad.tensor("base_model.model.model.embed_tokens.lora_embedding_A", a);
  ad.tensor("base_model.model.model.embed_tokens.lora_embedding_B", b);
  ModelIR ir = make_base(), want = make_base();
  merge(&ir, {{ad.write(), 1.0f}});
  FloatTensor& w = want.tensors.at("model.embed_tokens.weight");
  for (uint64_t v = 0; v < kVocab; ++v)
    for (uint64_t d = 0; d < kHidden; ++d) {
      double s = 0;
      for (uint64_t k = 0; k < 4; ++k)
        s += static_cast<double>(b.data[d * 4 + k]) * a.data[k * kVocab + v];
      w.data[v * kHidden + d] = static_cast<float>(w.data[v * kHidden + d] + 2.0 * s);
    }
  expect_same_tensors(ir, want);
}

TEST(LoraMerge, ScaleZeroAndNegative) {
  AdapterBuilder ad("neg");
  for (uint64_t l = 0; l < kLayers; ++l)
    ad.lora(attn(l, "q_proj"), 4, kHidden, kHidden).lora(attn(l, "v_proj"), 4, kHidden, kKv);
  const std::string d = ad.write();
  ModelIR ir = make_base(), want = make_base();
  merge(&ir, {parse_lora_arg(d + ":-0.25")});
  for (uint64_t l = 0; l < kLayers; ++l) {
    reference_merge_module(&want, ad, attn(l, "q_proj"), -0.25 * 2);
    reference_merge_module(&want, ad, attn(l, "v_proj"), -0.25 * 2);
  }
  expect_same_tensors(ir, want);
}

TEST(LoraArg, Parse) {
  EXPECT_EQ(parse_lora_arg("some/dir").dir, "some/dir");
  EXPECT_EQ(parse_lora_arg("some/dir").scale, 1.0f);
  EXPECT_EQ(parse_lora_arg("some/dir:0.5").dir, "some/dir");
  EXPECT_EQ(parse_lora_arg("some/dir:0.5").scale, 0.5f);
  EXPECT_EQ(parse_lora_arg("a:b:2").dir, "a:b");
  EXPECT_EQ(parse_lora_arg("a:b:2").scale, 2.0f);
  for (const char* bad :
       {"dir:abc", "dir:", ":0.5", "dir:nan", "dir:inf", "dir:1e99", "dir:0.5x", ""}) {
    EXPECT_THROW(parse_lora_arg(bad), ConvertError) << bad;
  }
}

// ---------------------------------------------------------------------------------- errors ----

// Expects apply_loras to throw a ConvertError whose message holds every `parts` string, and the IR
// to be left as it was.
void expect_refused(const std::string& dir, const std::vector<std::string>& parts) {
  ModelIR ir = make_base();
  std::ostringstream log;
  const std::string msg = ember_test::error_message<ConvertError>([&] {
    apply_loras(ir, {{dir, 1.0f}}, log);
  });
  EXPECT_FALSE(msg.empty()) << "no error for " << dir;
  for (const std::string& p : parts)
    EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  expect_same_tensors(ir, make_base());
  EXPECT_TRUE(ir.adapters.empty());
}

AdapterBuilder good(const std::string& name) {
  AdapterBuilder ad(name);
  for (uint64_t l = 0; l < kLayers; ++l)
    ad.lora(attn(l, "q_proj"), 4, kHidden, kHidden).lora(attn(l, "v_proj"), 4, kHidden, kKv);
  return ad;
}

const std::string kA1 = "base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight";
const std::string kB1 = "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight";

TEST(LoraErrors, AShapeDoesNotFitBase) {
  AdapterBuilder ad = good("bad-a-shape");
  ad.tensors()[kA1] = TestTensor{{4, kHidden + 1}, random_values(4 * (kHidden + 1), 1, 1.0f)};
  expect_refused(ad.write(), {"adapter_model.safetensors", kA1, "[4, 9]", "[4, 8]"});
}

TEST(LoraErrors, BShapeDoesNotFitBase) {
  AdapterBuilder ad = good("bad-b-shape");
  ad.tensors()[kB1] =
      TestTensor{{kHidden, 4}, random_values(kHidden * 4, 1, 1.0f)};  // v_proj out is 4
  expect_refused(ad.write(), {"adapter_model.safetensors", kB1, "[8, 4]"});
}

TEST(LoraErrors, ABRankDisagree) {
  AdapterBuilder ad = good("ab-rank");
  ad.tensors()[kB1] = TestTensor{{kKv, 3}, random_values(kKv * 3, 1, 1.0f)};
  expect_refused(ad.write(), {"adapter_model.safetensors", kA1, kB1, "rank"});
}

TEST(LoraErrors, NotTwoDimensional) {
  AdapterBuilder ad = good("a-1d");
  ad.tensors()[kA1] = TestTensor{{4 * kHidden}, random_values(4 * kHidden, 1, 1.0f)};
  expect_refused(ad.write(), {"adapter_model.safetensors", kA1, "2-D"});
}

TEST(LoraErrors, ConfigRankDisagreesWithTensors) {
  AdapterBuilder ad = good("r-mismatch");
  ad.set("r", 8);
  expect_refused(ad.write(), {"adapter_model.safetensors", "lora_A", "'r'", "8"});
  AdapterBuilder ad2 = good("r-pattern-mismatch");
  ad2.set("rank_pattern", {{"v_proj", 2}});
  expect_refused(ad2.write(),
                 {"adapter_model.safetensors", "v_proj.lora_A.weight", "rank_pattern['v_proj']"});
}

TEST(LoraErrors, TargetMatchesNothing) {
  AdapterBuilder ad = good("no-target");
  ad.set("target_modules", {"q_proj", "v_proj", "qkv_proj"});
  expect_refused(ad.write(), {"adapter_config.json", "qkv_proj", "matches no module"});
  AdapterBuilder ad2 = good("no-target-regex");
  ad2.set("target_modules", R"(.*\.attention\.wq)");
  expect_refused(ad2.write(), {"adapter_config.json", "attention", "matches no module"});
  AdapterBuilder ad3 = good("no-layer");
  ad3.set("layers_to_transform", {7});
  expect_refused(ad3.write(), {"adapter_config.json", "select no module"});
}

TEST(LoraErrors, TensorForModuleNotTargeted) {
  AdapterBuilder ad = good("untargeted");
  ad.lora(mlp(0, "gate_proj"), 4, kHidden, kMlp);
  expect_refused(ad.write(), {"adapter_model.safetensors", "mlp.gate_proj.lora_A", "not selected"});
  AdapterBuilder ad2 = good("one-layer-extra");
  ad2.set("layers_to_transform", {0});
  expect_refused(ad2.write(), {"adapter_model.safetensors", "layers.1.self_attn", "not selected"});
}

TEST(LoraErrors, TargetedModuleWithoutTensors) {
  AdapterBuilder ad = good("missing-module");
  ad.erase(kA1).erase(kB1);
  expect_refused(ad.write(), {"adapter_model.safetensors", "model.layers.1.self_attn.v_proj",
                              "no lora_A / lora_B"});
}

TEST(LoraErrors, BaseModelLacksModule) {
  AdapterBuilder ad = good("no-base");
  ad.set("target_modules", {"q_proj", "v_proj"});
  ad.lora(attn(9, "q_proj"), 4, kHidden, kHidden);
  expect_refused(ad.write(),
                 {"adapter_model.safetensors", "layers.9.self_attn.q_proj.lora_A", "no tensor"});
}

TEST(LoraErrors, MissingPartner) {
  AdapterBuilder ad = good("no-b");
  ad.erase(kB1);
  expect_refused(ad.write(), {"adapter_model.safetensors", kA1, "no lora_B partner"});
  AdapterBuilder ad2 = good("no-a");
  ad2.erase(kA1);
  expect_refused(ad2.write(), {"adapter_model.safetensors", kB1, "no lora_A partner"});
}

TEST(LoraErrors, UnsupportedPeftTypes) {
  for (const char* type :
       {"IA3", "LOHA", "LOKR", "ADALORA", "OFT", "BOFT", "VERA", "PROMPT_TUNING"}) {
    AdapterBuilder ad = good(std::string("type-") + type);
    ad.set("peft_type", type);
    expect_refused(ad.write(),
                   {"adapter_config.json", std::string("'") + type + "'", "not supported"});
  }
  AdapterBuilder dora = good("dora");
  dora.set("use_dora", true);
  expect_refused(dora.write(), {"adapter_config.json", "DoRA", "use_dora"});
  AdapterBuilder mag = good("dora-tensor");
  mag.tensor("base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector",
             TestTensor{{kHidden}, std::vector<float>(kHidden, 1.0f)});
  expect_refused(mag.write(), {"adapter_model.safetensors", "lora_magnitude_vector", "DoRA"});
  AdapterBuilder bias = good("lora-bias");
  bias.tensor("base_model.model.model.layers.0.self_attn.q_proj.lora_B.bias",
              TestTensor{{kHidden}, std::vector<float>(kHidden, 1.0f)});
  expect_refused(bias.write(), {"adapter_model.safetensors", "lora_B.bias", "bias"});
  AdapterBuilder none = good("no-type");
  none.config().erase("peft_type");
  expect_refused(none.write(), {"adapter_config.json", "peft_type"});
}

TEST(LoraErrors, NanOrInfInAdapter) {
  AdapterBuilder ad = good("nan");
  ad.tensors()[kA1].data[5] = std::numeric_limits<float>::quiet_NaN();
  expect_refused(ad.write(), {"adapter_model.safetensors", kA1, "NaN", "5"});
  AdapterBuilder ad2 = good("inf");
  ad2.tensors()[kB1].data[3] = -std::numeric_limits<float>::infinity();
  expect_refused(ad2.write(), {"adapter_model.safetensors", kB1, "Inf"});
  AdapterBuilder ad3 = good("inf-f16");
  for (auto& kv : ad3.tensors())
    kv.second.dtype = "BF16", kv.second.data = grid_values(kv.second.data.size(), 3);
  ad3.tensors()[kB1].data[0] = std::numeric_limits<float>::infinity();
  expect_refused(ad3.write(), {"adapter_model.safetensors", kB1, "Inf"});
}

TEST(LoraErrors, ModulesToSaveProblems) {
  AdapterBuilder ad = good("plain-not-listed");
  ad.tensor("base_model.model.model.embed_tokens.weight",
            TestTensor{{kVocab, kHidden}, std::vector<float>(kVocab * kHidden, 0.f)});
  expect_refused(ad.write(),
                 {"adapter_model.safetensors", "model.embed_tokens.weight", "modules_to_save"});
  AdapterBuilder ad2 = good("save-bad-shape");
  ad2.set("modules_to_save", {"embed_tokens"});
  ad2.tensor("base_model.model.model.embed_tokens.weight",
             TestTensor{{kVocab - 1, kHidden}, std::vector<float>((kVocab - 1) * kHidden, 0.f)});
  expect_refused(ad2.write(),
                 {"adapter_model.safetensors", "model.embed_tokens.weight", "[31, 8]", "[32, 8]"});
  AdapterBuilder ad3 = good("save-missing");
  ad3.set("modules_to_save", {"lm_head"});
  expect_refused(ad3.write(), {"adapter_model.safetensors", "lm_head", "no tensor"});
}

TEST(LoraErrors, FilesAndConfig) {
  // adapter_model.bin only: pickle is not read.
  AdapterBuilder bin = good("bin-only");
  bin.write();
  fs::remove(bin.dir() + "/adapter_model.safetensors");
  std::ofstream(bin.dir() + "/adapter_model.bin") << "PK\x03\x04 not read";
  expect_refused(bin.dir(), {"adapter_model.bin", "pickle"});
  // No config.
  AdapterBuilder nocfg = good("no-config");
  nocfg.write();
  fs::remove(nocfg.dir() + "/adapter_config.json");
  expect_refused(nocfg.dir(), {"adapter_config.json", "missing"});
  // Not a directory.
  expect_refused(ember_test::temp_path("does-not-exist"), {"does-not-exist", "does not exist"});
  // Bad JSON, bad field types, bad regex.
  AdapterBuilder badjson = good("bad-json");
  badjson.write();
  std::ofstream(badjson.dir() + "/adapter_config.json") << "{\"peft_type\": \"LORA\", \"r\": ";
  expect_refused(badjson.dir(), {"adapter_config.json", "JSON"});
  AdapterBuilder badr = good("bad-r");
  badr.set("r", -4);
  expect_refused(badr.write(), {"adapter_config.json", "'r'"});
  AdapterBuilder badalpha = good("bad-alpha");
  badalpha.set("lora_alpha", "sixteen");
  expect_refused(badalpha.write(), {"adapter_config.json", "lora_alpha"});
  AdapterBuilder badre = good("bad-regex");
  badre.set("target_modules", "(q_proj");
  expect_refused(badre.write(), {"adapter_config.json", "(q_proj", "regular expression"});
  AdapterBuilder badlp = good("bad-layers-pattern");
  badlp.set("layers_to_transform", {0}).set("layers_pattern", "(");
  expect_refused(badlp.write(), {"adapter_config.json", "regular expression"});
  AdapterBuilder regex_layers = good("regex-layers");
  regex_layers.set("target_modules", ".*q_proj").set("layers_to_transform", {0});
  expect_refused(regex_layers.write(), {"adapter_config.json", "layers_to_transform"});
  // Truncated safetensors: the reader refuses it, naming the file.
  AdapterBuilder trunc = good("truncated");
  trunc.write();
  std::vector<unsigned char> bytes =
      ember_test::read_file(trunc.dir() + "/adapter_model.safetensors");
  ember_test::write_file(trunc.dir() + "/adapter_model.safetensors", bytes.data(),
                         bytes.size() - 10);
  expect_refused(trunc.dir(), {"adapter_model.safetensors"});
  // A key with no PEFT segment and no weight suffix.
  AdapterBuilder odd = good("odd-key");
  odd.tensor("base_model.model.model.layers.0.self_attn.q_proj.hada_w1_a",
             TestTensor{{2, 2}, {1, 2, 3, 4}});
  expect_refused(odd.write(), {"adapter_model.safetensors", "hada_w1_a"});
  // A second adapter name for the same module.
  AdapterBuilder two = good("two-names");
  two.lora(attn(0, "q_proj"), 4, kHidden, kHidden, "other");
  expect_refused(two.write(), {"adapter_model.safetensors", "lora_A", "second"});
}

// An adapter is checked fully before its first write: an error in its last pair leaves the IR as
// it was.
TEST(LoraErrors, LateShapeErrorWritesNothing) {
  AdapterBuilder ad = good("late-error");
  // The last module in key order gets a bad B; every other pair is fine.
  ad.tensors()["base_model.model.model.layers.2.self_attn.v_proj.lora_B.weight"] =
      TestTensor{{kHidden, 4}, random_values(kHidden * 4, 1, 1.0f)};
  expect_refused(ad.write(), {"layers.2.self_attn.v_proj.lora_B"});
}

}  // namespace
