// Helpers for the end-to-end and runtime tests: RAII handles, greedy generation and teacher-forced
// logits through the public C API only (models come from support/convert.h's converted_model).
#ifndef EMBER_TESTS_E2E_E2E_UTIL_H_
#define EMBER_TESTS_E2E_E2E_UTIL_H_

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ember/ember.h"
#include "support/convert.h"
#include "support/json_file.h"
#include "support/test_support.h"

namespace ember_test {

struct ModelDeleter {
  void operator()(ember_model* m) const { ember_model_free(m); }
};
struct ContextDeleter {
  void operator()(ember_context* c) const { ember_context_free(c); }
};
using ModelPtr = std::unique_ptr<ember_model, ModelDeleter>;
using ContextPtr = std::unique_ptr<ember_context, ContextDeleter>;

inline ModelPtr load_model(const std::string& path) {
  ember_model* m = nullptr;
  const ember_status s = ember_model_load_file(path.c_str(), &m);
  EXPECT_EQ(s, EMBER_OK) << path << ": " << ember_last_error();
  return ModelPtr(m);
}

inline ContextPtr make_context(const ember_model* m, uint32_t n_ctx = 0, uint32_t n_batch = 64,
                               uint32_t n_threads = 1) {
  ember_context_params p = ember_context_default_params();
  p.n_ctx = n_ctx;
  p.n_batch_max = n_batch;
  p.n_threads = n_threads;
  ember_context* c = nullptr;
  const ember_status s = ember_context_create(m, &p, nullptr, 0, &c);
  EXPECT_EQ(s, EMBER_OK) << ember_last_error();
  return ContextPtr(c);
}

// `model` loaded from `path` and `ctx`, a context on it (make_context's defaults); stops the test
// where either fails.
#define EMBER_LOAD_MODEL_AND_CONTEXT(model, ctx, path)                    \
  ::ember_test::ModelPtr model = ::ember_test::load_model(path);          \
  ASSERT_TRUE(model);                                                     \
  ::ember_test::ContextPtr ctx = ::ember_test::make_context(model.get()); \
  ASSERT_TRUE(ctx)

inline std::vector<int32_t> tokenize(const ember_model* m, const std::string& text) {
  std::vector<int32_t> ids(text.size() + 16);
  size_t n = 0;
  const ember_status s = ember_tokenize(m, text.data(), text.size(), EMBER_TOKENIZE_ADD_SPECIAL,
                                        ids.data(), ids.size(), &n);
  EXPECT_EQ(s, EMBER_OK) << ember_last_error();
  ids.resize(s == EMBER_OK ? n : 0);
  return ids;
}

// Greedy generation through ember_generate; returns only the generated ids.
inline std::vector<int32_t> generate_greedy(ember_context* ctx, const std::string& prompt,
                                            uint32_t max_new, bool stop_at_bos,
                                            size_t* n_prompt = nullptr) {
  ember_generate_params gp = ember_generate_default_params();
  gp.max_new_tokens = max_new;
  gp.stop_at_bos = stop_at_bos ? 1 : 0;
  std::vector<int32_t> ids(4096);
  size_t n = 0;
  ember_generate_stats st;
  const ember_status s = ember_generate(ctx, prompt.data(), prompt.size(), &gp, nullptr, nullptr,
                                        ids.data(), ids.size(), &n, &st);
  EXPECT_EQ(s, EMBER_OK) << ember_last_error();
  if (s != EMBER_OK) return {};
  if (n_prompt) *n_prompt = st.n_prompt_tokens;
  return std::vector<int32_t>(ids.begin() + st.n_prompt_tokens, ids.begin() + n);
}

// Logits (n, vocab) after feeding ids[0..i] at positions 0..i, fed in batches of `batch` tokens
// on sequence slot `seq` (cleared first).
inline std::vector<std::vector<float>> teacher_forced_logits(ember_context* ctx, uint32_t vocab,
                                                             const std::vector<int32_t>& ids,
                                                             size_t batch, int32_t seq = 0) {
  std::vector<std::vector<float>> out;
  EXPECT_EQ(ember_kv_clear(ctx, seq), EMBER_OK);
  for (size_t start = 0; start < ids.size(); start += batch) {
    const size_t n = std::min(batch, ids.size() - start);
    std::vector<int32_t> pos(n), sq(n, seq);
    std::vector<uint8_t> want(n, 1);
    for (size_t i = 0; i < n; ++i) pos[i] = static_cast<int32_t>(start + i);
    ember_batch b{static_cast<uint32_t>(n), ids.data() + start, pos.data(), sq.data(), want.data()};
    const ember_status s = ember_decode(ctx, &b);
    EXPECT_EQ(s, EMBER_OK) << ember_last_error();
    if (s != EMBER_OK) return {};
    for (size_t i = 0; i < n; ++i) {
      const float* l = ember_get_logits(ctx, static_cast<uint32_t>(i));
      EXPECT_NE(l, nullptr);
      if (!l) return {};
      out.emplace_back(l, l + vocab);
    }
  }
  return out;
}

inline int32_t argmax_of(const std::vector<float>& v) {
  int32_t best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[best]) best = static_cast<int32_t>(i);
  return best;
}

// KL(p || q) of the softmaxes of two logit vectors, in nats.
inline double kl_divergence(const std::vector<float>& lp, const std::vector<float>& lq) {
  auto log_softmax = [](const std::vector<float>& l) {
    double mx = l[0];
    for (float v : l) mx = std::max(mx, double(v));
    double s = 0;
    for (float v : l) s += std::exp(double(v) - mx);
    std::vector<double> r(l.size());
    for (size_t i = 0; i < l.size(); ++i) r[i] = double(l[i]) - mx - std::log(s);
    return r;
  };
  const auto a = log_softmax(lp), b = log_softmax(lq);
  double kl = 0;
  for (size_t i = 0; i < a.size(); ++i) kl += std::exp(a[i]) * (a[i] - b[i]);
  return kl;
}

}  // namespace ember_test

#endif  // EMBER_TESTS_E2E_E2E_UTIL_H_
