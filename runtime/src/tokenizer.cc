// Tokenizer: Hugging Face BPE semantics (tokenizers' AddedVocabulary split, Prepend/Replace
// normalizer or Metaspace, ByteLevel + the GPT-2 / Llama 3 / Qwen2 split regexes, BPE by merge rank
// with byte fallback) from the model file's Tokenizer table.
//
// This file holds the entry points: encode() splits the text at added tokens and encodes each
// segment between them; decoding reads the decoded text of each id. The stages:
//   tokenizer_tables.cc       plan() checks the table; init() builds the lookup tables
//   tokenizer_normalize.cc    NFC
//   tokenizer_pretokenize.cc  a segment -> words (normalizer, prefix space, split patterns)
//   tokenizer_bpe.cc          a word -> ids (BPE by merge rank, byte fallback)
// encode() works only in the caller's work memory; Unicode classes and NFC data come from the file
// (computed by the converter from utf8proc), so the runtime carries no Unicode tables of its own.
#include "tokenizer.h"

#include <cstring>

#include "ember_generated.h"
#include "tokenizer_internal.h"

namespace ember {

using tok::align_up8;
using tok::Out;
using tok::Sym;
using tok::T;
using tok::Tables;
using tok::Work;

namespace {

constexpr size_t kMaxTextBytes = size_t{1} << 30;  // int32 symbol indices, 3x normalization

}  // namespace

int32_t Tokenizer::bos_id() const { return t_ ? t_->bos_id() : -1; }
int32_t Tokenizer::eos_id() const { return t_ ? t_->eos_id() : -1; }

bool Tokenizer::is_eos(int32_t id) const {
  if (!t_) return false;
  if (id == t_->eos_id() && id >= 0) return true;
  if (const auto* v = t_->eos_ids()) {
    for (uint32_t i = 0; i < v->size(); ++i) {
      if (v->Get(i) == id) return true;
    }
  }
  return false;
}

bool Tokenizer::is_special(int32_t id) const {
  if (!t_ || id < 0 || id >= n_vocab_) return false;
  return (T(tables_).skip_bits[id >> 3] >> (id & 7)) & 1;
}

const char* Tokenizer::piece_text(int32_t id, size_t* len) const {
  if (!t_ || id < 0 || id >= n_vocab_) {
    *len = 0;
    return nullptr;
  }
  const Tables& tb = T(tables_);
  *len = tb.text_off[id + 1] - tb.text_off[id];
  return tb.text + tb.text_off[id];
}

// Work areas for a text of `len` bytes: the normalized text, the symbols (and heap) of the longest
// word, NFC's code points. NFC output is at most 3x its input in UTF-8, and a canonical
// decomposition gives at most 1.5 code points per input byte.
void Tokenizer::plan_work(size_t len, size_t* norm, size_t* syms, size_t* cps) const {
  const Tables& tb = T(tables_);
  if (t_->kind() == fb::TokenizerKind::BYTE_LEVEL_BPE) {
    const bool nfc = t_->normalizer_nfc();
    *norm = (nfc ? 3 * len : len) + 16;
    *syms = *norm;
    *cps = nfc ? 2 * len + 16 : 0;
  } else {
    *norm = 3 * len + 8;
    *syms = size_t{tb.space_symbols} * (len + 1) + 2;
    *cps = 0;
  }
}

size_t Tokenizer::work_bytes(size_t text_len) const {
  if (!t_ || text_len > kMaxTextBytes) return 0;
  const Tables& tb = T(tables_);
  size_t norm, syms;
  size_t cps = 0;
  plan_work(text_len, &norm, &syms, &cps);
  (void)tb;
  return 64 + align_up8(norm) + align_up8(syms * sizeof(Sym)) + align_up8(syms * sizeof(int32_t)) +
         align_up8(cps * sizeof(uint32_t));
}

// ------------------------------------------------------------------------------------------------
// Encoding

Status Tokenizer::encode(const char* text, size_t len, uint32_t flags, void* work, size_t work_size,
                         int32_t* out, size_t cap, size_t* n_out) const {
  if (!t_) return set_error(Status::kInvalidArgument, "tokenize: the model has no tokenizer");
  if (len > kMaxTextBytes) {
    return set_error(Status::kInvalidArgument,
                     "tokenize: text of %zu bytes is over the %zu-byte limit", len, kMaxTextBytes);
  }
  if (!text && len) return set_error(Status::kInvalidArgument, "tokenize: text is NULL");
  if (!out && cap) return set_error(Status::kInvalidArgument, "tokenize: out_ids is NULL");
  const size_t need = work_bytes(len);
  if (!work || work_size < need) {
    return set_error(Status::kInvalidArgument, "tokenize: work area of %zu bytes, %zu needed",
                     work_size, need);
  }
  const Tables& tb = T(tables_);
  const bool byte_level = t_->kind() == fb::TokenizerKind::BYTE_LEVEL_BPE;
  // Carve the work area (work_bytes() sized it for `len`).
  uintptr_t p = reinterpret_cast<uintptr_t>(work);
  p = (p + 63) & ~uintptr_t{63};
  Work w;
  size_t norm, syms, cps;
  plan_work(len, &norm, &syms, &cps);
  w.norm = reinterpret_cast<uint8_t*>(p);
  w.norm_cap = norm;
  p += align_up8(norm);
  w.sym = reinterpret_cast<Sym*>(p);
  p += align_up8(syms * sizeof(Sym));
  w.heap = reinterpret_cast<int32_t*>(p);
  p += align_up8(syms * sizeof(int32_t));
  w.sym_cap = syms;
  w.cps = reinterpret_cast<uint32_t*>(p);
  w.cps_cap = cps;

  Out o{out, cap, 0};
  if ((flags & EMBER_TOKENIZE_ADD_SPECIAL) && t_->add_bos()) o.emit(t_->bos_id());
  const uint8_t* s = reinterpret_cast<const uint8_t*>(text);
  const bool parse_special = (flags & EMBER_TOKENIZE_PARSE_SPECIAL) != 0;
  const auto* pieces = t_->pieces();
  auto segment = [&](size_t from, size_t to) {
    if (byte_level) {
      encode_bl_segment(s + from, to - from, &w, &o);
    } else {
      encode_sp_segment(s + from, to - from, from == 0, &w, &o);
    }
  };
  size_t seg = 0;
  for (size_t i = 0; i < len;) {
    const uint8_t b = s[i];
    int32_t hit = -1;
    size_t hit_len = 0;
    for (uint32_t k = tb.match_first[b]; k < tb.match_first[b + 1]; ++k) {
      const int32_t id = tb.match_ids[k];
      if (!parse_special && is_special(id)) continue;
      const auto* pc = pieces->Get(id);
      if (pc->size() <= len - i && std::memcmp(pc->data(), s + i, pc->size()) == 0) {
        hit = id;
        hit_len = pc->size();
        break;  // longest first
      }
    }
    if (hit < 0) {
      ++i;
      continue;
    }
    segment(seg, i);
    o.emit(hit);
    i += hit_len;
    seg = i;
  }
  segment(seg, len);
  if ((flags & EMBER_TOKENIZE_ADD_SPECIAL) && t_->add_eos()) o.emit(t_->eos_id());
  *n_out = o.n;
  if (o.n > cap) {
    return set_error(Status::kBufferTooSmall, "tokenize: %zu ids do not fit in %zu", o.n, cap);
  }
  return Status::kOk;
}

// ------------------------------------------------------------------------------------------------
// Decoding

bool Tokenizer::strips_first_space() const {
  return t_ && t_->kind() == fb::TokenizerKind::SENTENCEPIECE_BPE && t_->add_prefix_space();
}

size_t Tokenizer::piece_bytes(int32_t id, bool first, uint32_t flags, char* out, size_t cap,
                              size_t* needed) const {
  size_t len = 0;
  const char* p = piece_text(id, &len);
  if (!p || ((flags & EMBER_DETOKENIZE_SKIP_SPECIAL) && is_special(id))) {
    if (needed) *needed = 0;
    return 0;
  }
  if (first && len && p[0] == ' ' && strips_first_space()) {
    ++p;
    --len;
  }
  if (needed) *needed = len;
  const size_t w = len < cap ? len : cap;
  if (w) std::memcpy(out, p, w);
  return w;
}

}  // namespace ember
