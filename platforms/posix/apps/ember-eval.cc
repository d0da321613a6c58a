// ember-eval: perplexity of a .ember model over a text and, with --ref, how far its next-token
// distributions are from a reference model's on the same tokens (KL, top-1 agreement).
//   ember-eval -m MODEL -f TEXT [--ref REF_MODEL] [-c CTX] [--chunks N] [-t THREADS] [--json]
// Windows and scoring as llama.cpp's perplexity tool (eval_core.h): consecutive windows of CTX
// tokens, each from an empty KV cache with BOS first (where the tokenizer adds BOS), the second
// half of each scored.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "app_util.h"
#include "ember/ember.h"
#include "eval_core.h"

namespace {

using ember_app::EvalOptions;
using ember_app::EvalResult;

constexpr const char* kApp = "ember-eval";

int fail(const char* what, ember_status s) { return ember_app::fail(kApp, what, s); }

int fail_msg(const std::string& msg) {
  std::fprintf(stderr, "%s: %s\n", kApp, msg.c_str());
  return 1;
}

struct Options {
  std::string model_path, text_path, ref_path;
  uint32_t ctx = 0, chunks = 0, threads = 1, batch = 0;
  bool json = false, quiet = false;
};

struct ModelFree {
  void operator()(ember_model* m) const { ember_model_free(m); }
};
using ModelPtr = std::unique_ptr<ember_model, ModelFree>;

constexpr const char* kScoringNote =
    "Windows: the text is tokenized once (with the model's tokenizer) and cut into "
    "consecutive, non-overlapping windows of CTX tokens (a shorter tail is dropped). Each window "
    "is "
    "evaluated from an empty KV cache, with BOS as its first token where the tokenizer adds BOS to "
    "a text, and only its second half is "
    "scored, as llama.cpp's perplexity tool does: the logits at positions CTX/2 .. CTX-2 predict "
    "the tokens at CTX/2+1 .. CTX-1 (CTX-1-CTX/2 tokens per window, each with at least CTX/2 "
    "tokens of context). With --ref both models run on the same ids (their tokenizers must agree "
    "on the text) and each scored token gives KL(ref || model) = sum p_ref (log p_ref - log "
    "p_model) in nats and whether the argmaxes agree.";

bool parse(int argc, char** argv, Options* o, int* exit_code) {
  CLI::App app{
      "ember-eval: perplexity of a model over a text; with --ref, KL divergence and top-1 "
      "agreement against a reference model on the same tokens"};
  app.footer(kScoringNote);
  app.add_option("-m,--model", o->model_path, "Model file (.ember)")->required();
  app.add_option("-f,--file", o->text_path, "Text file to evaluate")->required();
  app.add_option("--ref", o->ref_path, "Reference model (.ember), e.g. the f32 conversion");
  app.add_option("-c,--ctx", o->ctx, "Window in tokens (0 = min(512, the model's context))")
      ->capture_default_str();
  app.add_option("--chunks", o->chunks, "Evaluate at most N windows (0 = all)")
      ->capture_default_str();
  app.add_option("-t,--threads", o->threads, "Worker threads per model")->capture_default_str();
  app.add_option("-b,--batch", o->batch, "Most tokens per ember_decode call (0 = a whole window)")
      ->capture_default_str();
  app.add_flag("--json", o->json, "Print one JSON object on stdout instead of the report");
  app.add_flag("-q,--quiet", o->quiet, "No progress line on stderr (never shown when not a TTY)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    *exit_code = app.exit(e);
    return false;
  }
  return true;
}

bool read_text(const std::string& path, std::string* text) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  *text = ss.str();
  return !in.bad();
}

// With --ref: the reference's tokenizer gives the same ids for the text.
bool check_same_tokens(const ember_model* ref, const std::string& text,
                       const std::vector<int32_t>& ids, std::string* err) {
  std::vector<int32_t> ref_ids;
  const ember_status s = ember_app::tokenize_text(ref, text, EMBER_TOKENIZE_ADD_SPECIAL, &ref_ids);
  if (s != EMBER_OK) {
    *err = std::string("tokenizing the text with the reference: ") + ember_last_error();
    return false;
  }
  size_t i = 0;
  while (i < ids.size() && i < ref_ids.size() && ids[i] == ref_ids[i]) ++i;
  if (i < ids.size() || i < ref_ids.size()) {
    *err = "the model's and the reference's tokenizers disagree on the text (" +
           std::to_string(ids.size()) + " and " + std::to_string(ref_ids.size()) +
           " tokens; first difference at token " + std::to_string(i) +
           "): KL needs the same tokens";
    return false;
  }
  return true;
}

void progress_line(void*, uint32_t done, uint32_t total) {
  std::fprintf(stderr, "\r%s: window %u/%u", kApp, done, total);
  if (done == total) std::fputc('\n', stderr);
  std::fflush(stderr);
}

double bits_per_weight(const ember_model_info& mi) {
  return mi.f32_bytes ? 32.0 * double(mi.weight_bytes) / double(mi.f32_bytes) : 0.0;
}

// A figure, or null where there is none (no reference).
nlohmann::json num(double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); }

void print_json(const Options& o, const ember_model_info& mi, const ember_model_info* ri,
                size_t text_tokens, const EvalResult& r) {
  nlohmann::ordered_json j;
  j["model"] = o.model_path;
  j["ref"] = o.ref_path.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.ref_path);
  j["text"] = o.text_path;
  j["ppl"] = r.ppl;
  j["ref_ppl"] = num(r.ref_ppl);
  j["kl_mean"] = num(r.kl_mean);
  j["kl_median"] = num(r.kl_median);
  j["kl_p99"] = num(r.kl_p99);
  j["kl_max"] = num(r.kl_max);
  j["top1"] = num(r.top1);
  j["tokens"] = r.tokens;
  j["ctx"] = r.ctx;
  j["chunks"] = r.chunks;
  j["scored_per_chunk"] = ember_app::eval_scored_per_window(r.ctx);
  j["scoring"] = "second half of each window (llama.cpp perplexity)";
  j["text_tokens"] = text_tokens;
  j["file_bytes"] = mi.file_bytes;
  j["bits_per_weight"] = bits_per_weight(mi);
  j["ref_bits_per_weight"] = ri ? nlohmann::json(bits_per_weight(*ri)) : nlohmann::json(nullptr);
  j["threads"] = o.threads;
  j["kernels"] = ember_kernel_variant();
  j["tokens_per_s"] = r.seconds > 0 ? double(r.chunks) * r.ctx / r.seconds : 0.0;
  std::printf("%s\n", j.dump().c_str());
}

void print_report(const Options& o, const ember_model_info& mi, size_t text_tokens,
                  const EvalResult& r) {
  const uint32_t per = ember_app::eval_scored_per_window(r.ctx);
  std::printf("%s: %s on %s\n", kApp, o.model_path.c_str(), o.text_path.c_str());
  std::printf("  text: %zu tokens; %u windows of %u tokens, each from an empty cache%s\n",
              text_tokens, r.chunks, r.ctx, r.bos >= 0 ? ", BOS first" : "");
  std::printf(
      "  scored: the second half of each window (positions %u..%u predict %u..%u: %u "
      "tokens), %llu tokens in all\n",
      r.ctx / 2, r.ctx - 2, r.ctx / 2 + 1, r.ctx - 1, per, (unsigned long long)r.tokens);
  std::printf("  model: %llu bytes, %.2f bits per weight\n", (unsigned long long)mi.file_bytes,
              bits_per_weight(mi));
  std::printf("  perplexity: %.4f\n", r.ppl);
  if (!o.ref_path.empty()) {
    std::printf("  reference %s: perplexity %.4f\n", o.ref_path.c_str(), r.ref_ppl);
    std::printf("  KL(ref || model) per token, nats: mean %.6g, median %.6g, p99 %.6g, max %.6g\n",
                r.kl_mean, r.kl_median, r.kl_p99, r.kl_max);
    std::printf("  top-1 agreement: %.2f%% (%llu of %llu)\n", 100.0 * r.top1,
                (unsigned long long)std::llround(r.top1 * double(r.tokens)),
                (unsigned long long)r.tokens);
  }
  if (r.seconds > 0) {
    std::printf("  speed: %.1f tokens/s (the model's forward passes, %u thread(s), kernels %s)\n",
                double(r.chunks) * r.ctx / r.seconds, o.threads, ember_kernel_variant());
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  int code = 0;
  if (!parse(argc, argv, &o, &code)) return code;

  std::string text;
  if (!read_text(o.text_path, &text)) return fail_msg("cannot read the text file " + o.text_path);
  if (text.empty()) return fail_msg("the text file " + o.text_path + " is empty");

  ember_model* raw = nullptr;
  ember_status s = ember_model_load_file(o.model_path.c_str(), &raw);
  if (s != EMBER_OK) return fail("loading the model", s);
  const ModelPtr model(raw);
  ModelPtr ref;
  if (!o.ref_path.empty()) {
    s = ember_model_load_file(o.ref_path.c_str(), &raw);
    if (s != EMBER_OK) return fail("loading the reference model", s);
    ref.reset(raw);
  }

  std::vector<int32_t> ids;
  s = ember_app::tokenize_text(model.get(), text, EMBER_TOKENIZE_ADD_SPECIAL, &ids);
  if (s != EMBER_OK) return fail("tokenizing the text", s);
  EvalOptions eo;
  eo.ctx = o.ctx;
  eo.chunks = o.chunks;
  eo.threads = o.threads;
  eo.batch = o.batch;
  // The limits (vocabularies, ctx, text length) before the tokenizers are compared.
  std::string err;
  uint32_t ctx = 0, windows = 0;
  if (!ember_app::eval_plan(model.get(), ref.get(), ids.size(), eo, &ctx, &windows, &err)) {
    return fail_msg(err);
  }
  if (ref && !check_same_tokens(ref.get(), text, ids, &err)) return fail_msg(err);
  if (!o.quiet && isatty(fileno(stderr))) eo.progress = progress_line;
  EvalResult r;
  if (!ember_app::eval_tokens(model.get(), ref.get(), ids.data(), ids.size(), eo, &r, &err)) {
    return fail_msg(err);
  }

  ember_model_info mi, ri;
  ember_model_get_info(model.get(), &mi);
  if (ref) ember_model_get_info(ref.get(), &ri);
  if (o.json) {
    print_json(o, mi, ref ? &ri : nullptr, ids.size(), r);
  } else {
    print_report(o, mi, ids.size(), r);
  }
  return 0;
}
