// ember-eval and its evaluation loop (platforms/posix/apps/eval_core.h) against an independent
// computation: tests/e2e/reference_forward.py's float32 numpy logits of a few windows of
// tests/data/eval/stories.txt, for stories260K and for stories260K with the attn-r8 LoRA merged
// (../shared's merged safetensors), scored here in double. Then what must hold exactly (a model
// against itself; the precomputed reference, threads and batch sizes change nothing) and bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "e2e/e2e_util.h"
#include "eval_core.h"
#include "support/cli.h"

#ifndef EMBER_EVAL_BIN
#error "EMBER_EVAL_BIN must name the ember-eval binary"
#endif
#ifndef EMBER_SOURCE_DIR
#error "EMBER_SOURCE_DIR must name the repository"
#endif

namespace ember_test {
namespace {

using json = nlohmann::json;
using Logits = std::vector<std::vector<float>>;  // (positions, vocab)

constexpr uint32_t kCtx = 64, kChunks = 3;  // 3 windows of 64 tokens: 31 scored tokens each

std::string source_path(const std::string& rel) {
  return std::string(EMBER_SOURCE_DIR) + "/" + rel;
}

std::string stories_text_path() { return source_path("tests/data/eval/stories.txt"); }

std::vector<int32_t> stories_tokens(const ember_model* m) {
  const std::vector<unsigned char> bytes = read_file(stories_text_path());
  return tokenize(m, std::string(bytes.begin(), bytes.end()));
}

// reference_forward.py's logits for `ids` at positions 0..n-1 of the checkpoint in `hf`. Returns
// the command's output in *log on failure (an empty result).
Logits numpy_logits(const std::string& hf, const std::vector<int32_t>& ids, std::string* log) {
  std::string list;
  for (size_t i = 0; i < ids.size(); ++i) list += (i ? "," : "") + std::to_string(ids[i]);
  const std::string out = temp_path("eval_numpy.json");
  const std::string cmd = "/usr/bin/python3 " +
                          quote(source_path("tests/e2e/reference_forward.py")) + " " + quote(hf) +
                          " " + list + " " + quote(out);
  if (run_command(cmd, log) != 0) return {};
  return read_json(out)["logits"].get<Logits>();
}

double log_prob(const std::vector<float>& l, int32_t id) {
  double mx = l[0], s = 0;
  for (float v : l) mx = std::max(mx, double(v));
  for (float v : l) s += std::exp(double(v) - mx);
  return double(l[id]) - mx - std::log(s);
}

struct Figures {
  double ppl, ref_ppl, kl_mean, kl_median, kl_p99, kl_max, top1;
  size_t tokens;
};

// How a scoring reads the windows: logits at positions first..ctx-2 predict the token `shift`
// positions on; KL(ref || model), or the other way round with `model_first`.
struct Scoring {
  uint32_t first = kCtx / 2;
  int shift = 1;
  bool model_first = false;
};

// The figures of eval_core.h's definition (or of a deliberately wrong `how`), from per-window
// logits of the model and of the reference.
Figures score(const std::vector<std::vector<int32_t>>& windows, const std::vector<Logits>& model,
              const std::vector<Logits>& ref, Scoring how) {
  double nll = 0, ref_nll = 0;
  size_t agree = 0;
  std::vector<double> kl;
  for (size_t w = 0; w < windows.size(); ++w) {
    for (uint32_t j = how.first; j + 1 < kCtx; ++j) {
      const int32_t next = windows[w][j + how.shift];
      nll -= log_prob(model[w][j], next);
      ref_nll -= log_prob(ref[w][j], next);
      kl.push_back(how.model_first ? kl_divergence(model[w][j], ref[w][j])
                                   : kl_divergence(ref[w][j], model[w][j]));
      agree += argmax_of(model[w][j]) == argmax_of(ref[w][j]);
    }
  }
  const size_t n = kl.size();
  double sum = 0;
  for (double k : kl) sum += k;
  std::sort(kl.begin(), kl.end());
  Figures f;
  f.tokens = n;
  f.ppl = std::exp(nll / n);
  f.ref_ppl = std::exp(ref_nll / n);
  f.kl_mean = sum / n;
  f.kl_median = n % 2 ? kl[n / 2] : 0.5 * (kl[n / 2 - 1] + kl[n / 2]);
  f.kl_p99 = kl[size_t(std::ceil(0.99 * n)) - 1];
  f.kl_max = kl.back();
  f.top1 = double(agree) / n;
  return f;
}

// Tolerances: numpy and Ember's f32 logits differ by ~2e-5, which moves a perplexity by a relative
// ~2e-5 and a KL of this size by far less than 1e-3 of it. `LibraryAndCliMatchNumpyOnThreeWindows`
// checks that each wrong scoring it can think of misses by more than ten times these.
constexpr double kPplTol = 1e-4, kKlTol = 1e-3;

bool near_rel(double got, double want, double tol) {
  return std::fabs(got - want) <= tol * std::fabs(want) + 1e-9;
}

void expect_figures(const Figures& want, double ppl, double ref_ppl, double kl_mean,
                    double kl_median, double kl_p99, double kl_max, double top1, uint64_t tokens) {
  EXPECT_EQ(tokens, want.tokens);
  EXPECT_PRED3(near_rel, ppl, want.ppl, kPplTol);
  EXPECT_PRED3(near_rel, ref_ppl, want.ref_ppl, kPplTol);
  EXPECT_PRED3(near_rel, kl_mean, want.kl_mean, kKlTol);
  EXPECT_PRED3(near_rel, kl_median, want.kl_median, kKlTol);
  EXPECT_PRED3(near_rel, kl_p99, want.kl_p99, kKlTol);
  EXPECT_PRED3(near_rel, kl_max, want.kl_max, kKlTol);
  // An argmax may flip at a near-tie between numpy and Ember: one token at most.
  EXPECT_LE(std::fabs(top1 - want.top1), 1.0 / want.tokens + 1e-12);
}

// The wrong scoring `bad` must be told apart from `good` by the tolerances above.
void expect_distinct(const Figures& good, const Figures& bad, const char* what) {
  const bool ppl_apart = std::fabs(bad.ppl - good.ppl) > 10 * kPplTol * good.ppl ||
                         std::fabs(bad.ref_ppl - good.ref_ppl) > 10 * kPplTol * good.ref_ppl;
  auto apart = [](double x, double y) { return std::fabs(x - y) > 10 * kKlTol * std::fabs(y); };
  const bool kl_apart = apart(bad.kl_mean, good.kl_mean) || apart(bad.kl_median, good.kl_median) ||
                        apart(bad.kl_p99, good.kl_p99) || apart(bad.kl_max, good.kl_max);
  EXPECT_TRUE(ppl_apart || kl_apart) << what << " would pass unnoticed";
}

// ../shared's merged attn-r8 weights as a Hugging Face folder reference_forward.py can read.
std::string merged_lora_dir(const std::string& hf, const std::string& merged) {
  const std::string dir = make_temp_dir("lora_merged_hf");
  const std::vector<unsigned char> cfg = read_file(hf + "/config.json");
  const std::vector<unsigned char> st = read_file(merged);
  write_file(dir + "/config.json", cfg.data(), cfg.size());
  write_file(dir + "/model.safetensors", st.data(), st.size());
  return dir;
}

TEST(EvalCore, LibraryAndCliMatchNumpyOnThreeWindows) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  EMBER_REQUIRE_SHARED(lora, "models/stories260K/lora/attn-r8");
  EMBER_REQUIRE_SHARED(merged, "models/stories260K/expected/lora_attn_r8_merged.safetensors");
  const std::string base_path = converted_model(hf, "--quant f32");
  const std::string lora_path = converted_model(hf, "--quant f32 --lora " + quote(lora));
  ASSERT_FALSE(base_path.empty() || lora_path.empty());
  ModelPtr base = load_model(base_path), tuned = load_model(lora_path);
  ASSERT_TRUE(base && tuned);
  const std::vector<int32_t> tokens = stories_tokens(base.get());
  ASSERT_GE(tokens.size(), kCtx * kChunks);
  ASSERT_EQ(tokens[0], 1);  // the tokenizer adds BOS (id 1): every window starts with it

  std::vector<std::vector<int32_t>> windows;
  std::vector<Logits> base_logits, tuned_logits;
  const std::string merged_dir = merged_lora_dir(hf, merged);
  for (uint32_t w = 0; w < kChunks; ++w) {
    windows.emplace_back(tokens.begin() + w * kCtx, tokens.begin() + (w + 1) * kCtx);
    windows.back()[0] = 1;
    std::string log;
    base_logits.push_back(numpy_logits(hf, windows.back(), &log));
    if (base_logits.back().empty() && log.find("No module named 'numpy'") != std::string::npos) {
      EMBER_SKIP_OR_FAIL_IN_CI() << "python3-numpy is not installed: " << log;
    }
    ASSERT_EQ(base_logits.back().size(), kCtx) << log;
    tuned_logits.push_back(numpy_logits(merged_dir, windows.back(), &log));
    ASSERT_EQ(tuned_logits.back().size(), kCtx) << log;
  }
  const Figures want = score(windows, tuned_logits, base_logits, Scoring{});
  ASSERT_EQ(want.tokens, 93u);
  std::printf("[ numpy ] 3 windows of 64: ppl %.4f (LoRA) %.4f (base), KL mean %.4g, top1 %.3f\n",
              want.ppl, want.ref_ppl, want.kl_mean, want.top1);
  ASSERT_GT(want.kl_mean, 1e-3) << "the two models must differ for the KL checks to mean anything";
  expect_distinct(want, score(windows, tuned_logits, base_logits, Scoring{kCtx / 2, 0, false}),
                  "scoring the token at the logit's own position (off by one)");
  expect_distinct(want, score(windows, tuned_logits, base_logits, Scoring{kCtx / 2 - 1, 1, false}),
                  "scoring from position ctx/2 - 1");
  expect_distinct(want, score(windows, tuned_logits, base_logits, Scoring{1, 1, false}),
                  "scoring the whole window");
  expect_distinct(want, score(windows, tuned_logits, base_logits, Scoring{kCtx / 2, 1, true}),
                  "KL(model || ref)");

  ember_app::EvalOptions o;
  o.ctx = kCtx;
  o.chunks = kChunks;
  ember_app::EvalResult r;
  std::string err;
  ASSERT_TRUE(
      ember_app::eval_tokens(tuned.get(), base.get(), tokens.data(), tokens.size(), o, &r, &err))
      << err;
  EXPECT_EQ(r.chunks, kChunks);
  EXPECT_EQ(r.ctx, kCtx);
  expect_figures(want, r.ppl, r.ref_ppl, r.kl_mean, r.kl_median, r.kl_p99, r.kl_max, r.top1,
                 r.tokens);
  // Without a reference: the same perplexity, and no reference figures.
  ember_app::EvalResult alone;
  ASSERT_TRUE(
      ember_app::eval_tokens(base.get(), nullptr, tokens.data(), tokens.size(), o, &alone, &err))
      << err;
  EXPECT_PRED3(near_rel, alone.ppl, want.ref_ppl, kPplTol);
  EXPECT_TRUE(std::isnan(alone.ref_ppl) && std::isnan(alone.kl_mean) && std::isnan(alone.top1));

  // ember-eval reads the text file itself: the same windows, the same figures.
  const Cmd c =
      run(std::string(EMBER_EVAL_BIN) + " -m " + quote(lora_path) + " --ref " + quote(base_path) +
          " -f " + quote(stories_text_path()) + " -c 64 --chunks 3 --json");
  ASSERT_EQ(c.code, 0) << c.err;
  const json j = json::parse(c.out);
  EXPECT_EQ(j["ctx"], kCtx);
  EXPECT_EQ(j["chunks"], kChunks);
  EXPECT_EQ(j["text_tokens"], tokens.size());
  expect_figures(want, j["ppl"], j["ref_ppl"], j["kl_mean"], j["kl_median"], j["kl_p99"],
                 j["kl_max"], j["top1"], j["tokens"]);
}

// A model against itself: every KL exactly 0, every argmax the same, both perplexities equal; from
// the library and from ember-eval.
TEST(EvalCore, AgainstItselfKlIsZeroAndTop1IsOne) {
  EMBER_REQUIRE_CONVERTED(path, "models/stories260K/hf", "");
  ModelPtr m = load_model(path);
  ASSERT_TRUE(m);
  const std::vector<int32_t> tokens = stories_tokens(m.get());
  ember_app::EvalOptions o;
  o.ctx = 128;
  o.chunks = 4;
  ember_app::EvalResult r;
  std::string err;
  ASSERT_TRUE(ember_app::eval_tokens(m.get(), m.get(), tokens.data(), tokens.size(), o, &r, &err))
      << err;
  EXPECT_EQ(r.tokens, 4u * 63u);
  EXPECT_EQ(r.kl_mean, 0.0);
  EXPECT_EQ(r.kl_max, 0.0);
  EXPECT_EQ(r.top1, 1.0);
  EXPECT_EQ(r.ppl, r.ref_ppl);
  EXPECT_GT(r.ppl, 1.0);

  const Cmd c = run(std::string(EMBER_EVAL_BIN) + " -m " + quote(path) + " --ref " + quote(path) +
                    " -f " + quote(stories_text_path()) + " -c 128 --chunks 4 --json");
  ASSERT_EQ(c.code, 0) << c.err;
  const json j = json::parse(c.out);
  EXPECT_EQ(j["kl_mean"].get<double>(), 0.0);
  EXPECT_EQ(j["kl_p99"].get<double>(), 0.0);
  EXPECT_EQ(j["kl_max"].get<double>(), 0.0);
  EXPECT_EQ(j["top1"].get<double>(), 1.0);
  EXPECT_EQ(j["ppl"].get<double>(), r.ppl);
}

bool same(const ember_app::EvalResult& a, const ember_app::EvalResult& b) {
  return a.ppl == b.ppl && a.ref_ppl == b.ref_ppl && a.kl_mean == b.kl_mean &&
         a.kl_median == b.kl_median && a.kl_p99 == b.kl_p99 && a.kl_max == b.kl_max &&
         a.top1 == b.top1 && a.tokens == b.tokens && a.chunks == b.chunks;
}

// The reference computed once (eval_ref_logits, then eval_tokens_vs) gives exactly what the live
// reference gives; so do 2 threads and windows fed 7 tokens per ember_decode call (the runtime's
// results do not depend on either).
TEST(EvalCore, PrecomputedReferenceThreadsAndBatchChangeNothing) {
  EMBER_REQUIRE_CONVERTED(f32, "models/stories260K/hf", "--quant f32");
  EMBER_REQUIRE_CONVERTED(u8, "models/stories260K/hf", "--quant u8 --group 64");
  ModelPtr ref = load_model(f32), m = load_model(u8);
  ASSERT_TRUE(ref && m);
  const std::vector<int32_t> tokens = stories_tokens(ref.get());
  ember_app::EvalOptions o;
  o.ctx = 100;
  o.chunks = 5;
  std::string err;
  ember_app::EvalResult live, vs, other;
  ASSERT_TRUE(
      ember_app::eval_tokens(m.get(), ref.get(), tokens.data(), tokens.size(), o, &live, &err))
      << err;
  EXPECT_EQ(live.tokens, 5u * 49u);
  EXPECT_GT(live.kl_mean, 0.0);
  std::vector<float> ref_logits;
  ASSERT_TRUE(
      ember_app::eval_ref_logits(ref.get(), tokens.data(), tokens.size(), o, &ref_logits, &err))
      << err;
  EXPECT_EQ(ref_logits.size(), 5u * 49u * 512u);
  ASSERT_TRUE(
      ember_app::eval_tokens_vs(m.get(), tokens.data(), tokens.size(), o, ref_logits, &vs, &err))
      << err;
  EXPECT_TRUE(same(live, vs));

  o.threads = 2;
  o.batch = 7;
  ASSERT_TRUE(
      ember_app::eval_tokens(m.get(), ref.get(), tokens.data(), tokens.size(), o, &other, &err))
      << err;
  EXPECT_TRUE(same(live, other));

  // Reference logits of other options are refused, not misread.
  o.chunks = 4;
  EXPECT_FALSE(
      ember_app::eval_tokens_vs(m.get(), tokens.data(), tokens.size(), o, ref_logits, &vs, &err));
  EXPECT_NE(err.find("reference logits hold"), std::string::npos) << err;
}

// Each limit is a false return with a message naming it, never a crash.
TEST(EvalCore, LimitsAreErrorsWithAMessage) {
  EMBER_REQUIRE_CONVERTED(path, "models/stories260K/hf", "");
  EMBER_REQUIRE_CONVERTED(aidreams, "models/aidreams260K/hf", "");
  ModelPtr m = load_model(path), a = load_model(aidreams);
  ASSERT_TRUE(m && a);
  const std::vector<int32_t> tokens = stories_tokens(m.get());
  ember_app::EvalResult r;
  auto error_of = [&](const ember_model* model, const ember_model* ref, size_t n, uint32_t ctx) {
    ember_app::EvalOptions o;
    o.ctx = ctx;
    std::string err;
    EXPECT_FALSE(ember_app::eval_tokens(model, ref, tokens.data(), n, o, &r, &err));
    return err;
  };
  EXPECT_NE(error_of(m.get(), nullptr, 0, 0).find("empty"), std::string::npos);
  EXPECT_NE(error_of(m.get(), nullptr, 511, 0).find("shorter than one window of ctx 512"),
            std::string::npos);
  EXPECT_NE(error_of(m.get(), nullptr, tokens.size(), 513).find("larger than the model's context"),
            std::string::npos);
  EXPECT_NE(error_of(m.get(), a.get(), tokens.size(), 256).find("reference's context (128"),
            std::string::npos);
  EXPECT_NE(error_of(m.get(), nullptr, tokens.size(), 2).find("no token to score"),
            std::string::npos);
  std::vector<int32_t> bad(tokens.begin(), tokens.begin() + 64);
  bad[40] = 512;
  ember_app::EvalOptions o;
  o.ctx = 64;
  std::string err;
  EXPECT_FALSE(ember_app::eval_tokens(m.get(), nullptr, bad.data(), bad.size(), o, &r, &err));
  EXPECT_NE(err.find("token 40 is id 512"), std::string::npos) << err;

  // The default window fits both models: aidreams260K's 128-token context.
  uint32_t ctx = 0, windows = 0;
  ASSERT_TRUE(ember_app::eval_plan(m.get(), a.get(), tokens.size(), {}, &ctx, &windows, &err));
  EXPECT_EQ(ctx, 128u);
  EXPECT_EQ(windows, tokens.size() / 128);
  ASSERT_TRUE(ember_app::eval_plan(m.get(), nullptr, tokens.size(), {}, &ctx, &windows, &err));
  EXPECT_EQ(ctx, 512u);
}

// --- ember-eval, the command line
// ------------------------------------------------------------------------------

// The report and the JSON without --ref: the reference's fields null, the scoring rule stated, the
// default window min(512, the model's context), every whole window; no progress line where stderr
// is not a terminal.
TEST(EmberEval, ReportsWithoutAReference) {
  EMBER_REQUIRE_CONVERTED(path, "models/stories260K/hf", "");
  ModelPtr m = load_model(path);
  ASSERT_TRUE(m);
  const size_t n = stories_tokens(m.get()).size();
  const std::string base =
      std::string(EMBER_EVAL_BIN) + " -m " + quote(path) + " -f " + quote(stories_text_path());
  Cmd c = run(base + " --json");
  ASSERT_EQ(c.code, 0) << c.err;
  const json j = json::parse(c.out);
  for (const char* k : {"ref", "ref_ppl", "kl_mean", "kl_median", "kl_p99", "kl_max", "top1"}) {
    EXPECT_TRUE(j.at(k).is_null()) << k << " in " << c.out;
  }
  EXPECT_EQ(j["ctx"], 512);
  EXPECT_EQ(j["chunks"], n / 512);
  EXPECT_EQ(j["tokens"], (n / 512) * 255);
  EXPECT_GT(j["ppl"].get<double>(), 1.0);
  EXPECT_EQ(c.err.find('\r'), std::string::npos) << "a progress line on a non-terminal";

  c = run(base + " --chunks 2");
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_NE(c.out.find("second half of each window"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("2 windows of 512 tokens"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("perplexity: "), std::string::npos) << c.out;
  c = run(std::string(EMBER_EVAL_BIN) + " --help");
  EXPECT_EQ(c.code, 0);
  EXPECT_NE(c.out.find("second half"), std::string::npos) << c.out;
}

TEST(EmberEval, RejectsBadInputWithAMessage) {
  EMBER_REQUIRE_CONVERTED(path, "models/stories260K/hf", "");
  EMBER_REQUIRE_CONVERTED(aidreams, "models/aidreams260K/hf", "");
  EMBER_REQUIRE_SHARED(tok, "tokenizers/llama2/tokenizer.json");
  const std::string bin = EMBER_EVAL_BIN, text = stories_text_path();
  const std::string with_model = bin + " -m " + quote(path);
  expect_fails_with(bin + " -m " + quote(temp_path("absent.ember")) + " -f " + quote(text),
                    "missing model", "loading the model");
  expect_fails_with(with_model + " -f " + quote(temp_path("absent.txt")), "missing text",
                    "cannot read the text file");
  expect_fails_with(
      with_model + " -f " + quote(text) + " --ref " + quote(temp_path("absent.ember")),
      "missing reference", "loading the reference model");
  const std::string empty = temp_path("empty.txt"), story = temp_path("short.txt");
  write_file(empty, "", 0);
  const std::string once = "Once upon a time, there was a little dog.";
  write_file(story, once.data(), once.size());
  expect_fails_with(with_model + " -f " + quote(empty), "empty text", "is empty");
  expect_fails_with(with_model + " -f " + quote(story), "short text",
                    "shorter than one window of ctx 512");
  expect_fails_with(with_model + " -f " + quote(text) + " -c 1024", "-c past the context",
                    "ctx 1024 is larger than the model's context (512 tokens)");
  expect_fails_with(with_model + " -f " + quote(text) + " -c many", "-c many", "-c");
  // Same vocabulary size, another tokenizer: the ids would not mean the same tokens.
  expect_fails_with(with_model + " -f " + quote(text) + " --ref " + quote(aidreams),
                    "aidreams260K as the reference", "tokenizers disagree on the text");
  // Another vocabulary size (Llama 2's 32000 tokens on a stories15m shape).
  const std::string dir = tok.substr(0, tok.size() - std::string("/tokenizer.json").size());
  const std::string big = converted_model(
      "", "--synthetic stories15m --seed 7 --group 32 --synthetic-tokenizer " + dir);
  ASSERT_FALSE(big.empty());
  expect_fails_with(with_model + " -f " + quote(text) + " --ref " + quote(big), "vocab 32000 ref",
                    "the vocabularies differ (the model has 512 tokens, the reference 32000)");
}

}  // namespace
}  // namespace ember_test
