// Tokenizer: encode/decode from the model file's Tokenizer table (no JSON at run time).
// plan() checks the table at model load and sizes the lookup tables; init() builds them in memory
// the model gives it (part of the model's block). Nothing here allocates: encode() works in
// caller-provided memory of work_bytes(text_len) bytes, so ember_generate can run it in the
// context's arena.
#ifndef EMBER_SRC_TOKENIZER_H_
#define EMBER_SRC_TOKENIZER_H_

#include <cstddef>
#include <cstdint>

#include "core/status.h"

namespace ember {
namespace fb {
struct Tokenizer;
}

class Tokenizer {
 public:
  Tokenizer() = default;
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Checks the table (ids in range, merges valid, byte pieces, ...) and gives the bytes of the
  // lookup tables init() builds. A bad table is kBadFormat or kUnsupported with a message; a table
  // plan() accepts always builds.
  static Status plan(const fb::Tokenizer* t, size_t* table_bytes);
  // Builds the lookup tables in `tables` (table_bytes from plan(), 8-aligned, not owned). `t` must
  // have passed plan(); it and `tables` must outlive this object (t points into the model file).
  Status init(const fb::Tokenizer* t, void* tables, size_t table_bytes);
  bool loaded() const { return t_ != nullptr; }

  int32_t vocab_size() const { return n_vocab_; }
  int32_t bos_id() const;
  int32_t eos_id() const;
  // True for every id that ends generation (eos_id and the eos_ids list).
  bool is_eos(int32_t id) const;

  // Bytes of work memory encode() needs for a text of `text_len` bytes.
  size_t work_bytes(size_t text_len) const;

  // EMBER_TOKENIZE_* flags. Writes up to `cap` ids; *n_out = ids the text makes (may be > cap:
  // then kBufferTooSmall). Never fails on bytes that are not valid UTF-8.
  Status encode(const char* text, size_t len, uint32_t flags, void* work, size_t work_size,
                int32_t* out, size_t cap, size_t* n_out) const;

  // The decoded text of one token given the previous token count (the first piece of a text may
  // drop its leading space as the decoder says). EMBER_DETOKENIZE_* flags. Raw bytes: may be part
  // of a UTF-8 character (the streaming API in api_tokenizer.cc joins them).
  // Returns the bytes written to out (<= cap), *needed the full length.
  size_t piece_bytes(int32_t id, bool first, uint32_t flags, char* out, size_t cap,
                     size_t* needed) const;

  // The decoded bytes of `id` (SentencePiece: U+2581 as a space, <0xXX> as the byte; byte-level:
  // the raw bytes; added tokens: their text), owned by the tokenizer; nullptr if out of range.
  const char* piece_text(int32_t id, size_t* len) const;
  // True for added tokens marked special (dropped by EMBER_DETOKENIZE_SKIP_SPECIAL; matched in
  // text only with EMBER_TOKENIZE_PARSE_SPECIAL).
  bool is_special(int32_t id) const;
  // True when the decoder drops one leading space of the text (SentencePiece with a prefix).
  bool strips_first_space() const;

 private:
  const fb::Tokenizer* t_ = nullptr;
  int32_t n_vocab_ = 0;
  void* tables_ = nullptr;  // lookup tables built by init() (the model's memory, not owned)
  size_t tables_bytes_ = 0;

  // tokenizer_tables.cc: the steps of init() that use lookup(), and the table lookups.
  void build_lookup();
  void build_byte_tables();
  const uint8_t* lookup_key(int32_t id, size_t* len) const;
  int32_t lookup(const uint8_t* s, size_t len) const;
  uint32_t merge_rank(int32_t left, int32_t right, int32_t* result) const;
  // tokenizer.cc: the sizes of encode()'s work areas.
  void plan_work(size_t len, size_t* norm, size_t* syms, size_t* cps) const;
  // The stages of encode(); void* are its Work and Out (tokenizer_internal.h).
  // tokenizer_normalize.cc
  uint32_t nfc_ccc(uint32_t cp) const;
  uint32_t nfc_compose(uint32_t a, uint32_t b) const;
  size_t nfc(const uint8_t* s, size_t n, uint32_t* cps, size_t cap, uint8_t* out) const;
  // tokenizer_pretokenize.cc
  int char_class(uint32_t cp) const;
  int char_class_slow(uint32_t cp) const;
  void encode_sp_segment(const uint8_t* s, size_t len, bool at_text_start, void* work,
                         void* out) const;
  void encode_bl_segment(const uint8_t* s, size_t len, void* work, void* out) const;
  void split_words_bl(const uint8_t* s, size_t len, void* work, void* out) const;
  size_t split_match(const uint8_t* s, size_t n, size_t i) const;
  // tokenizer_bpe.cc
  void bpe_emit(void* work, int32_t n, void* out) const;
  bool emit_whole_word(const uint8_t* s, size_t len, void* out) const;
  void encode_sp_word(const uint8_t* s, size_t len, void* work, void* out) const;
  void encode_bl_word(const uint8_t* s, size_t len, void* work, void* out) const;
};

}  // namespace ember

#endif  // EMBER_SRC_TOKENIZER_H_
