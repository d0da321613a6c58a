// PEFT LoRA merge. Where PEFT's semantics decide a result, they are followed:
//  - target_modules: a string is a regular expression that must match the whole module name. A
//    list matches a module whose name equals an entry or ends with "." + entry; only the list form
//    is then filtered by layers_to_transform / layers_pattern (as in PEFT's
//    check_target_module_exists). The string "all-linear" means every Linear but the output head.
//  - rank_pattern / alpha_pattern: the first key, in file order, for which the module name matches
//    the regular expression (.*\.)?(key) gives the module its r / alpha.
//  - fan_in_fan_out describes how the *base* weight is stored (Conv1D, (in, out)). lora_A and
//    lora_B are always nn.Linear weights, [r, in] and [out, r], and the IR keeps every weight as
//    (out, in), so the update is B·A whatever the flag says (PEFT itself resets it to false on
//    nn.Linear targets).
//  - modules_to_save: a full replacement tensor, either as PEFT saves it (<module>.weight, with the
//    adapter name and "modules_to_save." stripped) or with the modules_to_save[.<adapter>] segment
//    kept.
// The update is summed in double and rounded once to float32 per weight, as the reference merge
// in ../shared/models/stories260K does.
#include "lora.h"

#include <openssl/evp.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "safetensors.h"
#include "util.h"

namespace ember {
namespace convert {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

std::string adapter_name_of(const std::string& dir) {
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  std::string name = fs::path(d).filename().string();
  if (name.empty() || name == "." || name == "..") {
    std::error_code ec;
    fs::path canon = fs::weakly_canonical(fs::path(d), ec);
    if (!ec) name = canon.filename().string();
  }
  return name.empty() ? d : name;
}

std::string sha256_hex(const std::string& path) {
  const std::string bytes = read_file(path);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr) != 1 || len != 32)
    fail(path, "sha256 failed (OpenSSL EVP_Digest)");
  return hex_string(digest, len);
}

// PEFT list semantics: equal, or ends with "." + entry.
bool name_matches_entry(const std::string& module, const std::string& entry) {
  return module == entry || ends_with(module, "." + entry);
}

std::string last_segment(const std::string& module) {
  size_t dot = module.rfind('.');
  return dot == std::string::npos ? module : module.substr(dot + 1);
}

// ------------------------------------------------------------------------------------ config

struct StringsOrRegex {
  bool present = false, is_regex = false;
  std::string regex_text;
  std::regex regex;
  std::vector<std::string> list;
};

struct AdapterConfig {
  uint32_t r = 0;
  double alpha = 0;
  bool use_rslora = false, fan_in_fan_out = false;
  StringsOrRegex target, exclude;
  bool use_layers = false;
  std::vector<long long> layers;  // layers_to_transform
  std::vector<std::string> layers_pattern;
  std::vector<std::pair<std::string, uint32_t>> rank_pattern;  // file order: first match wins
  std::vector<std::pair<std::string, double>> alpha_pattern;
  std::vector<std::string> modules_to_save;
};

std::regex compile_regex(const std::string& file, const std::string& field,
                         const std::string& text) {
  try {
    return std::regex(text, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    fail(file, field + " '" + text + "' is not a valid regular expression (" + e.what() + ")");
  }
}

uint32_t get_rank(const std::string& file, const ojson& v, const std::string& what) {
  if (!v.is_number_integer() || v.get<long long>() <= 0 || v.get<long long>() > (1 << 20))
    fail(file, what + " must be a positive integer (got " + v.dump() + ")");
  return static_cast<uint32_t>(v.get<long long>());
}

double get_alpha(const std::string& file, const ojson& v, const std::string& what) {
  if (!v.is_number() || !std::isfinite(v.get<double>()))
    fail(file, what + " must be a finite number (got " + v.dump() + ")");
  return v.get<double>();
}

StringsOrRegex get_strings_or_regex(const std::string& file, const ojson& j, const char* key) {
  StringsOrRegex out;
  const ojson* field = find_field(j, key);
  if (field == nullptr) return out;
  const ojson& v = *field;
  out.present = true;
  if (v.is_string()) {
    out.is_regex = true;
    out.regex_text = v.get<std::string>();
    out.regex = compile_regex(file, key, out.regex_text);
  } else if (v.is_array()) {
    for (const auto& e : v) {
      if (!e.is_string() || e.get<std::string>().empty())
        fail(file,
             std::string("'") + key + "' entries must be non-empty strings (got " + e.dump() + ")");
      out.list.push_back(e.get<std::string>());
    }
  } else {
    fail(file, std::string("'") + key + "' must be a string (regex) or a list of strings");
  }
  return out;
}

// Refuses, by name, every adapter kind whose merge is not W + s·B·A.
void refuse_other_adapter_kinds(const std::string& file, const ojson& j) {
  if (!find_field(j, "peft_type")) fail(file, "'peft_type' is missing (expected \"LORA\")");
  if (!j["peft_type"].is_string()) fail(file, "'peft_type' must be a string");
  const std::string peft_type = j["peft_type"].get<std::string>();
  if (peft_type != "LORA")
    fail(file, "peft_type '" + peft_type +
                   "' is not supported: Ember merges only plain LoRA adapters (peft_type LORA)");
  if (get_bool(j, "use_dora", false, file))
    fail(file,
         "DoRA adapters (use_dora: true) are not supported: the magnitude vector is not a "
         "W + B·A update");
  if (get_bool(j, "use_qalora", false, file))
    fail(file, "QALoRA adapters (use_qalora: true) are not supported");
  if (get_bool(j, "lora_bias", false, file))
    fail(file, "lora_bias: true is not supported (the base model has no bias terms)");
  for (const char* key :
       {"layer_replication", "alora_invocation_tokens", "trainable_token_indices"}) {
    if (find_field(j, key) && !(j[key].is_array() && j[key].empty()) &&
        !(j[key].is_object() && j[key].empty()))
      fail(file, std::string("'") + key + "' is set: this LoRA variant is not supported");
  }
  if (find_field(j, "target_parameters") &&
      !(j["target_parameters"].is_array() && j["target_parameters"].empty()))
    fail(file, "'target_parameters' is set: LoRA on raw parameters is not supported");
}

// layers_to_transform (an index or a list) and layers_pattern (a name or a list of names).
void read_layer_filter(const std::string& file, const ojson& j, AdapterConfig* c) {
  if (const ojson* v = find_field(j, "layers_to_transform")) {
    if (v->is_number_integer()) {
      c->layers.push_back(v->get<long long>());
    } else if (v->is_array()) {
      for (const auto& e : *v) {
        if (!e.is_number_integer()) fail(file, "'layers_to_transform' entries must be integers");
        c->layers.push_back(e.get<long long>());
      }
    } else {
      fail(file, "'layers_to_transform' must be an integer or a list of integers");
    }
    c->use_layers = v->is_number_integer() || !c->layers.empty();
  }
  if (const ojson* v = find_field(j, "layers_pattern")) {
    if (v->is_string()) {
      if (!v->get<std::string>().empty()) c->layers_pattern.push_back(v->get<std::string>());
    } else if (v->is_array()) {
      for (const auto& e : *v) {
        if (!e.is_string()) fail(file, "'layers_pattern' entries must be strings");
        c->layers_pattern.push_back(e.get<std::string>());
      }
    } else {
      fail(file, "'layers_pattern' must be a string or a list of strings");
    }
  }
}

// rank_pattern / alpha_pattern: {regular expression: r or alpha}, kept in file order.
void read_patterns(const std::string& file, const ojson& j, AdapterConfig* c) {
  if (const ojson* v = find_field(j, "rank_pattern")) {
    if (!v->is_object()) fail(file, "'rank_pattern' must be an object");
    for (auto it = v->begin(); it != v->end(); ++it) {
      compile_regex(file, "rank_pattern key", it.key());
      c->rank_pattern.emplace_back(it.key(),
                                   get_rank(file, it.value(), "rank_pattern['" + it.key() + "']"));
    }
  }
  if (const ojson* v = find_field(j, "alpha_pattern")) {
    if (!v->is_object()) fail(file, "'alpha_pattern' must be an object");
    for (auto it = v->begin(); it != v->end(); ++it) {
      compile_regex(file, "alpha_pattern key", it.key());
      c->alpha_pattern.emplace_back(
          it.key(), get_alpha(file, it.value(), "alpha_pattern['" + it.key() + "']"));
    }
  }
}

AdapterConfig read_config(const std::string& file) {
  const ojson j = read_json<ojson>(file);
  if (!j.is_object()) fail(file, "must hold a JSON object");
  refuse_other_adapter_kinds(file, j);

  AdapterConfig c;
  try {
    if (!find_field(j, "r")) fail(file, "'r' is missing");
    c.r = get_rank(file, j["r"], "'r'");
    if (!find_field(j, "lora_alpha")) fail(file, "'lora_alpha' is missing");
    c.alpha = get_alpha(file, j["lora_alpha"], "'lora_alpha'");
    c.use_rslora = get_bool(j, "use_rslora", false, file);
    c.fan_in_fan_out = get_bool(j, "fan_in_fan_out", false, file);
    c.target = get_strings_or_regex(file, j, "target_modules");
    if (!c.target.present || (!c.target.is_regex && c.target.list.empty()))
      fail(file, "'target_modules' is missing or empty");
    c.exclude = get_strings_or_regex(file, j, "exclude_modules");
    read_layer_filter(file, j, &c);
    if (c.use_layers && c.target.is_regex)
      fail(file,
           "'layers_to_transform' cannot be used with a string 'target_modules' (PEFT refuses it "
           "too)");
    // PEFT's shorthand: the string "all-linear" (any case) is not a regex.
    std::string lower = c.target.regex_text;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (c.target.is_regex && lower == "all-linear") {
      c.target.is_regex = false;
      c.target.list = {"all-linear"};
    }
    if (!c.layers_pattern.empty() && !c.use_layers)
      fail(file, "'layers_pattern' is set without 'layers_to_transform'");
    read_patterns(file, j, &c);
    if (const ojson* v = find_field(j, "modules_to_save")) {
      if (!v->is_array()) fail(file, "'modules_to_save' must be a list of strings");
      for (const auto& e : *v) {
        if (!e.is_string() || e.get<std::string>().empty())
          fail(file, "'modules_to_save' entries must be non-empty strings");
        c.modules_to_save.push_back(e.get<std::string>());
      }
    }
  } catch (const ojson::exception& e) {
    fail(file, std::string("unexpected JSON value (") + e.what() + ")");
  }
  return c;
}

// rank_pattern / alpha_pattern lookup (peft.utils.other.get_pattern_key).
template <typename T>
const std::pair<std::string, T>* find_pattern(
    const std::vector<std::pair<std::string, T>>& patterns, const std::string& module) {
  for (const auto& p : patterns) {
    if (std::regex_match(module, std::regex("(.*\\.)?(" + p.first + ")"))) return &p;
  }
  return nullptr;
}

// The layer index PEFT reads from a module name, or -1.
long long layer_index(const AdapterConfig& c, const std::string& module) {
  std::smatch m;
  if (c.layers_pattern.empty()) {
    static const std::regex re(R"(.*\.[^.]*\.(\d+)\..*)");
    if (std::regex_match(module, m, re)) return std::stoll(m[1].str());
    return -1;
  }
  for (const std::string& pattern : c.layers_pattern) {
    if (std::regex_match(module, m, std::regex(".*\\." + pattern + "\\.(\\d+)\\..*")))
      return std::stoll(m[1].str());
  }
  return -1;
}

bool excluded(const AdapterConfig& c, const std::string& module) {
  if (!c.exclude.present) return false;
  if (c.exclude.is_regex) return std::regex_match(module, c.exclude.regex);
  for (const std::string& e : c.exclude.list)
    if (name_matches_entry(module, e)) return true;
  return false;
}

// peft check_target_module_exists, for one module name of the base model.
bool is_target(const AdapterConfig& c, const std::vector<std::string>& target_list,
               const std::string& module) {
  if (excluded(c, module)) return false;
  if (c.target.is_regex) return std::regex_match(module, c.target.regex);
  for (const std::string& t : target_list)
    if (module == t) return true;
  bool found = false;
  for (const std::string& t : target_list)
    if (ends_with(module, "." + t)) found = true;
  if (found && c.use_layers) {
    long long idx = layer_index(c, module);
    found = false;
    for (long long l : c.layers)
      if (idx >= 0 && idx == l) found = true;
  }
  return found;
}

// ----------------------------------------------------------------------------------- tensors

struct LoraPair {
  const FloatTensor* a = nullptr;
  const FloatTensor* b = nullptr;
  std::string a_key, b_key;
  bool embedding = false;  // lora_embedding_A / _B: delta = (B·A)^T
};

struct Replacement {
  std::string key;
  const FloatTensor* tensor = nullptr;
};

// Splits an adapter key into (module, kind, rest) where kind is one of the PEFT segments.
struct ParsedKey {
  std::string module, kind;
  std::vector<std::string> rest;  // segments after kind
};

std::vector<std::string> split_dots(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    out.push_back(s.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return out;
}

std::string join_dots(const std::vector<std::string>& parts, size_t begin, size_t end) {
  std::string s;
  for (size_t i = begin; i < end; ++i) s += (i > begin ? "." : "") + parts[i];
  return s;
}

ParsedKey parse_key(const std::string& key) {
  static const std::string kPrefix = "base_model.model.";
  std::string k = key.compare(0, kPrefix.size(), kPrefix) == 0 ? key.substr(kPrefix.size()) : key;
  std::vector<std::string> parts = split_dots(k);
  static const std::set<std::string> kinds = {"lora_A",           "lora_B",
                                              "lora_embedding_A", "lora_embedding_B",
                                              "modules_to_save",  "lora_magnitude_vector"};
  ParsedKey p;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (kinds.count(parts[i])) {
      p.module = join_dots(parts, 0, i);
      p.kind = parts[i];
      p.rest.assign(parts.begin() + static_cast<long>(i) + 1, parts.end());
      return p;
    }
  }
  // No PEFT segment: PEFT's saved form of a modules_to_save tensor (<module>.weight).
  p.kind = "plain";
  p.module = join_dots(parts, 0, parts.size() - 1);
  p.rest.push_back(parts.back());
  return p;
}

void check_finite(const std::string& file, const std::string& key, const FloatTensor& t) {
  for (size_t i = 0; i < t.data.size(); ++i) {
    if (!std::isfinite(t.data[i])) {
      std::ostringstream msg;
      msg << "tensor '" << key << "' holds " << (std::isnan(t.data[i]) ? "NaN" : "Inf")
          << " at flat index " << i;
      fail(file, msg.str());
    }
  }
}

double frobenius(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

// One LoRA pair, checked against the model and the config: what merge_pair needs.
struct PlannedMerge {
  std::string module, tensor_name;
  LoraPair pair;
  uint32_t r = 0;
  double alpha = 0, factor = 0;  // factor = user scale · alpha / r (or / sqrt(r))
};

// An adapter directory: its name, its two files and what they hold.
struct Adapter {
  std::string name, config_file, weights_file;
  AdapterConfig config;
  std::map<std::string, FloatTensor> tensors;
};

// Module name -> the name of its weight in ir.tensors, for every "<module>.weight" of the model.
using Modules = std::map<std::string, std::string>;

// The adapter's tensors: LoRA pairs by module, and full replacements (modules_to_save) by module.
struct SortedTensors {
  std::map<std::string, LoraPair> pairs;
  std::map<std::string, Replacement> replacements;
};

Adapter read_adapter(const LoraRequest& req) {
  const std::string& dir = req.dir;
  Adapter ad;
  ad.name = adapter_name_of(dir);
  ad.config_file = (fs::path(dir) / "adapter_config.json").string();
  ad.weights_file = (fs::path(dir) / "adapter_model.safetensors").string();
  if (!fs::is_directory(dir)) fail(dir, "LoRA adapter directory does not exist");
  if (!std::isfinite(req.scale)) fail(dir, "LoRA scale is not a finite number");
  if (!file_exists(ad.config_file))
    fail(ad.config_file, "missing (a PEFT adapter directory holds adapter_config.json)");
  ad.config = read_config(ad.config_file);
  if (!file_exists(ad.weights_file)) {
    const std::string bin = (fs::path(dir) / "adapter_model.bin").string();
    if (file_exists(bin))
      fail(
          bin,
          "PyTorch pickle adapters are not read (unpickling runs arbitrary code); convert it "
          "to adapter_model.safetensors (e.g. PEFT save_pretrained(..., safe_serialization=True))");
    fail(ad.weights_file, "missing");
  }
  ad.tensors = read_safetensors(ad.weights_file);
  return ad;
}

Modules base_modules(const ModelIR& ir) {
  Modules modules;
  for (const auto& kv : ir.tensors)
    if (ends_with(kv.first, ".weight")) modules[kv.first.substr(0, kv.first.size() - 7)] = kv.first;
  return modules;
}

// The modules target_modules selects (after exclude_modules and the layer filter); each of its
// entries must match some module of the model.
std::set<std::string> select_targets(const Adapter& ad, const ModelIR& ir, const Modules& modules) {
  const AdapterConfig& c = ad.config;
  auto is_output_head = [&](const std::string& m) { return m == "lm_head"; };
  auto is_embedding = [&](const std::string& m) { return last_segment(m) == "embed_tokens"; };
  // "all-linear" expands to every Linear except the output head (PEFT).
  std::vector<std::string> target_list = c.target.list;
  if (!c.target.is_regex && target_list.size() == 1 && target_list[0] == "all-linear") {
    std::set<std::string> names;
    for (const auto& m : modules)
      if (ir.tensors.at(m.second).shape.size() == 2 && !is_embedding(m.first) &&
          !is_output_head(m.first))
        names.insert(last_segment(m.first));
    target_list.assign(names.begin(), names.end());
  }
  // Each target must match something in the model (before the layer filter).
  if (c.target.is_regex) {
    bool any = false;
    for (const auto& m : modules) any = any || std::regex_match(m.first, c.target.regex);
    if (!any)
      fail(ad.config_file,
           "target_modules regex '" + c.target.regex_text + "' matches no module of the model");
  } else {
    for (const std::string& t : target_list) {
      bool any = false;
      for (const auto& m : modules) any = any || name_matches_entry(m.first, t);
      if (!any)
        fail(ad.config_file, "target_modules entry '" + t + "' matches no module of the model");
    }
  }
  std::set<std::string> targets;
  for (const auto& m : modules)
    if (is_target(c, target_list, m.first)) targets.insert(m.first);
  if (targets.empty())
    fail(ad.config_file, "target_modules / layers_to_transform select no module of the model");
  return targets;
}

// A lora_A / lora_B / lora_embedding_A / lora_embedding_B tensor, filed under its module.
void add_lora_tensor(const ParsedKey& p, const std::string& key, const FloatTensor& t,
                     const std::string& weights_file, std::map<std::string, LoraPair>* pairs) {
  const std::string what = "tensor '" + key + "'";
  // Forms: <kind>.weight, <kind>.<adapter>.weight; embeddings also <kind>, <kind>.<adapter>.
  const bool emb = p.kind.compare(0, 14, "lora_embedding") == 0;
  const size_t n = p.rest.size();
  const bool ok = (n >= 1 && n <= 2 && p.rest.back() == "weight") || (emb && n <= 1);
  if (!ok)
    fail(weights_file,
         what + ": unexpected key form (expected ..." + p.kind + "[.<adapter>].weight)");
  LoraPair& pair = (*pairs)[p.module];
  const bool is_a = p.kind.back() == 'A';
  if ((is_a ? pair.a : pair.b) != nullptr)
    fail(weights_file, what + ": a second " + p.kind + " for module '" + p.module + "' (already '" +
                           (is_a ? pair.a_key : pair.b_key) +
                           "'); one adapter per file is supported");
  if (pair.a || pair.b) {
    if (pair.embedding != emb)
      fail(weights_file,
           what + ": mixes lora_embedding_* and lora_* tensors for module '" + p.module + "'");
  }
  pair.embedding = emb;
  (is_a ? pair.a : pair.b) = &t;
  (is_a ? pair.a_key : pair.b_key) = key;
}

// A replacement (modules_to_save): <module>.modules_to_save[.<adapter>].weight or <module>.weight,
// for a module listed in modules_to_save.
void add_replacement(const ParsedKey& p, const std::string& key, const FloatTensor& t,
                     const Adapter& ad, std::map<std::string, Replacement>* replacements) {
  const std::string what = "tensor '" + key + "'";
  if (p.kind == "modules_to_save") {
    const size_t n = p.rest.size();
    if (!(n >= 1 && n <= 2 && p.rest.back() == "weight"))
      fail(ad.weights_file,
           what + ": unexpected key form (expected ...modules_to_save[.<adapter>].weight)");
  } else if (p.rest.back() != "weight") {
    fail(ad.weights_file, what + ": not a LoRA tensor (no lora_A / lora_B segment) nor a weight");
  }
  bool listed = false;
  for (const std::string& m : ad.config.modules_to_save)
    listed = listed || name_matches_entry(p.module, m);
  if (!listed)
    fail(ad.weights_file, what + ": not a LoRA tensor, and module '" + p.module +
                              "' is not listed in modules_to_save of adapter_config.json");
  if (replacements->count(p.module))
    fail(ad.weights_file, what + ": a second replacement for module '" + p.module + "' (already '" +
                              (*replacements)[p.module].key + "')");
  (*replacements)[p.module] = Replacement{key, &t};
}

// Every tensor of the adapter file is a LoRA tensor or a replacement; anything else is refused.
SortedTensors sort_tensors(const Adapter& ad) {
  SortedTensors sorted;
  for (const auto& kv : ad.tensors) {
    const std::string& key = kv.first;
    const ParsedKey p = parse_key(key);
    const std::string what = "tensor '" + key + "'";
    if (p.kind == "lora_magnitude_vector")
      fail(ad.weights_file, what + " is a DoRA magnitude vector: DoRA adapters are not supported");
    if (!p.rest.empty() && p.rest.back() == "bias")
      fail(ad.weights_file, what +
                                " is a bias: LoRA / modules_to_save biases are not supported (the "
                                "base model has no bias terms)");
    if (p.module.empty()) fail(ad.weights_file, what + ": no module name in the key");
    check_finite(ad.weights_file, key, kv.second);
    if (p.kind == "lora_A" || p.kind == "lora_B" || p.kind == "lora_embedding_A" ||
        p.kind == "lora_embedding_B") {
      add_lora_tensor(p, key, kv.second, ad.weights_file, &sorted.pairs);
    } else {
      add_replacement(p, key, kv.second, ad, &sorted.replacements);
    }
  }
  return sorted;
}

// One LoRA pair checked against the config and its base weight; its r, alpha and merge factor.
PlannedMerge plan_merge(const Adapter& ad, float scale, const ModelIR& ir, const Modules& modules,
                        const std::set<std::string>& targets, const std::string& module,
                        const LoraPair& pair) {
  const std::string& weights_file = ad.weights_file;
  const AdapterConfig& c = ad.config;
  const std::string& any_key = pair.a ? pair.a_key : pair.b_key;
  if (!pair.a)
    fail(weights_file,
         "tensor '" + pair.b_key + "' has no lora_A partner for module '" + module + "'");
  if (!pair.b)
    fail(weights_file,
         "tensor '" + pair.a_key + "' has no lora_B partner for module '" + module + "'");
  auto mod = modules.find(module);
  if (mod == modules.end())
    fail(weights_file,
         "tensor '" + any_key + "': the base model has no tensor '" + module + ".weight'");
  if (!targets.count(module))
    fail(weights_file, "tensor '" + any_key + "': module '" + module +
                           "' is not selected by target_modules / layers_to_transform / "
                           "exclude_modules of adapter_config.json");
  const FloatTensor& w = ir.tensors.at(mod->second);
  const FloatTensor& a = *pair.a;
  const FloatTensor& b = *pair.b;
  if (w.shape.size() != 2)
    fail(weights_file, "tensor '" + any_key + "': base weight '" + mod->second + "' has shape " +
                           shape_str(w.shape) + ", not a 2-D Linear / Embedding weight");
  if (a.shape.size() != 2)
    fail(weights_file,
         "tensor '" + pair.a_key + "' has shape " + shape_str(a.shape) + ", expected 2-D [r, in]");
  if (b.shape.size() != 2)
    fail(weights_file,
         "tensor '" + pair.b_key + "' has shape " + shape_str(b.shape) + ", expected 2-D [out, r]");
  if (a.shape[0] != b.shape[1])
    fail(weights_file, "tensors '" + pair.a_key + "' " + shape_str(a.shape) + " and '" +
                           pair.b_key + "' " + shape_str(b.shape) + " disagree on the rank");
  PlannedMerge pm;
  pm.module = module;
  pm.tensor_name = mod->second;
  pm.pair = pair;
  pm.r = c.r;
  std::string r_from = "'r'";
  if (const auto* rp = find_pattern(c.rank_pattern, module)) {
    pm.r = rp->second;
    r_from = "rank_pattern['" + rp->first + "']";
  }
  pm.alpha = c.alpha;
  if (const auto* ap = find_pattern(c.alpha_pattern, module)) pm.alpha = ap->second;
  if (a.shape[0] != pm.r)
    fail(weights_file, "tensor '" + pair.a_key + "' has rank " + std::to_string(a.shape[0]) +
                           " but " + r_from + " in adapter_config.json is " + std::to_string(pm.r));
  // Linear: W (out, in), A [r, in], B [out, r].
  // Embedding: W (vocab, dim), A [r, vocab], B [dim, r].
  const uint64_t w_in = pair.embedding ? w.shape[0] : w.shape[1];
  const uint64_t w_out = pair.embedding ? w.shape[1] : w.shape[0];
  if (a.shape[1] != w_in)
    fail(weights_file, "tensor '" + pair.a_key + "' has shape " + shape_str(a.shape) +
                           " but base weight '" + mod->second + "' " + shape_str(w.shape) +
                           " needs [" + std::to_string(pm.r) + ", " + std::to_string(w_in) + "]");
  if (b.shape[0] != w_out)
    fail(weights_file, "tensor '" + pair.b_key + "' has shape " + shape_str(b.shape) +
                           " but base weight '" + mod->second + "' " + shape_str(w.shape) +
                           " needs [" + std::to_string(w_out) + ", " + std::to_string(pm.r) + "]");
  const double scaling =
      c.use_rslora ? pm.alpha / std::sqrt(static_cast<double>(pm.r)) : pm.alpha / pm.r;
  pm.factor = static_cast<double>(scale) * scaling;
  return pm;
}

// Every LoRA pair planned, and every selected module has one.
std::vector<PlannedMerge> plan_merges(const Adapter& ad, float scale, const ModelIR& ir,
                                      const Modules& modules, const std::set<std::string>& targets,
                                      const SortedTensors& sorted) {
  std::vector<PlannedMerge> plan;
  for (const auto& kv : sorted.pairs)
    plan.push_back(plan_merge(ad, scale, ir, modules, targets, kv.first, kv.second));
  for (const std::string& t : targets) {
    if (!sorted.pairs.count(t))
      fail(ad.weights_file, "adapter_config.json targets module '" + t +
                                "' but the file has no lora_A / lora_B tensors for it");
  }
  return plan;
}

// Every modules_to_save entry has a tensor, and each replacement fits the tensor it replaces (a
// tied model's lm_head replaces the embedding it shares).
void check_replacements(const Adapter& ad, const ModelIR& ir, const Modules& modules,
                        const SortedTensors& sorted) {
  const std::string& weights_file = ad.weights_file;
  for (const std::string& m : ad.config.modules_to_save) {
    bool any = false;
    for (const auto& kv : sorted.replacements) any = any || name_matches_entry(kv.first, m);
    if (!any)
      fail(weights_file,
           "modules_to_save entry '" + m + "' of adapter_config.json has no tensor in the file");
  }
  for (const auto& kv : sorted.replacements) {
    if (sorted.pairs.count(kv.first))
      fail(weights_file, "tensor '" + kv.second.key + "': module '" + kv.first +
                             "' is both a LoRA target and in modules_to_save");
    const FloatTensor& t = *kv.second.tensor;
    auto mod = modules.find(kv.first);
    const FloatTensor* base = nullptr;
    if (mod != modules.end()) {
      base = &ir.tensors.at(mod->second);
    } else if (kv.first == "lm_head" && ir.config.tie_embeddings &&
               ir.tensors.count("model.embed_tokens.weight")) {
      base = &ir.tensors.at("model.embed_tokens.weight");  // the tied head
    } else {
      fail(weights_file, "tensor '" + kv.second.key + "': the base model has no tensor '" +
                             kv.first + ".weight'");
    }
    if (t.shape != base->shape)
      fail(weights_file, "tensor '" + kv.second.key + "' has shape " + shape_str(t.shape) +
                             " but the base tensor it replaces has shape " +
                             shape_str(base->shape));
  }
}

// |dW| / |W| for the log ("%.4e"; |dW| alone where W is zero).
std::string relative_change(double d2, double w_norm) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4e", w_norm > 0 ? std::sqrt(d2) / w_norm : std::sqrt(d2));
  return buf;
}

// W += factor · B·A (embedding: (B·A)^T), one output row at a time, summed in double and rounded
// once to float32.
void merge_pair(const PlannedMerge& pm, const std::string& weights_file, ModelIR* ir,
                std::ostream& log) {
  FloatTensor& w = ir->tensors.at(pm.tensor_name);
  const FloatTensor& a = *pm.pair.a;  // [r, in]   (embedding: [r, vocab])
  const FloatTensor& b = *pm.pair.b;  // [out, r]  (embedding: [dim, r])
  const uint64_t rows = w.shape[0], cols = w.shape[1], r = pm.r;
  const double w_norm = frobenius(w.data);
  double d2 = 0;
  std::vector<double> acc(cols);
  for (uint64_t o = 0; o < rows; ++o) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (uint64_t k = 0; k < r; ++k) {
      if (!pm.pair.embedding) {
        const double bk = b.data[o * r + k];
        const float* arow = &a.data[k * cols];
        for (uint64_t i = 0; i < cols; ++i) acc[i] += bk * arow[i];
      } else {
        // delta[v][d] = sum_k B[d][k] · A[k][v]; here o = v, i = d.
        const double ak = a.data[k * rows + o];
        for (uint64_t i = 0; i < cols; ++i) acc[i] += static_cast<double>(b.data[i * r + k]) * ak;
      }
    }
    float* wrow = &w.data[o * cols];
    for (uint64_t i = 0; i < cols; ++i) {
      const float merged = static_cast<float>(static_cast<double>(wrow[i]) + pm.factor * acc[i]);
      if (!std::isfinite(merged))
        fail(weights_file, "merging '" + pm.pair.a_key + "' into '" + pm.tensor_name +
                               "' gives a non-finite weight (scale too large?)");
      const double d = static_cast<double>(merged) - wrow[i];
      d2 += d * d;
      wrow[i] = merged;
    }
  }
  log << "  " << pm.tensor_name << ": |dW|/|W| = " << relative_change(d2, w_norm) << " (r " << pm.r
      << ", alpha " << pm.alpha << ", factor " << pm.factor << ")\n";
}

// Replaces `module`'s weight with `t`; untie the head of a tied model where PEFT's replacement
// concerns only one of the two. Adds the tensors it changed to `touched`.
void replace_module(const std::string& module, const FloatTensor& t, ModelIR* ir,
                    std::set<std::string>* touched, std::ostream& log) {
  const std::string target = module + ".weight";
  if (!ir->tensors.count(target)) {
    // lm_head of a tied model: the head becomes its own tensor.
    ir->tensors["lm_head.weight"] = ir->tensors.at("model.embed_tokens.weight");
    ir->config.tie_embeddings = false;
    log << "  lm_head.weight: untied from model.embed_tokens.weight (modules_to_save)\n";
  } else if (module == "model.embed_tokens" && ir->config.tie_embeddings &&
             !ir->tensors.count("lm_head.weight")) {
    // PEFT replaces a copy of the embedding; the tied head keeps the original weight.
    ir->tensors["lm_head.weight"] = ir->tensors.at(target);
    ir->config.tie_embeddings = false;
    touched->insert("lm_head.weight");
    log << "  lm_head.weight: untied, keeps the original embedding (modules_to_save replaces "
           "model.embed_tokens only)\n";
  }
  FloatTensor& w = ir->tensors.at(target);
  double d2 = 0;
  for (size_t i = 0; i < t.data.size(); ++i) {
    const double d = static_cast<double>(t.data[i]) - w.data[i];
    d2 += d * d;
  }
  const double w_norm = frobenius(w.data);
  w.data = t.data;
  log << "  " << target
      << ": replaced (modules_to_save), |dW|/|W| = " << relative_change(d2, w_norm) << "\n";
  touched->insert(target);
}

void apply_one(ModelIR& ir, const LoraRequest& req, std::ostream& log) {
  const Adapter ad = read_adapter(req);
  const AdapterConfig& c = ad.config;
  const Modules modules = base_modules(ir);
  const std::set<std::string> targets = select_targets(ad, ir, modules);
  const SortedTensors sorted = sort_tensors(ad);
  const std::vector<PlannedMerge> plan = plan_merges(ad, req.scale, ir, modules, targets, sorted);
  check_replacements(ad, ir, modules, sorted);

  // Everything checked: merge.
  AdapterRecord rec;
  rec.name = ad.name;
  rec.sha256 = sha256_hex(ad.weights_file);
  rec.r = c.r;
  rec.alpha = static_cast<float>(c.alpha);
  rec.scale = req.scale;
  rec.use_rslora = c.use_rslora;
  log << "lora " << ad.name << ": r " << c.r << ", lora_alpha " << c.alpha
      << (c.use_rslora ? " (rsLoRA)" : "") << ", scale " << req.scale << ", " << plan.size()
      << " LoRA tensor(s), " << sorted.replacements.size() << " replacement(s)"
      << (c.fan_in_fan_out ? "; fan_in_fan_out ignored: weights are kept (out, in)" : "") << "\n";
  std::set<std::string> touched;
  for (const PlannedMerge& pm : plan) {
    merge_pair(pm, ad.weights_file, &ir, log);
    touched.insert(pm.tensor_name);
  }
  for (const auto& kv : sorted.replacements)
    replace_module(kv.first, *kv.second.tensor, &ir, &touched, log);
  rec.modules.assign(touched.begin(), touched.end());
  ir.adapters.push_back(rec);
}

}  // namespace

LoraRequest parse_lora_arg(const std::string& arg) {
  LoraRequest req;
  const size_t colon = arg.rfind(':');
  std::error_code ec;
  if (colon == std::string::npos || fs::is_directory(arg, ec)) {
    req.dir = arg;
  } else {
    req.dir = arg.substr(0, colon);
    const std::string s = arg.substr(colon + 1);
    char* end = nullptr;
    errno = 0;
    const double v = s.empty() ? 0 : std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size() || errno == ERANGE || !std::isfinite(v) ||
        std::fabs(v) > 3.0e38)
      throw ConvertError("--lora '" + arg + "': scale '" + s +
                         "' is not a finite number (use DIR[:SCALE])");
    req.scale = static_cast<float>(v);
  }
  if (req.dir.empty())
    throw ConvertError("--lora '" + arg + "': no adapter directory (use DIR[:SCALE])");
  return req;
}

void apply_loras(ModelIR& ir, const std::vector<LoraRequest>& requests, std::ostream& log) {
  for (const LoraRequest& req : requests) {
    try {
      apply_one(ir, req, log);
    } catch (const std::regex_error& e) {
      // A pattern of adapter_config.json that std::regex could not build or run.
      throw ConvertError((fs::path(req.dir) / "adapter_config.json").string() +
                         ": a regular expression (target_modules, exclude_modules, layers_pattern, "
                         "rank_pattern or alpha_pattern) failed: " +
                         e.what());
    }
  }
}

}  // namespace convert
}  // namespace ember
