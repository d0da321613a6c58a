// Hugging Face config.json (+ generation_config.json) -> ConfigSpec.
//
// Supported: Llama (architectures ["LlamaForCausalLM"] / model_type "llama"). Anything else is
// refused with "unsupported architecture 'X'" rather than converted into a silently wrong model.
// head_dim defaults to hidden_size / num_attention_heads, num_key_value_heads to
// num_attention_heads; rope_scaling {linear, dynamic, llama3, yarn} is parsed into the spec; eos
// ids are the union of config.json's and generation_config.json's eos_token_id (an int or a list).
#ifndef EMBER_CONVERTER_HF_CONFIG_H_
#define EMBER_CONVERTER_HF_CONFIG_H_

#include <nlohmann/json.hpp>
#include <string>

#include "model_ir.h"

namespace ember {
namespace convert {

// `file` names the source in error messages.
ConfigSpec parse_hf_config(const nlohmann::json& config, const std::string& file);

// Reads dir/config.json (required) and dir/generation_config.json (optional).
ConfigSpec load_hf_config(const std::string& dir);

}  // namespace convert
}  // namespace ember

#endif  // EMBER_CONVERTER_HF_CONFIG_H_
