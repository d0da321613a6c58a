#include "hf_config.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "util.h"

namespace ember {
namespace convert {
namespace {

using json = nlohmann::json;

// A required positive integer field that fits uint32 (and some sane bound).
uint32_t get_u32(const json& j, const char* key, const std::string& file, bool required = true,
                 uint32_t fallback = 0) {
  const json* it = find_field(j, key);
  if (it == nullptr) {
    if (required) fail(file, std::string("missing field '") + key + "'");
    return fallback;
  }
  if (!it->is_number_integer() && !it->is_number_unsigned()) {
    fail(file, std::string("field '") + key + "' is not an integer");
  }
  if (it->is_number_integer() && !it->is_number_unsigned()) {
    const int64_t v = it->get<int64_t>();
    if (v < 0)
      fail(file, std::string("field '") + key + "' is negative (" + std::to_string(v) + ")");
  }
  const uint64_t v = it->get<uint64_t>();
  if (v > std::numeric_limits<uint32_t>::max()) {
    fail(file, std::string("field '") + key + "' = " + std::to_string(v) + " is too large");
  }
  return static_cast<uint32_t>(v);
}

float get_float(const json& j, const char* key, const std::string& file, float fallback) {
  const json* it = find_field(j, key);
  if (it == nullptr) return fallback;
  if (!it->is_number()) fail(file, std::string("field '") + key + "' is not a number");
  const double v = it->get<double>();
  if (!std::isfinite(v) || std::fabs(v) > std::numeric_limits<float>::max()) {
    fail(file, std::string("field '") + key + "' is not a finite float");
  }
  return static_cast<float>(v);
}

// rope_scaling: its type, factor and the llama3 frequency bounds.
void read_rope_scaling(const json& rs, const std::string& file, ConfigSpec* spec) {
  ConfigSpec& c = *spec;
  if (!rs.is_object()) fail(file, "'rope_scaling' is not an object");
  std::string type;
  if (rs.contains("rope_type") && rs["rope_type"].is_string()) {
    type = rs["rope_type"].get<std::string>();
  } else if (rs.contains("type") && rs["type"].is_string()) {
    type = rs["type"].get<std::string>();
  } else {
    fail(file, "'rope_scaling' has no 'rope_type'/'type'");
  }
  if (type == "default") {
    c.rope_scaling_type = fb::RopeScalingType::NONE;
  } else if (type == "linear") {
    c.rope_scaling_type = fb::RopeScalingType::LINEAR;
  } else if (type == "dynamic") {
    c.rope_scaling_type = fb::RopeScalingType::DYNAMIC;
  } else if (type == "llama3") {
    c.rope_scaling_type = fb::RopeScalingType::LLAMA3;
  } else if (type == "yarn") {
    c.rope_scaling_type = fb::RopeScalingType::YARN;
  } else {
    fail(file, "unsupported rope_scaling type '" + type + "'");
  }
  const std::string rsf = file + " rope_scaling";
  if (c.rope_scaling_type != fb::RopeScalingType::NONE) {
    if (!rs.contains("factor")) fail(file, "rope_scaling '" + type + "' has no 'factor'");
    c.rope_factor = get_float(rs, "factor", rsf, 1.0f);
    if (!(c.rope_factor > 0.0f)) fail(file, "rope_scaling factor must be positive");
  }
  c.rope_low_freq_factor = get_float(rs, "low_freq_factor", rsf, 1.0f);
  c.rope_high_freq_factor = get_float(rs, "high_freq_factor", rsf, 4.0f);
  c.rope_original_max_position = get_u32(rs, "original_max_position_embeddings", rsf, false, 0);
  if (c.rope_scaling_type == fb::RopeScalingType::LLAMA3) {
    if (!rs.contains("original_max_position_embeddings")) {
      fail(file, "rope_scaling 'llama3' has no 'original_max_position_embeddings'");
    }
    if (!(c.rope_high_freq_factor > c.rope_low_freq_factor)) {
      fail(file, "rope_scaling 'llama3' needs high_freq_factor > low_freq_factor");
    }
  }
}

}  // namespace

ConfigSpec parse_hf_config(const json& j, const std::string& file) {
  if (!j.is_object()) fail(file, "not a JSON object");
  std::string arch, model_type;
  if (auto it = j.find("architectures"); it != j.end() && !it->is_null()) {
    if (!it->is_array() || it->empty() || !(*it)[0].is_string()) {
      fail(file, "'architectures' is not a non-empty list of strings");
    }
    if (it->size() != 1)
      fail(file, "'architectures' lists " + std::to_string(it->size()) + " classes; expected one");
    arch = (*it)[0].get<std::string>();
  }
  if (auto it = j.find("model_type"); it != j.end() && it->is_string())
    model_type = it->get<std::string>();
  if (arch.empty() && model_type.empty())
    fail(file, "neither 'architectures' nor 'model_type' is given");
  if (!arch.empty() && arch != "LlamaForCausalLM") {
    fail(file, "unsupported architecture '" + arch + "' (supported: LlamaForCausalLM)");
  }
  if (!model_type.empty() && model_type != "llama") {
    fail(file, "unsupported architecture '" + model_type + "' (model_type; supported: llama)");
  }

  ConfigSpec c;
  c.architecture = "llama";
  c.hidden_size = get_u32(j, "hidden_size", file);
  c.num_layers = get_u32(j, "num_hidden_layers", file);
  c.num_heads = get_u32(j, "num_attention_heads", file);
  c.num_kv_heads = get_u32(j, "num_key_value_heads", file, false, c.num_heads);
  c.intermediate_size = get_u32(j, "intermediate_size", file);
  c.vocab_size = get_u32(j, "vocab_size", file);
  c.max_context = get_u32(j, "max_position_embeddings", file);
  for (auto [v, name] : {std::pair<uint32_t, const char*>{c.hidden_size, "hidden_size"},
                         {c.num_layers, "num_hidden_layers"},
                         {c.num_heads, "num_attention_heads"},
                         {c.num_kv_heads, "num_key_value_heads"},
                         {c.intermediate_size, "intermediate_size"},
                         {c.vocab_size, "vocab_size"},
                         {c.max_context, "max_position_embeddings"}}) {
    if (v == 0) fail(file, std::string("field '") + name + "' is 0");
  }
  if (c.num_heads % c.num_kv_heads != 0) {
    fail(file, "num_attention_heads " + std::to_string(c.num_heads) +
                   " is not a multiple of num_key_value_heads " + std::to_string(c.num_kv_heads));
  }
  if (j.contains("head_dim") && !j["head_dim"].is_null()) {
    c.head_dim = get_u32(j, "head_dim", file);
    if (c.head_dim == 0) fail(file, "field 'head_dim' is 0");
  } else {
    if (c.hidden_size % c.num_heads != 0) {
      fail(file, "hidden_size " + std::to_string(c.hidden_size) +
                     " is not a multiple of num_attention_heads " + std::to_string(c.num_heads) +
                     " and no head_dim is given");
    }
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.head_dim % 2 != 0)
    fail(file, "head_dim " + std::to_string(c.head_dim) + " is odd (RoPE rotates pairs)");

  c.rope_theta = get_float(j, "rope_theta", file, 10000.0f);
  if (!(c.rope_theta > 0.0f)) fail(file, "rope_theta must be positive");
  c.norm_eps = get_float(j, "rms_norm_eps", file, 1e-6f);
  if (!(c.norm_eps > 0.0f)) fail(file, "rms_norm_eps must be positive");
  c.tie_embeddings = get_bool(j, "tie_word_embeddings", false, file);
  c.attention_bias = get_bool(j, "attention_bias", false, file);
  c.mlp_bias = get_bool(j, "mlp_bias", false, file);

  if (auto it = j.find("hidden_act"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) fail(file, "'hidden_act' is not a string");
    const std::string act = it->get<std::string>();
    if (act == "silu" || act == "swish") {
      c.activation = fb::Activation::SILU;
    } else if (act == "gelu") {
      c.activation = fb::Activation::GELU;
    } else if (act == "gelu_pytorch_tanh" || act == "gelu_new" || act == "gelu_fast") {
      c.activation = fb::Activation::GELU_TANH;
    } else {
      fail(file, "unsupported hidden_act '" + act + "'");
    }
  }
  if (const json* rs = find_field(j, "rope_scaling")) read_rope_scaling(*rs, file, &c);

  if (auto it = j.find("sliding_window"); it != j.end() && !it->is_null()) {
    c.sliding_window = get_u32(j, "sliding_window", file);
  }
  if (auto it = j.find("bos_token_id"); it != j.end() && it->is_number_integer()) {
    const int64_t v = it->get<int64_t>();
    if (v >= 0 && v <= std::numeric_limits<int32_t>::max())
      c.bos_token_id = static_cast<int32_t>(v);
  }
  add_token_ids(j, "eos_token_id", file, &c.eos_token_ids);
  for (int32_t id : c.eos_token_ids) {
    if (static_cast<uint32_t>(id) >= c.vocab_size) {
      fail(file,
           "eos_token_id " + std::to_string(id) + " >= vocab_size " + std::to_string(c.vocab_size));
    }
  }
  return c;
}

ConfigSpec load_hf_config(const std::string& dir) {
  const std::string path = dir + "/config.json";
  if (!file_exists(path)) {
    throw ConvertError(dir + ": no config.json (is this a Hugging Face model directory?)");
  }
  ConfigSpec c = parse_hf_config(read_json(path), path);
  const std::string gen = dir + "/generation_config.json";
  if (file_exists(gen)) {
    const json g = read_json(gen);
    if (!g.is_object()) fail(gen, "not a JSON object");
    add_token_ids(g, "eos_token_id", gen, &c.eos_token_ids);
    for (int32_t id : c.eos_token_ids) {
      if (static_cast<uint32_t>(id) >= c.vocab_size) {
        fail(gen, "eos_token_id " + std::to_string(id) + " >= vocab_size " +
                      std::to_string(c.vocab_size));
      }
    }
  }
  return c;
}

}  // namespace convert
}  // namespace ember
