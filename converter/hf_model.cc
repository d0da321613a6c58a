#include "hf_model.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

#include "hf_config.h"
#include "safetensors.h"
#include "tokenizer_json.h"
#include "util.h"

namespace ember {
namespace convert {
namespace {

// Folds the config's eos ids into the tokenizer's stop set and checks the tokenizer fits the model.
void reconcile_tokenizer(const ConfigSpec& c, TokenizerSpec* t, const std::string& dir) {
  for (int32_t id : c.eos_token_ids) {
    if (std::find(t->eos_ids.begin(), t->eos_ids.end(), id) == t->eos_ids.end())
      t->eos_ids.push_back(id);
  }
  if (t->pieces.size() > c.vocab_size) {
    throw ConvertError(dir + "/tokenizer.json: " + std::to_string(t->pieces.size()) +
                       " tokens but config.json vocab_size is " + std::to_string(c.vocab_size));
  }
}

}  // namespace

bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) &&
        std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t ie = i, je = j;
      while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
      while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
      // Compare digit runs by value: strip leading zeros, then length, then text.
      size_t is = i, js = j;
      while (is + 1 < ie && a[is] == '0') ++is;
      while (js + 1 < je && b[js] == '0') ++js;
      if (ie - is != je - js) return ie - is < je - js;
      const int cmp = a.compare(is, ie - is, b, js, je - js);
      if (cmp != 0) return cmp < 0;
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

std::vector<std::pair<std::string, std::vector<uint64_t>>> expected_llama_tensors(
    const ConfigSpec& c) {
  const uint64_t d = c.hidden_size, ff = c.intermediate_size, v = c.vocab_size;
  const uint64_t q = uint64_t{c.num_heads} * c.head_dim, kv = uint64_t{c.num_kv_heads} * c.head_dim;
  std::vector<std::pair<std::string, std::vector<uint64_t>>> t;
  t.push_back({"model.embed_tokens.weight", {v, d}});
  for (uint32_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    t.push_back({p + "input_layernorm.weight", {d}});
    t.push_back({p + "self_attn.q_proj.weight", {q, d}});
    if (c.attention_bias) t.push_back({p + "self_attn.q_proj.bias", {q}});
    t.push_back({p + "self_attn.k_proj.weight", {kv, d}});
    if (c.attention_bias) t.push_back({p + "self_attn.k_proj.bias", {kv}});
    t.push_back({p + "self_attn.v_proj.weight", {kv, d}});
    if (c.attention_bias) t.push_back({p + "self_attn.v_proj.bias", {kv}});
    t.push_back({p + "self_attn.o_proj.weight", {d, q}});
    if (c.attention_bias) t.push_back({p + "self_attn.o_proj.bias", {d}});
    t.push_back({p + "post_attention_layernorm.weight", {d}});
    t.push_back({p + "mlp.gate_proj.weight", {ff, d}});
    if (c.mlp_bias) t.push_back({p + "mlp.gate_proj.bias", {ff}});
    t.push_back({p + "mlp.up_proj.weight", {ff, d}});
    if (c.mlp_bias) t.push_back({p + "mlp.up_proj.bias", {ff}});
    t.push_back({p + "mlp.down_proj.weight", {d, ff}});
    if (c.mlp_bias) t.push_back({p + "mlp.down_proj.bias", {d}});
  }
  t.push_back({"model.norm.weight", {d}});
  if (!c.tie_embeddings) t.push_back({"lm_head.weight", {v, d}});
  return t;
}

void validate_llama_tensors(const ConfigSpec& c, std::map<std::string, FloatTensor>* tensors,
                            const std::string& source) {
  // Buffers that older checkpoints saved but that hold no learned weights.
  for (auto it = tensors->begin(); it != tensors->end();) {
    if (ends_with(it->first, ".rotary_emb.inv_freq")) {
      it = tensors->erase(it);
    } else {
      ++it;
    }
  }
  // Some tied checkpoints store lm_head.weight too; accept it only when it is the embedding.
  if (c.tie_embeddings) {
    auto lm = tensors->find("lm_head.weight");
    auto emb = tensors->find("model.embed_tokens.weight");
    if (lm != tensors->end()) {
      if (emb == tensors->end() || lm->second.shape != emb->second.shape ||
          lm->second.data != emb->second.data) {
        throw ConvertError(
            source +
            ": config.json has tie_word_embeddings true but lm_head.weight differs from "
            "model.embed_tokens.weight");
      }
      tensors->erase(lm);
    }
  }

  const auto expected = expected_llama_tensors(c);
  std::set<std::string> expected_names;
  std::vector<std::string> missing;
  for (const auto& [name, shape] : expected) {
    expected_names.insert(name);
    auto it = tensors->find(name);
    if (it == tensors->end()) {
      missing.push_back(name);
      continue;
    }
    if (it->second.shape != shape) {
      throw ConvertError(source + ": tensor '" + name + "' has shape " +
                         shape_str(it->second.shape) + " but config.json implies " +
                         shape_str(shape));
    }
  }
  std::vector<std::string> unexpected;
  for (const auto& kv : *tensors) {
    if (!expected_names.count(kv.first)) unexpected.push_back(kv.first);
  }
  auto list = [](const std::vector<std::string>& names) {
    std::string s;
    for (size_t i = 0; i < names.size() && i < 8; ++i)
      s += (i ? ", " : "") + std::string("'") + names[i] + "'";
    if (names.size() > 8) s += ", ... (" + std::to_string(names.size()) + " in all)";
    return s;
  };
  if (!missing.empty()) throw ConvertError(source + ": missing tensor " + list(missing));
  if (!unexpected.empty()) {
    throw ConvertError(source + ": unexpected tensor " + list(unexpected) +
                       " (not part of a Llama model with this config.json)");
  }
  for (const auto& kv : *tensors) {
    for (float x : kv.second.data) {
      if (!std::isfinite(x))
        throw ConvertError(source + ": tensor '" + kv.first + "' holds a NaN or infinity");
    }
  }
}

ModelIR load_hf_model(const std::string& dir, bool load_tokenizer) {
  ModelIR ir;
  ir.source = dir;
  ir.config = load_hf_config(dir);
  ir.has_config = true;
  ir.tensors = load_safetensors_dir(dir, &ir.source_dtype);
  validate_llama_tensors(ir.config, &ir.tensors, dir);
  if (load_tokenizer) {
    if (!file_exists(dir + "/tokenizer.json")) {
      throw ConvertError(dir + ": no tokenizer.json (the model file carries its tokenizer)");
    }
    ir.tokenizer = load_hf_tokenizer(dir);
    ir.has_tokenizer = true;
    reconcile_tokenizer(ir.config, &ir.tokenizer, dir);
  }
  return ir;
}

ModelIR load_hf_tokenizer_only(const std::string& dir) {
  if (!file_exists(dir + "/tokenizer.json")) throw ConvertError(dir + ": no tokenizer.json");
  ModelIR ir;
  ir.source = dir;
  ir.has_config = false;
  ir.tokenizer = load_hf_tokenizer(dir);
  ir.has_tokenizer = true;
  return ir;
}

}  // namespace convert
}  // namespace ember
