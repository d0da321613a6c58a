// Tokenizer, pre-tokenization: a text segment (between added tokens) is normalized and split into
// words, each then encoded by BPE. SentencePiece: Prepend/Replace or Metaspace, U+2581 words.
// Byte-level: NFC, a prefix space, Digits, then the GPT-2 / Llama 3 / Qwen2 split patterns, with
// Unicode classes from the file.
#include <cstring>

#include "ember_generated.h"
#include "tokenizer.h"
#include "tokenizer_internal.h"

namespace ember {

using tok::kNfcUnchanged;
using tok::T;
using tok::utf8_char;
using tok::Work;

namespace {

// The class in the low 2 bits of a unicode_classes entry.
enum Cls : uint8_t { kOther = 0, kLetter = 1, kNumber = 2, kSpace = 3 };

}  // namespace

int Tokenizer::char_class(uint32_t cp) const {
  if (cp < 128) return T(tables_).ascii_class[cp];
  return char_class_slow(cp);
}

int Tokenizer::char_class_slow(uint32_t cp) const {
  if (cp == 0xFFFFFFFFu) return kOther;
  const auto* v = t_->unicode_classes();
  // Last entry with start <= cp (entry 0 starts at U+0000, checked by plan()).
  uint32_t lo = 0, hi = v->size();
  while (hi - lo > 1) {
    const uint32_t mid = (lo + hi) / 2;
    if ((v->Get(mid) >> 2) <= cp) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return static_cast<int>(v->Get(lo) & 3);
}

// Normalizes one text segment (between added tokens) and encodes it.
void Tokenizer::encode_sp_segment(const uint8_t* s, size_t len, bool at_text_start, void* work_v,
                                  void* out_v) const {
  if (len == 0) return;
  Work& w = *static_cast<Work*>(work_v);
  uint8_t* d = w.norm;
  size_t m = 0;
  const bool metaspace = t_->pre_tokenizer() == fb::PreTokenizer::METASPACE;
  bool prefix = t_->add_prefix_space() && (!t_->prefix_first_only() || at_text_start);
  // Metaspace (pre-tokenizer) does not prepend when the text already starts with a space; the
  // Prepend normalizer always does.
  if (metaspace && prefix && s[0] == ' ') prefix = false;
  auto put_ms = [&]() {
    d[m++] = 0xE2;
    d[m++] = 0x96;
    d[m++] = 0x81;
  };
  if (prefix) put_ms();
  for (size_t i = 0; i < len; ++i) {
    if (s[i] == ' ') {
      put_ms();
    } else {
      d[m++] = s[i];
    }
  }
  if (metaspace && t_->metaspace_split()) {
    // Each U+2581 starts a new word (MergedWithNext).
    size_t start = 0;
    for (size_t i = 0; i + 3 <= m;) {
      if (i > start && d[i] == 0xE2 && d[i + 1] == 0x96 && d[i + 2] == 0x81) {
        encode_sp_word(d + start, i - start, work_v, out_v);
        start = i;
      }
      i += (d[i] == 0xE2 && d[i + 1] == 0x96 && d[i + 2] == 0x81) ? 3 : 1;
    }
    encode_sp_word(d + start, m - start, work_v, out_v);
  } else if (T(tables_).split_words) {
    // Word boundaries: a U+2581 right after a character that is not U+2581 (see split_words).
    size_t start = 0;
    bool prev_ms = false;
    for (size_t i = 0; i < m;) {
      const bool ms = i + 3 <= m && d[i] == 0xE2 && d[i + 1] == 0x96 && d[i + 2] == 0x81;
      if (ms && i > start && !prev_ms) {
        encode_sp_word(d + start, i - start, work_v, out_v);
        start = i;
      }
      prev_ms = ms;
      i += ms ? 3 : 1;
    }
    encode_sp_word(d + start, m - start, work_v, out_v);
  } else {
    encode_sp_word(d, m, work_v, out_v);
  }
}

void Tokenizer::encode_bl_segment(const uint8_t* s, size_t len, void* work_v, void* out_v) const {
  if (len == 0) return;
  Work& w = *static_cast<Work*>(work_v);
  if (t_->normalizer_nfc()) {
    const size_t m = nfc(s, len, w.cps, w.cps_cap, w.norm + 1);
    if (m != kNfcUnchanged) {
      s = w.norm + 1;
      len = m;
    }
    if (len == 0) return;
  }
  if (t_->add_prefix_space() && s[0] != ' ') {
    if (s != w.norm + 1) std::memcpy(w.norm + 1, s, len);
    w.norm[0] = ' ';
    s = w.norm;
    ++len;
  }
  if (t_->split_digits()) {
    // Digits(individual_digits): each \p{N} character is its own word; the regex runs between.
    size_t start = 0;
    for (size_t i = 0; i < len;) {
      uint32_t cp;
      const size_t l = utf8_char(s, len, i, &cp);
      if (char_class(cp) == kNumber) {
        split_words_bl(s + start, i - start, work_v, out_v);
        encode_bl_word(s + i, l, work_v, out_v);
        start = i + l;
      }
      i += l;
    }
    split_words_bl(s + start, len - start, work_v, out_v);
    return;
  }
  split_words_bl(s, len, work_v, out_v);
}

void Tokenizer::split_words_bl(const uint8_t* s, size_t len, void* work_v, void* out_v) const {
  for (size_t i = 0; i < len;) {
    size_t m = split_match(s, len, i);
    if (m == 0) m = 1;  // cannot happen (every character matches some alternative); stay safe
    encode_bl_word(s + i, m, work_v, out_v);
    i += m;
  }
}

// Length in bytes of the split-regex match that starts at s[i] (i < n): a hand-written matcher for
// each supported pattern (alternatives tried in order, as the regex engine does):
//   GPT2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   LLAMA3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//           ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   QWEN2:  as LLAMA3 with \p{N} instead of \p{N}{1,3}.
size_t Tokenizer::split_match(const uint8_t* s, size_t n, size_t i) const {
  const fb::PreTokenizer pre = t_->pre_tokenizer();
  const bool gpt2 = pre == fb::PreTokenizer::GPT2;
  uint32_t c;
  const size_t cl = utf8_char(s, n, i, &c);
  const int cc = char_class(c);
  auto cls_at = [&](size_t k, size_t* len) -> int {
    if (k >= n) {
      *len = 0;
      return -1;
    }
    uint32_t cp;
    *len = utf8_char(s, n, k, &cp);
    return char_class(cp);
  };
  // End of the run of characters of class `want` starting at k.
  auto run = [&](size_t k, int want) {
    while (k < n) {
      size_t l;
      if (cls_at(k, &l) != want) break;
      k += l;
    }
    return k;
  };

  // Contractions.
  if (c == '\'' && i + 1 < n) {
    auto lower = [&](size_t k, size_t* len) -> uint32_t {
      if (k >= n) {
        *len = 0;
        return 0;
      }
      uint32_t cp;
      *len = utf8_char(s, n, k, &cp);
      if (gpt2) return cp;
      if (cp >= 'A' && cp <= 'Z') return cp + 32;
      if (cp == 0x17F) return 's';  // LATIN SMALL LETTER LONG S case-folds to 's'
      return cp;
    };
    size_t l1, l2;
    const uint32_t a = lower(i + 1, &l1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 1 + l1;
    const uint32_t b = lower(i + 1 + l1, &l2);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
      return 1 + l1 + l2;
  }

  size_t l2;
  const int c2 = cls_at(i + cl, &l2);
  if (gpt2) {
    if (c == ' ' && (c2 == kLetter || c2 == kNumber || c2 == kOther)) return run(i + cl, c2) - i;
    if (cc == kLetter || cc == kNumber || cc == kOther) return run(i, cc) - i;
  } else {
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (cc == kLetter) return run(i, kLetter) - i;
    if (c != '\r' && c != '\n' && cc != kNumber && c2 == kLetter) return run(i + cl, kLetter) - i;
    // \p{N}{1,3} or \p{N}
    if (cc == kNumber) {
      size_t k = i + cl;
      const int max = pre == fb::PreTokenizer::LLAMA3 ? 3 : 1;
      for (int m = 1; m < max; ++m) {
        size_t l;
        if (cls_at(k, &l) != kNumber) break;
        k += l;
      }
      return k - i;
    }
    //  ?[^\s\p{L}\p{N}]+[\r\n]*
    size_t k = 0;
    if (c == ' ' && c2 == kOther) {
      k = run(i + cl, kOther);
    } else if (cc == kOther) {
      k = run(i, kOther);
    }
    if (k) {
      while (k < n && (s[k] == '\r' || s[k] == '\n')) ++k;
      return k - i;
    }
    // \s*[\r\n]+ : up to the last \r or \n of the whitespace run.
    const size_t end = run(i, kSpace);
    size_t last_nl = 0;
    for (size_t q = i; q < end; ++q) {
      if (s[q] == '\r' || s[q] == '\n') last_nl = q + 1;
    }
    if (last_nl) return last_nl - i;
  }
  // \s+(?!\S) | \s+
  const size_t end = run(i, kSpace);
  if (end == n) return end - i;
  // Start of the last whitespace character of the run.
  size_t last = i;
  for (size_t q = i; q < end;) {
    uint32_t cp;
    const size_t l = utf8_char(s, n, q, &cp);
    last = q;
    q += l;
  }
  return last > i ? last - i : end - i;
}

}  // namespace ember
