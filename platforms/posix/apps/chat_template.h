// Chat messages -> one prompt text, as the model's own chat template (tokenizer_config.json's
// Jinja `chat_template`, kept in the .ember file) would render them with add_generation_prompt.
// Rather than a Jinja engine, the template is recognised as one of the common families by the
// markers it writes, and that family's format is produced here exactly as its reference template
// does; a template of any other shape is refused by name, so a chat is never sent in a format the
// model was not trained on.
#ifndef EMBER_APPS_CHAT_TEMPLATE_H_
#define EMBER_APPS_CHAT_TEMPLATE_H_

#include <string>
#include <vector>

namespace ember_app {

enum class ChatFamily {
  kUnknown,  // no template, or one this file does not recognise
  kLlama2,   // "<s>[INST] <<SYS>>\n...\n<</SYS>>\n\nuser [/INST] answer </s>" (Llama 2 chat)
  kLlama3,   // "<|start_header_id|>role<|end_header_id|>\n\ntext<|eot_id|>" (Llama 3 instruct)
  kChatML,   // "<|im_start|>role\ntext<|im_end|>\n" (ChatML: Qwen, SmolLM, many fine-tunes)
  kZephyr,   // "<|role|>\ntext</s>\n" (Zephyr, TinyLlama chat)
};

// The family `tmpl` belongs to; kUnknown with *why (a sentence for an HTTP 400) otherwise.
ChatFamily chat_family(const std::string& tmpl, std::string* why);

// "Llama 2", "Llama 3", "ChatML", "Zephyr" ("unknown").
const char* chat_family_name(ChatFamily f);

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" (Llama 3 and ChatML take any role name)
  std::string content;
};

// The prompt text for `messages` followed by the assistant's turn, with `bos` / `eos` the
// tokenizer's BOS / EOS token text where the family writes them (tokenize the result with special
// tokens parsed). `tmpl` is the template itself, read for what a family leaves to it (ChatML's
// default system message). False with *error when the messages break the family's rules (Llama 2:
// an optional system message, then user and assistant alternating, the last from the user).
bool render_chat(ChatFamily f, const std::string& tmpl, const std::vector<ChatMessage>& messages,
                 const std::string& bos, const std::string& eos, std::string* out,
                 std::string* error);

}  // namespace ember_app

#endif  // EMBER_APPS_CHAT_TEMPLATE_H_
