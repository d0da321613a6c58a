#include "keep_float.h"

#include <fnmatch.h>

#include <algorithm>

#include "hf_model.h"

namespace ember {
namespace convert {
namespace {

const char kTiedHead[] = "lm_head.weight";
const char kEmbedding[] = "model.embed_tokens.weight";

[[noreturn]] void bad_rule(const std::string& arg, const std::string& what) {
  throw ConvertError("--keep-float '" + arg + "': " + what);
}

// The end of the bracket expression that opens at p[i] == '[' (the index of its ']'), or npos.
// As fnmatch reads it: a ']' right after "[", "[!" or "[^" is a member, and "[:class:]",
// "[.sym.]", "[=eq=]" are units.
size_t bracket_end(const std::string& p, size_t i) {
  size_t j = i + 1;
  if (j < p.size() && (p[j] == '!' || p[j] == '^')) ++j;
  if (j < p.size() && p[j] == ']') ++j;
  while (j < p.size() && p[j] != ']') {
    if (p[j] == '[' && j + 1 < p.size() &&
        (p[j + 1] == ':' || p[j + 1] == '.' || p[j + 1] == '=')) {
      const std::string close = std::string(1, p[j + 1]) + "]";
      const size_t e = p.find(close, j + 2);
      if (e == std::string::npos) return std::string::npos;
      j = e + 2;
    } else {
      ++j;
    }
  }
  return j < p.size() ? j : std::string::npos;
}

void check_glob(const std::string& arg, const std::string& p) {
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\') {
      if (i + 1 == p.size()) bad_rule(arg, "ends with a lone '\\' (it quotes the next character)");
      ++i;
    } else if (p[i] == '[') {
      const size_t e = bracket_end(p, i);
      if (e == std::string::npos) bad_rule(arg, "unbalanced '[' (a set needs its closing ']')");
      i = e;
    }
  }
}

const char* float_name(DType t) { return t == DType::kF16 ? "f16" : "f32"; }

}  // namespace

bool float_type_named(const std::string& s, DType* t) {
  if (s != "f16" && s != "f32") return false;
  *t = s == "f16" ? DType::kF16 : DType::kF32;
  return true;
}

std::string KeepFloatRule::text() const { return pattern + ":" + float_name(dtype); }

KeepFloatRule parse_keep_float(const std::string& arg) {
  KeepFloatRule r;
  r.pattern = arg;
  const size_t colon = arg.rfind(':');
  if (colon != std::string::npos) {
    const std::string type = arg.substr(colon + 1);
    if (!float_type_named(type, &r.dtype))
      bad_rule(arg, "unknown type ':" + type + "' (expected :f32 or :f16 after the pattern)");
    r.pattern = arg.substr(0, colon);
  }
  if (r.pattern.empty()) bad_rule(arg, "empty pattern");
  check_glob(arg, r.pattern);
  return r;
}

bool glob_match(const std::string& pattern, const std::string& name) {
  return ::fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

void check_keep_float_mode(const std::vector<KeepFloatRule>& rules, QuantMode mode) {
  if (rules.empty()) return;
  if (mode == QuantMode::F32) {
    throw ConvertError(
        "--keep-float needs --quant u8 or f16 (with --quant f32 every tensor is "
        "float32 already)");
  }
  for (const KeepFloatRule& rule : rules) {
    if (mode == QuantMode::F16 && rule.dtype == DType::kF16) {
      throw ConvertError("--keep-float '" + rule.text() +
                         "' with --quant f16 keeps nothing: those tensors are f16 already");
    }
  }
}

void apply_keep_float(const std::vector<KeepFloatRule>& rules, QuantMode mode, ModelIR* ir) {
  ir->keep_float.clear();
  ir->float_choices.clear();
  check_keep_float_mode(rules, mode);
  if (rules.empty()) return;
  const bool tied = ir->has_config && ir->config.tie_embeddings;
  std::vector<std::string> names;
  for (const auto& kv : ir->tensors) names.push_back(kv.first);
  std::sort(names.begin(), names.end(), natural_less);  // the file's order
  std::vector<int> chosen(names.size(), -1);            // index of the rule that keeps each name
  for (size_t r = 0; r < rules.size(); ++r) {
    const KeepFloatRule& rule = rules[r];
    size_t matched = 0, matrices = 0;
    for (size_t i = 0; i < names.size(); ++i) {
      const std::string& n = names[i];
      const bool hit = glob_match(rule.pattern, n) ||
                       (tied && n == kEmbedding && glob_match(rule.pattern, kTiedHead));
      if (!hit) continue;
      ++matched;
      if (!is_quantized_in(mode, ir->tensors.at(n))) continue;  // 1-D: float32 anyway
      ++matrices;
      if (chosen[i] >= 0 && rules[chosen[i]].dtype != rule.dtype) {
        throw ConvertError("tensor '" + n + "' is matched by --keep-float '" +
                           rules[chosen[i]].text() + "' and '" + rule.text() +
                           "', which give it different types");
      }
      if (chosen[i] < 0) chosen[i] = static_cast<int>(r);
    }
    if (matched == 0) {
      throw ConvertError("--keep-float '" + rule.pattern + "' matched no tensor (names are the " +
                         "checkpoint's, e.g. 'model.layers.0.mlp.down_proj.weight'; " +
                         "`ember-run -m FILE --info` lists a file's)");
    }
    if (matrices == 0) {
      throw ConvertError("--keep-float '" + rule.pattern + "' matched only 1-D tensors (norms, " +
                         "biases), which are float32 in every mode: it would keep nothing");
    }
    ir->keep_float.push_back(rule.text());
  }
  for (size_t i = 0; i < names.size(); ++i) {
    if (chosen[i] < 0) continue;
    FloatChoiceRecord c;
    c.name = names[i];
    c.dtype = rules[chosen[i]].dtype;
    c.pattern = rules[chosen[i]].text();
    ir->float_choices.push_back(c);
  }
}

}  // namespace convert
}  // namespace ember
