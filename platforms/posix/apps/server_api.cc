#include "server_api.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "ember/ember.h"

namespace ember_app {
namespace {

using json = nlohmann::json;

bool bad(ApiError* err, const std::string& param, const std::string& message) {
  err->param = param;
  err->message = message;
  return false;
}

// The body as a JSON object (no exceptions: a parse failure is a discarded value).
bool parse_object(const std::string& body, json* j, ApiError* err) {
  *j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j->is_discarded()) return bad(err, "", "the body is not valid JSON");
  if (!j->is_object()) return bad(err, "", "the body must be a JSON object");
  return true;
}

// The field `key` when present and not null.
const json* field(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

bool read_number(const json& j, const char* key, double lo, double hi, float* out, ApiError* err) {
  const json* v = field(j, key);
  if (!v) return true;
  if (!v->is_number()) return bad(err, key, std::string(key) + " must be a number");
  const double d = v->get<double>();
  if (!(d >= lo && d <= hi)) {
    return bad(err, key,
               std::string(key) + " must be between " + json(lo).dump() + " and " +
                   json(hi).dump() + ", got " + v->dump());
  }
  *out = static_cast<float>(d);
  return true;
}

bool read_int(const json& j, const char* key, int64_t lo, int64_t hi, int64_t* out, bool* present,
              ApiError* err) {
  const json* v = field(j, key);
  if (!v) return true;
  // 16.0 is an integer in JSON's sense too; 16.5 is not.
  int64_t x = 0;
  bool in_range = true;
  if (v->is_number_unsigned()) {
    in_range = v->get<uint64_t>() <= static_cast<uint64_t>(hi);
    x = in_range ? static_cast<int64_t>(v->get<uint64_t>()) : hi;
  } else if (v->is_number_integer()) {
    x = v->get<int64_t>();
  } else if (v->is_number_float() && std::floor(v->get<double>()) == v->get<double>() &&
             std::fabs(v->get<double>()) < 9e15) {
    x = static_cast<int64_t>(v->get<double>());
  } else {
    return bad(err, key, std::string(key) + " must be an integer");
  }
  if (!in_range || x < lo || x > hi) {
    return bad(err, key,
               std::string(key) + " must be between " + std::to_string(lo) + " and " +
                   std::to_string(hi) + ", got " + v->dump());
  }
  *out = x;
  if (present) *present = true;
  return true;
}

bool read_bool(const json& j, const char* key, bool* out, ApiError* err) {
  const json* v = field(j, key);
  if (!v) return true;
  if (!v->is_boolean()) return bad(err, key, std::string(key) + " must be true or false");
  *out = v->get<bool>();
  return true;
}

bool read_stop(const json& j, GenerationRequest* g, ApiError* err) {
  const json* v = field(j, "stop");
  if (!v) return true;
  std::vector<std::string> stops;
  if (v->is_string()) {
    stops.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    for (const json& s : *v) {
      if (!s.is_string()) return bad(err, "stop", "stop must be a string or an array of strings");
      stops.push_back(s.get<std::string>());
    }
  } else {
    return bad(err, "stop", "stop must be a string or an array of strings");
  }
  for (const std::string& s : stops) {
    if (s.empty()) continue;  // matches nothing
    if (s.size() > EMBER_MAX_STOP_BYTES) {
      return bad(err, "stop",
                 "stop strings may be at most " + std::to_string(EMBER_MAX_STOP_BYTES) +
                     " bytes, one is " + std::to_string(s.size()));
    }
    g->stop.push_back(s);
  }
  if (g->stop.size() > EMBER_MAX_STOP_STRINGS) {
    return bad(err, "stop",
               "at most " + std::to_string(EMBER_MAX_STOP_STRINGS) + " stop strings, got " +
                   std::to_string(g->stop.size()));
  }
  return true;
}

bool read_generation(const json& j, GenerationRequest* g, ApiError* err) {
  if (const json* m = field(j, "model")) {
    if (!m->is_string()) return bad(err, "model", "model must be a string");
    g->model = m->get<std::string>();
  }
  int64_t v = 0;
  bool present = false;
  if (!read_int(j, "max_tokens", 1, 1 << 30, &v, &g->has_max_tokens, err)) return false;
  if (g->has_max_tokens) g->max_tokens = static_cast<uint32_t>(v);
  // Chat's newer name for the same limit.
  if (!read_int(j, "max_completion_tokens", 1, 1 << 30, &v, &present, err)) return false;
  if (present) {
    g->has_max_tokens = true;
    g->max_tokens = static_cast<uint32_t>(v);
  }
  if (!read_number(j, "temperature", 0.0, 2.0, &g->temperature, err)) return false;
  if (!read_number(j, "top_p", 0.0, 1.0, &g->top_p, err)) return false;
  if (field(j, "top_p") && g->top_p <= 0.0f) return bad(err, "top_p", "top_p must be above 0");
  present = false;
  if (!read_int(j, "top_k", 0, 1 << 30, &v, &present, err)) return false;
  if (present) g->top_k = static_cast<int32_t>(v);
  if (!read_int(j, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(),
                &v, &g->has_seed, err)) {
    return false;
  }
  if (g->has_seed) g->seed = static_cast<uint64_t>(v);
  present = false;
  if (!read_int(j, "n", 1, 1, &v, &present, err)) {
    err->message = "n must be 1 (send the prompt several times with different seeds instead)";
    return false;
  }
  if (!read_stop(j, g, err)) return false;
  if (!read_bool(j, "stream", &g->stream, err)) return false;
  if (!read_bool(j, "ignore_eos", &g->ignore_eos, err)) return false;
  if (const json* so = field(j, "stream_options")) {
    if (!so->is_object()) return bad(err, "stream_options", "stream_options must be an object");
    if (!read_bool(*so, "include_usage", &g->include_usage, err)) {
      err->param = "stream_options.include_usage";
      return false;
    }
  }
  return true;
}

// A message's content: a string, or an array of {"type": "text", "text": ...} parts joined.
bool read_content(const json& c, size_t i, std::string* out, ApiError* err) {
  const std::string param = "messages[" + std::to_string(i) + "].content";
  if (c.is_null()) return true;  // an assistant turn that only called tools
  if (c.is_string()) {
    *out = c.get<std::string>();
    return true;
  }
  if (!c.is_array()) return bad(err, param, param + " must be a string or an array of parts");
  for (const json& part : c) {
    if (!part.is_object() || part.value("type", json()) != "text" || !part.contains("text") ||
        !part["text"].is_string()) {
      return bad(err, param, param + ": only text parts ({\"type\": \"text\", \"text\": ...})");
    }
    *out += part["text"].get<std::string>();
  }
  return true;
}

}  // namespace

bool parse_completion_request(const std::string& body, CompletionRequest* out, ApiError* err) {
  json j;
  if (!parse_object(body, &j, err)) return false;
  const json* p = field(j, "prompt");
  if (!p) return bad(err, "prompt", "prompt is required");
  if (p->is_string()) {
    out->prompts.push_back(p->get<std::string>());
  } else if (p->is_array() && !p->empty()) {
    for (const json& e : *p) {
      if (!e.is_string())
        return bad(err, "prompt", "prompt must be a string or an array of strings");
      out->prompts.push_back(e.get<std::string>());
    }
  } else {
    return bad(err, "prompt", "prompt must be a string or a non-empty array of strings");
  }
  if (out->prompts.size() > kMaxPrompts) {
    return bad(err, "prompt",
               "at most " + std::to_string(kMaxPrompts) + " prompts per request, got " +
                   std::to_string(out->prompts.size()));
  }
  bool echo = false;
  if (!read_bool(j, "echo", &echo, err)) return false;
  if (echo) return bad(err, "echo", "echo is not supported");
  return read_generation(j, &out->g, err);
}

bool parse_chat_request(const std::string& body, ChatRequest* out, ApiError* err) {
  json j;
  if (!parse_object(body, &j, err)) return false;
  const json* m = field(j, "messages");
  if (!m) return bad(err, "messages", "messages is required");
  if (!m->is_array() || m->empty()) {
    return bad(err, "messages", "messages must be a non-empty array of messages");
  }
  for (size_t i = 0; i < m->size(); ++i) {
    const json& msg = (*m)[i];
    const std::string param = "messages[" + std::to_string(i) + "]";
    if (!msg.is_object()) return bad(err, param, param + " must be an object");
    const json* role = field(msg, "role");
    if (!role || !role->is_string()) {
      return bad(err, param + ".role", param + ".role must be a string");
    }
    ChatMessage cm;
    cm.role = role->get<std::string>();
    if (!read_content(msg.value("content", json()), i, &cm.content, err)) return false;
    out->messages.push_back(std::move(cm));
  }
  return read_generation(j, &out->g, err);
}

std::string error_json(const std::string& message, const std::string& type,
                       const std::string& param) {
  json e = {{"error",
             {{"message", message},
              {"type", type},
              {"param", param.empty() ? json(nullptr) : json(param)},
              {"code", nullptr}}}};
  return e.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace ember_app
