// ember-convert end to end: converts the shared checkpoints, then reads the .ember file back here
// (FlatBuffers Verifier + the layout rules of schema/ember.fbs) and compares every stored tensor
// with the source weights; bad inputs each give exit code 1, a message, and no output file.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

#include "converter_test_util.h"
#include "core/float_blocks.h"
#include "core/format.h"
#include "core/half.h"
#include "core/zero_one.h"
#include "ember_generated.h"
#include "hf_model.h"
#include "quantize.h"
#include "safetensors.h"

namespace ember {
namespace convert {
namespace {

using ember_test::CommandResult;
using ember_test::converted_model;
using ember_test::derived_checkpoint;
using ember_test::exists;
using ember_test::run_convert;
using json = nlohmann::json;

// A .ember file read back and checked against the format's layout rules.
struct EmberFile {
  std::vector<unsigned char> bytes;
  const fb::Model* model = nullptr;

  explicit EmberFile(const std::string& path) : bytes(ember_test::read_file(path)) {
    if (bytes.size() < 8) {
      ADD_FAILURE() << path << " is too short";
      return;
    }
    EXPECT_TRUE(
        flatbuffers::BufferHasIdentifier(bytes.data(), kFileIdentifier, /*size_prefixed=*/true));
    uint32_t fb_size;
    std::memcpy(&fb_size, bytes.data(), 4);
    if (uint64_t{fb_size} + kSizePrefixBytes > bytes.size()) {
      ADD_FAILURE() << path << ": size prefix " << fb_size << " runs past the end";
      return;
    }
    // FlatBuffers 2.0.8 wants the verified span to be exactly the size-prefixed buffer.
    flatbuffers::Verifier v(bytes.data(), kSizePrefixBytes + fb_size);
    if (!fb::VerifySizePrefixedModelBuffer(v)) {
      ADD_FAILURE() << path << " fails the FlatBuffers verifier";
      return;
    }
    model = fb::GetSizePrefixedModel(bytes.data());
    EXPECT_EQ(model->format_version(), kFormatVersion);
    // Format 2 changed only the u8 layout: a file without u8 tensors stays readable by runtime 1;
    // format 3 added f16 params and activation groups: a file without them, by runtime 2;
    // format 4 added float matrices in row blocks.
    const uint64_t req = model->required_features();
    const bool u8 = (req & kFeatureZeroOneU8) != 0;
    const bool v3 = (req & (kFeatureZeroOneF16Params | kFeatureActGroups)) != 0;
    const bool v4 = (req & kFeatureFloatBlocks) != 0;
    EXPECT_EQ(model->min_runtime_version(),
              v4 ? kFormatVersionFloatBlocks
                 : (v3 ? kFormatVersionU8Params : (u8 ? kFormatVersionU8Blocks : 1u)));
    EXPECT_EQ(model->required_features() & ~kKnownRequiredFeatures, 0u);
    EXPECT_EQ(model->weights_offset() % kWeightAlignment, 0u);
    EXPECT_GE(model->weights_offset(), kSizePrefixBytes + fb_size);
    EXPECT_LE(model->weights_offset() + model->weights_size(), bytes.size());
  }
  const fb::Tensor* tensor(const std::string& name) const {
    if (!model || !model->tensors()) return nullptr;
    for (const fb::Tensor* t : *model->tensors())
      if (t->name()->str() == name) return t;
    return nullptr;
  }
  const uint8_t* data(const fb::Tensor* t) const {
    return bytes.data() + model->weights_offset() + t->data_offset();
  }
  // The stored index of row-major value i of float tensor t (its layout: row blocks or rows).
  static size_t value_index(const fb::Tensor* t, size_t i) {
    if (t->layout() != fb::Layout::BLOCKS16) return i;
    const size_t cols = t->shape()->Get(1);
    return float_blocked_index(cols, i / cols, i % cols);
  }
  const uint8_t* params(const fb::Tensor* t) const {
    return bytes.data() + model->weights_offset() + t->params_offset();
  }
};

// Every tensor in `f` equals (f32/f16) or approximates within scale/2 (u8) the source weights.
void check_against_source(const EmberFile& f, const std::string& hf_dir, QuantMode mode,
                          uint32_t group) {
  ASSERT_NE(f.model, nullptr);
  const auto src = load_safetensors_dir(hf_dir);
  ASSERT_EQ(f.model->tensors()->size(), src.size());
  uint64_t prev_end = 0;
  for (const fb::Tensor* t : *f.model->tensors()) {
    const std::string name = t->name()->str();
    SCOPED_TRACE(name);
    auto it = src.find(name);
    ASSERT_NE(it, src.end());
    const FloatTensor& w = it->second;
    ASSERT_EQ(std::vector<uint64_t>(t->shape()->begin(), t->shape()->end()), w.shape);
    EXPECT_EQ(t->data_offset() % kWeightAlignment, 0u);
    EXPECT_GE(t->data_offset(), prev_end);  // no overlap, in file order
    ASSERT_LE(t->data_offset() + t->data_size(), f.model->weights_size());
    prev_end = t->data_offset() + t->data_size();
    const size_t n = w.data.size();
    const bool two_d = w.shape.size() == 2;
    // Float matrices: row blocks exactly when the file says so (every one, or none).
    const bool blocked = t->layout() == fb::Layout::BLOCKS16;
    const bool float_blocks = (f.model->required_features() & kFeatureFloatBlocks) != 0;
    const bool gathered =  // an untied embedding is only read by row: row-major
        name == "model.embed_tokens.weight" && !f.model->config()->tie_embeddings();
    if (t->dtype() != fb::DType::U8_ZERO_ONE) {
      EXPECT_EQ(blocked, two_d && float_blocks && !gathered);
    }
    const size_t cols = two_d ? w.shape[1] : n;
    uint64_t stored = n;  // values stored, padding rows included
    if (blocked) ASSERT_TRUE(float_blocked_values(w.shape[0], cols, &stored));
    auto at = [&](size_t i) { return EmberFile::value_index(t, i); };
    if (blocked) {  // the padding rows' values are +0
      const size_t e = t->dtype() == fb::DType::F32 ? 4 : 2;
      std::vector<bool> used(stored, false);
      for (size_t i = 0; i < n; ++i) used[at(i)] = true;
      for (size_t j = 0; j < stored; ++j)
        for (size_t b = 0; !used[j] && b < e; ++b) ASSERT_EQ(f.data(t)[j * e + b], 0) << j;
    }
    if (mode == QuantMode::F32 || !two_d) {
      ASSERT_EQ(t->dtype(), fb::DType::F32);
      ASSERT_EQ(t->data_size(), stored * 4);
      for (size_t i = 0; i < n; ++i) {
        float v;
        std::memcpy(&v, f.data(t) + 4 * at(i), 4);
        ASSERT_EQ(std::memcmp(&v, &w.data[i], 4), 0) << i;  // exactly as converted
      }
      EXPECT_EQ(t->quant_rel_rms_error(), 0.0f);
    } else if (mode == QuantMode::F16) {
      ASSERT_EQ(t->dtype(), fb::DType::F16);
      ASSERT_EQ(t->data_size(), stored * 2);
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, f.data(t) + 2 * at(i), 2);
        ASSERT_LE(std::fabs(f16_to_f32(h) - w.data[i]), std::fabs(w.data[i]) * 0x1p-11f + 0x1p-25f)
            << i;
      }
    } else {
      ASSERT_EQ(t->dtype(), fb::DType::U8_ZERO_ONE);
      const uint64_t rows = w.shape[0], cols = w.shape[1];
      ASSERT_EQ(t->group_size(), group > cols ? cols : group);
      const uint64_t glen = group == 0 || group > cols ? cols : group;
      const bool f16 = t->params_dtype() == fb::DType::F16;
      ASSERT_TRUE(f16 || t->params_dtype() == fb::DType::F32);
      ASSERT_TRUE(f16 == ((f.model->required_features() & kFeatureZeroOneF16Params) != 0));
      ASSERT_TRUE(t->act_group() == 0 || (f.model->required_features() & kFeatureActGroups) != 0);
      ZeroOneShape shape;
      ASSERT_TRUE(
          zero_one_shape(rows, cols, t->group_size(), &shape, f16 ? DType::kF16 : DType::kF32));
      ASSERT_EQ(t->data_size(), shape.data_bytes());
      ASSERT_EQ(t->params_size(), shape.params_bytes());
      EXPECT_EQ(t->params_offset() % kWeightAlignment, 0u);
      EXPECT_GE(t->params_offset(), t->data_offset() + t->data_size());
      ASSERT_LE(t->params_offset() + t->params_size(), f.model->weights_size());
      prev_end = t->params_offset() + t->params_size();
      std::vector<uint8_t> params(shape.params_bytes());
      std::memcpy(params.data(), f.params(t), shape.params_bytes());
      long double num = 0, den = 0;
      for (uint64_t r = 0; r < rows; ++r)
        for (uint64_t c = 0; c < cols; ++c) {
          const ZeroOneParams p = zero_one_params_at(shape, params.data(), r, c / glen);
          const float x = w.data[r * cols + c];
          const float d = p.min + f.data(t)[zero_one_byte_offset(shape, r, c)] * p.scale;
          // f16 params: a weight past the grid's ends (min and scale rounded) by up to a quarter
          // step plus half an f16 ulp of the weight.
          const float bound = f16 ? p.scale * 0.75f + std::fabs(x) * 0x1p-11f
                                  : p.scale * 0.501f + 1e-6f * std::fabs(x);
          ASSERT_LE(std::fabs(x - d), bound) << r << "," << c;
          num += (static_cast<long double>(x) - d) * (static_cast<long double>(x) - d);
          den += static_cast<long double>(x) * x;
        }
      EXPECT_NEAR(t->quant_rel_rms_error(), static_cast<double>(std::sqrt(num / den)), 1e-6);
      EXPECT_GT(t->quant_rel_rms_error(), 0.0f);
      EXPECT_LT(t->quant_rel_rms_error(), 0.02f);
    }
  }
}

TEST(ConvertCli, Stories260KF32IsExact) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  std::string log;
  const std::string out = converted_model(hf, "--quant f32", &log);
  ASSERT_FALSE(out.empty());
  EXPECT_NE(log.find("model.layers.4.mlp.down_proj.weight"), std::string::npos) << log;
  EXPECT_NE(log.find("file size"), std::string::npos) << log;
  EmberFile f(out);
  ASSERT_NE(f.model, nullptr);
  EXPECT_EQ(f.model->required_features(), uint64_t{kFeatureFloatBlocks});
  const fb::ModelConfig* c = f.model->config();
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->architecture()->str(), "llama");
  EXPECT_EQ(c->hidden_size(), 64u);
  EXPECT_EQ(c->num_layers(), 5u);
  EXPECT_EQ(c->num_heads(), 8u);
  EXPECT_EQ(c->num_kv_heads(), 4u);
  EXPECT_EQ(c->head_dim(), 8u);
  EXPECT_EQ(c->intermediate_size(), 172u);
  EXPECT_EQ(c->vocab_size(), 512u);
  EXPECT_EQ(c->max_context(), 512u);
  EXPECT_TRUE(c->tie_embeddings());
  ASSERT_NE(f.model->tokenizer(), nullptr);
  EXPECT_EQ(f.model->tokenizer()->pieces()->size(), 512u);
  ASSERT_NE(f.model->provenance(), nullptr);
  EXPECT_EQ(f.model->provenance()->source()->str(), hf);
  EXPECT_EQ(f.model->provenance()->source_dtype()->str(), "F32");
  EXPECT_NE(f.model->provenance()->command_line()->str().find("--quant f32"), std::string::npos);
  EXPECT_EQ(f.model->tensors()->size(), 47u);
  EXPECT_EQ(f.tensor("lm_head.weight"), nullptr);  // tied
  check_against_source(f, hf, QuantMode::F32, 0);
  std::printf("stories260K f32 .ember: %zu bytes\n", f.bytes.size());
}

// --float-layout rows: the row-major matrices of format 3 and earlier, readable by runtime 1.
TEST(ConvertCli, FloatLayoutRowsWritesRowMajor) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  for (const char* q : {"f32", "f16"}) {
    SCOPED_TRACE(q);
    const std::string out = converted_model(hf, std::string("--float-layout rows --quant ") + q);
    ASSERT_FALSE(out.empty());
    EmberFile f(out);
    ASSERT_NE(f.model, nullptr);
    EXPECT_EQ(f.model->required_features() & kFeatureFloatBlocks, 0u);
    for (const fb::Tensor* t : *f.model->tensors()) EXPECT_EQ(t->layout(), fb::Layout::ROWS);
    check_against_source(f, hf, q[1] == '3' ? QuantMode::F32 : QuantMode::F16, 0);
  }
  const std::string bad = ember_test::temp_path("bad-layout.ember");
  const CommandResult r = run_convert(hf + " -o " + bad + " --float-layout columns");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("columns"), std::string::npos) << r.output;
}

TEST(ConvertCli, Stories260KU8DefaultGroup) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  std::string log;
  // default: u8, group 64, f16 params, activation groups of 16
  const std::string out = converted_model(hf, "", &log);
  ASSERT_FALSE(out.empty());
  EXPECT_NE(log.find("u8/g64/f16/a16"), std::string::npos) << log;
  EmberFile f(out);
  ASSERT_NE(f.model, nullptr);
  EXPECT_EQ(f.model->required_features(),
            kFeatureZeroOneU8 | kFeatureZeroOneF16Params | kFeatureActGroups);
  check_against_source(f, hf, QuantMode::U8, 64);
  const fb::Tensor* down = f.tensor("model.layers.0.mlp.down_proj.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->params_size(), 64u * 3u * 4u);  // 172 = 2 x 64 + 44; f16 scale and min
  EXPECT_EQ(down->params_dtype(), fb::DType::F16);
  EXPECT_EQ(down->act_group(), 16u);
  std::printf("stories260K u8/g64 .ember: %zu bytes\n", f.bytes.size());
}

// --group 64: f16 params and activation groups of 16 by default (runtime 3); --params f32
// --act-group 0 writes what format 2 wrote (runtime 2 reads it); an activation group that does
// not divide the group is an error that names it.
TEST(ConvertCli, ParamsTypeAndActGroup) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  std::string log;
  std::string out = converted_model(hf, "--quant u8 --group 64", &log);
  ASSERT_FALSE(out.empty());
  EXPECT_NE(log.find("u8/g64/f16/a16"), std::string::npos) << log;
  {
    EmberFile f(out);
    ASSERT_NE(f.model, nullptr);
    EXPECT_EQ(f.model->required_features(),
              kFeatureZeroOneU8 | kFeatureZeroOneF16Params | kFeatureActGroups);
    EXPECT_EQ(f.model->min_runtime_version(), kFormatVersionU8Params);
    const fb::Tensor* q = f.tensor("model.layers.0.self_attn.q_proj.weight");
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q->act_group(), 16u);
    EXPECT_EQ(q->params_size(), 4u * 1u * 32u * 2u);  // 4 row blocks, 1 group, 32 f16 values
    check_against_source(f, hf, QuantMode::U8, 64);
  }
  out = converted_model(hf, "--quant u8 --group 64 --params f32 --act-group 0");
  ASSERT_FALSE(out.empty());
  {
    EmberFile f(out);
    ASSERT_NE(f.model, nullptr);
    EXPECT_EQ(f.model->required_features(), static_cast<uint64_t>(kFeatureZeroOneU8));
    EXPECT_EQ(f.model->min_runtime_version(), kFormatVersionU8Blocks);
    check_against_source(f, hf, QuantMode::U8, 64);
  }
  out = converted_model(hf, "--quant u8 --group 64 --params f32 --act-group 32");
  ASSERT_FALSE(out.empty());
  {
    EmberFile f(out);
    ASSERT_NE(f.model, nullptr);
    EXPECT_EQ(f.model->required_features(), kFeatureZeroOneU8 | kFeatureActGroups);
    EXPECT_EQ(f.tensor("model.layers.0.self_attn.q_proj.weight")->act_group(), 32u);
  }
  const std::string bad = ember_test::temp_path("bad-act.ember");
  CommandResult r = run_convert(hf + " -o " + bad + " --group 64 --act-group 24");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("--act-group 24"), std::string::npos) << r.output;
  r = run_convert(hf + " -o " + bad + " --act-group sixteen");
  EXPECT_NE(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("sixteen"), std::string::npos) << r.output;
  r = run_convert(hf + " -o " + bad + " --params f8");
  EXPECT_NE(r.code, 0) << r.output;
  EXPECT_FALSE(exists(bad));
}

TEST(ConvertCli, GroupZeroAndOddGroup) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  for (uint32_t g : {0u, 48u}) {
    const std::string out = converted_model(hf, "--quant u8 --group " + std::to_string(g));
    ASSERT_FALSE(out.empty());
    EmberFile f(out);
    check_against_source(f, hf, QuantMode::U8, g);
  }
}

TEST(ConvertCli, F16MatchesTheF16Checkpoint) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  EMBER_REQUIRE_SHARED(hf16, "models/stories260K/hf-f16");
  const std::string out = converted_model(hf, "--quant f16");
  ASSERT_FALSE(out.empty());
  EmberFile f(out);
  ASSERT_NE(f.model, nullptr);
  EXPECT_EQ(f.model->required_features(), uint64_t{kFeatureF16 | kFeatureFloatBlocks});
  check_against_source(f, hf, QuantMode::F16, 0);
  // numpy's rounding (hf-f16) must be what we stored, bit for bit after widening.
  const auto golden = load_safetensors_dir(hf16);
  for (const fb::Tensor* t : *f.model->tensors()) {
    if (t->dtype() != fb::DType::F16) continue;
    const FloatTensor& g = golden.at(t->name()->str());
    for (size_t i = 0; i < g.data.size(); ++i) {
      uint16_t h;
      std::memcpy(&h, f.data(t) + 2 * EmberFile::value_index(t, i), 2);
      ASSERT_EQ(f16_to_f32(h), g.data[i]) << t->name()->str() << "[" << i << "]";
    }
  }
}

TEST(ConvertCli, Bf16AndF16SourcesWidenExactly) {
  EMBER_REQUIRE_SHARED(root, "models/stories260K");
  for (const char* sub : {"hf-bf16", "hf-f16"}) {
    const std::string out = converted_model(root + "/" + sub, "--quant f32");
    ASSERT_FALSE(out.empty());
    EmberFile f(out);
    ASSERT_NE(f.model, nullptr);
    EXPECT_EQ(f.model->provenance()->source_dtype()->str(),
              std::string(sub) == "hf-bf16" ? "BF16" : "F16");
    check_against_source(f, root + "/" + sub, QuantMode::F32, 0);
  }
}

TEST(ConvertCli, AiDreams260KOtherShapes) {
  EMBER_REQUIRE_SHARED(hf, "models/aidreams260K/hf");
  const std::string out = converted_model(hf, "");
  ASSERT_FALSE(out.empty());
  EmberFile f(out);
  ASSERT_NE(f.model, nullptr);
  EXPECT_EQ(f.model->config()->head_dim(), 16u);
  EXPECT_EQ(f.model->config()->num_layers(), 4u);
  check_against_source(f, hf, QuantMode::U8, 64);  // the default group
}

TEST(ConvertCli, TokenizerOnly) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  const std::string out = converted_model(hf, "--tokenizer-only");
  ASSERT_FALSE(out.empty());
  EmberFile f(out);
  ASSERT_NE(f.model, nullptr);
  EXPECT_EQ(f.model->config(), nullptr);
  EXPECT_EQ(f.model->tensors(), nullptr);
  EXPECT_EQ(f.model->weights_size(), 0u);
  ASSERT_NE(f.model->tokenizer(), nullptr);
  EXPECT_EQ(f.model->tokenizer()->pieces()->size(), 512u);
}

TEST(ConvertCli, RefusesOverwriteWithoutForce) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  const std::string out = ember_test::temp_path("exists.ember");
  ember_test::write_text(out, "keep me");
  CommandResult r = run_convert(hf + " -o " + out + " --quant f32");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("ember-convert: error:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("already exists (use --force to overwrite)"), std::string::npos)
      << r.output;
  const auto kept = ember_test::read_file(out);
  EXPECT_EQ(std::string(kept.begin(), kept.end()), "keep me");
  r = run_convert(hf + " -o " + out + " --quant f32 --force");
  ASSERT_EQ(r.code, 0) << r.output;
  EmberFile f(out);
  EXPECT_NE(f.model, nullptr);
}

// Runs the converter on `dir`, expects exit 1 with `needle` in the message and no output left.
void expect_convert_error(const std::string& dir, const std::string& needle) {
  const std::string outdir =
      ember_test::make_temp_dir("out-" + std::to_string(std::hash<std::string>()(dir + needle)));
  const std::string out = outdir + "/m.ember";
  const CommandResult r = run_convert(dir + " -o " + out);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("ember-convert: error: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << "'" << needle << "' not in: " << r.output;
  EXPECT_FALSE(exists(out));
  EXPECT_TRUE(ember_test::list_prefix(outdir, "m.ember").empty());
}

TEST(ConvertCli, MissingConfigJson) {
  const std::string dir = ember_test::make_temp_dir("empty-model");
  expect_convert_error(dir, "no config.json");
}

TEST(ConvertCli, UnsupportedArchitecture) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  const std::string dir = derived_checkpoint(
      hf, "arch", [](json& c) { c["architectures"] = {"Qwen2MoeForCausalLM"}; }, [](auto&) {});
  expect_convert_error(dir, "unsupported architecture 'Qwen2MoeForCausalLM'");
}

TEST(ConvertCli, MissingTensor) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  const std::string dir = derived_checkpoint(
      hf, "missing", [](json&) {},
      [](auto& t) { t.erase("model.layers.3.self_attn.v_proj.weight"); });
  expect_convert_error(dir, "missing tensor 'model.layers.3.self_attn.v_proj.weight'");
}

TEST(ConvertCli, UnexpectedTensor) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  const std::string dir = derived_checkpoint(
      hf, "extra", [](json&) {},
      [](auto& t) {
        t["model.layers.0.self_attn.q_proj.bias"] = {"F32", {64}, std::vector<uint8_t>(256, 0)};
      });
  expect_convert_error(dir, "unexpected tensor 'model.layers.0.self_attn.q_proj.bias'");
}

TEST(ConvertCli, ShapeConfigMismatch) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  const std::string dir = derived_checkpoint(
      hf, "shape", [](json& c) { c["intermediate_size"] = 170; }, [](auto&) {});
  expect_convert_error(dir, "has shape [172, 64] but config.json implies [170, 64]");
  const std::string dir2 = derived_checkpoint(
      hf, "layers", [](json& c) { c["num_hidden_layers"] = 6; }, [](auto&) {});
  expect_convert_error(dir2, "missing tensor 'model.layers.5.");
  const std::string dir3 = derived_checkpoint(
      hf, "untied", [](json& c) { c["tie_word_embeddings"] = false; }, [](auto&) {});
  expect_convert_error(dir3, "missing tensor 'lm_head.weight'");
}

TEST(ConvertCli, LyingSafetensorsHeader) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  const std::string dir = derived_checkpoint(
      hf, "lying", [](json&) {}, [](auto&) {});
  // Rewrite one shape in place so the header claims more bytes than the range holds.
  auto bytes = ember_test::read_file(dir + "/model.safetensors");
  std::string s(bytes.begin(), bytes.end());
  const std::string from = "\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[64]";
  const size_t pos = s.find(from);
  ASSERT_NE(pos, std::string::npos);
  s.replace(pos, from.size(), "\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[65]");
  ember_test::write_text(dir + "/model.safetensors", s);
  expect_convert_error(dir, "tensor 'model.norm.weight': shape holds 65 F32 values");
  ember_test::write_text(dir + "/model.safetensors", s.substr(0, 5000));  // truncated
  expect_convert_error(dir, "model.safetensors");
}

TEST(ConvertCli, NonFiniteWeight) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  const std::string dir = derived_checkpoint(
      hf, "nan", [](json&) {},
      [](auto& t) {
        auto& b = t["model.layers.1.mlp.up_proj.weight"].bytes;
        const float nan = NAN;
        std::memcpy(b.data() + 40, &nan, 4);
      });
  expect_convert_error(dir, "'model.layers.1.mlp.up_proj.weight' holds a NaN");
}

TEST(ConvertCli, NoPartialFileWhenWritingFails) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  const std::string outdir = ember_test::make_temp_dir("fsize");
  const std::string out = outdir + "/m.ember";
  // RLIMIT_FSIZE of 100 KiB (the f32 file is ~1 MiB): write() fails with EFBIG mid-file (SIGXFSZ
  // ignored).
  std::string log;
  const int code = ember_test::run_command("sh -c \"trap '' XFSZ; ulimit -f 200; exec " +
                                               ember_test::convert_bin() + " " + hf + " -o " + out +
                                               " --quant f32\"",
                                           &log);
  EXPECT_EQ(code, 1) << log;
  EXPECT_NE(log.find("write failed"), std::string::npos) << log;
  EXPECT_FALSE(exists(out));
  EXPECT_TRUE(ember_test::list_prefix(outdir, "m.ember").empty()) << "temporary file left behind";

  // Renaming onto a directory fails after the whole file was written: nothing left either.
  const std::string dirout = outdir + "/d.ember";
  ASSERT_EQ(::mkdir(dirout.c_str(), 0755), 0);
  const CommandResult r = run_convert(hf + " -o " + dirout + " --quant f32 --force");
  EXPECT_EQ(r.code, 1) << r.output;
  const auto left = ember_test::list_prefix(outdir, "d.ember");
  EXPECT_EQ(left.size(), 1u);  // only the directory itself
}

TEST(ConvertLib, NaturalTensorOrder) {
  EXPECT_TRUE(natural_less("model.layers.2.x", "model.layers.10.x"));
  EXPECT_FALSE(natural_less("model.layers.10.x", "model.layers.2.x"));
  EXPECT_TRUE(natural_less("a", "b"));
  EXPECT_TRUE(natural_less("a1", "a1b"));
  EXPECT_FALSE(natural_less("a1", "a1"));
}

TEST(ConvertLib, TiedLmHeadEqualToEmbeddingIsDropped) {
  ConfigSpec c;
  c.hidden_size = 4;
  c.num_layers = 0;
  c.num_heads = 2;
  c.num_kv_heads = 2;
  c.head_dim = 2;
  c.intermediate_size = 8;
  c.vocab_size = 3;
  c.tie_embeddings = true;
  std::map<std::string, FloatTensor> t;
  t["model.embed_tokens.weight"] = {{3, 4}, std::vector<float>(12, 0.5f), "F32"};
  t["model.norm.weight"] = {{4}, std::vector<float>(4, 1.0f), "F32"};
  t["lm_head.weight"] = t["model.embed_tokens.weight"];
  t["model.rotary_emb.inv_freq"] = {{1}, {1.0f}, "F32"};
  validate_llama_tensors(c, &t, "test");
  EXPECT_EQ(t.size(), 2u);
  t["lm_head.weight"] = {{3, 4}, std::vector<float>(12, 0.25f), "F32"};
  EXPECT_THROW(validate_llama_tensors(c, &t, "test"), ConvertError);
}

TEST(ConvertCli, BadArguments) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  const std::string out = ember_test::temp_path("bad.ember");
  EXPECT_NE(run_convert(hf + " -o " + out + " --quant q4").code, 0);
  EXPECT_NE(run_convert(hf + " -o " + out + " --group -1").code, 0);
  EXPECT_NE(run_convert(hf).code, 0);  // no -o
  const CommandResult r = run_convert("-o " + out);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("missing HF_DIR"), std::string::npos) << r.output;
  EXPECT_FALSE(exists(out));
}

}  // namespace
}  // namespace convert
}  // namespace ember
