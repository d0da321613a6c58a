// C API: ember_tokenize, ember_detokenize, the streaming detokenizer.
//
// ember_tokenize has no caller work area in its signature, so it takes the tokenizer's work memory
// from a small stack buffer when the text is short and otherwise allocates it once for the call
// (ember_platform_alloc, freed before returning). ember_generate does not come through here: it
// tokenizes in the context's arena.
//
// ember_detokenize writes the decoder's bytes as they are (byte-fallback / byte-level tokens may
// form invalid UTF-8 if the ids do; decoding the ids of any byte string gives that byte string
// back). The stream instead never emits a partial or invalid UTF-8 sequence: bytes of an
// unfinished character wait in `pending`, and bytes that cannot start or continue a character are
// replaced by U+FFFD (as HF's ByteFallback decoder does).
#include <cstring>

#include "core/status.h"
#include "ember/ember.h"
#include "ember/platform.h"
#include "model.h"
#include "tokenizer.h"

using ember::set_error;
using ember::Status;
using ember::to_c;
using ember::Tokenizer;

namespace {

const Tokenizer* get_tokenizer(const ember_model* model, const char* fn) {
  if (!model) {
    set_error(Status::kInvalidArgument, "%s: model is NULL", fn);
    return nullptr;
  }
  const Tokenizer* tk = ember::model_tokenizer(model);
  if (!tk || !tk->loaded()) {
    set_error(Status::kInvalidArgument, "%s: the model file has no tokenizer", fn);
    return nullptr;
  }
  return tk;
}

// Length of the UTF-8 sequence a lead byte starts (0: not a lead byte).
int utf8_len(uint8_t b) {
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return 2;
  if (b >= 0xE0 && b <= 0xEF) return 3;
  if (b >= 0xF0 && b <= 0xF4) return 4;
  return 0;
}

// Whether `b` may follow pending[0..n) (n >= 1) in a well-formed sequence (no overlongs, no
// surrogates, nothing past U+10FFFF: the second byte's range depends on the lead byte).
bool continues(const uint8_t* pending, uint32_t n, uint8_t b) {
  if ((b & 0xC0) != 0x80) return false;
  if (n != 1) return true;
  switch (pending[0]) {
    case 0xE0:
      return b >= 0xA0;
    case 0xED:
      return b <= 0x9F;
    case 0xF0:
      return b >= 0x90;
    case 0xF4:
      return b <= 0x8F;
    default:
      return true;
  }
}

// Runs `len` bytes through the stream state; writes to out when out != nullptr (the caller checked
// the size with a dry run). Returns the bytes produced.
size_t stream_bytes(ember_detok_stream* st, const uint8_t* p, size_t len, char* out) {
  static const uint8_t kReplacement[3] = {0xEF, 0xBF, 0xBD};
  size_t w = 0;
  auto put = [&](const uint8_t* b, size_t n) {
    if (out) std::memcpy(out + w, b, n);
    w += n;
  };
  for (size_t i = 0; i < len;) {
    const uint8_t b = p[i];
    if (st->n_pending == 0) {
      const int l = utf8_len(b);
      if (l == 1) {
        put(&b, 1);
      } else if (l == 0) {
        put(kReplacement, 3);
      } else {
        st->pending[st->n_pending++] = b;
      }
      ++i;
      continue;
    }
    if (continues(st->pending, st->n_pending, b)) {
      st->pending[st->n_pending++] = b;
      ++i;
      if (static_cast<int>(st->n_pending) == utf8_len(st->pending[0])) {
        put(st->pending, st->n_pending);
        st->n_pending = 0;
      }
    } else {
      // The pending bytes cannot complete: one U+FFFD for them, then look at `b` again.
      put(kReplacement, 3);
      st->n_pending = 0;
    }
  }
  return w;
}

}  // namespace

extern "C" {

ember_status ember_tokenize(const ember_model* model, const char* text, size_t len, uint32_t flags,
                            int32_t* out_ids, size_t cap, size_t* n_out) {
  ember::clear_error();
  const Tokenizer* tk = get_tokenizer(model, "ember_tokenize");
  if (!tk) return EMBER_ERR_INVALID_ARGUMENT;
  if (!n_out) return to_c(set_error(Status::kInvalidArgument, "ember_tokenize: n_out is NULL"));
  if (!text && len)
    return to_c(set_error(Status::kInvalidArgument, "ember_tokenize: text is NULL"));
  if (!out_ids && cap)
    return to_c(set_error(Status::kInvalidArgument, "ember_tokenize: out_ids is NULL"));
  if (flags & ~(EMBER_TOKENIZE_ADD_SPECIAL | EMBER_TOKENIZE_PARSE_SPECIAL)) {
    return to_c(set_error(Status::kInvalidArgument, "ember_tokenize: unknown flags 0x%x", flags));
  }
  const size_t need = tk->work_bytes(len);
  if (need == 0) {
    return to_c(
        set_error(Status::kInvalidArgument, "ember_tokenize: text of %zu bytes is too long", len));
  }
  alignas(64) unsigned char local[8192];
  void* work = local;
  if (need > sizeof(local)) {
    work = ember_platform_alloc(need, 64);
    if (!work) {
      return to_c(set_error(Status::kOutOfMemory,
                            "ember_tokenize: cannot allocate %zu bytes of work memory", need));
    }
  }
  const Status s = tk->encode(text ? text : "", len, flags, work, need, out_ids, cap, n_out);
  if (work != local) ember_platform_free(work);
  return to_c(s);
}

ember_status ember_detokenize(const ember_model* model, const int32_t* ids, size_t n_ids,
                              uint32_t flags, char* out, size_t cap, size_t* n_out) {
  ember::clear_error();
  const Tokenizer* tk = get_tokenizer(model, "ember_detokenize");
  if (!tk) return EMBER_ERR_INVALID_ARGUMENT;
  if (!n_out) return to_c(set_error(Status::kInvalidArgument, "ember_detokenize: n_out is NULL"));
  if (!ids && n_ids)
    return to_c(set_error(Status::kInvalidArgument, "ember_detokenize: ids is NULL"));
  if (!out && cap)
    return to_c(set_error(Status::kInvalidArgument, "ember_detokenize: out is NULL"));
  size_t total = 0;
  bool first = true;
  for (size_t i = 0; i < n_ids; ++i) {
    const int32_t id = ids[i];
    if (id < 0 || id >= tk->vocab_size()) {
      return to_c(set_error(Status::kInvalidArgument,
                            "ember_detokenize: ids[%zu] = %d is not in [0, %d)", i, id,
                            tk->vocab_size()));
    }
    if ((flags & EMBER_DETOKENIZE_SKIP_SPECIAL) && tk->is_special(id)) continue;
    size_t needed = 0;
    const size_t room = total < cap ? cap - total : 0;
    tk->piece_bytes(id, first, flags, out ? out + (total < cap ? total : 0) : nullptr, room,
                    &needed);
    total += needed;
    first = false;
  }
  *n_out = total;
  if (total > cap) {
    return to_c(set_error(Status::kBufferTooSmall, "ember_detokenize: %zu bytes do not fit in %zu",
                          total, cap));
  }
  return EMBER_OK;
}

void ember_detok_stream_init(ember_detok_stream* stream, uint32_t flags) {
  if (!stream) return;
  std::memset(stream, 0, sizeof(*stream));
  stream->flags = flags;
}

// n_emitted counts the ids that were not skipped: the first of them may drop its leading space.
ember_status ember_detok_stream_feed(const ember_model* model, ember_detok_stream* stream,
                                     int32_t id, char* out, size_t cap, size_t* n_out) {
  ember::clear_error();
  const Tokenizer* tk = get_tokenizer(model, "ember_detok_stream_feed");
  if (!tk) return EMBER_ERR_INVALID_ARGUMENT;
  if (!stream || !n_out) {
    return to_c(
        set_error(Status::kInvalidArgument, "ember_detok_stream_feed: stream or n_out is NULL"));
  }
  if (!out && cap)
    return to_c(set_error(Status::kInvalidArgument, "ember_detok_stream_feed: out is NULL"));
  if (stream->n_pending > 3) {
    return to_c(
        set_error(Status::kInvalidArgument, "ember_detok_stream_feed: stream state is corrupt"));
  }
  if (id < 0 || id >= tk->vocab_size()) {
    return to_c(set_error(Status::kInvalidArgument,
                          "ember_detok_stream_feed: id %d is not in [0, %d)", id,
                          tk->vocab_size()));
  }
  *n_out = 0;
  if ((stream->flags & EMBER_DETOKENIZE_SKIP_SPECIAL) && tk->is_special(id)) return EMBER_OK;
  size_t len = 0;
  const char* p = tk->piece_text(id, &len);
  if (stream->n_emitted == 0 && len && p[0] == ' ' && tk->strips_first_space()) {
    ++p;
    --len;
  }
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(p);
  ember_detok_stream dry = *stream;
  const size_t need = stream_bytes(&dry, bytes, len, nullptr);
  if (need > cap) {
    *n_out = need;
    return to_c(set_error(Status::kBufferTooSmall,
                          "ember_detok_stream_feed: %zu bytes do not fit in %zu", need, cap));
  }
  *n_out = stream_bytes(stream, bytes, len, out);
  stream->n_emitted++;
  return EMBER_OK;
}

}  // extern "C"
