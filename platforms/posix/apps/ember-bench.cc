// ember-bench: llama-bench-like throughput figures for .ember models, using only ember.h.
//   ember-bench -m MODEL [-m MODEL2] -p 64,512 -n 128 -t 1,2 -r 5 [--json] [--kernels NAME] [--xnnpack]
// Tests: ppN = prefill of N tokens in one ember_decode batch (logits of the last position only),
// tgN = N single-token decodes from an empty cache. Each test runs once to warm up, then -r times;
// tokens/s median, min and max are reported. The machine's memory read bandwidth is measured per
// thread count, and decode speed is also given as a fraction of the bandwidth ceiling
// (bandwidth / weight bytes read per token).
#include <CLI/CLI.hpp>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ember/ember.h"

namespace {

double now() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

std::vector<uint32_t> parse_list(const std::string& s, const char* what) {
  std::vector<uint32_t> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    const std::string item = s.substr(i, j - i);
    if (!item.empty()) {
      char* end = nullptr;
      const unsigned long v = std::strtoul(item.c_str(), &end, 10);
      if (end == nullptr || *end != '\0' || v > 1000000) {
        std::fprintf(stderr, "ember-bench: bad %s value '%s'\n", what, item.c_str());
        std::exit(2);
      }
      out.push_back(static_cast<uint32_t>(v));
    }
    i = j + 1;
  }
  return out;
}

// The probe's buffer: anonymous memory in 2 MiB pages where the OS gives them (Linux,
// MADV_HUGEPAGE), as ember_model_load_file maps a model. With transparent huge pages in "madvise"
// mode a std::vector gets 4 KiB pages, which read slower: on this host (AMD EPYC, 2 threads, 1 GiB,
// the plain loop, 8 rounds alternated in one process) 54.2 GB/s median / 57.9 best in 4 KiB pages,
// 62.3 / 63.9 in 2 MiB pages. The ceiling would be understated.
class ProbeBuffer {
 public:
  ProbeBuffer() = default;
  ProbeBuffer(const ProbeBuffer&) = delete;
  ProbeBuffer& operator=(const ProbeBuffer&) = delete;
  ~ProbeBuffer() { release(); }
  size_t size() const { return n_; }
  uint64_t* data() { return p_; }
  uint64_t& operator[](size_t i) { return p_[i]; }
  bool allocate(size_t n) {
    release();
    if (n == 0) return true;
    const size_t huge = size_t{2} << 20;
    len_ = (n * sizeof(uint64_t) + huge - 1) / huge * huge + huge;  // room to align the start
    void* m = mmap(nullptr, len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
      len_ = 0;
      return false;
    }
    map_ = m;
    const uintptr_t base = reinterpret_cast<uintptr_t>(m);
    const uintptr_t start = (base + huge - 1) / huge * huge;
    p_ = reinterpret_cast<uint64_t*>(start);
#ifdef MADV_HUGEPAGE
    (void)madvise(p_, len_ - (start - base), MADV_HUGEPAGE);  // a hint: 4 KiB pages still work
#endif
    n_ = n;
    return true;
  }

 private:
  void release() {
    if (map_ != nullptr) munmap(map_, len_);
    map_ = nullptr;
    p_ = nullptr;
    n_ = len_ = 0;
  }
  void* map_ = nullptr;
  uint64_t* p_ = nullptr;
  size_t n_ = 0, len_ = 0;
};

// Read bandwidth with `threads` threads: each sums its share of a buffer much larger than the
// caches, with a plain loop and with ember_read_probe (the widest loads this CPU runs; which of the
// two reads faster has changed from one host to the next: AVX-512 loads 63-67 GB/s against 51-60
// for the plain loop on one, 58 against 62 (medians) on another); the best of 5 passes of each
// (bytes / second). Each round (a plain pass, then a wide one) appends the better of its two rates
// to `rounds`.
double measure_read_bandwidth(uint32_t threads, size_t bytes, std::vector<double>* rounds) {
  const size_t n = bytes / sizeof(uint64_t);
  static ProbeBuffer buf;
  if (buf.size() != n) {
    if (!buf.allocate(n)) {
      std::fprintf(stderr, "ember-bench: no memory for a %zu MiB bandwidth probe\n", bytes >> 20);
      std::exit(1);
    }
    // Distinct nonzero contents on every page, so that no page can be shared or deduplicated by the
    // OS or a hypervisor (reads of one shared zero page would measure the cache, not DRAM).
    for (size_t i = 0; i < n; ++i) buf[i] = (i + 1) * 0x9E3779B97F4A7C15ull;
  }
  std::vector<uint64_t> sinks(threads * 8);
  double best = 0.0, plain_rate = 0.0;
  for (int pass = 0; pass < 10; ++pass) {
    const bool wide = pass % 2 == 1;
    std::vector<std::thread> pool;
    const double t0 = now();
    for (uint32_t t = 0; t < threads; ++t) {
      pool.emplace_back([&, t, wide] {
        const size_t b = n * t / threads, e = n * (t + 1) / threads;
        if (wide) {
          sinks[t * 8] = ember_read_probe(buf.data() + b, e - b);
          return;
        }
        uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        size_t i = b;
        for (; i + 4 <= e; i += 4) {
          a0 += buf[i];
          a1 += buf[i + 1];
          a2 += buf[i + 2];
          a3 += buf[i + 3];
        }
        for (; i < e; ++i) a0 += buf[i];
        sinks[t * 8] = a0 + a1 + a2 + a3;
      });
    }
    for (auto& th : pool) th.join();
    const double rate = static_cast<double>(n * sizeof(uint64_t)) / (now() - t0);
    if (wide) rounds->push_back(std::max(rate, plain_rate));
    plain_rate = rate;
    best = std::max(best, rate);
  }
  volatile uint64_t keep = 0;
  for (uint64_t v : sinks) keep = keep + v;
  (void)keep;
  return best;
}

struct Result {
  std::string model, test;
  uint32_t threads, batch, tokens, depth;
  double median, min, max, roofline;  // roofline < 0: not a decode test, 0: no bandwidth probe
  double bandwidth;                   // bytes / s: the best probe pass up to this test
  double bandwidth_median;            // bytes / s: the median probe round up to this test
  uint64_t token_read_bytes;          // weight bytes one decoded token reads
};

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int fail(const char* what, ember_status s) {
  std::fprintf(stderr, "ember-bench: %s: %s: %s\n", what, ember_status_string(s), ember_last_error());
  return 1;
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    o += c;
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ember-bench: prefill / decode throughput of .ember models"};
  std::vector<std::string> models;
  std::string p_list = "64,512", n_list = "128", t_list = "1,2", d_list = "0", kernels;
  uint32_t reps = 5;
  bool json = false;
  bool xnnpack = false;
  uint32_t bw_mib = 1024;
  app.add_option("-m,--model", models, "model file (repeatable)")->required();
  app.add_option("-p,--n-prompt", p_list, "prefill test sizes, comma separated (0 or empty: none)");
  app.add_option("-n,--n-gen", n_list, "decode test lengths, comma separated (0 or empty: none)");
  app.add_option("-t,--threads", t_list, "thread counts, comma separated");
  app.add_option("-d,--n-depth", d_list,
                 "context depths, comma separated: each test runs after this many positions are "
                 "in the KV cache (prefilled, not timed)");
  app.add_option("-r,--repetitions", reps, "measured runs per test (after one warm-up)")->check(CLI::Range(1, 1000));
  app.add_flag("--json", json, "print a JSON array instead of a table");
  app.add_option("--kernels", kernels, "force a kernel variant (e.g. scalar)");
  app.add_flag("--xnnpack", xnnpack,
               "use_xnnpack: f32 weight matrices through XNNPACK's f32 fully-connected operator "
               "(needs a build with -DEMBER_USE_XNNPACK=ON)");
  app.add_option("--bandwidth-mib", bw_mib, "buffer size for the bandwidth measurement (0: skip)");
  CLI11_PARSE(app, argc, argv);

  std::vector<uint32_t> pp = parse_list(p_list, "-p"), tg = parse_list(n_list, "-n");
  std::vector<uint32_t> th = parse_list(t_list, "-t");
  std::vector<uint32_t> depths = parse_list(d_list, "-d");
  if (depths.empty()) depths.push_back(0);
  pp.erase(std::remove(pp.begin(), pp.end(), 0u), pp.end());
  tg.erase(std::remove(tg.begin(), tg.end(), 0u), tg.end());
  if (th.empty()) th.push_back(1);
  if (!kernels.empty()) {
    const ember_status s = ember_force_kernel_variant(kernels.c_str());
    if (s != EMBER_OK) return fail("--kernels", s);
  }

  std::vector<double> bandwidth(th.size(), 0.0);
  std::vector<std::vector<double>> rounds(th.size());  // every probe round, per thread count
  if (bw_mib > 0) {
    for (size_t i = 0; i < th.size(); ++i) {
      bandwidth[i] = measure_read_bandwidth(th[i], static_cast<size_t>(bw_mib) << 20, &rounds[i]);
      if (!json) std::fprintf(stderr, "memory read bandwidth, %u thread(s): %.2f GB/s\n", th[i], bandwidth[i] / 1e9);
    }
  }

  std::vector<Result> results;
  for (const std::string& path : models) {
    ember_model* model = nullptr;
    ember_status s = ember_model_load_file(path.c_str(), &model);
    if (s != EMBER_OK) return fail(path.c_str(), s);
    // Freed on every return, error paths included.
    const std::unique_ptr<ember_model, void (*)(ember_model*)> model_owner(model, ember_model_free);
    ember_model_info info;
    s = ember_model_get_info(model, &info);
    if (s != EMBER_OK) return fail("model info", s);
    uint32_t max_p = 1, max_n = 0, max_d = 0;
    for (uint32_t v : pp) max_p = std::max(max_p, v);
    for (uint32_t v : tg) max_n = std::max(max_n, v);
    for (uint32_t v : depths) max_d = std::max(max_d, v);
    const uint64_t need = uint64_t{max_d} + std::max(max_p, max_n);
    if (need > info.max_context) {
      std::fprintf(stderr, "ember-bench: %s: tests need %llu positions, the model has %u\n", path.c_str(),
                   static_cast<unsigned long long>(need), info.max_context);
      return 1;
    }
    const uint32_t need_ctx = static_cast<uint32_t>(need);
    std::string name = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);

    std::vector<int32_t> tok(need_ctx), pos(need_ctx), seq(need_ctx, 0);
    uint64_t rng = 0x2545F4914F6CDD1Dull;
    for (uint32_t i = 0; i < need_ctx; ++i) {
      rng ^= rng << 13;
      rng ^= rng >> 7;
      rng ^= rng << 17;
      tok[i] = static_cast<int32_t>(rng % info.vocab_size);
      pos[i] = static_cast<int32_t>(i);
    }

    for (size_t ti = 0; ti < th.size(); ++ti) {
      ember_context_params cp = ember_context_default_params();
      cp.n_ctx = need_ctx;
      cp.n_seq_max = 1;
      // Depth prefills run in batches of up to 512 tokens (or the largest prefill test).
      const uint32_t depth_batch = std::min<uint32_t>(std::max<uint32_t>(max_d, 1), 512);
      cp.n_batch_max = std::max(max_p, depth_batch);
      cp.n_threads = th[ti];
      cp.use_xnnpack = xnnpack ? 1 : 0;
      ember_context* ctx = nullptr;
      s = ember_context_create(model, &cp, nullptr, 0, &ctx);
      if (s != EMBER_OK) return fail("context", s);
      const std::unique_ptr<ember_context, void (*)(ember_context*)> ctx_owner(ctx, ember_context_free);

      // Clears the cache and fills positions [0, d) (untimed): the context a test at depth d sees.
      const auto fill_depth = [&](uint32_t d) {
        ember_kv_clear(ctx, -1);
        for (uint32_t i = 0; i < d; i += depth_batch) {
          const uint32_t cnt = std::min(depth_batch, d - i);
          ember_batch b{cnt, &tok[i], &pos[i], seq.data(), nullptr};
          const ember_status st = ember_decode(ctx, &b);
          if (st != EMBER_OK) return st;
        }
        return EMBER_OK;
      };
      const auto test_name = [](const char* kind, uint32_t n, uint32_t d) {
        std::string t = kind + std::to_string(n);
        if (d > 0) t += "@d" + std::to_string(d);
        return t;
      };

      for (uint32_t d : depths) {
        for (uint32_t p : pp) {
          std::vector<double> tps;
          for (uint32_t r = 0; r <= reps; ++r) {
            s = fill_depth(d);
            if (s != EMBER_OK) return fail("decode (depth)", s);
            ember_batch b{p, &tok[d], &pos[d], seq.data(), nullptr};  // logits: last token only
            const double t0 = now();
            s = ember_decode(ctx, &b);
            const double dt = now() - t0;
            if (s != EMBER_OK) return fail("decode (prefill)", s);
            if (r > 0) tps.push_back(p / dt);  // run 0 warms up
          }
          std::fprintf(stderr, "%s %s t%u: %.2f t/s\n", name.c_str(), test_name("pp", p, d).c_str(), th[ti],
                       median_of(tps));
          results.push_back({name, test_name("pp", p, d), th[ti], p, p, d, median_of(tps),
                             *std::min_element(tps.begin(), tps.end()),
                             *std::max_element(tps.begin(), tps.end()), -1.0, bandwidth[ti],
                             rounds[ti].empty() ? 0.0 : median_of(rounds[ti]), info.token_read_bytes});
        }
        for (uint32_t n : tg) {
          std::vector<double> tps;
          for (uint32_t r = 0; r <= reps; ++r) {
            s = fill_depth(d);
            if (s != EMBER_OK) return fail("decode (depth)", s);
            const double t0 = now();
            for (uint32_t i = d; i < d + n; ++i) {
              ember_batch b{1, &tok[i], &pos[i], &seq[0], nullptr};
              s = ember_decode(ctx, &b);
              if (s != EMBER_OK) return fail("decode", s);
            }
            const double dt = now() - t0;
            if (r > 0) tps.push_back(n / dt);  // run 0 warms up
          }
          // The ceiling is the best read bandwidth seen with this thread count: the first probe's
          // passes and 10 more after this test's runs (not between them: a probe evicts the caches a
          // small model decodes from). A shared host's bandwidth swings (the 5 passes of one probe
          // read 27 to 56 GB/s here), so one short probe can catch a slow moment; the best of all
          // passes is the conservative ceiling (the runs are medians of whatever the host gave them).
          if (bw_mib > 0) {
            bandwidth[ti] = std::max(bandwidth[ti], measure_read_bandwidth(th[ti], static_cast<size_t>(bw_mib) << 20, &rounds[ti]));
          }
          const double bw_median = rounds[ti].empty() ? 0.0 : median_of(rounds[ti]);
          const double med = median_of(tps);
          const double ceiling = bandwidth[ti] > 0 && info.token_read_bytes > 0
                                     ? bandwidth[ti] / static_cast<double>(info.token_read_bytes)
                                     : 0.0;
          if (ceiling > 0) {
            // The median probe round says how much the host's bandwidth swung: decode, a median of
            // whole runs, is compared with the best pass (the roofline) and, for scale, the median
            // round (the better pass of each plain / wide pair).
            std::fprintf(stderr, "%s %s t%u: %.2f t/s; best read bandwidth so far %.2f GB/s / %.1f MB read per token: ceiling %.2f t/s, roofline %.1f%% (median of %zu probe rounds %.2f GB/s: %.1f%% of that)\n",
                         name.c_str(), test_name("tg", n, d).c_str(), th[ti], med, bandwidth[ti] / 1e9,
                         static_cast<double>(info.token_read_bytes) / 1e6, ceiling, 100.0 * med / ceiling,
                         rounds[ti].size(), bw_median / 1e9,
                         100.0 * med * static_cast<double>(info.token_read_bytes) / bw_median);
          } else {
            std::fprintf(stderr, "%s %s t%u: %.2f t/s\n", name.c_str(), test_name("tg", n, d).c_str(), th[ti], med);
          }
          results.push_back({name, test_name("tg", n, d), th[ti], 1, n, d, med,
                             *std::min_element(tps.begin(), tps.end()),
                             *std::max_element(tps.begin(), tps.end()), ceiling > 0 ? med / ceiling : 0.0,
                             bandwidth[ti], bw_median, info.token_read_bytes});
        }
      }
    }
  }

  if (json) {
    std::printf("[\n");
    for (size_t i = 0; i < results.size(); ++i) {
      const Result& r = results[i];
      std::printf("  {\"model\": \"%s\", \"kernels\": \"%s\", \"xnnpack\": %s, \"test\": \"%s\", "
                  "\"threads\": %u, \"batch\": %u, \"depth\": %u, "
                  "\"tokens\": %u, \"tps_median\": %.3f, \"tps_min\": %.3f, \"tps_max\": %.3f, "
                  "\"token_read_bytes\": %llu",
                  json_escape(r.model).c_str(), ember_kernel_variant(), xnnpack ? "true" : "false",
                  r.test.c_str(), r.threads, r.batch, r.depth,
                  r.tokens, r.median, r.min, r.max, static_cast<unsigned long long>(r.token_read_bytes));
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
      std::printf("}%s\n", i + 1 < results.size() ? "," : "");
    }
    std::printf("]\n");
  } else {
    std::printf("kernels: %s%s\n", ember_kernel_variant(),
                xnnpack ? " (f32 weights: XNNPACK f32 fully-connected, --xnnpack)" : "");
    int tw = 6;  // the test column: as wide as the longest name (tg128@d4096)
    for (const Result& r : results) tw = std::max(tw, static_cast<int>(r.test.size()));
    std::printf("| %-24s | %-*s | %7s | %12s | %21s | %8s |\n", "model", tw, "test", "threads", "t/s median",
                "t/s min - max", "roofline");
    std::printf("|%s|%s|%s|%s|%s|%s|\n", std::string(26, '-').c_str(), std::string(tw + 2, '-').c_str(),
                std::string(9, '-').c_str(), std::string(14, '-').c_str(), std::string(23, '-').c_str(),
                std::string(10, '-').c_str());
    for (const Result& r : results) {
      char roof[32] = "";
      if (r.roofline > 0) std::snprintf(roof, sizeof roof, "%.1f%%", 100.0 * r.roofline);
      if (r.roofline == 0) std::snprintf(roof, sizeof roof, "n/a");
      std::printf("| %-24s | %-*s | %7u | %12.2f | %9.2f - %9.2f | %8s |\n", r.model.c_str(), tw, r.test.c_str(),
                  r.threads, r.median, r.min, r.max, roof);
    }
  }
  return 0;
}
