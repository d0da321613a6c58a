// ember-bench: llama-bench-like throughput figures for .ember models, using only ember.h.
//   ember-bench -m MODEL [-m MODEL2] -p 64,512 -n 128 -t 1,2 -r 5 [-d 0,1024] [--parallel 1,2,8]
//               [--mixed] [--json] [--kernels NAME] [--xnnpack] [--kv-type f32,f16,u8]
// Tests: ppN = prefill of N tokens in one ember_decode batch (logits of the last position only);
// tgN = N decode steps; with --parallel B, B sequences decode together (one token each per step,
// every one with its logits), each slot holding its own tokens, and tokens/s counts all B; --mixed:
// 1 long and 7 short requests through the continuous batcher (mixed_test). Each
// test runs once to warm up, then -r times: median, min and max. The machine's memory read
// bandwidth is probed per thread count, and decode speed is also given as a fraction of the
// bandwidth ceiling (B x bandwidth / weight bytes one step reads).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "app_util.h"
#include "ember/ember.h"
#include "read_probe.h"

namespace {

using ember_app::median_of;
using ember_app::now_seconds;

int fail(const char* what, ember_status s) { return ember_app::fail("ember-bench", what, s); }

struct Options {
  std::vector<std::string> models;
  std::vector<uint32_t> pp, tg, threads, depths, parallel;
  uint32_t reps = 5, bw_mib = 1024;
  bool json = false, xnnpack = false, mixed = false;
  std::string kernels;
  std::vector<std::string> kv_types;  // KV cache types, each test runs with each
};

struct Result {
  std::string model, test, kv_type;
  uint32_t threads, batch, tokens, depth;
  double median, min, max, roofline;  // roofline < 0: not a decode test, 0: no bandwidth probe
  double bandwidth;                   // bytes / s: the best probe pass up to this test
  double bandwidth_median;            // bytes / s: the median probe round up to this test
  uint64_t token_read_bytes;          // weight bytes one decode step reads
  double short_alone_ms = 0, short_together_ms = 0, long_ms = 0;  // the mixed test
};

// The bandwidth ceiling per thread count: the best pass of every probe so far, and all rounds.
struct Ceiling {
  ember_app::ProbeBuffer buf;
  std::vector<double> best;
  std::vector<std::vector<double>> rounds;
  void probe(size_t i, uint32_t threads) {
    best[i] = std::max(best[i], ember_app::measure_read_bandwidth(buf, threads, &rounds[i]));
  }
  double median(size_t i) const { return rounds[i].empty() ? 0.0 : median_of(rounds[i]); }
};

bool parse_options(int argc, char** argv, Options* o, int* exit_code) {
  CLI::App app{"ember-bench: prefill / decode throughput of .ember models"};
  std::string p_list = "64,512", n_list = "128", t_list = "1,2", d_list = "0", b_list = "1";
  app.add_option("-m,--model", o->models, "model file (repeatable)")->required();
  app.add_option("-p,--n-prompt", p_list, "prefill test sizes, comma separated (0 or empty: none)");
  app.add_option("-n,--n-gen", n_list, "decode test lengths, comma separated (0 or empty: none)");
  app.add_option("-t,--threads", t_list, "thread counts, comma separated");
  app.add_option("-d,--n-depth", d_list,
                 "context depths, comma separated: each test runs after this many positions are "
                 "in the KV cache of every sequence (prefilled, not timed)");
  app.add_option("--parallel", b_list,
                 "sequences decoding together, comma separated: each decode test runs with each");
  app.add_option("-r,--repetitions", o->reps, "measured runs per test (after one warm-up)")
      ->check(CLI::Range(1, 1000));
  app.add_flag("--json", o->json, "print a JSON array instead of a table");
  app.add_option("--kernels", o->kernels, "force a kernel variant (e.g. scalar)");
  app.add_flag("--xnnpack", o->xnnpack,
               "use_xnnpack: f32 weight matrices through XNNPACK's f32 fully-connected operator "
               "(needs a build with -DEMBER_USE_XNNPACK=ON)");
  std::string kv_list = "f32";
  app.add_option("--kv-type", kv_list, "KV cache types, comma separated: f32, f16, u8");
  app.add_option("--bandwidth-mib", o->bw_mib, "buffer size for the bandwidth probe (0: skip)");
  app.add_flag("--mixed", o->mixed,
               "also run the mixed test: 1 long (512 new tokens) and 7 short (32 new tokens) "
               "requests together through the continuous batcher; the short ones' mean time to "
               "finish against their time alone");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    *exit_code = app.exit(e);
    return false;
  }
  const struct {
    const std::string* text;
    std::vector<uint32_t>* list;
    const char* flag;
    uint32_t max;
  } lists[] = {{&p_list, &o->pp, "-p", 1000000},
               {&n_list, &o->tg, "-n", 1000000},
               {&t_list, &o->threads, "-t", 256},
               {&d_list, &o->depths, "-d", 1000000},
               {&b_list, &o->parallel, "--parallel", 4096}};
  for (const auto& l : lists) {
    std::string error;
    if (!ember_app::parse_list(*l.text, l.max, l.list, &error)) {
      std::fprintf(stderr, "ember-bench: bad %s value '%s'\n", l.flag, error.c_str());
      *exit_code = 2;
      return false;
    }
  }
  for (size_t i = 0; i <= kv_list.size();) {
    size_t j = kv_list.find(',', i);
    if (j == std::string::npos) j = kv_list.size();
    const std::string item = kv_list.substr(i, j - i);
    ember_kv_type t;
    if (!item.empty() && !ember_app::kv_type_from_name(item, &t)) {
      std::fprintf(stderr, "ember-bench: bad --kv-type value '%s' (f32, f16 or u8)\n",
                   item.c_str());
      *exit_code = 2;
      return false;
    }
    if (!item.empty()) o->kv_types.push_back(item);
    i = j + 1;
  }
  if (o->kv_types.empty()) o->kv_types.push_back("f32");
  o->pp.erase(std::remove(o->pp.begin(), o->pp.end(), 0u), o->pp.end());
  o->tg.erase(std::remove(o->tg.begin(), o->tg.end(), 0u), o->tg.end());
  o->parallel.erase(std::remove(o->parallel.begin(), o->parallel.end(), 0u), o->parallel.end());
  if (o->depths.empty()) o->depths.push_back(0);
  if (o->threads.empty()) o->threads.push_back(1);
  if (o->parallel.empty()) o->parallel.push_back(1);
  return true;
}

std::string test_name(const char* kind, uint32_t n, uint32_t d) {
  std::string t = kind + std::to_string(n);
  if (d > 0) t += "@d" + std::to_string(d);
  return t;
}

// One model with one thread count: a context with a slot per parallel sequence, the tokens of each
// slot, and the tests.
class ModelBench {
 public:
  ModelBench(const Options& o, ember_model* model, const ember_model_info& info, std::string name)
      : o_(o), model_(model), info_(info), name_(std::move(name)) {}
  ~ModelBench() { ember_context_free(ctx_); }

  // Positions the tests need per slot (depth + the longest test).
  static uint32_t positions(const Options& o) {
    uint32_t max_p = 1, max_n = 0, max_d = 0;
    for (uint32_t v : o.pp) max_p = std::max(max_p, v);
    for (uint32_t v : o.tg) max_n = std::max(max_n, v);
    for (uint32_t v : o.depths) max_d = std::max(max_d, v);
    return max_d + std::max(max_p, max_n);
  }

  ember_status create(uint32_t threads, ember_kv_type kv_type) {
    threads_ = threads;
    n_ctx_ = positions(o_);
    uint32_t max_p = 1, max_b = 1, max_d = 1;
    for (uint32_t v : o_.pp) max_p = std::max(max_p, v);
    for (uint32_t v : o_.parallel) max_b = std::max(max_b, v);
    for (uint32_t v : o_.depths) max_d = std::max(max_d, v);
    depth_batch_ = std::min<uint32_t>(max_d, 512);  // depth prefills in batches of up to 512
    ember_context_params cp = ember_context_default_params();
    cp.n_ctx = n_ctx_;
    cp.n_seq_max = max_b;
    cp.n_batch_max = std::max({max_p, depth_batch_, max_b});
    cp.n_threads = threads;
    cp.use_xnnpack = o_.xnnpack ? 1 : 0;
    cp.kv_type = kv_type;
    // Each slot's own token stream (xorshift, distinct per slot), positions 0..n_ctx-1.
    tok_.assign(size_t{max_b} * n_ctx_, 0);
    uint64_t rng = 0x2545F4914F6CDD1Dull;
    for (int32_t& t : tok_) {
      rng ^= rng << 13;
      rng ^= rng >> 7;
      rng ^= rng << 17;
      t = static_cast<int32_t>(rng % info_.vocab_size);
    }
    pos_.resize(n_ctx_);
    for (uint32_t i = 0; i < n_ctx_; ++i) pos_[i] = static_cast<int32_t>(i);
    seq_.assign(std::max(n_ctx_, max_b), 0);
    return ember_context_create(model_, &cp, nullptr, 0, &ctx_);
  }

  // Clears the cache and fills positions [0, d) of slots [0, slots) (untimed).
  ember_status fill_depth(uint32_t d, uint32_t slots) {
    ember_kv_clear(ctx_, -1);
    for (uint32_t s = 0; s < slots; ++s) {
      std::vector<int32_t> seq(depth_batch_, static_cast<int32_t>(s));
      for (uint32_t i = 0; i < d; i += depth_batch_) {
        const uint32_t cnt = std::min(depth_batch_, d - i);
        ember_batch b{cnt, slot_tokens(s) + i, &pos_[i], seq.data(), nullptr};
        const ember_status st = ember_decode(ctx_, &b);
        if (st != EMBER_OK) return st;
      }
    }
    return EMBER_OK;
  }

  // Tokens / s of -r runs of a prefill of p tokens after depth d.
  ember_status prefill(uint32_t p, uint32_t d, std::vector<double>* tps) {
    for (uint32_t r = 0; r <= o_.reps; ++r) {
      ember_status s = fill_depth(d, 1);
      if (s != EMBER_OK) return s;
      ember_batch b{p, slot_tokens(0) + d, &pos_[d], seq_.data(), nullptr};  // last logits only
      const double t0 = now_seconds();
      s = ember_decode(ctx_, &b);
      const double dt = now_seconds() - t0;
      if (s != EMBER_OK) return s;
      if (r > 0) tps->push_back(p / dt);  // run 0 warms up
    }
    return EMBER_OK;
  }

  // Aggregate tokens / s of -r runs of n decode steps of B sequences after depth d.
  ember_status decode(uint32_t n, uint32_t d, uint32_t B, std::vector<double>* tps) {
    std::vector<int32_t> tok(B), pos(B), seq(B);
    std::vector<uint8_t> logits(B, 1);
    for (uint32_t s = 0; s < B; ++s) seq[s] = static_cast<int32_t>(s);
    for (uint32_t r = 0; r <= o_.reps; ++r) {
      ember_status st = fill_depth(d, B);
      if (st != EMBER_OK) return st;
      const double t0 = now_seconds();
      for (uint32_t i = d; i < d + n; ++i) {
        for (uint32_t s = 0; s < B; ++s) {
          tok[s] = slot_tokens(s)[i];
          pos[s] = static_cast<int32_t>(i);
        }
        // One sequence keeps the plain decode call (logits of the last token); B ask for all B.
        ember_batch b{B, tok.data(), pos.data(), seq.data(), B > 1 ? logits.data() : nullptr};
        st = ember_decode(ctx_, &b);
        if (st != EMBER_OK) return st;
      }
      const double dt = now_seconds() - t0;
      if (r > 0) tps->push_back(double(n) * B / dt);  // run 0 warms up
    }
    return EMBER_OK;
  }

 private:
  const int32_t* slot_tokens(uint32_t s) const { return tok_.data() + size_t{s} * n_ctx_; }

  const Options& o_;
  ember_model* model_;
  const ember_model_info& info_;
  std::string name_;
  ember_context* ctx_ = nullptr;
  uint32_t threads_ = 1, n_ctx_ = 0, depth_batch_ = 1;
  std::vector<int32_t> tok_, pos_, seq_;
};

// The mixed test: kShort short requests alone, one after the other, then together with one long
// request (submitted first), through ember_request_submit / ember_step with kMixedSlots slots.
constexpr uint32_t kMixedSlots = 8, kShortNew = 32, kLongNew = 512, kMixedPrompt = 16;

// Submits the requests and steps until all finish; their times to finish (ms) in submit order.
ember_status run_requests(ember_context* ctx, const std::vector<std::vector<int32_t>>& prompts,
                          const std::vector<uint32_t>& n_new, std::vector<double>* ms) {
  std::vector<uint64_t> ids(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    ember_request_params p = ember_request_default_params();
    p.prompt_ids = prompts[i].data();
    p.n_prompt_ids = prompts[i].size();
    p.max_new_tokens = n_new[i];
    p.ignore_eos = 1;  // every request runs its full length
    const ember_status s = ember_request_submit(ctx, &p, &ids[i]);
    if (s != EMBER_OK) return s;
  }
  uint32_t pending = 1;
  while (pending > 0) {
    const ember_status s = ember_step(ctx, &pending);
    if (s != EMBER_OK) return s;
  }
  ms->clear();
  for (uint64_t id : ids) {
    ember_request_info info;
    ember_request_info_get(ctx, id, &info);
    ms->push_back(info.total_seconds * 1e3);
    ember_request_release(ctx, id);
  }
  return EMBER_OK;
}

ember_status mixed_test(ember_model* model, const ember_model_info& info, uint32_t threads,
                        bool xnnpack, ember_kv_type kv_type, Result* r) {
  // The long request: 512 new tokens, or as many as the model's context holds.
  const uint32_t long_new = std::min(kLongNew, info.max_context - kMixedPrompt);
  ember_context_params cp = ember_context_default_params();
  cp.n_ctx = kMixedPrompt + long_new;
  cp.n_seq_max = kMixedSlots;
  cp.n_batch_max = 64;
  cp.n_threads = threads;
  cp.use_xnnpack = xnnpack ? 1 : 0;
  cp.kv_type = kv_type;
  ember_context* ctx = nullptr;
  ember_status s = ember_context_create(model, &cp, nullptr, 0, &ctx);
  if (s != EMBER_OK) return s;
  const std::unique_ptr<ember_context, void (*)(ember_context*)> owner(ctx, ember_context_free);
  std::vector<std::vector<int32_t>> prompts(kMixedSlots, std::vector<int32_t>(kMixedPrompt));
  uint64_t rng = 0x9E3779B97F4A7C15ull;
  for (auto& p : prompts) {
    for (int32_t& t : p) {
      rng ^= rng << 13;
      rng ^= rng >> 7;
      rng ^= rng << 17;
      t = static_cast<int32_t>(rng % info.vocab_size);
    }
  }
  std::vector<double> ms, alone;
  for (uint32_t i = 1; i < kMixedSlots; ++i) {  // warm-up, then each short request alone
    s = run_requests(ctx, {prompts[i]}, {kShortNew}, &ms);
    if (s != EMBER_OK) return s;
    if (i > 1 || kMixedSlots == 2) alone.push_back(ms[0]);
  }
  s = run_requests(ctx, {prompts[1]}, {kShortNew}, &ms);  // (the first one again, warm)
  if (s != EMBER_OK) return s;
  alone.push_back(ms[0]);
  std::vector<uint32_t> n_new(kMixedSlots, kShortNew);
  n_new[0] = long_new;
  s = run_requests(ctx, prompts, n_new, &ms);
  if (s != EMBER_OK) return s;
  double a = 0, t = 0;
  for (double v : alone) a += v;
  for (size_t i = 1; i < ms.size(); ++i) t += ms[i];
  r->short_alone_ms = a / alone.size();
  r->short_together_ms = t / (ms.size() - 1);
  r->long_ms = ms[0];
  return EMBER_OK;
}

Result make_result(const std::string& model, const std::string& test, uint32_t threads,
                   uint32_t batch, uint32_t tokens, uint32_t depth, const std::vector<double>& tps,
                   double roofline, const Ceiling& c, size_t ti, uint64_t read_bytes,
                   const std::string& kv_type) {
  return {model,
          test,
          kv_type,
          threads,
          batch,
          tokens,
          depth,
          median_of(tps),
          *std::min_element(tps.begin(), tps.end()),
          *std::max_element(tps.begin(), tps.end()),
          roofline,
          c.best[ti],
          c.median(ti),
          read_bytes};
}

// Runs every test of one model; appends to `results`. Returns an exit code (0 = fine).
int run_model(const Options& o, const std::string& path, Ceiling* ceiling,
              std::vector<Result>* results) {
  ember_model* model = nullptr;
  ember_status s = ember_model_load_file(path.c_str(), &model);
  if (s != EMBER_OK) return fail(path.c_str(), s);
  const std::unique_ptr<ember_model, void (*)(ember_model*)> owner(model, ember_model_free);
  ember_model_info info;
  s = ember_model_get_info(model, &info);
  if (s != EMBER_OK) return fail("model info", s);
  if (ModelBench::positions(o) > info.max_context) {
    std::fprintf(stderr, "ember-bench: %s: tests need %u positions, the model has %u\n",
                 path.c_str(), ModelBench::positions(o), info.max_context);
    return 1;
  }
  const size_t slash = path.find_last_of('/');
  const std::string file = path.substr(slash == std::string::npos ? 0 : slash + 1);
  for (size_t ti = 0; ti < o.threads.size(); ++ti) {
    // Each KV cache type right after the other with this thread count (compared in one run).
    for (const std::string& kv : o.kv_types) {
      ember_kv_type kv_type = EMBER_KV_F32;
      ember_app::kv_type_from_name(kv, &kv_type);
      const std::string name = kv == "f32" ? file : file + " kv " + kv;
      const uint32_t th = o.threads[ti];
      ModelBench bench(o, model, info, file);
      s = bench.create(th, kv_type);
      if (s != EMBER_OK) return fail("context", s);
      for (uint32_t d : o.depths) {
        for (uint32_t p : o.pp) {
          std::vector<double> tps;
          s = bench.prefill(p, d, &tps);
          if (s != EMBER_OK) return fail("prefill", s);
          const std::string test = test_name("pp", p, d);
          std::fprintf(stderr, "%s %s t%u: %.2f t/s\n", name.c_str(), test.c_str(), th,
                       median_of(tps));
          results->push_back(make_result(file, test, th, p, p, d, tps, -1.0, *ceiling, ti,
                                         info.token_read_bytes, kv));
        }
        for (uint32_t n : o.tg) {
          for (uint32_t B : o.parallel) {
            std::vector<double> tps;
            s = bench.decode(n, d, B, &tps);
            if (s != EMBER_OK) return fail("decode", s);
            // The ceiling is the best pass of every probe with this thread count, the first and one
            // after each decode test (not between runs: a probe evicts the caches a small model
            // decodes from). A shared host's bandwidth swings; the best pass is the conservative
            // one.
            if (o.bw_mib > 0) ceiling->probe(ti, th);
            const double med = median_of(tps);
            const double bytes = static_cast<double>(info.token_read_bytes);
            const double limit =
                ceiling->best[ti] > 0 && bytes > 0 ? B * ceiling->best[ti] / bytes : 0;
            const std::string test = test_name("tg", n, d);
            if (limit > 0) {
              std::fprintf(
                  stderr,
                  "%s %s t%u b%u: %.2f t/s; best read bandwidth %.2f GB/s, %.1f MB read per "
                  "step: ceiling %.2f t/s, roofline %.1f%% (median probe round %.2f GB/s: "
                  "%.1f%% of that)\n",
                  name.c_str(), test.c_str(), th, B, med, ceiling->best[ti] / 1e9, bytes / 1e6,
                  limit, 100.0 * med / limit, ceiling->median(ti) / 1e9,
                  100.0 * med * bytes / (B * ceiling->median(ti)));
            } else {
              std::fprintf(stderr, "%s %s t%u b%u: %.2f t/s\n", name.c_str(), test.c_str(), th, B,
                           med);
            }
            results->push_back(make_result(file, test, th, B, n, d, tps,
                                           limit > 0 ? med / limit : 0.0, *ceiling, ti,
                                           info.token_read_bytes, kv));
          }
        }
      }
      if (o.mixed && info.max_context < kMixedPrompt + kShortNew) {
        std::fprintf(stderr,
                     "ember-bench: %s: a context of %u positions is too short for --mixed\n",
                     path.c_str(), info.max_context);
        return 1;
      }
      if (o.mixed) {
        Result r{
            file, "mixed", kv, th,   kMixedSlots,       kShortNew,           0,
            0,    0,       0,  -1.0, ceiling->best[ti], ceiling->median(ti), info.token_read_bytes};
        s = mixed_test(model, info, th, o.xnnpack, kv_type, &r);
        if (s != EMBER_OK) return fail("mixed test", s);
        std::fprintf(
            stderr,
            "%s mixed t%u: %u short requests (%u new tokens) finish in %.1f ms alone, %.1f ms "
            "beside one of %u new tokens (%.2fx; the long one %.1f ms)\n",
            name.c_str(), th, kMixedSlots - 1, kShortNew, r.short_alone_ms, r.short_together_ms,
            kLongNew, r.short_together_ms / r.short_alone_ms, r.long_ms);
        results->push_back(r);
      }
    }
  }
  return 0;
}

void print_json(const std::vector<Result>& results, bool xnnpack) {
  std::printf("[\n");
  for (size_t i = 0; i < results.size(); ++i) {
    const Result& r = results[i];
    std::printf(
        "  {\"model\": \"%s\", \"kernels\": \"%s\", \"xnnpack\": %s, \"test\": \"%s\", "
        "\"kv_type\": \"%s\", \"threads\": %u, \"batch\": %u, \"depth\": %u, \"tokens\": %u, "
        "\"tps_median\": %.3f, \"tps_min\": %.3f, \"tps_max\": %.3f, \"token_read_bytes\": %llu",
        ember_app::json_escape(r.model).c_str(), ember_kernel_variant(), xnnpack ? "true" : "false",
        r.test.c_str(), r.kv_type.c_str(), r.threads, r.batch, r.depth, r.tokens, r.median, r.min,
        r.max, static_cast<unsigned long long>(r.token_read_bytes));
    // Without a probe (--bandwidth-mib 0) the bandwidth and the roofline are unknown: null.
    if (r.bandwidth > 0) {
      std::printf(", \"bandwidth_gbs\": %.3f, \"bandwidth_median_gbs\": %.3f", r.bandwidth / 1e9,
                  r.bandwidth_median / 1e9);
    } else {
      std::printf(", \"bandwidth_gbs\": null, \"bandwidth_median_gbs\": null");
    }
    if (r.roofline > 0) {
      std::printf(", \"roofline\": %.4f", r.roofline);
    } else if (r.roofline == 0) {
      std::printf(", \"roofline\": null");
    }
    if (r.test == "mixed") {
      std::printf(", \"short_alone_ms\": %.3f, \"short_together_ms\": %.3f, \"long_ms\": %.3f",
                  r.short_alone_ms, r.short_together_ms, r.long_ms);
    }
    std::printf("}%s\n", i + 1 < results.size() ? "," : "");
  }
  std::printf("]\n");
}

void print_table(const std::vector<Result>& results, bool xnnpack) {
  std::printf("kernels: %s%s\n", ember_kernel_variant(),
              xnnpack ? " (f32 weights: XNNPACK f32 fully-connected, --xnnpack)" : "");
  int tw = 6;  // the test column: as wide as the longest name (tg128@d4096)
  for (const Result& r : results) tw = std::max(tw, static_cast<int>(r.test.size()));
  std::printf("| %-24s | %-*s | %7s | %5s | %12s | %21s | %8s |\n", "model", tw, "test", "threads",
              "batch", "t/s median", "t/s min - max", "roofline");
  std::printf("|%s|%s|%s|%s|%s|%s|%s|\n", std::string(26, '-').c_str(),
              std::string(tw + 2, '-').c_str(), std::string(9, '-').c_str(),
              std::string(7, '-').c_str(), std::string(14, '-').c_str(),
              std::string(23, '-').c_str(), std::string(10, '-').c_str());
  for (const Result& r : results) {
    const std::string model = r.kv_type == "f32" ? r.model : r.model + " kv " + r.kv_type;
    if (r.test == "mixed") {
      std::printf(
          "| %-24s | %-*s | %7u | %5u | short requests: %.1f ms alone, %.1f ms beside a long "
          "one (%.2fx) |\n",
          model.c_str(), tw, r.test.c_str(), r.threads, r.batch, r.short_alone_ms,
          r.short_together_ms, r.short_together_ms / r.short_alone_ms);
      continue;
    }
    char roof[32] = "";
    if (r.roofline > 0) std::snprintf(roof, sizeof roof, "%.1f%%", 100.0 * r.roofline);
    if (r.roofline == 0) std::snprintf(roof, sizeof roof, "n/a");
    const bool decode = r.roofline >= 0;
    std::printf("| %-24s | %-*s | %7u | %5s | %12.2f | %9.2f - %9.2f | %8s |\n", model.c_str(), tw,
                r.test.c_str(), r.threads, decode ? std::to_string(r.batch).c_str() : "", r.median,
                r.min, r.max, roof);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  int code = 0;
  if (!parse_options(argc, argv, &o, &code)) return code;
  if (!o.kernels.empty()) {
    const ember_status s = ember_force_kernel_variant(o.kernels.c_str());
    if (s != EMBER_OK) return fail("--kernels", s);
  }
  Ceiling ceiling;
  ceiling.best.assign(o.threads.size(), 0.0);
  ceiling.rounds.resize(o.threads.size());
  if (o.bw_mib > 0) {
    if (!ceiling.buf.allocate((size_t{o.bw_mib} << 20) / sizeof(uint64_t))) {
      std::fprintf(stderr, "ember-bench: no memory for a %u MiB bandwidth probe\n", o.bw_mib);
      return 1;
    }
    for (size_t i = 0; i < o.threads.size(); ++i) {
      ceiling.probe(i, o.threads[i]);
      if (!o.json) {
        std::fprintf(stderr, "memory read bandwidth, %u thread(s): %.2f GB/s\n", o.threads[i],
                     ceiling.best[i] / 1e9);
      }
    }
  }
  std::vector<Result> results;
  for (const std::string& path : o.models) {
    code = run_model(o, path, &ceiling, &results);
    if (code != 0) return code;
  }
  if (o.json) {
    print_json(results, o.xnnpack);
  } else {
    print_table(results, o.xnnpack);
  }
  return 0;
}
