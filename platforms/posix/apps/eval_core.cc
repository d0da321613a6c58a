#include "eval_core.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <limits>
#include <memory>

#include "app_util.h"

namespace ember_app {
namespace {

struct Plan {
  uint32_t ctx = 0, windows = 0;
  uint32_t first = 0;   // window position of the first scored logit (ctx / 2)
  uint32_t scored = 0;  // scored tokens per window
  uint32_t batch = 0;   // tokens per ember_decode call
  uint32_t vocab = 0;
  int32_t bos = -1;  // the id each window starts with, -1: the window's own first token
};

std::string str(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string str(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

// BOS when the model's tokenizer adds it to a text (the empty text then encodes to [BOS]), else -1.
int32_t window_bos(const ember_model* m, const ember_model_info& info) {
  int32_t ids[8];
  size_t n = 0;
  if (info.bos_id < 0) return -1;
  if (ember_tokenize(m, "", 0, EMBER_TOKENIZE_ADD_SPECIAL, ids, 8, &n) != EMBER_OK) return -1;
  return n >= 1 && ids[0] == info.bos_id ? info.bos_id : -1;
}

bool make_plan(const ember_model* model, const ember_model* ref, size_t n, const EvalOptions& o,
               Plan* p, std::string* err) {
  if (model == nullptr) {
    *err = "no model";
    return false;
  }
  ember_model_info mi, ri;
  if (ember_model_get_info(model, &mi) != EMBER_OK) {
    *err = std::string("model info: ") + ember_last_error();
    return false;
  }
  uint32_t max_ctx = mi.max_context;
  if (ref != nullptr) {
    if (ember_model_get_info(ref, &ri) != EMBER_OK) {
      *err = std::string("reference model info: ") + ember_last_error();
      return false;
    }
    if (ri.vocab_size != mi.vocab_size) {
      *err =
          str("the vocabularies differ (the model has %u tokens, the reference %u): KL needs the "
              "same tokens",
              mi.vocab_size, ri.vocab_size);
      return false;
    }
    max_ctx = std::min(max_ctx, ri.max_context);
  }
  p->ctx = o.ctx ? o.ctx : std::min<uint32_t>(512, max_ctx);
  if (p->ctx > mi.max_context || (ref != nullptr && p->ctx > ri.max_context)) {
    *err = str("ctx %u is larger than the %s's context (%u tokens)", p->ctx,
               p->ctx > mi.max_context ? "model" : "reference",
               p->ctx > mi.max_context ? mi.max_context : ri.max_context);
    return false;
  }
  if (p->ctx < 3) {
    *err = str("ctx %u leaves no token to score (the second half of a window; at least 3)", p->ctx);
    return false;
  }
  if (n == 0) {
    *err = "no tokens to evaluate (empty text)";
    return false;
  }
  if (n < p->ctx) {
    *err =
        str("the text is %zu tokens, shorter than one window of ctx %u (the second half of each "
            "window is scored): give a longer text or a smaller ctx",
            n, p->ctx);
    return false;
  }
  const size_t whole = n / p->ctx;
  p->windows = static_cast<uint32_t>(std::min<size_t>(whole, o.chunks ? o.chunks : whole));
  p->first = p->ctx / 2;
  p->scored = eval_scored_per_window(p->ctx);
  p->batch = o.batch ? std::min(o.batch, p->ctx) : p->ctx;
  p->vocab = mi.vocab_size;
  p->bos = window_bos(model, mi);
  return true;
}

// Every id the windows read must be a token of the vocabulary.
bool check_ids(const Plan& p, const int32_t* tokens, std::string* err) {
  const size_t used = size_t(p.windows) * p.ctx;
  for (size_t i = 0; i < used; ++i) {
    if (tokens[i] < 0 || uint32_t(tokens[i]) >= p.vocab) {
      *err = str("token %zu is id %d, outside the vocabulary (0..%u)", i, tokens[i], p.vocab - 1);
      return false;
    }
  }
  return true;
}

// log p(v) = l(v) - logsumexp(l) in double into lp[0..vocab); returns the argmax (ties to the
// lowest id), or -1 when a logit is not finite.
int32_t log_softmax(const float* l, uint32_t vocab, double* lp) {
  double mx = l[0];
  int32_t best = 0;
  for (uint32_t v = 0; v < vocab; ++v) {
    if (!std::isfinite(l[v])) return -1;
    if (l[v] > mx) {
      mx = l[v];
      best = static_cast<int32_t>(v);
    }
  }
  double sum = 0;
  for (uint32_t v = 0; v < vocab; ++v) sum += std::exp(double(l[v]) - mx);
  const double lse = mx + std::log(sum);
  for (uint32_t v = 0; v < vocab; ++v) lp[v] = double(l[v]) - lse;
  return best;
}

// Sums over the scored tokens, and the per-token KL for its quantiles.
class Scorer {
 public:
  explicit Scorer(uint32_t vocab) : vocab_(vocab), lp_(vocab), lr_(vocab) {}

  // One scored token: the model's logits, the reference's (null: none), the text's next id.
  // False when a logit is not finite.
  bool add(const float* logits, const float* ref, int32_t target) {
    const int32_t am = log_softmax(logits, vocab_, lp_.data());
    if (am < 0) return false;
    nll_ -= lp_[target];
    ++n_;
    if (ref == nullptr) return true;
    const int32_t ar = log_softmax(ref, vocab_, lr_.data());
    if (ar < 0) return false;
    ref_nll_ -= lr_[target];
    double kl = 0;
    for (uint32_t v = 0; v < vocab_; ++v) kl += std::exp(lr_[v]) * (lr_[v] - lp_[v]);
    kl_.push_back(kl);
    agree_ += am == ar;
    return true;
  }

  void finish(EvalResult* out) const {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    out->tokens = n_;
    out->ppl = std::exp(nll_ / double(n_));
    out->ref_ppl = out->kl_mean = out->kl_median = out->kl_p99 = out->kl_max = out->top1 = nan;
    if (kl_.empty()) return;
    std::vector<double> sorted = kl_;
    std::sort(sorted.begin(), sorted.end());
    double sum = 0;
    for (double k : kl_) sum += k;
    const size_t rank99 = static_cast<size_t>(std::ceil(0.99 * double(sorted.size())));
    out->ref_ppl = std::exp(ref_nll_ / double(n_));
    out->kl_mean = sum / double(n_);
    out->kl_median = median_of(sorted);
    out->kl_p99 = sorted[std::max<size_t>(rank99, 1) - 1];
    out->kl_max = sorted.back();
    out->top1 = double(agree_) / double(n_);
  }

 private:
  uint32_t vocab_;
  std::vector<double> lp_, lr_;  // (vocab) log-probabilities of the model, of the reference
  double nll_ = 0, ref_nll_ = 0;
  uint64_t n_ = 0, agree_ = 0;
  std::vector<double> kl_;  // (scored tokens)
};

struct ContextFree {
  void operator()(ember_context* c) const { ember_context_free(c); }
};

// One model's context, evaluating windows from an empty cache.
class WindowRunner {
 public:
  bool open(const ember_model* m, const Plan& p, uint32_t threads, const char* who,
            std::string* err) {
    plan_ = &p;
    who_ = who;
    ember_context_params cp = ember_context_default_params();
    cp.n_ctx = p.ctx;
    cp.n_seq_max = 1;
    cp.n_batch_max = p.batch;
    cp.n_threads = threads;
    ember_context* c = nullptr;
    if (ember_context_create(m, &cp, nullptr, 0, &c) != EMBER_OK) {
      *err = std::string("creating the ") + who + "'s context: " + ember_last_error();
      return false;
    }
    ctx_.reset(c);
    ids_.resize(p.ctx);
    pos_.resize(p.ctx);
    seq_.assign(p.ctx, 0);
    want_.assign(p.ctx, 0);
    for (uint32_t j = 0; j < p.ctx; ++j) pos_[j] = static_cast<int32_t>(j);
    for (uint32_t j = p.first; j + 1 < p.ctx; ++j) want_[j] = 1;
    return true;
  }

  // Decodes window w; calls on_logits(k, logits) for its scored tokens k = 0, 1, ... in order
  // (false from it stops with a message about non-finite logits).
  template <class F>
  bool run(const int32_t* tokens, uint32_t w, F&& on_logits, std::string* err) {
    const Plan& p = *plan_;
    std::copy(tokens + size_t(w) * p.ctx, tokens + size_t(w + 1) * p.ctx, ids_.begin());
    if (p.bos >= 0) ids_[0] = p.bos;
    if (ember_kv_clear(ctx_.get(), 0) != EMBER_OK) {
      *err = std::string("clearing the ") + who_ + "'s KV cache: " + ember_last_error();
      return false;
    }
    for (uint32_t start = 0; start < p.ctx; start += p.batch) {
      const uint32_t n = std::min(p.batch, p.ctx - start);
      const ember_batch b{n, ids_.data() + start, pos_.data() + start, seq_.data() + start,
                          want_.data() + start};
      const double t0 = now_seconds();
      const ember_status s = ember_decode(ctx_.get(), &b);
      seconds_ += now_seconds() - t0;
      if (s != EMBER_OK) {
        *err = str("window %u: the %s's ember_decode: %s: %s", w, who_, ember_status_string(s),
                   ember_last_error());
        return false;
      }
      for (uint32_t i = 0; i < n; ++i) {
        if (!want_[start + i]) continue;
        const float* l = ember_get_logits(ctx_.get(), i);
        if (l == nullptr || !on_logits(start + i - p.first, l)) {
          *err = str("window %u, position %u: the %s's logits are %s", w, start + i, who_,
                     l == nullptr ? "missing" : "not finite");
          return false;
        }
      }
    }
    return true;
  }

  double seconds() const { return seconds_; }

 private:
  const Plan* plan_ = nullptr;
  const char* who_ = "";
  std::unique_ptr<ember_context, ContextFree> ctx_;
  std::vector<int32_t> ids_, pos_, seq_;  // (ctx) the window's ids, positions, sequence slots
  std::vector<uint8_t> want_;             // (ctx) 1 where the logits are scored
  double seconds_ = 0;
};

// What the window loop runs. The reference's logits come from `ref` run live (into ref_store, at
// each window's place, when given; else into one window's buffer) or from `ref_all`, precomputed;
// `model` (may be null) is scored against them.
struct Sources {
  const ember_model* model = nullptr;
  const ember_model* ref = nullptr;
  const float* ref_all = nullptr;
  std::vector<float>* ref_store = nullptr;
};

// The one window loop behind eval_tokens, eval_ref_logits and eval_tokens_vs.
bool run_windows(const Plan& p, const int32_t* tokens, const EvalOptions& o, const Sources& src,
                 EvalResult* out, std::string* err) {
  if (!check_ids(p, tokens, err)) return false;
  WindowRunner model_run, ref_run;
  if (src.model && !model_run.open(src.model, p, o.threads, "model", err)) return false;
  if (src.ref && !ref_run.open(src.ref, p, o.threads, "reference", err)) return false;
  const size_t per_window = size_t(p.scored) * p.vocab;
  std::vector<float> window_ref(src.ref && !src.ref_store ? per_window : 0);
  Scorer scorer(p.vocab);
  for (uint32_t w = 0; w < p.windows; ++w) {
    const float* ref_w = src.ref_all ? src.ref_all + w * per_window : nullptr;
    if (src.ref) {
      float* dst = src.ref_store ? src.ref_store->data() + w * per_window : window_ref.data();
      auto keep = [&](uint32_t k, const float* l) {
        std::copy(l, l + p.vocab, dst + size_t(k) * p.vocab);
        return std::all_of(l, l + p.vocab, [](float v) { return std::isfinite(v); });
      };
      if (!ref_run.run(tokens, w, keep, err)) return false;
      ref_w = dst;
    }
    if (src.model) {
      // (scored) the text's tokens the scored logits predict: window positions first+1 .. ctx-1.
      const int32_t* next = tokens + size_t(w) * p.ctx + p.first + 1;
      auto score = [&](uint32_t k, const float* l) {
        return scorer.add(l, ref_w ? ref_w + size_t(k) * p.vocab : nullptr, next[k]);
      };
      if (!model_run.run(tokens, w, score, err)) return false;
    }
    if (o.progress) o.progress(o.user, w + 1, p.windows);
  }
  if (out != nullptr) {
    scorer.finish(out);
    out->chunks = p.windows;
    out->ctx = p.ctx;
    out->bos = p.bos;
    out->seconds = model_run.seconds();
    out->ref_seconds = ref_run.seconds();
  }
  return true;
}

}  // namespace

uint32_t eval_scored_per_window(uint32_t ctx) { return ctx < 3 ? 0 : ctx - 1 - ctx / 2; }

bool eval_plan(const ember_model* model, const ember_model* ref, size_t n, const EvalOptions& o,
               uint32_t* ctx, uint32_t* windows, std::string* err) {
  Plan p;
  if (!make_plan(model, ref, n, o, &p, err)) return false;
  *ctx = p.ctx;
  *windows = p.windows;
  return true;
}

bool eval_tokens(const ember_model* model, const ember_model* ref, const int32_t* tokens, size_t n,
                 const EvalOptions& o, EvalResult* out, std::string* err) {
  Plan p;
  if (!make_plan(model, ref, n, o, &p, err)) return false;
  Sources src;
  src.model = model;
  src.ref = ref;
  return run_windows(p, tokens, o, src, out, err);
}

bool eval_ref_logits(const ember_model* ref, const int32_t* tokens, size_t n, const EvalOptions& o,
                     std::vector<float>* logits, std::string* err) {
  Plan p;
  if (!make_plan(ref, nullptr, n, o, &p, err)) return false;
  logits->assign(size_t(p.windows) * p.scored * p.vocab, 0.0f);
  Sources src;
  src.ref = ref;
  src.ref_store = logits;
  return run_windows(p, tokens, o, src, nullptr, err);
}

bool eval_tokens_vs(const ember_model* model, const int32_t* tokens, size_t n, const EvalOptions& o,
                    const std::vector<float>& ref_logits, EvalResult* out, std::string* err) {
  Plan p;
  if (!make_plan(model, nullptr, n, o, &p, err)) return false;
  const size_t want = size_t(p.windows) * p.scored * p.vocab;
  if (ref_logits.size() != want) {
    *err =
        str("the reference logits hold %zu floats; %u windows of %u scored tokens x vocab %u "
            "need %zu (computed with other tokens, ctx or chunks?)",
            ref_logits.size(), p.windows, p.scored, p.vocab, want);
    return false;
  }
  Sources src;
  src.model = model;
  src.ref_all = ref_logits.data();
  return run_windows(p, tokens, o, src, out, err);
}

}  // namespace ember_app
