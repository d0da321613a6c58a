// --keep-float: the rule parser and the glob matcher, the choice on a small model (tied and untied
// output heads), every error of the command line (a message naming the rule, exit code 1, no
// output file), and a mixed stories260K file read back: the kept matrices stored exactly (f32) or
// rounded to f16, the others u8, the rules and choices in its provenance.
#include "keep_float.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>

#include "converter_test_util.h"
#include "core/float_blocks.h"
#include "core/format.h"
#include "core/half.h"
#include "ember_generated.h"
#include "hf_model.h"
#include "safetensors.h"

namespace ember {
namespace convert {
namespace {

using ember_test::CommandResult;
using ember_test::converted_model;
using ember_test::exists;
using ember_test::run_convert;

TEST(KeepFloatRule, TypeSuffix) {
  KeepFloatRule r = parse_keep_float("lm_head.weight");
  EXPECT_EQ(r.pattern, "lm_head.weight");
  EXPECT_EQ(r.dtype, DType::kF32);  // the default
  EXPECT_EQ(r.text(), "lm_head.weight:f32");
  r = parse_keep_float("*.down_proj.*:f16");
  EXPECT_EQ(r.pattern, "*.down_proj.*");
  EXPECT_EQ(r.dtype, DType::kF16);
  EXPECT_EQ(r.text(), "*.down_proj.*:f16");
  r = parse_keep_float("model.layers.0.*:f32");
  EXPECT_EQ(r.pattern, "model.layers.0.*");
  EXPECT_EQ(r.dtype, DType::kF32);
  // A pattern with a ':' of its own takes the type explicitly.
  r = parse_keep_float("model.layers.[[:digit:]].*:f16");
  EXPECT_EQ(r.pattern, "model.layers.[[:digit:]].*");
  EXPECT_EQ(r.dtype, DType::kF16);
}

TEST(KeepFloatRule, MalformedRulesNameThemselves) {
  auto error = [](const std::string& arg) {
    return ember_test::error_message<ConvertError>([&] { parse_keep_float(arg); });
  };
  EXPECT_NE(error("").find("--keep-float '': empty pattern"), std::string::npos);
  EXPECT_NE(error(":f16").find("':f16': empty pattern"), std::string::npos);
  EXPECT_NE(error("x:f8").find("unknown type ':f8'"), std::string::npos) << error("x:f8");
  EXPECT_NE(error("x:").find("unknown type ':'"), std::string::npos);
  EXPECT_NE(error("x:F16").find("unknown type ':F16'"), std::string::npos);
  EXPECT_NE(error("model.layers.[0-3.*").find("'model.layers.[0-3.*': unbalanced '['"),
            std::string::npos);
  EXPECT_NE(error("[]").find("unbalanced '['"), std::string::npos);  // ']' first is a member
  EXPECT_NE(error("[[:digit:]:f32").find("unbalanced '['"), std::string::npos);
  EXPECT_NE(error("abc\\").find("lone '\\'"), std::string::npos);
  EXPECT_NE(error("[[:digit:]]*").find("unknown type ':]]*'"), std::string::npos);
  EXPECT_EQ(error("[]]x"), "");  // a set holding ']'
  EXPECT_EQ(error("a\\[b"), "");
}

TEST(KeepFloatRule, GlobsMatchWholeNames) {
  const std::string down = "model.layers.3.mlp.down_proj.weight";
  EXPECT_TRUE(glob_match("*", down));  // '*' crosses dots
  EXPECT_TRUE(glob_match("*.down_proj.*", down));
  EXPECT_FALSE(glob_match("*.down_proj.*", "model.layers.3.mlp.up_proj.weight"));
  EXPECT_FALSE(glob_match("down_proj", down));  // the whole name, not a part
  EXPECT_TRUE(glob_match("model.layers.3.*", down));
  EXPECT_FALSE(glob_match("model.layers.3.*", "model.layers.13.mlp.down_proj.weight"));
  EXPECT_TRUE(glob_match("model.layers.[0-3].*", down));
  EXPECT_FALSE(glob_match("model.layers.[!0-3].*", down));
  EXPECT_TRUE(glob_match("model.layers.?.mlp.*", down));
  EXPECT_FALSE(glob_match("model.layers.?.mlp.*", "model.layers.10.mlp.down_proj.weight"));
  EXPECT_TRUE(glob_match("model.layers.[[:digit:]].*", down));
  EXPECT_TRUE(glob_match("lm_head.weight", "lm_head.weight"));
  EXPECT_FALSE(glob_match("lm_head.weight", "lm_head.weights"));
  EXPECT_TRUE(glob_match("a\\*b", "a*b"));
  EXPECT_FALSE(glob_match("a\\*b", "axb"));
}

// A two-layer model of small matrices: tied or untied output head.
ModelIR small_model(bool tied) {
  ModelIR ir;
  ConfigSpec& c = ir.config;
  c.hidden_size = 4;
  c.num_layers = 2;
  c.num_heads = 2;
  c.num_kv_heads = 2;
  c.head_dim = 2;
  c.intermediate_size = 8;
  c.vocab_size = 6;
  c.tie_embeddings = tied;
  for (const auto& [name, shape] : expected_llama_tensors(c)) {
    uint64_t n = 1;
    for (uint64_t d : shape) n *= d;
    ir.tensors[name] = {shape, std::vector<float>(n, 0.5f), "F32"};
  }
  return ir;
}

std::vector<KeepFloatRule> rules(std::initializer_list<const char*> args) {
  std::vector<KeepFloatRule> r;
  for (const char* a : args) r.push_back(parse_keep_float(a));
  return r;
}

std::string choices(const ModelIR& ir) {
  std::string s;
  for (const FloatChoiceRecord& c : ir.float_choices)
    s += c.name + (c.dtype == DType::kF16 ? "=f16 " : "=f32 ");
  return s;
}

TEST(KeepFloatChoice, TiedHeadIsTheEmbedding) {
  ModelIR ir = small_model(true);
  apply_keep_float(rules({"lm_head.weight:f16"}), QuantMode::U8, &ir);
  EXPECT_EQ(choices(ir), "model.embed_tokens.weight=f16 ");
  ASSERT_EQ(ir.float_choices.size(), 1u);
  EXPECT_EQ(ir.float_choices[0].pattern, "lm_head.weight:f16");
  EXPECT_EQ(ir.keep_float, std::vector<std::string>{"lm_head.weight:f16"});
  // The embedding by its own name is the same tensor.
  apply_keep_float(rules({"model.embed_tokens.*"}), QuantMode::U8, &ir);
  EXPECT_EQ(choices(ir), "model.embed_tokens.weight=f32 ");
}

TEST(KeepFloatChoice, UntiedHeadAlone) {
  ModelIR ir = small_model(false);
  apply_keep_float(rules({"lm_head.weight"}), QuantMode::U8, &ir);
  EXPECT_EQ(choices(ir), "lm_head.weight=f32 ");
}

TEST(KeepFloatChoice, LayersAndModulesInFileOrder) {
  ModelIR ir = small_model(false);
  // Norms match too but are float32 anyway: only the matrices are recorded.
  apply_keep_float(rules({"*.down_proj.*:f16", "model.layers.1.*:f16", "*.0.*.q_proj.*"}),
                   QuantMode::U8, &ir);
  EXPECT_EQ(choices(ir),
            "model.layers.0.mlp.down_proj.weight=f16 model.layers.0.self_attn.q_proj.weight=f32 "
            "model.layers.1.mlp.down_proj.weight=f16 model.layers.1.mlp.gate_proj.weight=f16 "
            "model.layers.1.mlp.up_proj.weight=f16 model.layers.1.self_attn.k_proj.weight=f16 "
            "model.layers.1.self_attn.o_proj.weight=f16 model.layers.1.self_attn.q_proj.weight=f16 "
            "model.layers.1.self_attn.v_proj.weight=f16 ");
  EXPECT_EQ(ir.keep_float, (std::vector<std::string>{"*.down_proj.*:f16", "model.layers.1.*:f16",
                                                     "*.0.*.q_proj.*:f32"}));
  // model.layers.1.mlp.down_proj.weight is matched by two rules of one type: the first is named.
  EXPECT_EQ(ir.float_choices[2].pattern, "*.down_proj.*:f16");
  // Everything: '*' (the all-f32 model) and, under --quant f16, f32 for the rest.
  apply_keep_float(rules({"*"}), QuantMode::U8, &ir);
  EXPECT_EQ(ir.float_choices.size(), 2u + 7u * 2u);
  apply_keep_float(rules({"*"}), QuantMode::F16, &ir);
  EXPECT_EQ(ir.float_choices.size(), 2u + 7u * 2u);
}

TEST(KeepFloatChoice, Errors) {
  auto error = [](std::initializer_list<const char*> args, QuantMode mode, bool tied = false) {
    ModelIR ir = small_model(tied);
    const std::vector<KeepFloatRule> r = rules(args);
    return ember_test::error_message<ConvertError>([&] { apply_keep_float(r, mode, &ir); });
  };
  EXPECT_NE(error({"foo*"}, QuantMode::U8).find("--keep-float 'foo*' matched no tensor"),
            std::string::npos);
  EXPECT_NE(error({"model.layers.*", "model.layers.2.*"}, QuantMode::U8)
                .find("'model.layers.2.*' matched no tensor"),
            std::string::npos);
  EXPECT_NE(error({"*norm*"}, QuantMode::U8).find("'*norm*' matched only 1-D tensors"),
            std::string::npos);
  const std::string conflict = error({"*.mlp.*", "*down*:f16"}, QuantMode::U8);
  EXPECT_NE(conflict.find("'model.layers.0.mlp.down_proj.weight' is matched by --keep-float "
                          "'*.mlp.*:f32' and '*down*:f16'"),
            std::string::npos)
      << conflict;
  EXPECT_NE(error({"*"}, QuantMode::F32).find("needs --quant u8 or f16"), std::string::npos);
  EXPECT_NE(error({"*:f16"}, QuantMode::F16).find("'*:f16' with --quant f16 keeps nothing"),
            std::string::npos);
  // The same rule twice, or rules that agree, are fine.
  EXPECT_EQ(error({"*.mlp.*", "*down*:f32", "*.mlp.*"}, QuantMode::U8), "");
  EXPECT_EQ(error({}, QuantMode::F32), "");
}

// ------------------------------------------------------------------------------- command line --

// ember-convert with `args` must exit 1 naming `needle`, and leave no file.
void expect_refused(const std::string& hf, const std::string& args, const std::string& needle) {
  const std::string outdir =
      ember_test::make_temp_dir("kf-" + std::to_string(std::hash<std::string>()(args)));
  const std::string out = outdir + "/m.ember";
  const CommandResult r = run_convert(hf + " -o " + out + " " + args);
  EXPECT_EQ(r.code, 1) << args << "\n" << r.output;
  EXPECT_NE(r.output.find("ember-convert: error: " + needle), std::string::npos)
      << "'" << needle << "' not in: " << r.output;
  EXPECT_FALSE(exists(out)) << args;
  EXPECT_TRUE(ember_test::list_prefix(outdir, "m.ember").empty()) << args;
}

TEST(KeepFloatCli, ErrorsNameTheRuleAndLeaveNoFile) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  expect_refused(hf, "--keep-float 'foo*'", "--keep-float 'foo*' matched no tensor");
  expect_refused(hf, "--keep-float 'model.layers.[0-3.*'",
                 "--keep-float 'model.layers.[0-3.*': unbalanced '['");
  expect_refused(hf, "--keep-float ''", "--keep-float '': empty pattern");
  expect_refused(hf, "--keep-float 'lm_head.weight:f8'",
                 "--keep-float 'lm_head.weight:f8': unknown type ':f8'");
  expect_refused(hf, "--keep-float model.norm.weight",
                 "--keep-float 'model.norm.weight' matched only 1-D tensors");
  expect_refused(hf, "--keep-float '*.mlp.*' --keep-float '*down*:f16'",
                 "tensor 'model.layers.0.mlp.down_proj.weight' is matched by --keep-float "
                 "'*.mlp.*:f32' and '*down*:f16'");
  expect_refused(hf, "--quant f32 --keep-float '*'", "--keep-float needs --quant u8 or f16");
  expect_refused(hf, "--quant f16 --keep-float '*:f16'", "--keep-float '*:f16' with --quant f16");
  expect_refused(hf, "--tokenizer-only --keep-float '*'", "--keep-float makes no sense");
}

TEST(KeepFloatCli, MixedStories260KReadBack) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  std::string log;
  const std::string out = converted_model(
      hf, "--quant u8 --group 16 --keep-float 'model.layers.0.*' --keep-float lm_head.weight:f16",
      &log);
  ASSERT_FALSE(out.empty());
  EXPECT_NE(log.find("'model.layers.0.*:f32'"), std::string::npos) << log;  // the report says why
  const std::vector<unsigned char> bytes = ember_test::read_file(out);
  ASSERT_GT(bytes.size(), 8u);
  uint32_t fb_size;
  std::memcpy(&fb_size, bytes.data(), 4);
  ASSERT_LE(uint64_t{fb_size} + kSizePrefixBytes, bytes.size());
  flatbuffers::Verifier v(bytes.data(), kSizePrefixBytes + fb_size);
  ASSERT_TRUE(fb::VerifySizePrefixedModelBuffer(v));
  const fb::Model* m = fb::GetSizePrefixedModel(bytes.data());
  EXPECT_EQ(
      m->required_features(),  // u8 params are f16 by default
      uint64_t{kFeatureZeroOneU8 | kFeatureF16 | kFeatureZeroOneF16Params | kFeatureFloatBlocks});
  const auto src = load_safetensors_dir(hf);
  size_t f32 = 0, f16 = 0, u8 = 0;
  for (const fb::Tensor* t : *m->tensors()) {
    const std::string name = t->name()->str();
    SCOPED_TRACE(name);
    const FloatTensor& w = src.at(name);
    const uint8_t* data = bytes.data() + m->weights_offset() + t->data_offset();
    if (w.shape.size() == 1) {
      EXPECT_EQ(t->dtype(), fb::DType::F32);
    } else if (name.rfind("model.layers.0.", 0) == 0) {
      ASSERT_EQ(t->dtype(), fb::DType::F32);
      ASSERT_EQ(t->layout(), fb::Layout::BLOCKS16);
      uint64_t stored = 0;
      ASSERT_TRUE(float_blocked_values(w.shape[0], w.shape[1], &stored));
      ASSERT_EQ(t->data_size(), stored * 4);
      for (size_t i = 0; i < w.data.size(); ++i) {  // exactly as converted
        const size_t at = float_blocked_index(w.shape[1], i / w.shape[1], i % w.shape[1]);
        ASSERT_EQ(std::memcmp(data + 4 * at, &w.data[i], 4), 0) << i;
      }
      ++f32;
    } else if (name == "model.embed_tokens.weight") {  // tied: the output head
      ASSERT_EQ(t->dtype(), fb::DType::F16);
      ASSERT_EQ(t->layout(), fb::Layout::BLOCKS16);
      for (size_t i = 0; i < w.data.size(); ++i) {
        uint16_t h;
        std::memcpy(&h, data + 2 * float_blocked_index(w.shape[1], i / w.shape[1], i % w.shape[1]),
                    2);
        ASSERT_LE(std::fabs(f16_to_f32(h) - w.data[i]), std::fabs(w.data[i]) * 0x1p-11f + 0x1p-25f);
      }
      ++f16;
    } else {
      EXPECT_EQ(t->dtype(), fb::DType::U8_ZERO_ONE);
      EXPECT_EQ(t->group_size(), 16u);
      ++u8;
    }
  }
  EXPECT_EQ(f32, 7u);
  EXPECT_EQ(f16, 1u);
  EXPECT_EQ(u8, 4u * 7u);
  const fb::Provenance* p = m->provenance();
  ASSERT_NE(p, nullptr);
  ASSERT_NE(p->keep_float(), nullptr);
  ASSERT_EQ(p->keep_float()->size(), 2u);
  EXPECT_EQ(p->keep_float()->Get(0)->str(), "model.layers.0.*:f32");
  EXPECT_EQ(p->keep_float()->Get(1)->str(), "lm_head.weight:f16");
  ASSERT_NE(p->float_choices(), nullptr);
  ASSERT_EQ(p->float_choices()->size(), 8u);
  for (const fb::FloatChoice* c : *p->float_choices()) {
    const bool emb = c->name()->str() == "model.embed_tokens.weight";
    EXPECT_EQ(c->dtype(), emb ? fb::DType::F16 : fb::DType::F32) << c->name()->str();
    EXPECT_EQ(c->pattern()->str(), emb ? "lm_head.weight:f16" : "model.layers.0.*:f32");
    EXPECT_EQ(c->kl(), -1.0f);  // not measured
  }
  // A file without --keep-float has neither field.
  const std::string plain = converted_model(hf, "--quant u8 --group 16");
  ASSERT_FALSE(plain.empty());
  const std::vector<unsigned char> pb = ember_test::read_file(plain);
  const fb::Model* pm = fb::GetSizePrefixedModel(pb.data());
  EXPECT_EQ(pm->provenance()->keep_float(), nullptr);
  EXPECT_EQ(pm->provenance()->float_choices(), nullptr);
}

}  // namespace
}  // namespace convert
}  // namespace ember
