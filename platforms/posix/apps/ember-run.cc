// ember-run: generate text from a .ember model. Streams the prompt and the generated text on
// stdout; timing and memory figures go to stderr. With --batch-file, every line of a file runs
// through the continuous batcher and stdout gets one JSON object per line (batch_file.h).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "app_util.h"
#include "batch_file.h"
#include "ember/ember.h"

namespace {

using ember_app::now_seconds;

int on_text(const char* text, size_t len, int32_t, void*) {
  std::fwrite(text, 1, len, stdout);
  std::fflush(stdout);
  return 0;
}

int fail(const char* what, ember_status s) { return ember_app::fail("ember-run", what, s); }

double mib(double bytes) { return bytes / (1024.0 * 1024.0); }

struct Options {
  std::string model_path, prompt, batch_file, kv_type = "f32", prompt_cache;
  uint32_t n_new = 128, n_ctx = 0, n_threads = 1, n_batch = 32, parallel = 0, n_keep = 1;
  float temp = 0.0f, top_p = 1.0f;
  int32_t top_k = 0;
  uint64_t seed = 0;
  bool info = false, no_stop_at_bos = false, ctx_shift = false;
};

// --info: the description, then what a load and a context with these options take.
int describe(const ember_model* model, const ember_context_params& cp) {
  size_t need = 0;
  ember_model_describe(model, nullptr, 0, &need);
  std::vector<char> text(need);
  const ember_status s = ember_model_describe(model, text.data(), text.size(), nullptr);
  if (s != EMBER_OK) return fail("describing the model", s);
  std::fputs(text.data(), stdout);
  ember_model_info mi;
  ember_model_get_info(model, &mi);
  size_t ctx_bytes = 0;
  std::printf("memory: model %llu bytes besides the file", (unsigned long long)mi.model_bytes);
  if (ember_context_required_bytes(model, &cp, &ctx_bytes) == EMBER_OK) {
    std::printf(", context %zu bytes (n_ctx %u, batch %u)", ctx_bytes,
                cp.n_ctx ? cp.n_ctx : mi.max_context, cp.n_batch_max);
  }
  std::printf("\n");
  return 0;
}

// One prompt with ember_generate: its text streamed, the figures on stderr.
int generate(const ember_model* model, const ember_context_params& cp, const Options& o,
             double t_load) {
  ember_model_info mi;
  ember_model_get_info(model, &mi);
  size_t ctx_bytes = 0;
  ember_status s = ember_context_required_bytes(model, &cp, &ctx_bytes);
  if (s != EMBER_OK) return fail("planning the context", s);
  ember_context* ctx = nullptr;
  s = ember_context_create(model, &cp, nullptr, 0, &ctx);
  if (s != EMBER_OK) return fail("creating the context", s);
  const std::unique_ptr<ember_context, void (*)(ember_context*)> ctx_owner(ctx, ember_context_free);

  // --prompt-cache: a state saved by an earlier run (same model, cache type, n_ctx) into slot 0;
  // the prompt reuses the ids it shares with it. A state that does not fit is not used (said why).
  std::FILE* cached = o.prompt_cache.empty() ? nullptr : std::fopen(o.prompt_cache.c_str(), "rb");
  if (cached != nullptr) {
    std::fclose(cached);
    if (ember_kv_state_load_file(ctx, 0, o.prompt_cache.c_str()) != EMBER_OK) {
      std::fprintf(stderr, "ember-run: prompt cache not used: %s\n", ember_last_error());
    }
  }
  ember_generate_params gp = ember_generate_default_params();
  gp.max_new_tokens = o.n_new;
  gp.sampler.temperature = o.temp;
  gp.sampler.top_k = o.top_k;
  gp.sampler.top_p = o.top_p;
  gp.sampler.seed = o.seed;
  gp.echo_prompt = 1;
  gp.stop_at_bos = o.no_stop_at_bos ? 0 : 1;
  gp.ctx_shift = o.ctx_shift ? 1 : 0;
  gp.n_keep = o.n_keep;
  ember_generate_stats st;
  s = ember_generate(ctx, o.prompt.data(), o.prompt.size(), &gp, on_text, nullptr, nullptr, 0,
                     nullptr, &st);
  std::fputc('\n', stdout);
  std::fflush(stdout);
  if (s != EMBER_OK) return fail("generating", s);
  if (!o.prompt_cache.empty()) {
    s = ember_kv_state_save_file(ctx, 0, o.prompt_cache.c_str());
    if (s != EMBER_OK) return fail("saving the prompt cache", s);
  }
  const uint32_t ctx_len = o.n_ctx ? o.n_ctx : mi.max_context;
  size_t kv_bytes = 0, kv_f32_bytes = 0;
  ember_context_params cp32 = cp;
  cp32.kv_type = EMBER_KV_F32;
  ember_kv_cache_bytes(model, &cp, &kv_bytes);
  ember_kv_cache_bytes(model, &cp32, &kv_f32_bytes);
  std::fprintf(stderr,
               "ember-run: model %s (%s, %u layers, dim %u, vocab %u), kernels %s, %u thread(s)\n",
               o.model_path.c_str(), mi.architecture, mi.num_layers, mi.hidden_size, mi.vocab_size,
               ember_kernel_variant(), o.n_threads ? o.n_threads : 1);
  std::fprintf(stderr, "ember-run: load %.2f ms\n", t_load * 1e3);
  std::fprintf(stderr,
               "ember-run: prompt %u tokens (%u reused from the cache) in %.2f ms (%.1f "
               "tokens/s)\n",
               st.n_prompt_tokens, st.n_prompt_reused, st.prompt_seconds * 1e3,
               st.prompt_seconds > 0 ? st.n_prompt_tokens / st.prompt_seconds : 0.0);
  std::fprintf(stderr, "ember-run: generated %u tokens in %.2f ms (%.1f tokens/s)\n",
               st.n_generated, st.generate_seconds * 1e3,
               st.generate_seconds > 0 ? st.n_generated / st.generate_seconds : 0.0);
  std::fprintf(
      stderr,
      "ember-run: memory: file %.3f MiB, weights %.3f MiB (f32 %.3f MiB; %.3f MiB read per "
      "token), model %.3f MiB, context %.3f MiB (KV cache %s %.3f MiB for n_ctx %u, %.3fx of "
      "f32)\n",
      mib(double(mi.file_bytes)), mib(double(mi.weight_bytes)), mib(double(mi.f32_bytes)),
      mib(double(mi.token_read_bytes)), mib(double(mi.model_bytes)), mib(double(ctx_bytes)),
      o.kv_type.c_str(), mib(double(kv_bytes)), ctx_len,
      kv_f32_bytes ? double(kv_bytes) / double(kv_f32_bytes) : 0.0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ember-run: generate text with an .ember model"};
  Options o;
  app.add_option("-m,--model", o.model_path, "Model file (.ember)")->required();
  app.add_option("-p,--prompt", o.prompt, "Prompt text");
  app.add_option("-n,--n-predict", o.n_new, "Tokens to generate")->capture_default_str();
  app.add_option("--temp", o.temp, "Temperature (0 = greedy)")->capture_default_str();
  app.add_option("--top-k", o.top_k, "Top-k (0 = off)")->capture_default_str();
  app.add_option("--top-p", o.top_p, "Top-p (1 = off)")->capture_default_str();
  app.add_option("--seed", o.seed, "Sampling seed")->capture_default_str();
  app.add_option("-c,--ctx", o.n_ctx, "Context length (0 = the model's)")->capture_default_str();
  app.add_option("-t,--threads", o.n_threads, "Worker threads")->capture_default_str();
  app.add_option("-b,--batch", o.n_batch, "Most tokens per forward pass (prompt chunks)")
      ->capture_default_str();
  app.add_option("--batch-file", o.batch_file,
                 "Run every line of FILE (a prompt, or a JSON object with \"prompt\" and optional "
                 "max_tokens, temperature, top_k, top_p, seed, stop) through the continuous "
                 "batcher; stdout: one JSON object per line, in order");
  app.add_option("--parallel", o.parallel,
                 "Sequences decoding together with --batch-file (0 = min(8, lines))")
      ->capture_default_str();
  app.add_option("--kv-type", o.kv_type, "KV cache type: f32, f16 or u8 (zero-one)")
      ->check(CLI::IsMember({"f32", "f16", "u8"}))
      ->capture_default_str();
  app.add_flag("--ctx-shift", o.ctx_shift,
               "When the context is full, keep the first --keep positions, drop the oldest half of "
               "the rest and go on (instead of stopping)");
  app.add_option("--keep", o.n_keep, "Positions a context shift keeps (attention sinks)")
      ->capture_default_str();
  app.add_option("--prompt-cache", o.prompt_cache,
                 "KV state file: restored before the prompt (its shared prefix is not computed "
                 "again) and saved after the generation");
  app.add_flag("--no-stop-at-bos", o.no_stop_at_bos,
               "Keep generating when the model samples BOS (llama2.c models end a story with BOS)");
  app.add_flag("--info", o.info,
               "Describe the model (config, tokenizer, tensors, provenance, memory) and exit");
  CLI11_PARSE(app, argc, argv);

  const double t0 = now_seconds();
  ember_model* model = nullptr;
  const ember_status s = ember_model_load_file(o.model_path.c_str(), &model);
  if (s != EMBER_OK) return fail("loading the model", s);
  const double t_load = now_seconds() - t0;
  // Freed on every return, error paths included.
  const std::unique_ptr<ember_model, void (*)(ember_model*)> model_owner(model, ember_model_free);
  ember_context_params cp = ember_context_default_params();
  cp.n_ctx = o.n_ctx;
  cp.n_threads = o.n_threads;
  cp.n_batch_max = o.n_batch;
  ember_app::kv_type_from_name(o.kv_type, &cp.kv_type);  // (checked by CLI11)
  if (o.info) return describe(model, cp);
  if (!o.batch_file.empty()) {
    ember_app::BatchDefaults d;
    d.max_tokens = o.n_new;
    d.sampler = ember_sampler_default_params();
    d.sampler.temperature = o.temp;
    d.sampler.top_k = o.top_k;
    d.sampler.top_p = o.top_p;
    d.sampler.seed = o.seed;
    d.stop_at_bos = !o.no_stop_at_bos;
    return ember_app::run_batch_file(model, cp, o.batch_file, o.parallel, d);
  }
  return generate(model, cp, o, t_load);
}
