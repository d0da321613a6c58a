#include "batch_file.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "app_util.h"

namespace ember_app {
namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;  // the output keeps its fields in this order

// A line while it runs: its request, and once run, its result.
struct Line {
  const BatchLine* req = nullptr;
  std::string error;  // the request's, or the runtime's refusal at submit
  uint64_t id = 0;
  bool done = false;
  double first_ms = -1, total_ms = 0;
  ordered_json result;
};

// The field `key` when present and not null.
const json* field(const json& j, const char* key) {
  const auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

// `v` as JSON text for a message (invalid UTF-8 replaced: a strict dump would throw).
std::string shown(const json& v) { return v.dump(-1, ' ', false, json::error_handler_t::replace); }

// A number that a float holds (finite). False, and *error set, when it is not one.
bool read_float(const json& j, const char* key, float* out, std::string* error) {
  const json* v = field(j, key);
  if (!v) return true;
  const double d = v->is_number() ? v->get<double>() : NAN;
  if (!(std::fabs(d) <= std::numeric_limits<float>::max())) {
    *error = std::string("\"") + key + "\" must be a number (a float's range), got " + shown(*v);
    return false;
  }
  *out = static_cast<float>(d);
  return true;
}

// An integer that T holds (16.0 counts, 16.5 does not). A converting get<T>() would wrap -1 to
// 4294967295 max_tokens, and a double out of T's range is undefined behaviour.
template <typename T>
bool read_int(const json& j, const char* key, T* out, std::string* error) {
  const json* v = field(j, key);
  if (!v) return true;
  using lim = std::numeric_limits<T>;
  bool ok = false;
  if (v->is_number_unsigned()) {
    ok = v->get<uint64_t>() <= static_cast<uint64_t>(lim::max());
  } else if (v->is_number_integer()) {
    const int64_t i = v->get<int64_t>();
    ok = i >= static_cast<int64_t>(lim::min()) &&
         (i < 0 || static_cast<uint64_t>(i) <= static_cast<uint64_t>(lim::max()));
  } else if (v->is_number_float()) {
    const double d = v->get<double>();  // below 2^digits: lim::max() + 1, exact as a double
    ok = std::floor(d) == d && d >= static_cast<double>(lim::min()) &&
         d < std::ldexp(1.0, lim::digits);
  }
  if (!ok) {
    *error = std::string("\"") + key + "\" must be an integer from " + std::to_string(lim::min()) +
             " to " + std::to_string(lim::max()) + ", got " + shown(*v);
    return false;
  }
  *out = v->is_number_float()      ? static_cast<T>(v->get<double>())
         : v->is_number_unsigned() ? static_cast<T>(v->get<uint64_t>())
                                   : static_cast<T>(v->get<int64_t>());
  return true;
}

bool read_stops(const json& j, std::vector<std::string>* out, std::string* error) {
  const json* v = field(j, "stop");
  if (!v) return true;
  if (v->is_string()) {
    out->push_back(v->get<std::string>());
    return true;
  }
  if (v->is_array()) {
    for (const json& e : *v) {
      if (!e.is_string()) break;
      out->push_back(e.get<std::string>());
    }
    if (out->size() == v->size()) return true;
  }
  *error = "\"stop\" must be a string or an array of strings";
  return false;
}

// A JSON line's fields over the defaults; sets l->error on anything it cannot use.
void parse_json_line(const std::string& text, BatchLine* l) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    l->error = "not a JSON object";
    return;
  }
  const json* prompt = field(j, "prompt");
  if (!prompt || !prompt->is_string()) {
    l->error = "no \"prompt\" string";
    return;
  }
  l->prompt = prompt->get<std::string>();
  std::string& e = l->error;
  (void)(read_int(j, "max_tokens", &l->max_tokens, &e) &&
         read_float(j, "temperature", &l->sampler.temperature, &e) &&
         read_int(j, "top_k", &l->sampler.top_k, &e) &&
         read_float(j, "top_p", &l->sampler.top_p, &e) &&
         read_int(j, "seed", &l->sampler.seed, &e) && read_stops(j, &l->stops, &e));
}

struct Run {
  const ember_model* model;
  ember_context* ctx;
  std::vector<Line>* lines;
  double t0;
  bool stop_at_bos;
};

const char* finish_name(ember_finish_reason f) {
  switch (f) {
    case EMBER_FINISH_LENGTH:
      return "length";
    case EMBER_FINISH_EOS:
      return "eos";
    case EMBER_FINISH_STOP:
      return "stop";
    case EMBER_FINISH_CANCELLED:
      return "cancelled";
    case EMBER_FINISH_ERROR:
      return "error";
    case EMBER_FINISH_NONE:
      break;
  }
  return "none";
}

struct EventTarget {
  Run* run;
  size_t index;
};

int on_event(const ember_request_event* ev, void* user) {
  const EventTarget& t = *static_cast<const EventTarget*>(user);
  Line& l = (*t.run->lines)[t.index];
  const double ms = (now_seconds() - t.run->t0) * 1e3;
  if (ev->finish == EMBER_FINISH_NONE) {
    if (l.first_ms < 0) l.first_ms = ms;
  } else {
    l.total_ms = ms;
    l.done = true;
  }
  return 0;
}

// Submits line i; false when every place is taken (try again after a step). A line the runtime
// refuses gets its error here.
bool submit(Run& run, size_t i, std::vector<EventTarget>& targets) {
  Line& l = (*run.lines)[i];
  const BatchLine& r = *l.req;
  ember_request_params p = ember_request_default_params();
  p.prompt = r.prompt.c_str();
  p.prompt_len = r.prompt.size();
  p.max_new_tokens = r.max_tokens;
  p.sampler = r.sampler;
  p.stop_at_bos = run.stop_at_bos ? 1 : 0;
  std::vector<const char*> stops;
  for (const std::string& s : r.stops) stops.push_back(s.c_str());
  p.stop_strings = stops.data();
  p.n_stop_strings = static_cast<uint32_t>(stops.size());
  p.on_event = on_event;
  p.user = &targets[i];
  const ember_status s = ember_request_submit(run.ctx, &p, &l.id);
  if (s == EMBER_ERR_BUSY) return false;
  if (s != EMBER_OK) {
    l.error = std::string(ember_status_string(s)) + ": " + ember_last_error();
    l.done = true;
  }
  return true;
}

// A finished request's JSON line (and its place released).
void collect(Run& run, size_t i) {
  Line& l = (*run.lines)[i];
  if (!l.error.empty()) {
    l.result = ordered_json{{"index", i}, {"error", l.error}};
    return;
  }
  ember_request_info info;
  ember_request_info_get(run.ctx, l.id, &info);
  std::string text(info.text_bytes, '\0');
  size_t n = 0;
  ember_request_text(run.ctx, l.id, 0, text.empty() ? nullptr : &text[0], text.size(), &n);
  text.resize(n);
  l.result = ordered_json{
      {"index", i},
      {"text", text},
      {"ids", std::vector<int32_t>(info.generated, info.generated + info.n_generated)},
      {"prompt_tokens", info.n_prompt_tokens},
      {"generated_tokens", info.n_generated},
      {"finish_reason", finish_name(info.finish)},
      {"first_token_ms", l.first_ms < 0 ? ordered_json(nullptr) : ordered_json(l.first_ms)},
      {"total_ms", l.total_ms}};
  ember_request_release(run.ctx, l.id);
}

void print_summary(const std::vector<Line>& lines, double seconds, FILE* to) {
  size_t ok = 0, tokens = 0;
  std::vector<double> latency;
  for (const Line& l : lines) {
    if (!l.error.empty()) continue;
    ++ok;
    tokens += l.result["generated_tokens"].get<size_t>();
    latency.push_back(l.total_ms);
  }
  std::sort(latency.begin(), latency.end());
  double mean = 0;
  for (double v : latency) mean += v;
  mean = latency.empty() ? 0 : mean / latency.size();
  const double p95 =
      latency.empty()
          ? 0
          : latency[std::min(latency.size() - 1, size_t(std::ceil(0.95 * latency.size())) - 1)];
  std::fprintf(to,
               "ember-run: %zu requests (%zu failed), %zu tokens in %.2f s: %.1f tokens/s; latency "
               "mean %.1f ms, p95 %.1f ms\n",
               lines.size(), lines.size() - ok, tokens, seconds,
               seconds > 0 ? tokens / seconds : 0.0, mean, p95);
}

}  // namespace

std::vector<std::string> split_batch_lines(const std::string& bytes) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < bytes.size()) {
    size_t j = bytes.find('\n', i);
    if (j == std::string::npos) j = bytes.size();
    std::string line = bytes.substr(i, j - i);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.push_back(std::move(line));
    i = j + 1;
  }
  return out;
}

BatchLine parse_batch_line(const std::string& text, const BatchDefaults& defaults) {
  BatchLine l;
  l.max_tokens = defaults.max_tokens;
  l.sampler = defaults.sampler;
  if (!text.empty() && text[0] == '{') {
    parse_json_line(text, &l);
  } else {
    l.prompt = text;
  }
  return l;
}

int run_batch(const ember_model* model, ember_context_params cp, const std::vector<BatchLine>& reqs,
              uint32_t parallel, bool stop_at_bos, FILE* out, FILE* summary) {
  std::vector<Line> lines(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    lines[i].req = &reqs[i];
    lines[i].error = reqs[i].error;
  }
  if (parallel == 0)
    parallel = static_cast<uint32_t>(std::min<size_t>(8, std::max<size_t>(1, lines.size())));
  cp.n_seq_max = parallel;
  cp.n_queue_max = parallel;  // lines are fed as places free up
  cp.n_batch_max = std::max(cp.n_batch_max, parallel);
  ember_context* ctx = nullptr;
  const ember_status s = ember_context_create(model, &cp, nullptr, 0, &ctx);
  if (s != EMBER_OK) return fail("ember-run", "creating the context", s);
  const std::unique_ptr<ember_context, void (*)(ember_context*)> owner(ctx, ember_context_free);
  Run run{model, ctx, &lines, now_seconds(), stop_at_bos};
  std::vector<EventTarget> targets(lines.size());
  for (size_t i = 0; i < lines.size(); ++i) targets[i] = {&run, i};
  size_t next_submit = 0, next_print = 0;
  for (;;) {
    while (next_submit < lines.size() &&
           (!lines[next_submit].error.empty() || submit(run, next_submit, targets))) {
      if (!lines[next_submit].error.empty()) lines[next_submit].done = true;
      ++next_submit;
    }
    for (size_t i = 0; i < next_submit; ++i) {
      if (lines[i].done && lines[i].result.is_null()) collect(run, i);
    }
    for (; next_print < next_submit && !lines[next_print].result.is_null(); ++next_print) {
      const std::string text =
          lines[next_print].result.dump(-1, ' ', false, json::error_handler_t::replace);
      std::fprintf(out, "%s\n", text.c_str());
      std::fflush(out);
    }
    if (next_print == lines.size()) break;
    uint32_t pending = 0;
    const ember_status st = ember_step(ctx, &pending);
    if (st != EMBER_OK)
      std::fprintf(stderr, "ember-run: step: %s: %s\n", ember_status_string(st),
                   ember_last_error());
  }
  if (summary) print_summary(lines, now_seconds() - run.t0, summary);
  return 0;
}

int run_batch_file(const ember_model* model, ember_context_params cp, const std::string& path,
                   uint32_t parallel, const BatchDefaults& defaults) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "ember-run: cannot read --batch-file '%s'\n", path.c_str());
    return 1;
  }
  std::stringstream bytes;
  bytes << f.rdbuf();
  std::vector<BatchLine> lines;
  for (const std::string& text : split_batch_lines(bytes.str()))
    lines.push_back(parse_batch_line(text, defaults));
  return run_batch(model, cp, lines, parallel, defaults.stop_at_bos, stdout, stderr);
}

}  // namespace ember_app
