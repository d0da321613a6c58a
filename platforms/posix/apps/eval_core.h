// Perplexity and divergence from a reference model over a tokenized text, through ember.h only
// (ember_decode with per-token logits flags, then ember_get_logits). Used by ember-eval and meant
// for in-process callers too (a converter ranking candidate conversions against one reference).
//
// Windows, as llama.cpp's perplexity tool does it: the tokens are cut into consecutive,
// non-overlapping windows of `ctx` tokens (a tail shorter than a window is dropped). Each window is
// evaluated from scratch (empty KV cache, positions 0..ctx-1) and its first token is replaced by
// BOS when the model's tokenizer adds BOS to a text. Only the second half is scored: the logits at
// positions ctx/2 .. ctx-2 predict the window's tokens ctx/2+1 .. ctx-1, so every scored token has
// at least ctx/2 tokens of context; that is ctx - 1 - ctx/2 tokens per window.
//
// Per scored token, in double from the log-softmax of the float logits: the negative log-likelihood
// of the text's token (perplexity = exp of its mean) and, against a reference, KL(ref || model) =
// sum_v p_ref(v) * (log p_ref(v) - log p_model(v)) in nats, and whether both argmaxes (ties to the
// lowest id) are equal.
#ifndef EMBER_APPS_EVAL_CORE_H_
#define EMBER_APPS_EVAL_CORE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ember/ember.h"

namespace ember_app {

struct EvalOptions {
  uint32_t ctx = 0;      // window in tokens (0 = min(512, the model's max_context)); at least 3
  uint32_t chunks = 0;   // most windows to evaluate, from the start (0 = every whole window)
  uint32_t threads = 1;  // worker threads of each context
  uint32_t batch = 0;    // most tokens per ember_decode call (0 = the whole window in one call)
  // Called after each window (done = windows finished so far, total = windows to run); may be null.
  void (*progress)(void* user, uint32_t done, uint32_t total) = nullptr;
  void* user = nullptr;
};

struct EvalResult {
  double ppl = 0;      // perplexity of the model on the scored tokens
  double ref_ppl = 0;  // of the reference; NaN without one (as are the five below)
  double kl_mean = 0, kl_median = 0, kl_p99 = 0, kl_max = 0;  // KL(ref || model) per scored token,
                                                              // nats; p99: the nearest-rank value
  double top1 = 0;         // fraction of scored tokens whose argmax equals the reference's
  uint64_t tokens = 0;     // scored tokens
  uint32_t chunks = 0;     // windows evaluated
  uint32_t ctx = 0;        // the window length used
  int32_t bos = -1;        // the id each window started with (-1: the text's own token there)
  double seconds = 0;      // time in the model's ember_decode calls (the reference's not counted)
  double ref_seconds = 0;  // time the reference's forward passes took (0 without a live reference)
};

// The window length and window count eval_tokens uses for `n` tokens with these options: the
// defaults resolved and every limit checked (ctx within each model's context, at least one whole
// window). `ref` may be null. False with a message in *err.
bool eval_plan(const ember_model* model, const ember_model* ref, size_t n, const EvalOptions& o,
               uint32_t* ctx, uint32_t* windows, std::string* err);

// Scored tokens per window of `ctx` tokens: ctx - 1 - ctx / 2.
uint32_t eval_scored_per_window(uint32_t ctx);

// Evaluates `model` on tokens[0..n) (already tokenized, normally with the tokenizer's BOS first).
// With `ref` (may be null: perplexity only), the reference runs window by window in a second
// context on the same ids; the two models must have the same vocabulary size. Each scored token's
// reference logits are kept for one window only (vocab x scored-per-window floats).
bool eval_tokens(const ember_model* model, const ember_model* ref, const int32_t* tokens, size_t n,
                 const EvalOptions& o, EvalResult* out, std::string* err);

// For many models against one reference: the reference's float logits at every scored token, in
// order ((scored tokens, vocab) floats, replacing *logits). This costs 4 * vocab bytes per scored
// token: 512 KB per 256 tokens at vocab 512, 32 MB per 256 tokens at vocab 32000. Logits, not
// log-probabilities, so that nothing is rounded: eval_tokens_vs redoes the log-softmax in double
// and gives exactly what eval_tokens gives with the reference live.
bool eval_ref_logits(const ember_model* ref, const int32_t* tokens, size_t n, const EvalOptions& o,
                     std::vector<float>* logits, std::string* err);

// eval_tokens against a reference whose logits eval_ref_logits computed with the same tokens and
// options (its size is checked against them).
bool eval_tokens_vs(const ember_model* model, const int32_t* tokens, size_t n, const EvalOptions& o,
                    const std::vector<float>& ref_logits, EvalResult* out, std::string* err);

}  // namespace ember_app

#endif  // EMBER_APPS_EVAL_CORE_H_
