// ember-server's request bodies: OpenAI /v1/completions and /v1/chat/completions JSON checked field
// by field into plain structs. Every error names the field ("temperature must be a number");
// unknown fields are ignored, null counts as absent, as OpenAI's API does.
#ifndef EMBER_APPS_SERVER_API_H_
#define EMBER_APPS_SERVER_API_H_

#include <cstdint>
#include <string>
#include <vector>

#include "chat_template.h"

namespace ember_app {

// What both endpoints share: sampling, length, stops, streaming.
struct GenerationRequest {
  std::string model;            // echoed back; any value is accepted (the server has one model)
  bool has_max_tokens = false;  // absent: /v1/completions 16, chat: the rest of the context
  uint32_t max_tokens = 0;
  float temperature = 1.0f;  // OpenAI's default; 0 = greedy
  float top_p = 1.0f;
  int32_t top_k = 0;  // an extension (0 = off)
  bool has_seed = false;
  uint64_t seed = 0;
  std::vector<std::string> stop;  // at most 4, 1..64 bytes each (the batcher's limits)
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage: a last chunk with usage
  bool ignore_eos = false;     // an extension: generate max_tokens whatever the model samples
};

struct CompletionRequest {
  GenerationRequest g;
  std::vector<std::string> prompts;  // a string prompt is one; an array gives one choice each
};

struct ChatRequest {
  GenerationRequest g;
  std::vector<ChatMessage> messages;
};

// An HTTP 400 with OpenAI's error body: `param` is the field ("" for the body itself).
struct ApiError {
  std::string message, param;
};

// Most prompts one /v1/completions call may carry.
constexpr size_t kMaxPrompts = 64;

bool parse_completion_request(const std::string& body, CompletionRequest* out, ApiError* err);
bool parse_chat_request(const std::string& body, ChatRequest* out, ApiError* err);

// OpenAI's error object: {"error": {"message", "type", "param", "code"}}.
std::string error_json(const std::string& message, const std::string& type,
                       const std::string& param);

}  // namespace ember_app

#endif  // EMBER_APPS_SERVER_API_H_
