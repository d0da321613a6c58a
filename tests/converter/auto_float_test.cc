// --auto-float: the budget parser, the command line's errors, and on both shared models that the
// measured ranking beats guesses: with the same byte budget, the matrices it keeps in float give a
// lower mean KL against f32 than plain u8 and than two naive choices (the first layers; the output
// head alone), on windows of the evaluation text it did not measure on. A third guess, the head
// and then the first layers, is printed: on stories260K it keeps the same head and ties.
#include "auto_float.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>

#include "app_util.h"
#include "converter_test_util.h"
#include "eval_core.h"
#include "hf_model.h"
#include "quantize.h"

#ifndef EMBER_SOURCE_DIR
#error "EMBER_SOURCE_DIR: the repository, for tests/data/eval"
#endif

namespace ember {
namespace convert {
namespace {

using ember_test::CommandResult;
using ember_test::exists;
using ember_test::run_convert;

TEST(AutoFloatBudget, Parses) {
  AutoFloatOptions a = parse_auto_float("5%");
  EXPECT_TRUE(a.percent);
  EXPECT_DOUBLE_EQ(a.budget, 0.05);
  EXPECT_EQ(a.dtype, DType::kF16);
  a = parse_auto_float("10MB");
  EXPECT_FALSE(a.percent);
  EXPECT_DOUBLE_EQ(a.budget, 1e7);
  a = parse_auto_float("1.5MiB:f32");
  EXPECT_DOUBLE_EQ(a.budget, 1.5 * 1048576);
  EXPECT_EQ(a.dtype, DType::kF32);
  a = parse_auto_float("300000");
  EXPECT_DOUBLE_EQ(a.budget, 300000);
  a = parse_auto_float("0%:f16");
  EXPECT_DOUBLE_EQ(a.budget, 0);
}

TEST(AutoFloatBudget, MalformedBudgetsNameThemselves) {
  auto error = [](const std::string& arg) {
    return ember_test::error_message<ConvertError>([&] { parse_auto_float(arg); });
  };
  for (const char* bad : {"", "abc", "-5%", "10XB", "5%:f8", "nan", "inf", "5 %", "%", ":f16"}) {
    const std::string e = error(bad);
    EXPECT_NE(e.find(std::string("--auto-float '") + bad + "'"), std::string::npos)
        << bad << ": " << e;
  }
  EXPECT_NE(error("10XB").find("unknown unit 'XB'"), std::string::npos);
  EXPECT_NE(error("5%:f8").find("f16 or f32"), std::string::npos);
}

TEST(AutoFloatCli, ErrorsLeaveNoFile) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  const std::string out = ember_test::temp_path("auto_float_err.ember");
  const std::pair<const char*, const char*> cases[] = {
      {"--auto-float 5% --quant f16", "--auto-float needs --quant u8"},
      {"--auto-float 5%% --group 64", "--auto-float '5%%'"},
      {"--auto-float 1GiB:f8", "--auto-float '1GiB:f8': the type after ':' must be f16 or f32"},
      {"--auto-float 5% --eval-text /nonexistent/eval.txt", "/nonexistent/eval.txt"},
  };
  for (const auto& c : cases) {
    const CommandResult r = run_convert(hf + " -o " + out + " --force " + c.first);
    EXPECT_EQ(r.code, 1) << c.first << "\n" << r.output;
    EXPECT_NE(r.output.find(std::string("ember-convert: error: ") + c.second), std::string::npos)
        << c.first << ": " << r.output;
    EXPECT_FALSE(exists(out)) << c.first;
  }
}

// Mean KL against `ref_logits` of `ir` written with `choices` kept in float.
double kl_with(ModelIR* ir, const std::vector<FloatChoiceRecord>& choices, const WriteOptions& o,
               const std::vector<int32_t>& toks, const ember_app::EvalOptions& eo,
               const std::vector<float>& ref_logits, uint64_t* file_bytes) {
  ir->float_choices = choices;
  const std::string path = ember_test::temp_path("auto_float_candidate.ember");
  *file_bytes = write_ember(*ir, path, o).file_size;
  ember_model* m = nullptr;
  EXPECT_EQ(ember_model_load_file(path.c_str(), &m), EMBER_OK) << ember_last_error();
  ember_app::EvalResult r;
  std::string err;
  EXPECT_TRUE(ember_app::eval_tokens_vs(m, toks.data(), toks.size(), eo, ref_logits, &r, &err))
      << err;
  ember_model_free(m);
  return r.kl_mean;
}

// Walks `order` keeping each matrix that still fits in `budget` (grow bytes from the ranking).
std::vector<FloatChoiceRecord> fill(const std::vector<std::string>& order,
                                    const std::map<std::string, uint64_t>& grow, uint64_t budget) {
  std::vector<FloatChoiceRecord> v;
  uint64_t used = 0;
  for (const std::string& n : order) {
    if (used + grow.at(n) > budget) continue;
    used += grow.at(n);
    v.push_back({n, DType::kF16, "naive", -1});
  }
  return v;
}

void ranking_beats_guesses(const std::string& model, const std::string& text_name) {
  EMBER_REQUIRE_SHARED(hf, "models/" + model + "/hf");
  const std::string text = std::string(EMBER_SOURCE_DIR) + "/tests/data/eval/" + text_name;
  ModelIR ir = load_hf_model(hf);
  WriteOptions o;
  o.mode = QuantMode::U8;
  o.u8.group = 64;  // with the command line's defaults: f16 params, activation groups of 16
  o.u8.params = DType::kF16;
  o.u8.act_group = kAutoActGroup;
  o.force = true;
  AutoFloatOptions a = parse_auto_float("10%");
  a.eval_text = text;
  const AutoFloatResult r = choose_auto_float(&ir, o, a);
  ASSERT_GT(r.windows, 0u);
  std::vector<FloatChoiceRecord> chosen = ir.float_choices;
  ASSERT_FALSE(chosen.empty());
  std::map<std::string, uint64_t> grow;
  std::vector<std::string> layer_order, head_first;
  for (const AutoFloatEntry& e : r.ranking) grow[e.name] = e.grow_bytes;
  for (const auto& kv : grow) layer_order.push_back(kv.first);
  std::sort(layer_order.begin(), layer_order.end(), natural_less);
  const std::string head = grow.count("lm_head.weight") ? "lm_head.weight"  // else tied
                                                        : "model.embed_tokens.weight";
  head_first.push_back(head);
  for (const std::string& n : layer_order)
    if (n.rfind("model.layers.", 0) == 0) head_first.push_back(n);
  layer_order.erase(
      std::remove_if(layer_order.begin(), layer_order.end(),
                     [](const std::string& n) { return n.rfind("model.layers.", 0) != 0; }),
      layer_order.end());

  // The reference and the held-out tokens: the windows after those the ranking measured.
  ModelIR f32 = ir;
  WriteOptions of = o;
  of.mode = QuantMode::F32;
  f32.float_choices.clear();
  const std::string ref_path = ember_test::temp_path("auto_float_ref.ember");
  write_ember(f32, ref_path, of);
  ember_model* ref = nullptr;
  ASSERT_EQ(ember_model_load_file(ref_path.c_str(), &ref), EMBER_OK);
  std::vector<int32_t> all;
  const std::vector<unsigned char> bytes = ember_test::read_file(text);
  const std::string body(bytes.begin(), bytes.end());
  ASSERT_EQ(ember_app::tokenize_text(ref, body, EMBER_TOKENIZE_ADD_SPECIAL, &all), EMBER_OK);
  const size_t skip = size_t{r.ctx} * r.windows;
  ASSERT_GT(all.size(), skip + r.ctx) << "no held-out window";
  const std::vector<int32_t> held(all.begin() + static_cast<ptrdiff_t>(skip), all.end());
  ember_app::EvalOptions eo;
  eo.ctx = r.ctx;
  std::vector<float> ref_logits;
  std::string err;
  ASSERT_TRUE(ember_app::eval_ref_logits(ref, held.data(), held.size(), eo, &ref_logits, &err));
  ember_model_free(ref);

  uint64_t bytes_u8 = 0, bytes_auto = 0, bytes_layers = 0, bytes_head = 0;
  const double kl_u8 = kl_with(&ir, {}, o, held, eo, ref_logits, &bytes_u8);
  const double kl_auto = kl_with(&ir, chosen, o, held, eo, ref_logits, &bytes_auto);
  const double kl_layers =
      kl_with(&ir, fill(layer_order, grow, r.budget_bytes), o, held, eo, ref_logits, &bytes_layers);
  const double kl_head =
      kl_with(&ir, fill({head}, grow, r.budget_bytes), o, held, eo, ref_logits, &bytes_head);
  uint64_t bytes_head_layers = 0;
  const double kl_head_layers = kl_with(&ir, fill(head_first, grow, r.budget_bytes), o, held, eo,
                                        ref_logits, &bytes_head_layers);
  std::printf(
      "%s held-out KL: u8 %.3g (%llu B), auto %.3g (%llu B), first layers %.3g (%llu B), "
      "head alone %.3g (%llu B), head then layers %.3g (%llu B)\n",
      model.c_str(), kl_u8, (unsigned long long)bytes_u8, kl_auto, (unsigned long long)bytes_auto,
      kl_layers, (unsigned long long)bytes_layers, kl_head, (unsigned long long)bytes_head,
      kl_head_layers, (unsigned long long)bytes_head_layers);
  EXPECT_LE(bytes_auto, bytes_u8 + r.budget_bytes);
  EXPECT_LE(bytes_layers, bytes_u8 + r.budget_bytes);
  EXPECT_LE(bytes_head, bytes_u8 + r.budget_bytes);
  EXPECT_LT(kl_auto, kl_u8);
  EXPECT_LT(kl_auto, kl_layers);
  EXPECT_LT(kl_auto, kl_head);
}

// The ranking's quality is a measurement over thousands of tokens: the optimized build checks it.
// Sanitized builds run the same code on one window (below), 40x slower per token.
#if !EMBER_SANITIZED
TEST(AutoFloat, RankingBeatsGuessesStories260K) {
  ranking_beats_guesses("stories260K", "stories.txt");
}

TEST(AutoFloat, RankingBeatsGuessesAidreams260K) {
  ranking_beats_guesses("aidreams260K", "aidreams.txt");
}
#endif

// One window: every matrix measured once, ranked worst first, the kept ones within the budget and
// recorded as the file's float choices, the rest as measured.
TEST(AutoFloat, OneWindowRankingKeepsItsBudget) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  ModelIR ir = load_hf_model(hf);
  WriteOptions o;
  o.mode = QuantMode::U8;
  o.u8.group = 64;
  o.u8.params = DType::kF16;
  o.u8.act_group = kAutoActGroup;
  AutoFloatOptions a = parse_auto_float("10%");
  a.eval_text = std::string(EMBER_SOURCE_DIR) + "/tests/data/eval/stories.txt";
  a.ctx = 64;
  a.chunks = 1;
  const AutoFloatResult r = choose_auto_float(&ir, o, a);
  EXPECT_EQ(r.windows, 1u);
  EXPECT_EQ(r.ctx, 64u);
  ASSERT_FALSE(r.ranking.empty());
  size_t kept = 0;
  for (size_t i = 0; i < r.ranking.size(); ++i) {
    EXPECT_GE(r.ranking[i].kl, 0.0) << r.ranking[i].name;
    if (i > 0) EXPECT_GE(r.ranking[i - 1].kl, r.ranking[i].kl) << r.ranking[i].name;
    kept += r.ranking[i].kept ? 1 : 0;
  }
  EXPECT_GT(kept, 0u);
  EXPECT_LE(r.grown_bytes, r.budget_bytes);
  EXPECT_EQ(ir.float_choices.size(), kept);
  EXPECT_EQ(ir.float_choices.size() + ir.float_measured.size(), r.ranking.size());
  for (const FloatChoiceRecord& c : ir.float_choices) {
    const auto it = std::find_if(r.ranking.begin(), r.ranking.end(),
                                 [&](const AutoFloatEntry& e) { return e.name == c.name; });
    ASSERT_NE(it, r.ranking.end()) << c.name;
    EXPECT_TRUE(it->kept) << c.name;
  }
}

}  // namespace
}  // namespace convert
}  // namespace ember
