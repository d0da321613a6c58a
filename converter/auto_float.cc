#include "auto_float.h"

#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <map>
#include <ostream>

#include "app_util.h"
#include "core/float_blocks.h"
#include "ember/ember.h"
#include "eval_core.h"
#include "hf_model.h"
#include "keep_float.h"
#include "quantize.h"
#include "util.h"

namespace ember {
namespace convert {
namespace {

[[noreturn]] void fail_arg(const std::string& arg, const std::string& why) {
  throw ConvertError("--auto-float '" + arg + "': " + why);
}

// A directory removed with everything in it when it goes out of scope.
class TempDir {
 public:
  TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "ember-auto-float.XXXXXX").string();
    if (::mkdtemp(t.data()) == nullptr)
      throw ConvertError("--auto-float: cannot create a temporary directory " + t);
    path_ = t;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const char* name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A model loaded from a file, freed on scope exit.
class Loaded {
 public:
  explicit Loaded(const std::string& path) {
    if (ember_model_load_file(path.c_str(), &m_) != EMBER_OK)
      throw ConvertError("--auto-float: the runtime refused " + path + ": " + ember_last_error());
  }
  ~Loaded() { ember_model_free(m_); }
  Loaded(const Loaded&) = delete;
  Loaded& operator=(const Loaded&) = delete;
  const ember_model* get() const { return m_; }

 private:
  ember_model* m_ = nullptr;
};

// Writes `ir` with every tensor's type decided by `choices` and `mode`, quietly.
WriteReport write_candidate(ModelIR* ir, const std::vector<FloatChoiceRecord>& choices,
                            const WriteOptions& opts, QuantMode mode, const std::string& path) {
  std::vector<FloatChoiceRecord> saved;
  saved.swap(ir->float_choices);
  ir->float_choices = choices;
  WriteOptions o = opts;
  o.mode = mode;
  o.force = true;
  o.progress = nullptr;
  try {
    WriteReport r = write_ember(*ir, path, o);
    ir->float_choices.swap(saved);
    return r;
  } catch (...) {
    ir->float_choices.swap(saved);
    throw;
  }
}

// Windows of ctx tokens sampled from `m` (temperature 1): BOS first, and BOS again after an EOS.
std::vector<int32_t> sample_windows(const ember_model* m, uint32_t ctx, uint32_t windows,
                                    const AutoFloatOptions& a) {
  ember_model_info info;
  ember_model_get_info(m, &info);
  ember_context_params cp = ember_context_default_params();
  cp.n_ctx = ctx;
  cp.n_threads = a.threads;
  ember_context* c = nullptr;
  if (ember_context_create(m, &cp, nullptr, 0, &c) != EMBER_OK)
    throw ConvertError(std::string("--auto-float: cannot create a context: ") + ember_last_error());
  ember_sampler_params sp = ember_sampler_default_params();
  sp.temperature = 1.0f;
  uint64_t rng = ember_rng_seed(a.seed);
  const int32_t start = info.bos_id >= 0 ? info.bos_id : 0;
  std::vector<int32_t> toks;
  toks.reserve(size_t{ctx} * windows);
  ember_status s = EMBER_OK;
  for (uint32_t w = 0; w < windows && s == EMBER_OK; ++w) {
    ember_kv_clear(c, -1);
    int32_t tok = start;
    for (uint32_t p = 0; p < ctx && s == EMBER_OK; ++p) {
      toks.push_back(tok);
      if (p + 1 == ctx) break;
      const int32_t pos = static_cast<int32_t>(p), seq = 0;
      const ember_batch b{1, &tok, &pos, &seq, nullptr};
      s = ember_decode(c, &b);
      if (s == EMBER_OK) s = ember_sample(c, ember_get_logits(c, 0), &sp, &rng, &tok);
      if (tok == info.eos_id) tok = start;
    }
  }
  ember_context_free(c);
  if (s != EMBER_OK)
    throw ConvertError(std::string("--auto-float: sampling failed: ") + ember_last_error());
  return toks;
}

// The evaluation tokens: the text's, or windows sampled from the f32 model; sets eo's window and
// window count.
std::vector<int32_t> eval_tokens_for(const ember_model* ref, const AutoFloatOptions& a,
                                     ember_app::EvalOptions* eo) {
  constexpr uint64_t kTargetTokens = 2048;  // scored tokens per measurement by default
  std::string err;
  uint32_t ctx = 0, windows = 0;
  std::vector<int32_t> ids;
  if (!a.eval_text.empty()) {
    const std::string text = read_file(a.eval_text);
    if (ember_app::tokenize_text(ref, text, EMBER_TOKENIZE_ADD_SPECIAL, &ids) != EMBER_OK)
      fail(a.eval_text, std::string("cannot tokenize: ") + ember_last_error());
    if (!ember_app::eval_plan(ref, nullptr, ids.size(), *eo, &ctx, &windows, &err))
      fail(a.eval_text, err);
  } else if (!ember_app::eval_plan(ref, nullptr, SIZE_MAX / 2, *eo, &ctx, &windows, &err)) {
    throw ConvertError("--auto-float: " + err);
  }
  const uint64_t scored = ember_app::eval_scored_per_window(ctx);
  uint64_t want =
      a.chunks > 0 ? static_cast<uint64_t>(a.chunks) : (kTargetTokens + scored - 1) / scored;
  if (a.chunks == 0 && !a.eval_text.empty()) want = windows;
  eo->ctx = ctx;
  eo->chunks = static_cast<uint32_t>(std::min<uint64_t>(want, windows));
  if (a.eval_text.empty()) return sample_windows(ref, ctx, eo->chunks, a);
  return ids;
}

// Matrices the file quantizes and --keep-float did not already keep, in name order.
std::vector<std::string> candidates(const ModelIR& ir, const WriteOptions& opts) {
  std::map<std::string, bool> kept;
  for (const FloatChoiceRecord& c : ir.float_choices) kept[c.name] = true;
  std::vector<std::string> v;
  for (const auto& kv : ir.tensors) {
    if (is_quantized_in(opts.mode, kv.second) && !kept.count(kv.first)) v.push_back(kv.first);
  }
  std::sort(v.begin(), v.end(), natural_less);
  return v;
}

uint64_t element_count(const FloatTensor& t) {
  uint64_t n = 1;
  for (uint64_t d : t.shape) n *= d;
  return n;
}

// Keeps the worst matrices that fit in the budget; returns the bytes they add.
uint64_t choose(std::vector<AutoFloatEntry>* ranking, uint64_t budget) {
  std::stable_sort(ranking->begin(), ranking->end(),
                   [](const AutoFloatEntry& x, const AutoFloatEntry& y) { return x.kl > y.kl; });
  uint64_t grown = 0;
  for (AutoFloatEntry& e : *ranking) {
    if (e.kl > 0 && grown + e.grow_bytes <= budget) {
      e.kept = true;
      grown += e.grow_bytes;
    }
  }
  return grown;
}

}  // namespace

AutoFloatOptions parse_auto_float(const std::string& arg) {
  AutoFloatOptions a;
  a.text = arg;
  std::string s = arg;
  const size_t colon = s.rfind(':');
  if (colon != std::string::npos) {
    const std::string type = s.substr(colon + 1);
    if (!float_type_named(type, &a.dtype)) fail_arg(arg, "the type after ':' must be f16 or f32");
    s.resize(colon);
  }
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (const std::exception&) {
    fail_arg(arg, "expected a budget such as 5%, 10MB, 1.5MiB or a byte count");
  }
  static const std::pair<const char*, double> kUnits[] = {
      {"", 1},     {"B", 1},         {"KB", 1e3},      {"MB", 1e6},
      {"GB", 1e9}, {"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", double(1 << 30)},
  };
  const std::string unit = s.substr(used);
  if (!std::isfinite(v) || v < 0) fail_arg(arg, "the budget must be a number >= 0");
  if (unit == "%") {
    a.percent = true;
    a.budget = v / 100.0;
    return a;
  }
  for (const auto& u : kUnits) {
    if (unit == u.first) {
      a.budget = v * u.second;
      return a;
    }
  }
  fail_arg(arg, "unknown unit '" + unit + "' (%, B, KB, MB, GB, KiB, MiB, GiB)");
}

AutoFloatResult choose_auto_float(ModelIR* ir, const WriteOptions& opts,
                                  const AutoFloatOptions& a) {
  if (opts.mode != QuantMode::U8) throw ConvertError("--auto-float needs --quant u8");
  const std::vector<std::string> names = candidates(*ir, opts);
  if (names.empty()) throw ConvertError("--auto-float: no quantized matrix left to choose from");
  TempDir dir;
  AutoFloatResult r;

  // The plain quantized file: its size is the budget's base, its tensors' bytes the costs' base.
  const WriteReport base =
      write_candidate(ir, ir->float_choices, opts, QuantMode::U8, dir.file("quantized.ember"));
  r.quantized_file_bytes = base.file_size;
  r.budget_bytes = static_cast<uint64_t>(
      a.percent ? std::floor(a.budget * static_cast<double>(base.file_size)) : a.budget);
  std::map<std::string, uint64_t> stored;
  for (const TensorReport& t : base.tensors) stored[t.name] = t.bytes;

  std::vector<FloatChoiceRecord> all_f32;
  for (const auto& kv : ir->tensors) all_f32.push_back({kv.first, DType::kF32, "", -1});
  write_candidate(ir, all_f32, opts, QuantMode::F32, dir.file("f32.ember"));
  const Loaded ref(dir.file("f32.ember"));

  ember_app::EvalOptions eo;
  eo.ctx = a.ctx;
  eo.threads = a.threads;
  const std::vector<int32_t> toks = eval_tokens_for(ref.get(), a, &eo);
  r.ctx = eo.ctx;
  r.windows = eo.chunks;
  std::vector<float> ref_logits;
  std::string err;
  if (!ember_app::eval_ref_logits(ref.get(), toks.data(), toks.size(), eo, &ref_logits, &err))
    throw ConvertError("--auto-float: " + err);

  const size_t elem = a.dtype == DType::kF16 ? 2 : 4;
  for (size_t i = 0; i < names.size(); ++i) {
    std::vector<FloatChoiceRecord> others;
    for (const auto& kv : ir->tensors)
      if (kv.first != names[i]) others.push_back({kv.first, DType::kF32, "", -1});
    const std::string path = dir.file("candidate.ember");
    write_candidate(ir, others, opts, QuantMode::U8, path);
    ember_app::EvalResult er;
    {
      const Loaded cand(path);
      if (!ember_app::eval_tokens_vs(cand.get(), toks.data(), toks.size(), eo, ref_logits, &er,
                                     &err))
        throw ConvertError("--auto-float: " + err);
    }
    const FloatTensor& t = ir->tensors.at(names[i]);
    uint64_t values = element_count(t);  // stored: whole row blocks where the writer blocks it
    if (t.shape.size() == 2 && float_rows_blocked(*ir, names[i], opts))
      float_blocked_values(t.shape[0], t.shape[1], &values);
    const uint64_t keep_bytes = values * elem;
    const uint64_t now = stored.at(names[i]);
    r.ranking.push_back({names[i], er.kl_mean, keep_bytes > now ? keep_bytes - now : 0, false});
    r.tokens = er.tokens;
    if (a.log) {
      *a.log << "auto-float: " << (i + 1) << "/" << names.size() << " " << names[i] << " KL "
             << er.kl_mean << "\n"
             << std::flush;
    }
  }
  r.grown_bytes = choose(&r.ranking, r.budget_bytes);

  const std::string rule = "auto-float " + a.text;
  for (const AutoFloatEntry& e : r.ranking) {
    if (e.kept) {
      ir->float_choices.push_back({e.name, a.dtype, rule, e.kl});
    } else {
      ir->float_measured.push_back({e.name, DType::kU8ZeroOne, "", e.kl});
    }
  }
  ir->keep_float.push_back(rule + ":" + (a.dtype == DType::kF16 ? "f16" : "f32"));
  return r;
}

void print_auto_float(const AutoFloatResult& r, std::ostream& os) {
  size_t w = 6;
  for (const auto& e : r.ranking) w = std::max(w, e.name.size());
  os << "auto-float: KL(f32 || model) with each matrix alone quantized, over " << r.tokens
     << " tokens; kept in float while the file grows by at most " << r.budget_bytes
     << " bytes (quantized file " << r.quantized_file_bytes << " bytes)\n";
  os << std::left << std::setw(static_cast<int>(w)) << "tensor" << std::right << std::setw(14)
     << "KL" << std::setw(12) << "+bytes"
     << "  choice\n";
  for (const auto& e : r.ranking) {
    os << std::left << std::setw(static_cast<int>(w)) << e.name << std::right << std::setw(14)
       << std::setprecision(4) << e.kl << std::setw(12) << e.grow_bytes << "  "
       << (e.kept ? "float" : "quantized") << "\n";
  }
  os << "auto-float: "
     << std::count_if(r.ranking.begin(), r.ranking.end(),
                      [](const AutoFloatEntry& e) { return e.kept; })
     << " matrices kept in float, +" << r.grown_bytes << " bytes\n";
}

}  // namespace convert
}  // namespace ember
