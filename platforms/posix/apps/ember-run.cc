// ember-run: generate text from a .ember model. Streams the prompt and the generated text on stdout;
// timing and memory figures go to stderr.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "ember/ember.h"

namespace {

double now() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

int on_text(const char* text, size_t len, int32_t, void*) {
  std::fwrite(text, 1, len, stdout);
  std::fflush(stdout);
  return 0;
}

int fail(const char* what, ember_status s) {
  std::fprintf(stderr, "ember-run: %s: %s: %s\n", what, ember_status_string(s), ember_last_error());
  return 1;
}

double mib(double bytes) { return bytes / (1024.0 * 1024.0); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ember-run: generate text with an .ember model"};
  std::string model_path, prompt;
  uint32_t n_new = 128, n_ctx = 0, n_threads = 1, n_batch = 32;
  float temp = 0.0f, top_p = 1.0f;
  int32_t top_k = 0;
  uint64_t seed = 0;
  bool info = false, no_stop_at_bos = false;
  app.add_option("-m,--model", model_path, "Model file (.ember)")->required();
  app.add_option("-p,--prompt", prompt, "Prompt text");
  app.add_option("-n,--n-predict", n_new, "Tokens to generate")->capture_default_str();
  app.add_option("--temp", temp, "Temperature (0 = greedy)")->capture_default_str();
  app.add_option("--top-k", top_k, "Top-k (0 = off)")->capture_default_str();
  app.add_option("--top-p", top_p, "Top-p (1 = off)")->capture_default_str();
  app.add_option("--seed", seed, "Sampling seed")->capture_default_str();
  app.add_option("-c,--ctx", n_ctx, "Context length (0 = the model's)")->capture_default_str();
  app.add_option("-t,--threads", n_threads, "Worker threads")->capture_default_str();
  app.add_option("-b,--batch", n_batch, "Prompt tokens per forward pass")->capture_default_str();
  app.add_flag("--no-stop-at-bos", no_stop_at_bos,
               "Keep generating when the model samples BOS (llama2.c models end a story with BOS)");
  app.add_flag("--info", info, "Describe the model (config, tokenizer, tensors, provenance) and exit");
  CLI11_PARSE(app, argc, argv);

  const double t0 = now();
  ember_model* model = nullptr;
  ember_status s = ember_model_load_file(model_path.c_str(), &model);
  if (s != EMBER_OK) return fail("loading the model", s);
  const double t_load = now() - t0;
  // Freed on every return, error paths included.
  const std::unique_ptr<ember_model, void (*)(ember_model*)> model_owner(model, ember_model_free);

  if (info) {
    size_t need = 0;
    ember_model_describe(model, nullptr, 0, &need);
    std::vector<char> text(need);
    s = ember_model_describe(model, text.data(), text.size(), nullptr);
    if (s != EMBER_OK) return fail("describing the model", s);
    std::fputs(text.data(), stdout);
    return 0;
  }

  ember_model_info mi;
  ember_model_get_info(model, &mi);
  ember_context_params cp = ember_context_default_params();
  cp.n_ctx = n_ctx;
  cp.n_threads = n_threads;
  cp.n_batch_max = n_batch;
  size_t ctx_bytes = 0;
  s = ember_context_required_bytes(model, &cp, &ctx_bytes);
  if (s != EMBER_OK) return fail("planning the context", s);
  ember_context* ctx = nullptr;
  s = ember_context_create(model, &cp, nullptr, 0, &ctx);
  if (s != EMBER_OK) return fail("creating the context", s);
  const std::unique_ptr<ember_context, void (*)(ember_context*)> ctx_owner(ctx, ember_context_free);

  ember_generate_params gp = ember_generate_default_params();
  gp.max_new_tokens = n_new;
  gp.sampler.temperature = temp;
  gp.sampler.top_k = top_k;
  gp.sampler.top_p = top_p;
  gp.sampler.seed = seed;
  gp.echo_prompt = 1;
  gp.stop_at_bos = no_stop_at_bos ? 0 : 1;
  ember_generate_stats st;
  s = ember_generate(ctx, prompt.data(), prompt.size(), &gp, on_text, nullptr, nullptr, 0, nullptr,
                     &st);
  std::fputc('\n', stdout);
  std::fflush(stdout);
  if (s != EMBER_OK) return fail("generating", s);
  const uint32_t ctx_len = n_ctx ? n_ctx : mi.max_context;
  const double kv_bytes = 2.0 * mi.num_layers * ctx_len * mi.num_kv_heads * mi.head_dim * 4.0;
  std::fprintf(stderr, "ember-run: model %s (%s, %u layers, dim %u, vocab %u), kernels %s, %u thread(s)\n",
               model_path.c_str(), mi.architecture, mi.num_layers, mi.hidden_size, mi.vocab_size,
               ember_kernel_variant(), n_threads ? n_threads : 1);
  std::fprintf(stderr, "ember-run: load %.2f ms\n", t_load * 1e3);
  std::fprintf(stderr, "ember-run: prompt %u tokens in %.2f ms (%.1f tokens/s)\n", st.n_prompt_tokens,
               st.prompt_seconds * 1e3,
               st.prompt_seconds > 0 ? st.n_prompt_tokens / st.prompt_seconds : 0.0);
  std::fprintf(stderr, "ember-run: generated %u tokens in %.2f ms (%.1f tokens/s)\n", st.n_generated,
               st.generate_seconds * 1e3,
               st.generate_seconds > 0 ? st.n_generated / st.generate_seconds : 0.0);
  std::fprintf(stderr,
               "ember-run: memory: file %.3f MiB, weights %.3f MiB (f32 %.3f MiB; %.3f MiB read per "
               "token), context %.3f MiB (KV cache %.3f MiB for n_ctx %u)\n",
               mib(double(mi.file_bytes)), mib(double(mi.weight_bytes)), mib(double(mi.f32_bytes)),
               mib(double(mi.token_read_bytes)), mib(double(ctx_bytes)), mib(kv_bytes), ctx_len);
  return 0;
}
