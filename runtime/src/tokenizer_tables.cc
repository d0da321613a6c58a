// Tokenizer, tables: plan() checks the model file's Tokenizer table (every id, merge, piece and
// Unicode table encode() will read) and sizes what init() builds in one block of the model's
// memory: the decoded text of every id, a hash table text -> id, a hash table (left, right) ->
// merge rank, the added tokens to match in text, and small byte tables. A table plan() accepts
// always builds.
#include <cstring>

#include "core/limits.h"
#include "ember_generated.h"
#include "tokenizer.h"
#include "tokenizer_internal.h"

namespace ember {

using tok::align_up8;
using tok::kNoRank;
using tok::MergeSlot;
using tok::T;
using tok::Tables;
using tok::utf8_char;

namespace {

inline uint32_t hash_bytes(const uint8_t* p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xFF51AFD7ED558CCDull);
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    h = (h ^ v) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= uint64_t{p[i]} << (8 * i);
  h = (h ^ v) * 0xC4CEB9FE1A85EC53ull;
  h ^= h >> 32;
  return static_cast<uint32_t>(h);
}

inline uint32_t hash_pair(uint32_t a, uint32_t b) {
  uint64_t h = (uint64_t{a} << 32 | b) * 0x9E3779B97F4A7C15ull;
  return static_cast<uint32_t>(h >> 32);
}

uint32_t pow2_at_least(uint64_t n) {
  uint32_t p = 16;
  while (p < n) p <<= 1;
  return p;
}

// GPT-2 bytes_to_unicode() inverse: code point -> byte, or -1.
int unicode_to_byte(uint32_t cp) {
  if ((cp >= '!' && cp <= '~') || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF)) {
    return static_cast<int>(cp);
  }
  if (cp >= 256 && cp < 256 + 68) {
    // The 68 bytes that are not printable map to 256.. in byte order.
    uint32_t k = cp - 256;
    for (int b = 0; b < 256; ++b) {
      const bool direct = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      if (!direct) {
        if (k == 0) return b;
        --k;
      }
    }
  }
  return -1;
}

fb::TokenType type_of(const fb::Tokenizer* t, int32_t id) {
  return t->types() ? t->types()->Get(id) : fb::TokenType::NORMAL;
}

// Added tokens are found in the text, never through the vocabulary lookup.
bool in_lookup(const fb::Tokenizer* t, int32_t id) {
  const fb::TokenType ty = type_of(t, id);
  return ty != fb::TokenType::CONTROL && ty != fb::TokenType::USER_DEFINED &&
         ty != fb::TokenType::UNUSED;
}

bool is_added(const fb::Tokenizer* t, int32_t id) {
  const fb::TokenType ty = type_of(t, id);
  return ty == fb::TokenType::CONTROL || ty == fb::TokenType::USER_DEFINED;
}

bool is_byte_level(const fb::Tokenizer* t) {
  return t->kind() == fb::TokenizerKind::BYTE_LEVEL_BPE;
}

int hex_digit(uint8_t c) {
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                : -1;
}

// Writes the decoded bytes of piece `id` to dst (never more than the piece's own length) and
// returns their count, or -1 for a SentencePiece byte piece that is not <0xXX>.
long decode_piece(const fb::Tokenizer* t, int32_t id, char* dst) {
  const auto* p = t->pieces()->Get(id);
  const uint8_t* s = reinterpret_cast<const uint8_t*>(p->data());
  const size_t len = p->size();
  size_t w = 0;
  if (is_added(t, id)) {
    std::memcpy(dst, s, len);
    w = len;
  } else if (is_byte_level(t)) {
    // Each character is one byte in GPT-2's byte-to-unicode map; keep others as they are.
    for (size_t k = 0; k < len;) {
      uint32_t cp;
      const size_t cl = utf8_char(s, len, k, &cp);
      const int b = cp == 0xFFFFFFFFu ? -1 : unicode_to_byte(cp);
      if (b >= 0) {
        dst[w++] = static_cast<char>(b);
      } else {
        std::memcpy(dst + w, s + k, cl);
        w += cl;
      }
      k += cl;
    }
  } else if (type_of(t, id) == fb::TokenType::BYTE && len == 6) {
    const int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
    if (hi < 0 || lo < 0) return -1;
    dst[w++] = static_cast<char>(hi * 16 + lo);
  } else {
    // SentencePiece: U+2581 decodes as a space.
    for (size_t k = 0; k < len;) {
      if (k + 3 <= len && s[k] == 0xE2 && s[k + 1] == 0x96 && s[k + 2] == 0x81) {
        dst[w++] = ' ';
        k += 3;
      } else {
        dst[w++] = static_cast<char>(s[k++]);
      }
    }
  }
  return static_cast<long>(w);
}

Status check_nfc(const fb::Tokenizer* t) {
  const auto* ccc = t->nfc_ccc();
  const auto* dec = t->nfc_decomp();
  const auto* com = t->nfc_compose();
  if (!ccc || !dec || !com || dec->size() % 5 != 0 || com->size() % 3 != 0) {
    return set_error(Status::kBadFormat, "tokenizer: NFC tables missing or of bad size");
  }
  for (uint32_t i = 1; i < ccc->size(); ++i) {
    if ((ccc->Get(i) >> 8) <= (ccc->Get(i - 1) >> 8)) {
      return set_error(Status::kBadFormat, "tokenizer: nfc_ccc[%u] is not increasing", i);
    }
  }
  for (uint32_t i = 0; i < dec->size(); i += 5) {
    const uint32_t k = dec->Get(i) & 7;
    if (k < 1 || k > 4 || (i && (dec->Get(i) >> 3) <= (dec->Get(i - 5) >> 3))) {
      return set_error(Status::kBadFormat, "tokenizer: nfc_decomp record %u is invalid", i / 5);
    }
    for (uint32_t j = 1; j <= 4; ++j) {
      if (dec->Get(i + j) > 0x10FFFF)
        return set_error(Status::kBadFormat, "tokenizer: nfc_decomp code point");
    }
  }
  for (uint32_t i = 3; i < com->size(); i += 3) {
    const uint64_t a = uint64_t{com->Get(i - 3)} << 32 | com->Get(i - 2);
    const uint64_t b = uint64_t{com->Get(i)} << 32 | com->Get(i + 1);
    if (b <= a)
      return set_error(Status::kBadFormat, "tokenizer: nfc_compose record %u is not sorted", i / 3);
  }
  for (uint32_t i = 0; i < com->size(); ++i) {
    if (com->Get(i) > 0x10FFFF)
      return set_error(Status::kBadFormat, "tokenizer: nfc_compose code point");
  }
  return Status::kOk;
}

// The kind, the pre-tokenizer and the tables they need (Unicode classes, NFC).
Status check_kind(const fb::Tokenizer* t) {
  const bool byte_level = is_byte_level(t);
  if (t->kind() != fb::TokenizerKind::SENTENCEPIECE_BPE && !byte_level) {
    return set_error(Status::kUnsupported, "tokenizer: unknown kind %d",
                     static_cast<int>(t->kind()));
  }
  const fb::PreTokenizer pre = t->pre_tokenizer();
  if (byte_level) {
    if (pre != fb::PreTokenizer::GPT2 && pre != fb::PreTokenizer::LLAMA3 &&
        pre != fb::PreTokenizer::QWEN2) {
      return set_error(Status::kUnsupported, "tokenizer: byte-level BPE with pre_tokenizer %d",
                       static_cast<int>(pre));
    }
    const auto* cls = t->unicode_classes();
    if (!cls || cls->size() == 0 || (cls->Get(0) >> 2) != 0) {
      return set_error(
          Status::kBadFormat,
          "tokenizer: byte-level split regex needs unicode_classes starting at U+0000");
    }
    for (uint32_t i = 1; i < cls->size(); ++i) {
      if ((cls->Get(i) >> 2) <= (cls->Get(i - 1) >> 2)) {
        return set_error(Status::kBadFormat, "tokenizer: unicode_classes[%u] is not increasing", i);
      }
    }
  } else if (pre != fb::PreTokenizer::NONE && pre != fb::PreTokenizer::METASPACE) {
    return set_error(Status::kUnsupported, "tokenizer: SentencePiece BPE with pre_tokenizer %d",
                     static_cast<int>(pre));
  }
  if (!t->normalizer_nfc()) return Status::kOk;
  if (!byte_level) {
    return set_error(Status::kUnsupported, "tokenizer: NFC is supported with byte-level BPE only");
  }
  return check_nfc(t);
}

// Special ids, special/added/eos lists and merges name ids in [0, n).
Status check_ids(const fb::Tokenizer* t, int32_t n) {
  auto id_ok = [n](int32_t id) { return id >= -1 && id < n; };
  if (!id_ok(t->bos_id()) || !id_ok(t->eos_id()) || !id_ok(t->unk_id()) || !id_ok(t->pad_id())) {
    return set_error(Status::kBadFormat, "tokenizer: bos/eos/unk/pad id (%d/%d/%d/%d) out of range",
                     t->bos_id(), t->eos_id(), t->unk_id(), t->pad_id());
  }
  if (t->add_bos() && t->bos_id() < 0)
    return set_error(Status::kBadFormat, "tokenizer: add_bos without bos_id");
  if (t->add_eos() && t->eos_id() < 0)
    return set_error(Status::kBadFormat, "tokenizer: add_eos without eos_id");
  for (const auto* v : {t->special_ids(), t->added_ids(), t->eos_ids()}) {
    if (!v) continue;
    for (uint32_t i = 0; i < v->size(); ++i) {
      if (v->Get(i) < 0 || v->Get(i) >= n) {
        return set_error(Status::kBadFormat, "tokenizer: special/added/eos id %d out of range",
                         v->Get(i));
      }
    }
  }
  const auto* merges = t->merges();
  const uint32_t n_merges = merges ? merges->size() : 0;
  for (uint32_t i = 0; i < n_merges; ++i) {
    const fb::Merge* m = merges->Get(i);
    if (m->left() >= static_cast<uint32_t>(n) || m->right() >= static_cast<uint32_t>(n) ||
        m->result() >= static_cast<uint32_t>(n)) {
      return set_error(Status::kBadFormat, "tokenizer: merge %u (%u, %u -> %u) names an id >= %d",
                       i, m->left(), m->right(), m->result(), n);
    }
  }
  return Status::kOk;
}

// Every piece decodes (a SentencePiece byte piece is <0xXX>), and byte-level BPE has a token for
// each of the 256 bytes (encode falls back to them): what init() would otherwise find out while
// building, checked here so that a table plan() accepts always builds.
Status check_pieces(const fb::Tokenizer* t, int32_t n) {
  const bool byte_level = is_byte_level(t);
  uint8_t have[32] = {0};  // byte-level: bytes that are the whole lookup key of some id
  char buf[8];
  for (int32_t i = 0; i < n; ++i) {
    if (t->pieces()->Get(i)->size() > sizeof buf) continue;  // neither a byte piece nor one byte
    const long w = decode_piece(t, i, buf);
    if (w < 0) return set_error(Status::kBadFormat, "tokenizer: byte piece %d is not <0xXX>", i);
    if (byte_level && w == 1 && in_lookup(t, i)) {
      const uint8_t b = static_cast<uint8_t>(buf[0]);
      have[b >> 3] |= uint8_t(1u << (b & 7));
    }
  }
  for (int b = 0; byte_level && b < 256; ++b) {
    if (!((have[b >> 3] >> (b & 7)) & 1)) {
      return set_error(Status::kBadFormat, "tokenizer: no byte-level token for byte 0x%02X", b);
    }
  }
  return Status::kOk;
}

// Where each table lies in the block: byte offsets (8-aligned, Tables first) and the total.
struct TableLayout {
  size_t text_off = 0, text = 0, piece_slots = 0, merge_slots = 0, skip_bits = 0, match_ids = 0;
  uint32_t n_piece_slots = 0, n_merge_slots = 0;
  size_t total = 0;
};

TableLayout table_layout(const fb::Tokenizer* t) {
  const auto* pieces = t->pieces();
  const uint32_t n = pieces->size();
  const uint32_t n_merges = t->merges() ? t->merges()->size() : 0;
  const uint32_t n_match = (t->special_ids() ? t->special_ids()->size() : 0) +
                           (t->added_ids() ? t->added_ids()->size() : 0);
  uint64_t text_bytes = 0;
  for (uint32_t i = 0; i < n; ++i) text_bytes += pieces->Get(i)->size();
  TableLayout l;
  l.n_piece_slots = pow2_at_least(uint64_t(n) * 2);
  l.n_merge_slots = n_merges ? pow2_at_least(uint64_t(n_merges) * 3 / 2 + 1) : 0;
  size_t off = 0;
  auto take = [&](size_t bytes) {
    const size_t o = off;
    off = static_cast<size_t>(align_up8(off + bytes));
    return o;
  };
  take(sizeof(Tables));  // at 0: the block is the Tables
  l.text_off = take(sizeof(uint32_t) * (size_t(n) + 1));
  l.text = take(text_bytes + 1);
  l.piece_slots = take(sizeof(int32_t) * l.n_piece_slots);
  l.merge_slots = take(sizeof(MergeSlot) * l.n_merge_slots);
  l.skip_bits = take((size_t(n) + 7) / 8);
  l.match_ids = take(sizeof(int32_t) * (n_match + 1));
  l.total = off;
  return l;
}

// The Tables at the start of `block` (l.total bytes, zeroed), its arrays placed as `l` says.
Tables* place_tables(const TableLayout& l, void* block_v) {
  uint8_t* block = static_cast<uint8_t*>(block_v);
  std::memset(block, 0, l.total);
  Tables& tb = *reinterpret_cast<Tables*>(block);
  tb.text_off = reinterpret_cast<uint32_t*>(block + l.text_off);
  tb.text = reinterpret_cast<char*>(block + l.text);
  tb.piece_slots = reinterpret_cast<int32_t*>(block + l.piece_slots);
  tb.piece_mask = l.n_piece_slots - 1;
  tb.merge_slots = reinterpret_cast<MergeSlot*>(block + l.merge_slots);
  tb.merge_mask = l.n_merge_slots ? l.n_merge_slots - 1 : 0;
  tb.skip_bits = block + l.skip_bits;
  tb.match_ids = reinterpret_cast<int32_t*>(block + l.match_ids);
  return &tb;
}

// The decoded text of every id, one after another.
void build_text(const fb::Tokenizer* t, Tables* tb) {
  const int32_t n = static_cast<int32_t>(t->pieces()->size());
  uint32_t pos = 0;
  for (int32_t i = 0; i < n; ++i) {
    tb->text_off[i] = pos;
    pos += static_cast<uint32_t>(decode_piece(t, i, tb->text + pos));  // >= 0: checked by plan()
  }
  tb->text_off[n] = pos;
}

// Merges: (left, right) -> rank; a repeated pair keeps its last rank, as HF's map does.
void build_merges(const fb::Tokenizer* t, uint32_t n_slots, Tables* tb) {
  for (uint32_t i = 0; i < n_slots; ++i) tb->merge_slots[i].rank = kNoRank;
  const auto* merges = t->merges();
  const uint32_t n_merges = merges ? merges->size() : 0;
  for (uint32_t r = 0; r < n_merges; ++r) {
    const fb::Merge* m = merges->Get(r);
    uint32_t h = hash_pair(m->left(), m->right()) & tb->merge_mask;
    while (tb->merge_slots[h].rank != kNoRank &&
           !(tb->merge_slots[h].left == m->left() && tb->merge_slots[h].right == m->right())) {
      h = (h + 1) & tb->merge_mask;
    }
    tb->merge_slots[h] = MergeSlot{m->left(), m->right(), r, m->result()};
  }
}

// Special ids to skip in decode; added tokens to match in text (longest first per byte).
void build_matches(const fb::Tokenizer* t, Tables* tb) {
  const auto* pieces = t->pieces();
  const auto* special = t->special_ids();
  const auto* added = t->added_ids();
  if (special) {
    for (uint32_t i = 0; i < special->size(); ++i) {
      const int32_t id = special->Get(i);
      tb->skip_bits[id >> 3] |= uint8_t(1u << (id & 7));
    }
  }
  uint32_t counts[257] = {0};
  auto for_each_match = [&](auto&& fn) {
    for (const auto* v : {special, added}) {
      if (!v) continue;
      for (uint32_t i = 0; i < v->size(); ++i) {
        const int32_t id = v->Get(i);
        if (pieces->Get(id)->size() == 0) continue;
        fn(id, static_cast<uint8_t>(pieces->Get(id)->Get(0)));
      }
    }
  };
  for_each_match([&](int32_t, uint8_t b) { counts[b]++; });
  tb->match_first[0] = 0;
  for (int b = 0; b < 256; ++b) tb->match_first[b + 1] = tb->match_first[b] + counts[b];
  uint32_t fill[256];
  for (int b = 0; b < 256; ++b) fill[b] = tb->match_first[b];
  for_each_match([&](int32_t id, uint8_t b) { tb->match_ids[fill[b]++] = id; });
  for (int b = 0; b < 256; ++b) {  // insertion sort by length, longest first (few per byte)
    int32_t* a = tb->match_ids + tb->match_first[b];
    const uint32_t cnt = tb->match_first[b + 1] - tb->match_first[b];
    for (uint32_t i = 1; i < cnt; ++i) {
      const int32_t x = a[i];
      const uint32_t lx = pieces->Get(x)->size();
      uint32_t j = i;
      while (j > 0 && pieces->Get(a[j - 1])->size() < lx) {
        a[j] = a[j - 1];
        --j;
      }
      a[j] = x;
    }
  }
}

// True when no piece holds U+2581 after a character other than U+2581 (see Tables::split_words).
bool metaspace_only_in_runs(const fb::Tokenizer* t) {
  const uint32_t n = t->pieces()->size();
  for (uint32_t i = 0; i < n; ++i) {
    const auto* pc = t->pieces()->Get(i);
    const uint8_t* ps = reinterpret_cast<const uint8_t*>(pc->data());
    const size_t pl = pc->size();
    for (size_t k = 1; k + 3 <= pl; ++k) {
      if (ps[k] == 0xE2 && ps[k + 1] == 0x96 && ps[k + 2] == 0x81) {
        const bool after_ms = k >= 3 && ps[k - 3] == 0xE2 && ps[k - 2] == 0x96 && ps[k - 1] == 0x81;
        if (!after_ms) return false;
        k += 2;
      }
    }
  }
  return true;
}

}  // namespace

Status Tokenizer::plan(const fb::Tokenizer* t, size_t* table_bytes) {
  if (t == nullptr) return set_error(Status::kBadFormat, "tokenizer: table is missing");
  const auto* pieces = t->pieces();
  if (!pieces || pieces->size() == 0) return set_error(Status::kBadFormat, "tokenizer: no pieces");
  if (pieces->size() > kMaxVocab) {
    return set_error(Status::kBadFormat, "tokenizer: %u pieces is more than the limit %u",
                     pieces->size(), kMaxVocab);
  }
  const int32_t n = static_cast<int32_t>(pieces->size());
  if (t->types() && t->types()->size() != pieces->size()) {
    return set_error(Status::kBadFormat, "tokenizer: %u types for %d pieces", t->types()->size(),
                     n);
  }
  if (t->scores() && t->scores()->size() != pieces->size()) {
    return set_error(Status::kBadFormat, "tokenizer: %u scores for %d pieces", t->scores()->size(),
                     n);
  }
  EMBER_RETURN_IF_ERROR(check_kind(t));
  EMBER_RETURN_IF_ERROR(check_ids(t, n));
  EMBER_RETURN_IF_ERROR(check_pieces(t, n));
  *table_bytes = table_layout(t).total;
  return Status::kOk;
}

Status Tokenizer::init(const fb::Tokenizer* t, void* tables, size_t table_bytes) {
  const TableLayout l = table_layout(t);
  if (table_bytes < l.total) {
    return set_error(Status::kInternal, "tokenizer: %zu bytes for tables of %zu bytes", table_bytes,
                     l.total);
  }
  Tables* tb = place_tables(l, tables);
  t_ = t;  // lookup_key()/lookup() read t_ and tables_
  n_vocab_ = static_cast<int32_t>(t->pieces()->size());
  tables_ = tables;
  tables_bytes_ = l.total;
  build_text(t, tb);
  build_lookup();
  build_merges(t, l.n_merge_slots, tb);
  build_matches(t, tb);
  build_byte_tables();
  return Status::kOk;
}

// Lookup: key text -> id (byte-level: the decoded bytes; SentencePiece: the piece as stored).
void Tokenizer::build_lookup() {
  Tables& tb = *static_cast<Tables*>(tables_);
  for (uint32_t i = 0; i <= tb.piece_mask; ++i) tb.piece_slots[i] = -1;
  for (int32_t i = 0; i < n_vocab_; ++i) {
    if (!in_lookup(t_, i)) continue;
    size_t klen;
    const uint8_t* key = lookup_key(i, &klen);
    uint32_t h = hash_bytes(key, klen) & tb.piece_mask;
    bool dup = false;
    while (tb.piece_slots[h] >= 0) {
      size_t l2;
      const uint8_t* k2 = lookup_key(tb.piece_slots[h], &l2);
      if (l2 == klen && std::memcmp(k2, key, klen) == 0) {
        dup = true;  // first id wins
        break;
      }
      h = (h + 1) & tb.piece_mask;
    }
    if (!dup) tb.piece_slots[h] = i;
  }
}

// Byte tables (byte -> token, ASCII ids and classes), the metaspace id and whether SentencePiece
// text may be encoded word by word.
void Tokenizer::build_byte_tables() {
  Tables& tb = *static_cast<Tables*>(tables_);
  const bool byte_level = is_byte_level(t_);
  for (int b = 0; b < 256; ++b) tb.byte_token[b] = -1;
  for (int b = 0; b < 128; ++b) tb.ascii_id[b] = -1;
  if (byte_level) {
    for (int b = 0; b < 256; ++b) {
      const uint8_t c = static_cast<uint8_t>(b);
      tb.byte_token[b] = lookup(&c, 1);  // found for every byte: checked by plan()
    }
    for (uint32_t c = 0; c < 128; ++c) tb.ascii_class[c] = static_cast<uint8_t>(char_class_slow(c));
  } else {
    if (t_->byte_fallback()) {
      for (int32_t i = 0; i < n_vocab_; ++i) {
        if (type_of(t_, i) == fb::TokenType::BYTE) {
          const uint8_t b = static_cast<uint8_t>(tb.text[tb.text_off[i]]);
          if (tb.byte_token[b] < 0) tb.byte_token[b] = i;
        }
      }
    }
    for (int b = 0; b < 128; ++b) {
      const uint8_t c = static_cast<uint8_t>(b);
      tb.ascii_id[b] = lookup(&c, 1);
    }
  }
  tb.metaspace_id = lookup(reinterpret_cast<const uint8_t*>("\xE2\x96\x81"), 3);
  // (ignore_merges looks the whole pre-tokenized word up first, so words must stay whole there.)
  tb.split_words =
      !byte_level && tb.metaspace_id >= 0 && !t_->ignore_merges() && metaspace_only_in_runs(t_);
  tb.space_symbols = tb.metaspace_id >= 0 ? 1 : 3;
}

const uint8_t* Tokenizer::lookup_key(int32_t id, size_t* len) const {
  if (t_ && t_->kind() != fb::TokenizerKind::BYTE_LEVEL_BPE) {
    const auto* p = t_->pieces()->Get(id);
    *len = p->size();
    return reinterpret_cast<const uint8_t*>(p->data());
  }
  const Tables& tb = T(tables_);
  *len = tb.text_off[id + 1] - tb.text_off[id];
  return reinterpret_cast<const uint8_t*>(tb.text + tb.text_off[id]);
}

int32_t Tokenizer::lookup(const uint8_t* s, size_t len) const {
  const Tables& tb = T(tables_);
  uint32_t h = hash_bytes(s, len) & tb.piece_mask;
  for (;;) {
    const int32_t id = tb.piece_slots[h];
    if (id < 0) return -1;
    size_t l2;
    const uint8_t* k2 = lookup_key(id, &l2);
    if (l2 == len && std::memcmp(k2, s, len) == 0) return id;
    h = (h + 1) & tb.piece_mask;
  }
}

uint32_t Tokenizer::merge_rank(int32_t left, int32_t right, int32_t* result) const {
  const Tables& tb = T(tables_);
  if (tb.merge_mask == 0 || left < 0 || right < 0) return kNoRank;
  uint32_t h = hash_pair(uint32_t(left), uint32_t(right)) & tb.merge_mask;
  for (;;) {
    const MergeSlot& s = tb.merge_slots[h];
    if (s.rank == kNoRank) return kNoRank;
    if (s.left == uint32_t(left) && s.right == uint32_t(right)) {
      *result = static_cast<int32_t>(s.result);
      return s.rank;
    }
    h = (h + 1) & tb.merge_mask;
  }
}

}  // namespace ember
