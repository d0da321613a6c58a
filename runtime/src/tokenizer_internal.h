// Private to the tokenizer's files: the lookup tables init() builds and the work memory of
// encode(). tokenizer.h is the module's interface.
#ifndef EMBER_SRC_TOKENIZER_INTERNAL_H_
#define EMBER_SRC_TOKENIZER_INTERNAL_H_

#include <cstddef>
#include <cstdint>

namespace ember {
namespace tok {

constexpr uint32_t kNoRank = 0xFFFFFFFFu;
constexpr size_t kNfcUnchanged = ~size_t{0};

struct MergeSlot {
  uint32_t left;
  uint32_t right;
  uint32_t rank;    // kNoRank: empty
  uint32_t result;  // merges[rank].result, kept here to save a cache miss per merge
};

// One symbol of a word during BPE: a doubly linked list over the word, merged in place.
struct Sym {
  int32_t id;
  int32_t prev;
  int32_t next;
  uint32_t rank;   // rank of the merge (this, next), kNoRank if none
  int32_t hpos;    // position in the heap, -1 if not in it
  int32_t result;  // the id that merge makes
};

// Everything init() builds, in one block of plan() bytes (the model's memory).
struct Tables {
  uint32_t* text_off;    // (n_vocab + 1) offsets into text
  char* text;            // decoded bytes of every id
  int32_t* piece_slots;  // (piece_mask + 1) ids, -1 empty: lookup key -> id
  uint32_t piece_mask;
  MergeSlot* merge_slots;  // (merge_mask + 1)
  uint32_t merge_mask;
  uint8_t* skip_bits;         // (n_vocab bits) special tokens dropped by SKIP_SPECIAL
  int32_t* match_ids;         // added tokens to find in text, grouped by first byte, longest first
  uint32_t match_first[257];  // match_ids[match_first[b] .. match_first[b + 1]) start with byte b
  int32_t byte_token[256];    // byte-level: byte -> its token; SentencePiece: <0xXX> -> id, or -1
  int32_t ascii_id[128];      // SentencePiece: single-byte piece -> id, or -1
  uint8_t ascii_class[128];
  int32_t metaspace_id;    // id of "\u2581" or -1
  uint32_t space_symbols;  // symbols one input space can become (1, or 3 with byte fallback)
  // SentencePiece without Metaspace split: true when no piece holds U+2581 after another character
  // (only runs of U+2581, as SentencePiece vocabularies are built). Then no merge can join a
  // character to a following U+2581, and encoding word by word (each word starting at a U+2581
  // that follows another character) gives exactly the ids of encoding the whole text as one word,
  // in O(word) memory traffic instead of one heap over the whole text.
  bool split_words;
};

// The Tables at the start of a block init() built.
inline const Tables& T(const void* p) { return *static_cast<const Tables*>(p); }

// encode()'s output: ids past cap are counted, not written.
struct Out {
  int32_t* ids;
  size_t cap;
  size_t n;
  void emit(int32_t id) {
    if (n < cap) ids[n] = id;
    ++n;
  }
};

// encode()'s work memory, carved as work_bytes() sized it.
struct Work {
  uint8_t* norm;
  size_t norm_cap;
  Sym* sym;
  int32_t* heap;
  size_t sym_cap;
  uint32_t* cps;  // NFC code points
  size_t cps_cap;
};

inline size_t align_up8(size_t x) { return (x + 7) & ~size_t{7}; }

// One UTF-8 character at s[i] (i < n): its length; invalid or truncated sequences are one byte and
// give cp = 0xFFFFFFFF (class "other"; in SentencePiece mode they become byte-fallback tokens).
inline size_t utf8_char(const uint8_t* s, size_t n, size_t i, uint32_t* cp) {
  const uint8_t b = s[i];
  if (b < 0x80) {
    *cp = b;
    return 1;
  }
  size_t len;
  uint32_t c, min;
  if (b >= 0xC2 && b <= 0xDF) {
    len = 2, c = b & 0x1F, min = 0x80;
  } else if (b >= 0xE0 && b <= 0xEF) {
    len = 3, c = b & 0x0F, min = 0x800;
  } else if (b >= 0xF0 && b <= 0xF4) {
    len = 4, c = b & 0x07, min = 0x10000;
  } else {
    *cp = 0xFFFFFFFFu;
    return 1;
  }
  if (i + len > n) {
    *cp = 0xFFFFFFFFu;
    return 1;
  }
  for (size_t k = 1; k < len; ++k) {
    const uint8_t cb = s[i + k];
    if ((cb & 0xC0) != 0x80) {
      *cp = 0xFFFFFFFFu;
      return 1;
    }
    c = (c << 6) | (cb & 0x3F);
  }
  if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
    *cp = 0xFFFFFFFFu;
    return 1;
  }
  *cp = c;
  return len;
}

}  // namespace tok
}  // namespace ember

#endif  // EMBER_SRC_TOKENIZER_INTERNAL_H_
