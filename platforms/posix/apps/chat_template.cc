#include "chat_template.h"

namespace ember_app {
namespace {

bool has(const std::string& s, const char* needle) { return s.find(needle) != std::string::npos; }

// Jinja's `trim` and Python's str.strip(): leading and trailing whitespace removed.
std::string trim(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

// Llama 2 chat (meta-llama/Llama-2-*-chat-hf): the system message folds into the first user turn;
// roles must alternate user / assistant, and the reply follows the last user turn.
bool render_llama2(const std::vector<ChatMessage>& m, const std::string& bos,
                   const std::string& eos, std::string* out, std::string* error) {
  size_t first = 0;
  std::string system;
  bool has_system = false;
  if (!m.empty() && m[0].role == "system") {
    system = m[0].content;
    has_system = true;
    first = 1;
  }
  for (size_t i = first; i < m.size(); ++i) {
    const bool want_user = (i - first) % 2 == 0;
    if (m[i].role != (want_user ? "user" : "assistant")) {
      *error = "messages[" + std::to_string(i) + "]: the Llama 2 chat template needs an optional " +
               "system message, then user and assistant alternating (got role '" + m[i].role + "')";
      return false;
    }
    std::string content = m[i].content;
    if (i == first && has_system) {
      content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content;
    }
    if (want_user) {
      *out += bos + "[INST] " + trim(content) + " [/INST]";
    } else {
      *out += " " + trim(content) + " " + eos;
    }
  }
  if (m.size() == first || m.back().role != "user") {
    *error = "messages: the Llama 2 chat template needs the last message from the user";
    return false;
  }
  return true;
}

// Llama 3 instruct: BOS, then each message under its role's header, then the assistant's header.
void render_llama3(const std::vector<ChatMessage>& m, const std::string& bos, std::string* out) {
  *out += bos;
  for (const ChatMessage& msg : m) {
    *out += "<|start_header_id|>" + msg.role + "<|end_header_id|>\n\n" + trim(msg.content) +
            "<|eot_id|>";
  }
  *out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
}

// A ChatML template's default system message (Qwen's "You are a helpful assistant."): the literal
// text after "<|im_start|>system\n" up to "<|im_end|>", where the template writes one; "" if not.
std::string chatml_default_system(const std::string& tmpl) {
  for (const char* open : {"<|im_start|>system\\n", "<|im_start|>system\n"}) {
    const size_t at = tmpl.find(open);
    if (at == std::string::npos) continue;
    const size_t b = at + std::string(open).size();
    const size_t e = tmpl.find("<|im_end|>", b);
    // A quote right after the header means the content is a variable, not a literal default.
    if (e == std::string::npos || b >= tmpl.size() || tmpl[b] == '\'' || tmpl[b] == '"') continue;
    std::string text = tmpl.substr(b, e - b);
    if (text.find_first_of("{}'\"") != std::string::npos) continue;
    std::string unescaped;
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '\\' && i + 1 < text.size() && text[i + 1] == 'n') {
        unescaped += '\n';
        ++i;
      } else {
        unescaped += text[i];
      }
    }
    return unescaped;
  }
  return "";
}

void render_chatml(const std::vector<ChatMessage>& m, const std::string& tmpl, std::string* out) {
  const std::string default_system = chatml_default_system(tmpl);
  if (!default_system.empty() && (m.empty() || m[0].role != "system")) {
    *out += "<|im_start|>system\n" + default_system + "<|im_end|>\n";
  }
  for (const ChatMessage& msg : m) {
    *out += "<|im_start|>" + msg.role + "\n" + msg.content + "<|im_end|>\n";
  }
  *out += "<|im_start|>assistant\n";
}

// Zephyr / TinyLlama chat: "<|role|>\n" + text + EOS + "\n" per message, then "<|assistant|>\n".
bool render_zephyr(const std::vector<ChatMessage>& m, const std::string& eos, std::string* out,
                   std::string* error) {
  for (size_t i = 0; i < m.size(); ++i) {
    const std::string& r = m[i].role;
    if (r != "system" && r != "user" && r != "assistant") {
      *error = "messages[" + std::to_string(i) + "].role: the Zephyr chat template knows system, " +
               "user and assistant, not '" + r + "'";
      return false;
    }
    *out += "<|" + r + "|>\n" + m[i].content + eos + "\n";
  }
  *out += "<|assistant|>\n";
  return true;
}

}  // namespace

ChatFamily chat_family(const std::string& t, std::string* why) {
  if (t.empty()) {
    *why =
        "the model has no chat template (its tokenizer_config.json had no chat_template when it "
        "was converted): use /v1/completions";
    return ChatFamily::kUnknown;
  }
  if (has(t, "<|start_header_id|>") && has(t, "<|end_header_id|>") && has(t, "<|eot_id|>")) {
    return ChatFamily::kLlama3;
  }
  if (has(t, "<|im_start|>") && has(t, "<|im_end|>")) return ChatFamily::kChatML;
  if (has(t, "[INST]") && has(t, "[/INST]") && has(t, "<<SYS>>")) return ChatFamily::kLlama2;
  if (has(t, "<|user|>") && has(t, "<|assistant|>")) return ChatFamily::kZephyr;
  *why =
      "the model's chat template is not one ember-server knows (Llama 2, Llama 3, ChatML, "
      "Zephyr/TinyLlama); render the prompt yourself and use /v1/completions";
  return ChatFamily::kUnknown;
}

const char* chat_family_name(ChatFamily f) {
  switch (f) {
    case ChatFamily::kLlama2:
      return "Llama 2";
    case ChatFamily::kLlama3:
      return "Llama 3";
    case ChatFamily::kChatML:
      return "ChatML";
    case ChatFamily::kZephyr:
      return "Zephyr";
    case ChatFamily::kUnknown:
      break;
  }
  return "unknown";
}

bool render_chat(ChatFamily f, const std::string& tmpl, const std::vector<ChatMessage>& messages,
                 const std::string& bos, const std::string& eos, std::string* out,
                 std::string* error) {
  out->clear();
  if (messages.empty()) {
    *error = "messages: at least one message is needed";
    return false;
  }
  switch (f) {
    case ChatFamily::kLlama2:
      return render_llama2(messages, bos, eos, out, error);
    case ChatFamily::kLlama3:
      render_llama3(messages, bos, out);
      return true;
    case ChatFamily::kChatML:
      render_chatml(messages, tmpl, out);
      return true;
    case ChatFamily::kZephyr:
      return render_zephyr(messages, eos, out, error);
    case ChatFamily::kUnknown:
      break;
  }
  *error = "no chat template to render with";
  return false;
}

}  // namespace ember_app
