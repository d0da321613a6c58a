#include "server_http.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "app_util.h"
#include "chat_template.h"
#include "ember/ember.h"
#include "server_api.h"
#include "server_engine.h"

namespace ember_app {
namespace {

using json = nlohmann::ordered_json;
using httplib::Request;
using httplib::Response;

// Per HTTP thread: the request being answered, for its log line (cpp-httplib answers a
// connection's requests one after another on one thread, the streamed body and the log included).
struct RequestLog {
  double t0 = 0;
  uint64_t tokens = 0;
};
thread_local RequestLog tl_log;

struct State {
  explicit State(const ServerOptions& opts) : o(opts) {}
  const ServerOptions& o;
  std::atomic<bool> ready{false}, draining{false};
  ember_model* model = nullptr;
  ember_context* ctx = nullptr;
  std::unique_ptr<Engine> engine;
  uint32_t n_ctx = 0;
  // Chat: the template's family (or why there is none), the special tokens' text.
  ChatFamily family = ChatFamily::kUnknown;
  std::string chat_template, chat_why, bos_text, eos_text;
  int32_t bos_id = -1;
  bool add_bos = false;
  std::atomic<int> streams_open{0};
  std::atomic<uint64_t> next_id{1};
  int64_t created = 0;
  std::mutex counts_mu;
  std::map<std::pair<std::string, int>, uint64_t> responses;  // (path, status) -> count
};

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_error(Response& res, int status, const std::string& message, const char* type,
                const std::string& param = "") {
  res.status = status;
  res.set_content(error_json(message, type, param), "application/json");
}

// Compares in time that depends on the key's length only, never on where the bytes differ.
bool key_matches(const std::string& given, const std::string& key) {
  volatile unsigned char diff = given.size() != key.size() ? 1 : 0;
  for (size_t i = 0; i < key.size(); ++i) {
    diff |= static_cast<unsigned char>(key[i] ^ (i < given.size() ? given[i] : 0));
  }
  return diff == 0;
}

const char* finish_name(ember_finish_reason f) {
  switch (f) {
    case EMBER_FINISH_LENGTH:
      return "length";
    case EMBER_FINISH_EOS:
    case EMBER_FINISH_STOP:
      return "stop";
    case EMBER_FINISH_CANCELLED:
      return "cancelled";
    case EMBER_FINISH_ERROR:
    case EMBER_FINISH_NONE:
      break;
  }
  return "error";
}

// --------------------------------------------------------------------------- prompts ---------

// `text` tokenized as a completion prompt (BOS as the tokenizer adds it, special-token text kept
// as text) or, `chat`, as a rendered chat (special-token text such as "<|im_start|>" parsed, BOS
// added only where the template did not write it).
bool tokenize_prompt(const State& S, const std::string& text, bool chat, std::vector<int32_t>* ids,
                     ApiError* err) {
  const uint32_t flags = chat ? EMBER_TOKENIZE_PARSE_SPECIAL : EMBER_TOKENIZE_ADD_SPECIAL;
  const ember_status s = tokenize_text(S.model, text, flags, ids);
  if (s != EMBER_OK) {
    err->message = std::string("tokenizing the prompt failed: ") + ember_last_error();
    return false;
  }
  if (chat && S.add_bos && (ids->empty() || (*ids)[0] != S.bos_id))
    ids->insert(ids->begin(), S.bos_id);
  return true;
}

// Jobs for the tokenized prompts, their lengths checked against the context.
bool make_jobs(const State& S, const GenerationRequest& g, bool chat,
               const std::vector<std::vector<int32_t>>& prompts,
               std::vector<std::shared_ptr<Job>>* jobs, ApiError* err) {
  std::random_device rd;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const size_t n = prompts[i].size();
    const std::string which = prompts.size() > 1 ? "prompt " + std::to_string(i) : "the prompt";
    if (n >= S.n_ctx) {
      err->param = chat ? "messages" : "prompt";
      err->message = which + " is " + std::to_string(n) + " tokens; the context holds " +
                     std::to_string(S.n_ctx) + " (prompt and completion together)";
      return false;
    }
    const uint32_t room = S.n_ctx - static_cast<uint32_t>(n);
    if (g.has_max_tokens && g.max_tokens > room) {
      err->param = "max_tokens";
      err->message = "max_tokens " + std::to_string(g.max_tokens) + " and " + which + "'s " +
                     std::to_string(n) + " tokens exceed the context of " +
                     std::to_string(S.n_ctx) + " tokens (at most " + std::to_string(room) + ")";
      return false;
    }
    auto job = std::make_shared<Job>();
    job->prompt_ids = prompts[i];
    job->max_tokens = g.has_max_tokens ? g.max_tokens : chat ? room : std::min<uint32_t>(16, room);
    job->sampler = ember_sampler_default_params();
    job->sampler.temperature = g.temperature;
    job->sampler.top_p = g.top_p;
    job->sampler.top_k = g.top_k;
    job->sampler.seed = g.has_seed ? g.seed : (uint64_t(rd()) << 32) ^ rd();
    job->stop = g.stop;
    job->ignore_eos = g.ignore_eos;
    jobs->push_back(std::move(job));
  }
  return true;
}

// --------------------------------------------------------------------------- answers ---------

struct Call {
  bool chat = false;
  std::string id, model;
  GenerationRequest g;
  std::vector<std::shared_ptr<Job>> jobs;
};

json usage_of(const Call& c) {
  uint64_t p = 0, n = 0, cached = 0;
  for (const auto& j : c.jobs) {
    p += j->n_prompt_tokens;
    n += j->n_generated;
    cached += j->n_cached;
  }
  return json{{"prompt_tokens", p},
              {"completion_tokens", n},
              {"total_tokens", p + n},
              {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

json chunk_of(const Call& c, size_t i, const json& text_or_delta, const char* finish) {
  json choice;
  if (c.chat) {
    choice = json{{"index", i}, {"delta", text_or_delta}, {"logprobs", nullptr}};
  } else {
    choice = json{{"text", text_or_delta}, {"index", i}, {"logprobs", nullptr}};
  }
  choice["finish_reason"] = finish ? json(finish) : json(nullptr);
  return json{{"id", c.id},
              {"object", c.chat ? "chat.completion.chunk" : "text_completion"},
              {"created", int64_t(std::time(nullptr))},
              {"model", c.model},
              {"choices", json::array({choice})}};
}

std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

// Waits for every job, then answers with the whole completion.
void answer_whole(State& S, Call& c, Response& res) {
  std::vector<std::string> texts(c.jobs.size());
  for (size_t i = 0; i < c.jobs.size(); ++i) {
    while (!c.jobs[i]->wait_text(1.0, &texts[i])) {
    }
  }
  json choices = json::array();
  for (size_t i = 0; i < c.jobs.size(); ++i) {
    const Job& j = *c.jobs[i];
    tl_log.tokens += j.n_generated;
    if (!j.error.empty()) {
      const bool stopping = S.draining.load();
      send_error(res, stopping ? 503 : 500, j.error, stopping ? "unavailable" : "server_error");
      return;
    }
    if (S.o.verbose)
      std::fprintf(stderr, "ember-server: [%s] text: %s\n", c.id.c_str(), texts[i].c_str());
    if (c.chat) {
      choices.push_back(json{{"index", i},
                             {"message", {{"role", "assistant"}, {"content", texts[i]}}},
                             {"logprobs", nullptr},
                             {"finish_reason", finish_name(j.finish)}});
    } else {
      choices.push_back(json{{"text", texts[i]},
                             {"index", i},
                             {"logprobs", nullptr},
                             {"finish_reason", finish_name(j.finish)}});
    }
  }
  const json body{{"id", c.id},
                  {"object", c.chat ? "chat.completion" : "text_completion"},
                  {"created", int64_t(std::time(nullptr))},
                  {"model", c.model},
                  {"choices", choices},
                  {"usage", usage_of(c)}};
  res.set_content(dump(body), "application/json");
}

// A streamed answer's state between calls of the content provider.
struct Stream {
  State* S;
  Call c;
  std::vector<std::string> got;  // text received, not yet sent
  std::vector<char> sent_final;
  bool role_sent = false;
  double last_write = 0;
  void cancel() {
    for (const auto& j : c.jobs) j->cancel = true;
  }
};

// One call of the content provider: sends what the jobs released (or, after a second of nothing,
// an SSE comment, so that a client gone while its request waits is noticed), then the final chunks
// and [DONE]. False when the client is gone: its requests are cancelled.
bool stream_step(Stream& st, httplib::DataSink& sink) {
  std::string out;
  bool all_done = true;
  if (st.c.chat && !st.role_sent) {
    out += sse(chunk_of(st.c, 0, json{{"role", "assistant"}, {"content", ""}}, nullptr));
    st.role_sent = true;
  }
  for (size_t i = 0; i < st.c.jobs.size(); ++i) {
    if (st.sent_final[i]) continue;
    Job& j = *st.c.jobs[i];
    const bool done = j.wait_text(0, &st.got[i]);
    if (!st.got[i].empty()) {
      out += sse(
          chunk_of(st.c, i, st.c.chat ? json{{"content", st.got[i]}} : json(st.got[i]), nullptr));
      st.got[i].clear();
    }
    if (done) {
      out += sse(chunk_of(st.c, i, st.c.chat ? json::object() : json(""),
                          j.error.empty() ? finish_name(j.finish) : "error"));
      st.sent_final[i] = 1;
      tl_log.tokens += j.n_generated;
    } else {
      all_done = false;
    }
  }
  if (all_done) {
    if (st.c.g.include_usage) {
      json u = chunk_of(st.c, 0, json(""), nullptr);
      u["choices"] = json::array();
      u["usage"] = usage_of(st.c);
      out += sse(u);
    }
    out += "data: [DONE]\n\n";
  }
  const double now = now_seconds();
  if (out.empty() && now - st.last_write >= 1.0) out = ": waiting\n\n";
  if (out.empty()) {
    for (size_t i = 0; i < st.c.jobs.size(); ++i) {
      if (st.sent_final[i]) continue;
      st.c.jobs[i]->wait_text(0.1, &st.got[i]);
      break;
    }
    return true;
  }
  if (!sink.write(out.data(), out.size())) {
    st.cancel();
    return false;
  }
  st.last_write = now;
  if (all_done) sink.done();
  return true;
}

void answer_stream(State& S, Call&& c, Response& res) {
  auto st = std::make_shared<Stream>();
  st->S = &S;
  st->c = std::move(c);
  st->got.resize(st->c.jobs.size());
  st->sent_final.assign(st->c.jobs.size(), 0);
  st->last_write = now_seconds();
  ++S.streams_open;
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream", [st](size_t, httplib::DataSink& sink) { return stream_step(*st, sink); },
      [st](bool) {
        st->cancel();  // a no-op for requests that finished
        --st->S->streams_open;
      });
}

// --------------------------------------------------------------------------- endpoints -------

// Both generation endpoints: parse, render (chat), tokenize, check, reserve places, enqueue,
// answer.
void handle_generate(State& S, const Request& req, Response& res, bool chat) {
  if (!S.ready.load() || S.draining.load()) {
    send_error(res, 503, S.draining ? "the server is shutting down" : "the model is loading",
               "unavailable");
    return;
  }
  Call c;
  c.chat = chat;
  ApiError err;
  std::vector<std::string> texts;
  if (chat) {
    ChatRequest r;
    if (!parse_chat_request(req.body, &r, &err))
      return send_error(res, 400, err.message, "invalid_request_error", err.param);
    if (S.family == ChatFamily::kUnknown)
      return send_error(res, 400, S.chat_why, "invalid_request_error", "messages");
    std::string text;
    if (!render_chat(S.family, S.chat_template, r.messages, S.bos_text, S.eos_text, &text,
                     &err.message)) {
      return send_error(res, 400, err.message, "invalid_request_error", "messages");
    }
    texts.push_back(std::move(text));
    c.g = std::move(r.g);
  } else {
    CompletionRequest r;
    if (!parse_completion_request(req.body, &r, &err))
      return send_error(res, 400, err.message, "invalid_request_error", err.param);
    texts = std::move(r.prompts);
    c.g = std::move(r.g);
  }
  std::vector<std::vector<int32_t>> ids(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    if (!tokenize_prompt(S, texts[i], chat, &ids[i], &err))
      return send_error(res, 400, err.message, "invalid_request_error", "prompt");
  }
  if (!make_jobs(S, c.g, chat, ids, &c.jobs, &err))
    return send_error(res, 400, err.message, "invalid_request_error", err.param);
  if (!S.engine->reserve(static_cast<uint32_t>(c.jobs.size()))) {
    res.set_header("Retry-After", "1");
    return send_error(res, 503,
                      "the server is busy: all " + std::to_string(S.engine->places()) +
                          " request places (running and queued) are taken; retry later",
                      "unavailable");
  }
  c.id = std::string(chat ? "chatcmpl-" : "cmpl-") + std::to_string(S.next_id++);
  c.model = c.g.model.empty() ? S.o.model_id : c.g.model;
  if (S.o.verbose) {
    for (const std::string& t : texts)
      std::fprintf(stderr, "ember-server: [%s] prompt: %s\n", c.id.c_str(), t.c_str());
  }
  for (const auto& j : c.jobs) S.engine->submit(j);
  if (c.g.stream) {
    answer_stream(S, std::move(c), res);
  } else {
    answer_whole(S, c, res);
  }
}

void handle_metrics(State& S, Response& res) {
  std::string m;
  auto metric = [&](const char* name, const char* type, const char* help, double v) {
    m += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
         name + " " + json(v).dump() + "\n";
  };
  m += "# HELP ember_http_requests_total HTTP requests answered, by path and status.\n";
  m += "# TYPE ember_http_requests_total counter\n";
  {
    std::lock_guard<std::mutex> lk(S.counts_mu);
    for (const auto& kv : S.responses) {
      m += "ember_http_requests_total{path=\"" + kv.first.first + "\",status=\"" +
           std::to_string(kv.first.second) + "\"} " + std::to_string(kv.second) + "\n";
    }
  }
  metric("ember_ready", "gauge", "1 when the model is loaded and requests are taken.",
         S.ready ? 1 : 0);
  if (S.engine) {
    EngineMetrics& e = S.engine->metrics();
    metric("ember_requests_started_total", "counter", "Prompts admitted to the batcher.",
           double(e.requests_started));
    metric("ember_requests_finished_total", "counter", "Prompts finished (any reason).",
           double(e.requests_finished));
    metric("ember_requests_cancelled_total", "counter",
           "Prompts cancelled (client gone, shutdown).", double(e.requests_cancelled));
    metric("ember_requests_rejected_total", "counter",
           "Prompts refused because every place was taken.", double(e.requests_rejected));
    metric("ember_prompt_tokens_total", "counter", "Prompt tokens admitted.",
           double(e.prompt_tokens));
    metric("ember_prompt_tokens_cached_total", "counter",
           "Prompt tokens found in the KV cache (not computed).", double(e.cached_tokens));
    metric("ember_generated_tokens_total", "counter", "Tokens generated by finished requests.",
           double(e.generated_tokens));
    metric("ember_queue_depth", "gauge", "Requests waiting for a slot.", double(e.queued));
    metric("ember_slots_busy", "gauge", "Slots generating.", double(e.slots_busy));
    metric("ember_slots_busy_max", "gauge", "Most slots generating at once since the start.",
           double(e.slots_busy_max));
    metric("ember_slots", "gauge", "Slots (--parallel).", double(S.engine->slots()));
    metric("ember_request_places", "gauge", "Slots plus queue places.", double(S.engine->places()));
    metric("ember_tokens_per_second", "gauge", "Generated tokens per second, recent.",
           e.tokens_per_second.load());
  }
  res.set_content(m, "text/plain; version=0.0.4");
}

// The path as counted in /metrics: a known route, else "other" (so that a scan of random paths
// cannot grow the table).
std::string route_of(const std::string& path) {
  for (const char* r :
       {"/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics"}) {
    if (path == r) return r;
  }
  return "other";
}

void add_routes(State& S, httplib::Server& svr) {
  svr.set_pre_routing_handler([&S](const Request& req, Response& res) {
    tl_log.t0 = now_seconds();
    tl_log.tokens = 0;
    if (S.o.api_key.empty() || req.path == "/health")
      return httplib::Server::HandlerResponse::Unhandled;
    const std::string auth = req.get_header_value("Authorization");
    const std::string bearer = "Bearer ";
    const std::string given =
        auth.compare(0, bearer.size(), bearer) == 0 ? auth.substr(bearer.size()) : "";
    if (key_matches(given, S.o.api_key)) return httplib::Server::HandlerResponse::Unhandled;
    res.set_header("WWW-Authenticate", "Bearer");
    send_error(res, 401, "a valid API key is needed: 'Authorization: Bearer KEY'",
               "invalid_request_error");
    return httplib::Server::HandlerResponse::Handled;
  });
  svr.Post("/v1/completions",
           [&S](const Request& req, Response& res) { handle_generate(S, req, res, false); });
  svr.Post("/v1/chat/completions",
           [&S](const Request& req, Response& res) { handle_generate(S, req, res, true); });
  svr.Get("/v1/models", [&S](const Request&, Response& res) {
    const json m{
        {"id", S.o.model_id}, {"object", "model"}, {"created", S.created}, {"owned_by", "ember"}};
    res.set_content(dump(json{{"object", "list"}, {"data", json::array({m})}}), "application/json");
  });
  svr.Get("/health", [&S](const Request&, Response& res) {
    const bool ok = S.ready.load() && !S.draining.load();
    res.status = ok ? 200 : 503;
    res.set_content(ok           ? "{\"status\":\"ok\"}"
                    : S.draining ? "{\"status\":\"stopping\"}"
                                 : "{\"status\":\"loading\"}",
                    "application/json");
  });
  svr.Get("/metrics", [&S](const Request&, Response& res) { handle_metrics(S, res); });
  // Errors cpp-httplib finds itself (unknown path 404, body too large 413, bad request line 400)
  // get OpenAI's error body too.
  svr.set_error_handler([](const Request& req, Response& res) {
    if (!res.body.empty()) return;
    std::string what = res.status == 400 ? "malformed HTTP request" : "HTTP error";
    if (res.status == 413) what = "the request body is larger than the server takes (--max-body)";
    if (res.status == 404) what = "no such endpoint: " + req.method + " " + req.path;
    send_error(res, res.status, what, "invalid_request_error");
  });
  svr.set_logger([&S](const Request& req, const Response& res) {
    const double ms = tl_log.t0 > 0 ? (now_seconds() - tl_log.t0) * 1e3 : 0.0;
    std::fprintf(stderr, "ember-server: %s %s %d tokens=%llu %.1f ms\n", req.method.c_str(),
                 req.path.c_str(), res.status, (unsigned long long)tl_log.tokens, ms);
    tl_log = RequestLog{};
    std::lock_guard<std::mutex> lk(S.counts_mu);
    ++S.responses[{route_of(req.path), res.status}];
  });
}

// The text of one token as the template writes it ("<s>"), or "" when the model has none.
std::string token_text(const ember_model* m, int32_t id) {
  if (id < 0) return "";
  char buf[256];
  size_t n = 0;
  if (ember_detokenize(m, &id, 1, 0, buf, sizeof buf, &n) != EMBER_OK) return "";
  return std::string(buf, n);
}

// Loads the model, makes the context and starts the engine; false with a message on stderr.
bool load(State& S) {
  const ServerOptions& o = S.o;
  const double t0 = now_seconds();
  ember_status s = ember_model_load_file(o.model_path.c_str(), &S.model);
  if (s != EMBER_OK) return fail("ember-server", "loading the model", s), false;
  ember_model_info mi;
  ember_model_get_info(S.model, &mi);
  ember_context_params cp = ember_context_default_params();
  cp.n_ctx = o.n_ctx;
  cp.n_threads = o.n_threads;
  cp.n_seq_max = o.parallel;
  cp.n_queue_max = o.queue;
  cp.n_batch_max = std::max(o.n_batch, o.parallel);
  s = ember_context_create(S.model, &cp, nullptr, 0, &S.ctx);
  if (s != EMBER_OK) return fail("ember-server", "creating the context", s), false;
  S.n_ctx = o.n_ctx ? o.n_ctx : mi.max_context;
  const char* tmpl = nullptr;
  size_t tmpl_len = 0;
  ember_model_chat_template(S.model, &tmpl, &tmpl_len);
  S.chat_template.assign(tmpl, tmpl_len);
  S.family = chat_family(S.chat_template, &S.chat_why);
  S.bos_id = mi.bos_id;
  S.bos_text = token_text(S.model, mi.bos_id);
  S.eos_text = token_text(S.model, mi.eos_id);
  std::vector<int32_t> empty;
  S.add_bos = tokenize_text(S.model, "", EMBER_TOKENIZE_ADD_SPECIAL, &empty) == EMBER_OK &&
              !empty.empty() && empty[0] == mi.bos_id;
  S.engine.reset(new Engine(S.ctx, o.parallel, o.parallel + o.queue));
  S.engine->start();
  std::fprintf(stderr,
               "ember-server: model %s loaded in %.0f ms: n_ctx %u, %u slots, %u queue places, %u "
               "thread(s), kernels %s, chat template: %s\n",
               o.model_path.c_str(), (now_seconds() - t0) * 1e3, S.n_ctx, o.parallel, o.queue,
               o.n_threads ? o.n_threads : 1, ember_kernel_variant(),
               S.chat_template.empty() ? "none" : chat_family_name(S.family));
  return true;
}

void unload(State& S) {
  S.engine.reset();
  if (S.ctx) ember_context_free(S.ctx);
  if (S.model) ember_model_free(S.model);
  S.ctx = nullptr;
  S.model = nullptr;
}

}  // namespace

int run_server(const ServerOptions& o, const sigset_t& stop_signals) {
  State S(o);
  S.created = int64_t(std::time(nullptr));
  httplib::Server svr;
  const size_t threads = o.http_threads ? o.http_threads : size_t(o.parallel) + o.queue + 8;
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  svr.set_payload_max_length(o.max_body_bytes);
  svr.set_read_timeout(o.io_timeout_s, 0);
  svr.set_write_timeout(o.io_timeout_s, 0);
  svr.set_keep_alive_timeout(2);
  add_routes(S, svr);
  const int port = o.port == 0                        ? svr.bind_to_any_port(o.host)
                   : svr.bind_to_port(o.host, o.port) ? o.port
                                                      : -1;
  if (port <= 0) {
    std::fprintf(stderr, "ember-server: cannot listen on %s:%d\n", o.host.c_str(), o.port);
    return 1;
  }
  std::fprintf(stderr, "ember-server: listening on http://%s:%d\n", o.host.c_str(), port);
  std::thread http([&svr] { svr.listen_after_bind(); });
  // stop() only stops a server that runs: wait for that before anything may call it.
  for (int i = 0; i < 5000 && !svr.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!load(S)) {
    svr.stop();
    http.join();
    unload(S);
    return 1;
  }
  S.ready = true;
  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::fprintf(stderr,
               "ember-server: %s: finishing running requests (up to %.0f s), then exiting\n",
               sig == SIGINT ? "SIGINT" : "SIGTERM", o.shutdown_grace_s);
  S.draining = true;
  S.engine->stop(o.shutdown_grace_s);
  // Streams write their last chunks before the listener closes (closing it ends them).
  for (int i = 0; i < 200 && S.streams_open.load() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  svr.stop();
  http.join();
  unload(S);
  std::fprintf(stderr, "ember-server: stopped\n");
  return 0;
}

}  // namespace ember_app
