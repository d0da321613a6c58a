// tokenizer.json -> TokenizerSpec. Only what the runtime implements exactly is accepted; anything
// else (another model type, normalizer, pre-tokenizer regex, decoder, added-token option) is a
// ConvertError naming the field, so a model never ships with a silently different tokenizer.
#include "tokenizer_json.h"

#include <utf8proc.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "core/limits.h"
#include "util.h"

namespace ember {
namespace convert {
namespace {

using json = nlohmann::json;

// The split regexes the runtime implements (runtime/src/tokenizer.cc), as tokenizer.json spells
// them.
const char* const kGpt2Regex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const char* const kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const char* const kMetaspace = "\xE2\x96\x81";  // U+2581

std::string type_of(const json& j) {
  if (!j.is_object()) return "";
  auto it = j.find("type");
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

// A token given as "text" or {"content": "text", ...} (tokenizer_config.json's two spellings).
bool token_text(const json& j, std::string* out) {
  if (j.is_string()) {
    *out = j.get<std::string>();
    return true;
  }
  if (j.is_object() && j.contains("content") && j["content"].is_string()) {
    *out = j["content"].get<std::string>();
    return true;
  }
  return false;
}

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes map to themselves, the others to U+0100+n.
std::vector<uint32_t> byte_to_unicode() {
  std::vector<uint32_t> map(256, 0);
  std::vector<bool> direct(256, false);
  for (int b = '!'; b <= '~'; ++b) direct[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
  uint32_t n = 0;
  for (int b = 0; b < 256; ++b) map[b] = direct[b] ? b : 256 + n++;
  return map;
}

std::string utf8_of(uint32_t cp) {
  utf8proc_uint8_t buf[4];
  const utf8proc_ssize_t n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(cp), buf);
  return std::string(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

// Class of one code point for the split regexes: \p{L}, \p{N}, White_Space (as Rust regex and
// Oniguruma define \s: categories Zs/Zl/Zp plus the C0 controls TAB..CR and NEL U+0085).
uint32_t unicode_class(uint32_t cp) {
  if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x85) return 3;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return 1;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return 2;
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
      return 3;
    default:
      return 0;
  }
}

std::vector<uint32_t> unicode_class_table() {
  std::vector<uint32_t> table;
  uint32_t prev = 0xFFFFFFFFu;
  for (uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    const uint32_t c = unicode_class(cp);
    if (c != prev) {
      table.push_back(cp << 2 | c);
      prev = c;
    }
  }
  return table;
}

std::vector<uint32_t> utf8proc_cps(const std::string& s) {
  std::vector<uint32_t> cps;
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  utf8proc_ssize_t i = 0, n = static_cast<utf8proc_ssize_t>(s.size());
  while (i < n) {
    utf8proc_int32_t cp;
    const utf8proc_ssize_t l = utf8proc_iterate(p + i, n - i, &cp);
    if (l <= 0) throw ConvertError("utf8proc: invalid UTF-8 in its own output");
    cps.push_back(static_cast<uint32_t>(cp));
    i += l;
  }
  return cps;
}

std::string utf8proc_norm(const std::string& s, bool nfc) {
  utf8proc_uint8_t* r = nfc ? utf8proc_NFC(reinterpret_cast<const utf8proc_uint8_t*>(s.c_str()))
                            : utf8proc_NFD(reinterpret_cast<const utf8proc_uint8_t*>(s.c_str()));
  if (!r) throw ConvertError("utf8proc: normalization failed");
  std::string out(reinterpret_cast<const char*>(r));
  std::free(r);
  return out;
}

// The data the runtime's NFC needs (see ember.fbs nfc_*), from utf8proc: combining classes, full
// canonical decompositions, and the primary composition pairs (each checked with utf8proc_NFC).
void nfc_tables(TokenizerSpec* s) {
  auto hangul = [](uint32_t cp) { return cp >= 0xAC00 && cp < 0xAC00 + 11172; };
  struct Pair {
    uint32_t first, second, composite;
  };
  std::vector<Pair> pairs;
  for (uint32_t cp = 1; cp <= 0x10FFFF; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    const utf8proc_property_t* prop = utf8proc_get_property(static_cast<utf8proc_int32_t>(cp));
    if (prop->combining_class != 0) s->nfc_ccc.push_back(cp << 8 | prop->combining_class);
    if (hangul(cp) || prop->decomp_seqindex == UINT16_MAX || prop->decomp_type != 0) continue;
    const std::string one = utf8_of(cp);
    const std::vector<uint32_t> d = utf8proc_cps(utf8proc_norm(one, /*nfc=*/false));
    if (d.size() == 1 && d[0] == cp) continue;
    if (d.empty() || d.size() > 4) {
      throw ConvertError("utf8proc: canonical decomposition of U+" + std::to_string(cp) + " has " +
                         std::to_string(d.size()) + " code points (runtime supports 1..4)");
    }
    s->nfc_decomp.push_back(cp << 3 | static_cast<uint32_t>(d.size()));
    for (size_t k = 0; k < 4; ++k) s->nfc_decomp.push_back(k < d.size() ? d[k] : 0);
    // A primary composite: NFC keeps it, and it composes from (NFC of all but the last, last).
    if (d.size() >= 2 && utf8proc_norm(one, /*nfc=*/true) == one) {
      std::string head;
      for (size_t k = 0; k + 1 < d.size(); ++k) head += utf8_of(d[k]);
      const std::vector<uint32_t> f = utf8proc_cps(utf8proc_norm(head, /*nfc=*/true));
      if (f.size() == 1 && utf8proc_norm(utf8_of(f[0]) + utf8_of(d.back()), true) == one) {
        pairs.push_back({f[0], d.back(), cp});
      }
    }
  }
  std::sort(pairs.begin(), pairs.end(), [](const Pair& a, const Pair& b) {
    return a.first != b.first ? a.first < b.first : a.second < b.second;
  });
  for (const Pair& p : pairs) {
    s->nfc_compose.push_back(p.first);
    s->nfc_compose.push_back(p.second);
    s->nfc_compose.push_back(p.composite);
  }
}

struct Parsed {
  std::string file;
  TokenizerSpec spec;
  std::unordered_map<std::string, int32_t> ids;  // model.vocab and added tokens: text -> id
  bool has_normalizer = false;
};

int32_t lookup(const Parsed& p, const std::string& text) {
  auto it = p.ids.find(text);
  return it == p.ids.end() ? -1 : it->second;
}

void parse_normalizer(const json& n, Parsed* p, bool* prepend, bool* replace) {
  const std::string& f = p->file;
  if (n.is_null()) return;
  const std::string t = type_of(n);
  if (t == "Sequence") {
    if (!n.contains("normalizers") || !n["normalizers"].is_array()) {
      fail(f, "normalizer.normalizers is missing");
    }
    for (const json& x : n["normalizers"]) parse_normalizer(x, p, prepend, replace);
    return;
  }
  p->has_normalizer = true;
  if (t == "NFC") {
    p->spec.normalizer_nfc = true;
    return;
  }
  if (t == "Prepend") {
    if (!n.contains("prepend") || n["prepend"] != kMetaspace) {
      fail(f, "normalizer Prepend: only prepend \"\u2581\" is supported, got " +
                  n.value("prepend", json()).dump());
    }
    *prepend = true;
    return;
  }
  if (t == "Replace") {
    const json pat = n.value("pattern", json());
    if (!pat.is_object() || !pat.contains("String") || pat["String"] != " " ||
        n.value("content", json()) != kMetaspace) {
      fail(f, "normalizer Replace: only \" \" -> \"\u2581\" is supported, got pattern " +
                  pat.dump() + " content " + n.value("content", json()).dump());
    }
    *replace = true;
    return;
  }
  fail(f,
       "normalizer.type '" + t + "' is not supported (supported: Prepend, Replace, NFC, Sequence)");
}

enum class Pre { kNone, kMetaspace, kByteLevelGpt2, kLlama3, kQwen2 };

Pre regex_kind(const std::string& f, const std::string& re) {
  if (re == kGpt2Regex) return Pre::kByteLevelGpt2;
  if (re == kLlama3Regex) return Pre::kLlama3;
  if (re == kQwen2Regex) return Pre::kQwen2;
  fail(f, "pre_tokenizer Split: regex " + json(re).dump() +
              " is not one of the supported GPT-2, Llama 3 or Qwen2 patterns");
}

Pre parse_pre_tokenizer(const json& pt, Parsed* p) {
  const std::string& f = p->file;
  TokenizerSpec& s = p->spec;
  if (pt.is_null()) return Pre::kNone;
  const std::string t = type_of(pt);
  if (t == "Metaspace") {
    if (pt.value("replacement", json()) != kMetaspace) {
      fail(f, "pre_tokenizer Metaspace: replacement must be \"\u2581\"");
    }
    std::string scheme = "always";
    if (pt.contains("prepend_scheme") && pt["prepend_scheme"].is_string()) {
      scheme = pt["prepend_scheme"].get<std::string>();
    } else if (pt.contains("add_prefix_space")) {
      scheme = get_bool(pt, "add_prefix_space", true, f) ? "always" : "never";
    }
    if (scheme == "always") {
      s.add_prefix_space = true;
    } else if (scheme == "first") {
      s.add_prefix_space = true;
      s.prefix_first_only = true;
    } else if (scheme != "never") {
      fail(f, "pre_tokenizer Metaspace: prepend_scheme '" + scheme + "' is not supported");
    }
    s.metaspace_split = get_bool(pt, "split", true, f);
    return Pre::kMetaspace;
  }
  if (t == "ByteLevel") {
    if (!get_bool(pt, "use_regex", true, f)) {
      fail(f, "pre_tokenizer ByteLevel with use_regex false and no Split is not supported");
    }
    s.add_prefix_space = get_bool(pt, "add_prefix_space", false, f);
    return Pre::kByteLevelGpt2;
  }
  if (t == "Sequence") {
    const json list = pt.value("pretokenizers", json());
    if (!list.is_array()) fail(f, "pre_tokenizer.pretokenizers is missing");
    if (list.size() == 1) return parse_pre_tokenizer(list[0], p);
    if (list.size() == 2 && type_of(list[0]) == "Digits" && type_of(list[1]) == "ByteLevel") {
      if (!get_bool(list[0], "individual_digits", false, f)) {
        fail(f, "pre_tokenizer Digits with individual_digits false is not supported");
      }
      if (!get_bool(list[1], "use_regex", true, f) ||
          get_bool(list[1], "add_prefix_space", false, f)) {
        fail(f,
             "pre_tokenizer ByteLevel after Digits must have use_regex true, add_prefix_space "
             "false");
      }
      s.split_digits = true;
      return Pre::kByteLevelGpt2;
    }
    if (list.size() == 2 && type_of(list[0]) == "Split" && type_of(list[1]) == "ByteLevel") {
      const json& sp = list[0];
      const json& bl = list[1];
      const json pat = sp.value("pattern", json());
      if (!pat.is_object() || !pat.contains("Regex") || !pat["Regex"].is_string()) {
        fail(f, "pre_tokenizer Split: pattern must be a Regex, got " + pat.dump());
      }
      if (sp.value("behavior", json()) != "Isolated" || get_bool(sp, "invert", false, f)) {
        fail(f, "pre_tokenizer Split: only behavior Isolated without invert is supported");
      }
      if (get_bool(bl, "use_regex", true, f)) {
        fail(f, "pre_tokenizer ByteLevel after Split must have use_regex false");
      }
      if (get_bool(bl, "add_prefix_space", false, f)) {
        fail(f, "pre_tokenizer ByteLevel after Split with add_prefix_space true is not supported");
      }
      return regex_kind(f, pat["Regex"].get<std::string>());
    }
    std::string names;
    for (const json& x : list) names += (names.empty() ? "" : ", ") + type_of(x);
    fail(f, "pre_tokenizer Sequence [" + names +
                "] is not supported (supported: Metaspace, ByteLevel, [Split, ByteLevel], "
                "[Digits, ByteLevel])");
  }
  fail(f, "pre_tokenizer.type '" + t +
              "' is not supported (supported: Metaspace, ByteLevel, Sequence[Split, ByteLevel])");
}

// Decoder: checks it is the one that matches the encoder (the runtime decodes by kind).
void check_decoder(const json& d, Parsed* p, bool byte_level) {
  const std::string& f = p->file;
  if (d.is_null()) fail(f, "decoder is null (a decoder matching the pre-tokenizer is required)");
  std::vector<json> parts;
  if (type_of(d) == "Sequence") {
    if (!d.contains("decoders") || !d["decoders"].is_array())
      fail(f, "decoder.decoders is missing");
    for (const json& x : d["decoders"]) parts.push_back(x);
  } else {
    parts.push_back(d);
  }
  bool strip = false;
  for (const json& x : parts) {
    const std::string t = type_of(x);
    if (byte_level) {
      if (t != "ByteLevel")
        fail(f, "decoder.type '" + t + "' does not match a ByteLevel tokenizer");
      continue;
    }
    if (t == "Replace") {
      const json pat = x.value("pattern", json());
      if (!pat.is_object() || pat.value("String", json()) != kMetaspace ||
          x.value("content", json()) != " ") {
        fail(f, "decoder Replace: only \"\u2581\" -> \" \" is supported");
      }
    } else if (t == "ByteFallback" || t == "Fuse") {
    } else if (t == "Strip") {
      if (x.value("content", json()) != " " || x.value("start", json()) != 1 ||
          x.value("stop", json()) != 0) {
        fail(f, "decoder Strip: only content \" \", start 1, stop 0 is supported");
      }
      strip = true;
    } else if (t == "Metaspace") {
      std::string scheme = "always";
      if (x.contains("prepend_scheme") && x["prepend_scheme"].is_string()) {
        scheme = x["prepend_scheme"].get<std::string>();
      } else if (x.contains("add_prefix_space")) {
        scheme = get_bool(x, "add_prefix_space", true, f) ? "always" : "never";
      }
      strip = scheme != "never";
    } else {
      fail(f, "decoder.type '" + t + "' is not supported for a SentencePiece-style tokenizer");
    }
  }
  if (strip != p->spec.add_prefix_space) {
    fail(f, std::string("decoder ") + (strip ? "strips" : "does not strip") +
                " a leading space but the normalizer/pre_tokenizer " +
                (p->spec.add_prefix_space ? "adds" : "does not add") + " one");
  }
}

// TemplateProcessing single = [SpecialToken]* $A [SpecialToken]*: at most one on each side.
void parse_post_processor(const json& pp, Parsed* p, int32_t* prefix_id, int32_t* suffix_id) {
  const std::string& f = p->file;
  if (pp.is_null()) return;
  const std::string t = type_of(pp);
  if (t == "ByteLevel") return;  // offsets only
  if (t == "Sequence") {
    if (!pp.contains("processors") || !pp["processors"].is_array()) {
      fail(f, "post_processor.processors is missing");
    }
    for (const json& x : pp["processors"]) parse_post_processor(x, p, prefix_id, suffix_id);
    return;
  }
  if (t != "TemplateProcessing") {
    fail(f, "post_processor.type '" + t + "' is not supported (TemplateProcessing, ByteLevel)");
  }
  const json single = pp.value("single", json());
  if (!single.is_array()) fail(f, "post_processor.single is missing");
  bool seen_a = false;
  for (const json& item : single) {
    if (item.contains("Sequence")) {
      if (seen_a) fail(f, "post_processor.single has two sequences");
      seen_a = true;
      continue;
    }
    if (!item.contains("SpecialToken") || !item["SpecialToken"].contains("id")) {
      fail(f, "post_processor.single item " + item.dump() + " is not supported");
    }
    const std::string name = item["SpecialToken"]["id"].get<std::string>();
    int32_t id = -1;
    const json st = pp.value("special_tokens", json());
    if (st.is_object() && st.contains(name) && st[name].contains("ids") &&
        st[name]["ids"].is_array() && st[name]["ids"].size() == 1 &&
        st[name]["ids"][0].is_number_integer()) {
      id = st[name]["ids"][0].get<int32_t>();
    } else {
      id = lookup(*p, name);
    }
    if (id < 0) fail(f, "post_processor.single names '" + name + "', which is not a token");
    int32_t* slot = seen_a ? suffix_id : prefix_id;
    if (*slot >= 0)
      fail(f, "post_processor.single with two special tokens on one side is not supported");
    *slot = id;
  }
}

// model: a BPE model without the options the runtime does not implement.
void check_bpe_model(const json& model, const std::string& f) {
  if (!model.is_object()) fail(f, "model is missing");
  const std::string mtype = type_of(model);
  if (mtype != "BPE") {
    fail(f, "model.type '" + mtype + "' is not supported (only BPE)");
  }
  if (model.contains("dropout") && !model["dropout"].is_null() &&
      !(model["dropout"].is_number() && model["dropout"].get<double>() == 0.0)) {
    fail(f, "model.dropout " + model["dropout"].dump() + " is not supported");
  }
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(k) && !model[k].is_null() && model[k] != "") {
      fail(f, std::string("model.") + k + " " + model[k].dump() + " is not supported");
    }
  }
}

// model.vocab -> pieces, types and ids; the vocabulary is sized to hold every id of model.vocab
// and of added_tokens.
void read_vocab(const json& model, const json& added, Parsed* p) {
  const std::string& f = p->file;
  TokenizerSpec& s = p->spec;
  const json& vocab = model.value("vocab", json());
  if (!vocab.is_object()) fail(f, "model.vocab is missing or not an object");
  int64_t n_vocab = 0;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer())
      fail(f, "model.vocab['" + it.key() + "'] is not an integer");
    const int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= int64_t{kMaxVocab}) {
      fail(f, "model.vocab['" + it.key() + "'] = " + std::to_string(id) + " is out of range");
    }
    n_vocab = std::max(n_vocab, id + 1);
  }
  if (!added.is_array()) fail(f, "added_tokens is not an array");
  for (const json& a : added) {
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() ||
        !a.contains("content") || !a["content"].is_string()) {
      fail(f, "added_tokens entry " + a.dump() + " needs an integer id and a string content");
    }
    const int64_t id = a["id"].get<int64_t>();
    if (id < 0 || id >= int64_t{kMaxVocab}) {
      fail(f, "added_tokens id " + std::to_string(id) + " is out of range");
    }
    n_vocab = std::max(n_vocab, id + 1);
  }
  s.pieces.assign(static_cast<size_t>(n_vocab), std::string());
  s.types.assign(static_cast<size_t>(n_vocab), static_cast<uint8_t>(fb::TokenType::UNUSED));
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const int32_t id = it.value().get<int32_t>();
    if (s.types[id] != static_cast<uint8_t>(fb::TokenType::UNUSED)) {
      fail(f, "model.vocab: id " + std::to_string(id) + " is given twice");
    }
    s.pieces[id] = it.key();
    s.types[id] = static_cast<uint8_t>(fb::TokenType::NORMAL);
    p->ids.emplace(it.key(), id);
  }
  s.byte_fallback = get_bool(model, "byte_fallback", false, f);
  s.fuse_unk = get_bool(model, "fuse_unk", false, f);
  s.ignore_merges = get_bool(model, "ignore_merges", false, f);
}

// added_tokens (ids checked by read_vocab): special ones become CONTROL, the others USER_DEFINED.
void read_added_tokens(const json& added, Parsed* p) {
  const std::string& f = p->file;
  TokenizerSpec& s = p->spec;
  for (const json& a : added) {
    const int32_t id = a["id"].get<int32_t>();
    const std::string content = a["content"].get<std::string>();
    if (content.empty()) fail(f, "added_tokens id " + std::to_string(id) + " has empty content");
    for (const char* k : {"lstrip", "rstrip", "single_word"}) {
      if (get_bool(a, k, false, f)) {
        fail(f, "added_tokens '" + content + "': " + k + " true is not supported");
      }
    }
    const bool special = get_bool(a, "special", false, f);
    if (s.types[id] == static_cast<uint8_t>(fb::TokenType::UNUSED)) {
      s.pieces[id] = content;
    } else if (s.pieces[id] != content) {
      fail(f, "added_tokens id " + std::to_string(id) + " '" + content +
                  "' differs from model.vocab's piece '" + s.pieces[id] + "'");
    }
    s.types[id] =
        static_cast<uint8_t>(special ? fb::TokenType::CONTROL : fb::TokenType::USER_DEFINED);
    (special ? s.special_ids : s.added_ids).push_back(id);
    p->ids[content] = id;
    // `normalized` is checked once the normalizer is known (check_added_tokens_normalized).
  }
}

// model.merges ("left right" or ["left", "right"]) as (left, right, merged) ids of model.vocab.
void read_merges(const json& model, Parsed* p) {
  const std::string& f = p->file;
  const json& vocab = model["vocab"];
  const json merges = model.value("merges", json::array());
  if (!merges.is_array()) fail(f, "model.merges is not an array");
  p->spec.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    std::string l, r;
    if (m.is_string()) {
      const std::string line = m.get<std::string>();
      const size_t sp = line.find(' ');
      if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos) {
        fail(f, "model.merges[" + std::to_string(i) + "] " + m.dump() +
                    " is not two pieces separated by one space");
      }
      l = line.substr(0, sp);
      r = line.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      l = m[0].get<std::string>();
      r = m[1].get<std::string>();
    } else {
      fail(f, "model.merges[" + std::to_string(i) + "] " + m.dump() + " is not a merge");
    }
    auto vid = [&](const std::string& piece, const char* what) -> uint32_t {
      auto it = vocab.find(piece);
      if (it == vocab.end()) {
        fail(f, "model.merges[" + std::to_string(i) + "] " + m.dump() + ": " + what + " '" + piece +
                    "' is not in model.vocab");
      }
      return it->get<uint32_t>();
    };
    const uint32_t li = vid(l, "left piece");
    const uint32_t ri = vid(r, "right piece");
    const uint32_t res = vid(l + r, "merged piece");
    p->spec.merges.push_back({li, ri, res});
  }
}

void read_unk_token(const json& model, Parsed* p) {
  TokenizerSpec& s = p->spec;
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    const std::string unk = model["unk_token"].get<std::string>();
    s.unk_id = lookup(*p, unk);
    if (s.unk_id < 0) fail(p->file, "model.unk_token '" + unk + "' is not in the vocabulary");
    s.types[s.unk_id] = static_cast<uint8_t>(fb::TokenType::UNKNOWN);
  }
}

// Byte-level BPE (GPT-2, Llama 3, Qwen2 split rules): its tables, and a token for every byte.
void set_byte_level(Pre pre, const json& vocab, Parsed* p) {
  const std::string& f = p->file;
  TokenizerSpec& s = p->spec;
  if (s.normalizer_nfc) nfc_tables(&s);
  s.kind = fb::TokenizerKind::BYTE_LEVEL_BPE;
  s.pre_tokenizer = pre == Pre::kLlama3  ? fb::PreTokenizer::LLAMA3
                    : pre == Pre::kQwen2 ? fb::PreTokenizer::QWEN2
                                         : fb::PreTokenizer::GPT2;
  if (s.byte_fallback) fail(f, "model.byte_fallback true with a ByteLevel pre_tokenizer");
  s.unicode_classes = unicode_class_table();
  // Every byte must have its byte-level token, or some texts could not be encoded.
  const std::vector<uint32_t> b2u = byte_to_unicode();
  for (int b = 0; b < 256; ++b) {
    if (!vocab.contains(utf8_of(b2u[b]))) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%02X", b);
      fail(f, std::string("model.vocab has no byte-level token for byte ") + hex);
    }
  }
}

// normalizer + pre_tokenizer -> the tokenizer kind and split rules; the decoder must undo them.
void read_kind(const json& tj, const json& vocab, Parsed* p) {
  const std::string& f = p->file;
  TokenizerSpec& s = p->spec;
  bool prepend = false, replace = false;
  parse_normalizer(tj.value("normalizer", json()), p, &prepend, &replace);
  const Pre pre = parse_pre_tokenizer(tj.value("pre_tokenizer", json()), p);
  const json decoder = tj.value("decoder", json());
  if (pre == Pre::kByteLevelGpt2 || pre == Pre::kLlama3 || pre == Pre::kQwen2) {
    if (prepend || replace) {
      fail(f, "normalizer Prepend/Replace with a ByteLevel pre_tokenizer is not supported");
    }
    set_byte_level(pre, vocab, p);
    check_decoder(decoder, p, /*byte_level=*/true);
  } else if (s.normalizer_nfc) {
    fail(f, "normalizer NFC is supported only with a ByteLevel pre_tokenizer (Qwen2 style)");
  } else if (pre == Pre::kMetaspace) {
    if (p->has_normalizer)
      fail(f, "a normalizer together with a Metaspace pre_tokenizer is not supported");
    s.kind = fb::TokenizerKind::SENTENCEPIECE_BPE;
    s.pre_tokenizer = fb::PreTokenizer::METASPACE;
    check_decoder(decoder, p, /*byte_level=*/false);
  } else {
    if (!replace) {
      fail(f,
           "normalizer/pre_tokenizer: neither a SentencePiece-style Replace(\" \" -> \"\u2581\") "
           "normalizer / Metaspace pre_tokenizer nor a ByteLevel pre_tokenizer; not supported");
    }
    // Prepend/Replace normalizer: kept as pre_tokenizer NONE (Prepend always adds the prefix,
    // unlike Metaspace, which skips it when the text already starts with a space).
    s.kind = fb::TokenizerKind::SENTENCEPIECE_BPE;
    s.pre_tokenizer = fb::PreTokenizer::NONE;
    s.add_prefix_space = prepend;
    s.metaspace_split = false;
    check_decoder(decoder, p, /*byte_level=*/false);
  }
}

// An added token that the normalizer would rewrite first is not supported.
void check_added_tokens_normalized(const json& added, const Parsed& p) {
  if (!p.has_normalizer) return;
  for (const json& a : added) {
    if (get_bool(a, "normalized", false, p.file)) {
      fail(p.file, "added_tokens '" + a["content"].get<std::string>() +
                       "': normalized true with a normalizer is not supported");
    }
  }
}

// With byte fallback, the NORMAL pieces "<0xAB>" are the byte tokens.
void mark_byte_tokens(TokenizerSpec* s) {
  if (!s->byte_fallback) return;
  for (size_t id = 0; id < s->pieces.size(); ++id) {
    const std::string& pc = s->pieces[id];
    if (s->types[id] == static_cast<uint8_t>(fb::TokenType::NORMAL) && pc.size() == 6 &&
        pc.compare(0, 3, "<0x") == 0 && pc[5] == '>' &&
        std::isxdigit(static_cast<unsigned char>(pc[3])) &&
        std::isxdigit(static_cast<unsigned char>(pc[4]))) {
      s->types[id] = static_cast<uint8_t>(fb::TokenType::BYTE);
    }
  }
}

// tokenizer_config.json's chat_template: a string, or a list of {"name", "template"} of which the
// one named "default" (else the first) is kept, as transformers picks it.
void read_chat_template(const json& cfg, const std::string& cfg_file, TokenizerSpec* s) {
  if (!cfg.contains("chat_template") || cfg["chat_template"].is_null()) return;
  const json& t = cfg["chat_template"];
  if (t.is_string()) {
    s->chat_template = t.get<std::string>();
  } else if (t.is_array()) {
    for (const json& e : t) {
      if (!e.is_object() || !e.contains("template") || !e["template"].is_string()) {
        fail(cfg_file, "chat_template: every entry of the list needs a \"template\" string");
      }
      const bool is_default = e.value("name", json()) == "default";
      if (s->chat_template.empty() || is_default)
        s->chat_template = e["template"].get<std::string>();
      if (is_default) break;
    }
  } else {
    fail(cfg_file, std::string("chat_template must be a string or a list, got ") + t.type_name());
  }
}

// BOS / EOS / PAD / UNK: the post_processor's template, then tokenizer_config.json's overrides.
void read_special_tokens(const json& tj, const std::string& dir, Parsed* p) {
  const std::string& f = p->file;
  TokenizerSpec& s = p->spec;
  int32_t prefix_id = -1, suffix_id = -1;
  parse_post_processor(tj.value("post_processor", json()), p, &prefix_id, &suffix_id);
  s.bos_id = prefix_id;
  s.add_bos = prefix_id >= 0;
  s.add_eos = suffix_id >= 0;
  s.eos_id = suffix_id;

  const std::string cfg_file = dir + "/tokenizer_config.json";
  if (file_exists(cfg_file)) {
    const json cfg = read_json(cfg_file);
    if (!cfg.is_object()) fail(cfg_file, "top level is not an object");
    auto tok = [&](const char* key) -> int32_t {
      std::string text;
      if (!cfg.contains(key) || !token_text(cfg[key], &text)) return -1;
      const int32_t id = lookup(*p, text);
      if (id < 0) fail(cfg_file, std::string(key) + " '" + text + "' is not in the vocabulary");
      return id;
    };
    const int32_t bos = tok("bos_token");
    if (bos >= 0) s.bos_id = bos;
    const int32_t eos = tok("eos_token");
    if (eos >= 0) s.eos_id = eos;
    const int32_t pad = tok("pad_token");
    if (pad >= 0) s.pad_id = pad;
    const int32_t unk = tok("unk_token");
    if (unk >= 0 && s.unk_id < 0) s.unk_id = unk;
    if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) {
      s.add_bos = cfg["add_bos_token"].get<bool>();
    }
    if (cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean()) {
      s.add_eos = cfg["add_eos_token"].get<bool>();
    }
    read_chat_template(cfg, cfg_file, &s);
  }
  if (s.add_bos && s.bos_id < 0) fail(f, "add_bos_token is set but there is no bos_token");
  if (s.add_eos && s.eos_id < 0) fail(f, "add_eos_token is set but there is no eos_token");
  if (s.eos_id >= 0) s.eos_ids.push_back(s.eos_id);
}

// generation_config.json's eos_token_id (an id or a list) joins the stop set.
void read_generation_eos(const std::string& dir, TokenizerSpec* s) {
  const std::string gen_file = dir + "/generation_config.json";
  if (!file_exists(gen_file)) return;
  const json gen = read_json(gen_file);
  if (!gen.is_object()) return;
  add_token_ids(gen, "eos_token_id", gen_file, &s->eos_ids);
  for (int32_t id : s->eos_ids) {
    if (static_cast<size_t>(id) >= s->pieces.size()) {
      fail(gen_file, "eos_token_id " + std::to_string(id) + " is not a token id");
    }
  }
  if (s->eos_id < 0 && !s->eos_ids.empty()) s->eos_id = s->eos_ids[0];
}

}  // namespace

TokenizerSpec load_hf_tokenizer(const std::string& dir) {
  Parsed p;
  p.file = dir + "/tokenizer.json";
  const json tj = read_json(p.file);
  if (!tj.is_object()) fail(p.file, "top level is not an object");
  const json model = tj.value("model", json());
  check_bpe_model(model, p.file);
  const json added = tj.value("added_tokens", json::array());
  read_vocab(model, added, &p);
  read_added_tokens(added, &p);
  read_merges(model, &p);
  read_unk_token(model, &p);
  read_kind(tj, model["vocab"], &p);
  check_added_tokens_normalized(added, p);
  mark_byte_tokens(&p.spec);
  read_special_tokens(tj, dir, &p);
  read_generation_eos(dir, &p.spec);
  return p.spec;
}

flatbuffers::Offset<fb::Tokenizer> build_tokenizer(flatbuffers::FlatBufferBuilder& fbb,
                                                   const TokenizerSpec& spec) {
  const size_t n = spec.pieces.size();
  if (spec.types.size() != n || (!spec.scores.empty() && spec.scores.size() != n)) {
    throw ConvertError("tokenizer: pieces/types/scores sizes differ");
  }
  std::vector<flatbuffers::Offset<flatbuffers::String>> pieces;
  pieces.reserve(n);
  for (const std::string& pc : spec.pieces) pieces.push_back(fbb.CreateString(pc));
  auto pieces_v = fbb.CreateVector(pieces);
  flatbuffers::Offset<flatbuffers::Vector<float>> scores_v;
  if (!spec.scores.empty()) scores_v = fbb.CreateVector(spec.scores);
  std::vector<fb::TokenType> types(n);
  for (size_t i = 0; i < n; ++i) types[i] = static_cast<fb::TokenType>(spec.types[i]);
  auto types_v = fbb.CreateVector(reinterpret_cast<const uint8_t*>(types.data()), n);
  std::vector<fb::Merge> merges;
  merges.reserve(spec.merges.size());
  for (const auto& m : spec.merges) merges.emplace_back(m[0], m[1], m[2]);
  auto merges_v = fbb.CreateVectorOfStructs(merges);
  auto special_v = fbb.CreateVector(spec.special_ids);
  auto added_v = fbb.CreateVector(spec.added_ids);
  auto eos_v = fbb.CreateVector(spec.eos_ids);
  flatbuffers::Offset<flatbuffers::String> chat_v;
  if (!spec.chat_template.empty()) chat_v = fbb.CreateString(spec.chat_template);
  flatbuffers::Offset<flatbuffers::Vector<uint32_t>> classes_v;
  if (!spec.unicode_classes.empty()) classes_v = fbb.CreateVector(spec.unicode_classes);

  flatbuffers::Offset<flatbuffers::Vector<uint32_t>> ccc_v, decomp_v, compose_v;
  if (spec.normalizer_nfc) {
    ccc_v = fbb.CreateVector(spec.nfc_ccc);
    decomp_v = fbb.CreateVector(spec.nfc_decomp);
    compose_v = fbb.CreateVector(spec.nfc_compose);
  }

  fb::TokenizerBuilder b(fbb);
  b.add_kind(spec.kind);
  b.add_pre_tokenizer(spec.pre_tokenizer);
  b.add_pieces(pieces_v);
  if (!spec.scores.empty()) b.add_scores(scores_v);
  b.add_types(flatbuffers::Offset<flatbuffers::Vector<fb::TokenType>>(types_v.o));
  b.add_merges(merges_v);
  b.add_bos_id(spec.bos_id);
  b.add_eos_id(spec.eos_id);
  b.add_unk_id(spec.unk_id);
  b.add_pad_id(spec.pad_id);
  b.add_add_bos(spec.add_bos);
  b.add_add_eos(spec.add_eos);
  b.add_byte_fallback(spec.byte_fallback);
  b.add_add_prefix_space(spec.add_prefix_space);
  b.add_fuse_unk(spec.fuse_unk);
  b.add_ignore_merges(spec.ignore_merges);
  b.add_special_ids(special_v);
  b.add_added_ids(added_v);
  b.add_eos_ids(eos_v);
  if (!spec.unicode_classes.empty()) b.add_unicode_classes(classes_v);
  b.add_prefix_first_only(spec.prefix_first_only);
  b.add_metaspace_split(spec.metaspace_split);
  b.add_split_digits(spec.split_digits);
  if (spec.normalizer_nfc) {
    b.add_normalizer_nfc(true);
    b.add_nfc_ccc(ccc_v);
    b.add_nfc_decomp(decomp_v);
    b.add_nfc_compose(compose_v);
  }
  if (!spec.chat_template.empty()) b.add_chat_template(chat_v);
  return b.Finish();
}

}  // namespace convert
}  // namespace ember
