#include "batch_file.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "app_util.h"

namespace ember_app {
namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;  // the output keeps its fields in this order

// One line of the file: its request parameters (or why it cannot run) and, once run, its result.
struct Line {
  std::string prompt, error;
  uint32_t max_tokens = 0;
  ember_sampler_params sampler{};
  std::vector<std::string> stops;
  // Run state.
  uint64_t id = 0;
  bool done = false;
  double first_ms = -1, total_ms = 0;
  ordered_json result;
};

// The lines of the file; false when it cannot be read. A last line without '\n' counts; the empty
// rest after a final '\n' does not.
bool read_lines(const std::string& path, std::vector<std::string>* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string all = ss.str();
  size_t i = 0;
  while (i < all.size()) {
    size_t j = all.find('\n', i);
    if (j == std::string::npos) j = all.size();
    std::string line = all.substr(i, j - i);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out->push_back(line);
    i = j + 1;
  }
  return true;
}

// A JSON line's fields over the defaults; sets l->error on anything it cannot use.
void parse_json_line(const std::string& text, Line* l) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    l->error = "not a JSON object";
    return;
  }
  try {
    if (!j.contains("prompt") || !j["prompt"].is_string()) {
      l->error = "no \"prompt\" string";
      return;
    }
    l->prompt = j["prompt"].get<std::string>();
    if (j.contains("max_tokens")) l->max_tokens = j["max_tokens"].get<uint32_t>();
    if (j.contains("temperature")) l->sampler.temperature = j["temperature"].get<float>();
    if (j.contains("top_k")) l->sampler.top_k = j["top_k"].get<int32_t>();
    if (j.contains("top_p")) l->sampler.top_p = j["top_p"].get<float>();
    if (j.contains("seed")) l->sampler.seed = j["seed"].get<uint64_t>();
    if (j.contains("stop")) {
      const json& s = j["stop"];
      if (s.is_string()) {
        l->stops.push_back(s.get<std::string>());
      } else if (s.is_array()) {
        for (const json& e : s) l->stops.push_back(e.get<std::string>());
      } else {
        l->error = "\"stop\" must be a string or an array of strings";
      }
    }
  } catch (const json::exception& e) {
    l->error = std::string("bad field: ") + e.what();
  }
}

std::vector<Line> parse_lines(const std::vector<std::string>& text, const BatchDefaults& d) {
  std::vector<Line> lines(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    Line& l = lines[i];
    l.max_tokens = d.max_tokens;
    l.sampler = d.sampler;
    if (!text[i].empty() && text[i][0] == '{') {
      parse_json_line(text[i], &l);
    } else {
      l.prompt = text[i];
    }
  }
  return lines;
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
  ember_request_params p = ember_request_default_params();
  p.prompt = l.prompt.c_str();
  p.prompt_len = l.prompt.size();
  p.max_new_tokens = l.max_tokens;
  p.sampler = l.sampler;
  p.stop_at_bos = run.stop_at_bos ? 1 : 0;
  std::vector<const char*> stops;
  for (const std::string& s : l.stops) stops.push_back(s.c_str());
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

void print_summary(const std::vector<Line>& lines, double seconds) {
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
  std::fprintf(stderr,
               "ember-run: %zu requests (%zu failed), %zu tokens in %.2f s: %.1f tokens/s; latency "
               "mean %.1f ms, p95 %.1f ms\n",
               lines.size(), lines.size() - ok, tokens, seconds,
               seconds > 0 ? tokens / seconds : 0.0, mean, p95);
}

}  // namespace

int run_batch_file(const ember_model* model, ember_context_params cp, const std::string& path,
                   uint32_t parallel, const BatchDefaults& defaults) {
  std::vector<std::string> text;
  if (!read_lines(path, &text)) {
    std::fprintf(stderr, "ember-run: cannot read --batch-file '%s'\n", path.c_str());
    return 1;
  }
  std::vector<Line> lines = parse_lines(text, defaults);
  if (parallel == 0)
    parallel = static_cast<uint32_t>(std::min<size_t>(8, std::max<size_t>(1, lines.size())));
  cp.n_seq_max = parallel;
  cp.n_queue_max = parallel;  // lines are fed as places free up
  cp.n_batch_max = std::max(cp.n_batch_max, parallel);
  ember_context* ctx = nullptr;
  const ember_status s = ember_context_create(model, &cp, nullptr, 0, &ctx);
  if (s != EMBER_OK) return fail("ember-run", "creating the context", s);
  const std::unique_ptr<ember_context, void (*)(ember_context*)> owner(ctx, ember_context_free);
  Run run{model, ctx, &lines, now_seconds(), defaults.stop_at_bos};
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
      const std::string out =
          lines[next_print].result.dump(-1, ' ', false, json::error_handler_t::replace);
      std::printf("%s\n", out.c_str());
      std::fflush(stdout);
    }
    if (next_print == lines.size()) break;
    uint32_t pending = 0;
    const ember_status st = ember_step(ctx, &pending);
    if (st != EMBER_OK)
      std::fprintf(stderr, "ember-run: step: %s: %s\n", ember_status_string(st),
                   ember_last_error());
  }
  print_summary(lines, now_seconds() - run.t0);
  return 0;
}

}  // namespace ember_app
