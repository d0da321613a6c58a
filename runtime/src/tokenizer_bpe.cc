// Tokenizer, BPE: a word's symbols (characters with byte fallback / unk, or byte-level bytes) are
// merged by rank with an indexed binary heap of adjacent pairs keyed by (rank, position), the order
// in which HF's Word::merge_all applies merges, so a word of n symbols costs O(n log n).
#include "ember_generated.h"
#include "tokenizer.h"
#include "tokenizer_internal.h"

namespace ember {

using tok::kNoRank;
using tok::Out;
using tok::Sym;
using tok::T;
using tok::Tables;
using tok::utf8_char;
using tok::Work;

namespace {

// ---- indexed binary heap of symbol indices, ordered by (rank, index) ----
struct Heap {
  Sym* sym;
  int32_t* h;
  int32_t size;

  bool less(int32_t a, int32_t b) const {
    return sym[a].rank < sym[b].rank || (sym[a].rank == sym[b].rank && a < b);
  }
  void place(int32_t pos, int32_t s) {
    h[pos] = s;
    sym[s].hpos = pos;
  }
  void up(int32_t pos) {
    const int32_t s = h[pos];
    while (pos > 0) {
      const int32_t parent = (pos - 1) / 2;
      if (!less(s, h[parent])) break;
      place(pos, h[parent]);
      pos = parent;
    }
    place(pos, s);
  }
  void down(int32_t pos) {
    const int32_t s = h[pos];
    for (;;) {
      int32_t c = 2 * pos + 1;
      if (c >= size) break;
      if (c + 1 < size && less(h[c + 1], h[c])) ++c;
      if (!less(h[c], s)) break;
      place(pos, h[c]);
      pos = c;
    }
    place(pos, s);
  }
  void push(int32_t s) {
    place(size, s);
    up(size++);
  }
  void remove(int32_t s) {
    const int32_t pos = sym[s].hpos;
    sym[s].hpos = -1;
    --size;
    if (pos == size) return;
    place(pos, h[size]);
    up(pos);
    down(sym[h[pos]].hpos);
  }
};

}  // namespace

// BPE over sym[0..n) (ids set), then emits the final symbols.
void Tokenizer::bpe_emit(void* work_v, int32_t n, void* out_v) const {
  Work& w = *static_cast<Work*>(work_v);
  Out& out = *static_cast<Out*>(out_v);
  Sym* sym = w.sym;
  const auto* merges = t_->merges();
  Heap heap{sym, w.heap, 0};
  for (int32_t i = 0; i < n; ++i) {
    sym[i].prev = i - 1;
    sym[i].next = i + 1 < n ? i + 1 : -1;
    sym[i].hpos = -1;
    sym[i].rank = kNoRank;
  }
  if (merges && merges->size()) {
    for (int32_t i = 0; i + 1 < n; ++i) {
      sym[i].rank = merge_rank(sym[i].id, sym[i + 1].id, &sym[i].result);
      if (sym[i].rank != kNoRank) heap.push(i);
    }
    auto refresh = [&](int32_t i) {
      const int32_t nx = sym[i].next;
      const uint32_t r = nx >= 0 ? merge_rank(sym[i].id, sym[nx].id, &sym[i].result) : kNoRank;
      if (sym[i].hpos >= 0) {
        if (r == kNoRank) {
          heap.remove(i);
          sym[i].rank = kNoRank;
        } else {
          const uint32_t old = sym[i].rank;
          sym[i].rank = r;
          if (r < old) {
            heap.up(sym[i].hpos);
          } else {
            heap.down(sym[i].hpos);
          }
        }
      } else {
        sym[i].rank = r;
        if (r != kNoRank) heap.push(i);
      }
    };
    while (heap.size > 0) {
      const int32_t i = heap.h[0];
      const int32_t j = sym[i].next;
      sym[i].id = sym[i].result;
      if (sym[j].hpos >= 0) heap.remove(j);
      sym[i].next = sym[j].next;
      if (sym[j].next >= 0) sym[sym[j].next].prev = i;
      sym[j].id = -1;
      refresh(i);  // i is still in the heap: its key changes or it leaves
      if (sym[i].prev >= 0) refresh(sym[i].prev);
    }
  }
  for (int32_t i = n > 0 ? 0 : -1; i >= 0; i = sym[i].next) out.emit(sym[i].id);
}

// ignore_merges (Llama 3): a word that is itself a piece is emitted whole, without BPE.
bool Tokenizer::emit_whole_word(const uint8_t* s, size_t len, void* out_v) const {
  if (!t_->ignore_merges()) return false;
  const int32_t id = lookup(s, len);
  if (id < 0) return false;
  static_cast<Out*>(out_v)->emit(id);
  return true;
}

// SentencePiece-style word: characters -> pieces (byte fallback / unk), then BPE.
void Tokenizer::encode_sp_word(const uint8_t* s, size_t len, void* work_v, void* out_v) const {
  if (len == 0 || emit_whole_word(s, len, out_v)) return;
  Work& w = *static_cast<Work*>(work_v);
  const Tables& tb = T(tables_);
  const int32_t unk = t_->unk_id();
  const bool fuse_unk = t_->fuse_unk();
  const bool byte_fallback = t_->byte_fallback();
  int32_t n = 0;
  bool last_unk = false;
  for (size_t i = 0; i < len;) {
    uint32_t cp;
    const size_t cl = utf8_char(s, len, i, &cp);
    if (size_t(n) + cl > w.sym_cap) break;  // cannot happen: work_bytes() bounds the symbols
    int32_t id = cl == 1 && s[i] < 128 ? tb.ascii_id[s[i]] : lookup(s + i, cl);
    if (id >= 0) {
      w.sym[n++].id = id;
      last_unk = false;
    } else {
      bool done = false;
      if (byte_fallback) {
        bool all = true;
        for (size_t k = 0; k < cl; ++k) all = all && tb.byte_token[s[i + k]] >= 0;
        if (all) {
          for (size_t k = 0; k < cl; ++k) w.sym[n++].id = tb.byte_token[s[i + k]];
          done = true;
          last_unk = false;
        }
      }
      if (!done && unk >= 0) {
        if (!(fuse_unk && last_unk)) w.sym[n++].id = unk;
        last_unk = true;
      }
      // No unk token: HF drops the character.
    }
    i += cl;
  }
  bpe_emit(work_v, n, out_v);
}

// Byte-level word: its bytes -> byte tokens, then BPE (or the whole word with ignore_merges).
void Tokenizer::encode_bl_word(const uint8_t* s, size_t len, void* work_v, void* out_v) const {
  if (len == 0 || emit_whole_word(s, len, out_v)) return;
  Work& w = *static_cast<Work*>(work_v);
  const Tables& tb = T(tables_);
  for (size_t i = 0; i < len; ++i) w.sym[i].id = tb.byte_token[s[i]];
  bpe_emit(work_v, static_cast<int32_t>(len), out_v);
}

}  // namespace ember
