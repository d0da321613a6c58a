// Fuzz target: encode and decode arbitrary bytes with each shared tokenizer. The tokenizers are
// converted at start-up (the converter library, --tokenizer-only) from ../shared. Input: byte 0
// picks the tokenizer and the flags, the rest is the text; its bytes read as ids are decoded too.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "ember/ember.h"
#include "fuzz_util.h"
#include "hf_model.h"
#include "writer.h"

namespace {

// Loaded once and never freed: a static vector's destructor would run before LeakSanitizer's check
// at exit and leave the models unreachable.
std::vector<ember_model*>& tokenizers() {
  static std::vector<ember_model*>* t = [] {
    auto* v = new std::vector<ember_model*>;
    const std::string s = ember_fuzz::shared_dir();
    for (const char* dir : {"tokenizers/llama2", "tokenizers/mistral", "tokenizers/llama3",
                            "tokenizers/gpt2", "models/stories260K/hf", "models/aidreams260K/hf"}) {
      const std::string out = ember_fuzz::scratch_dir() + "/tok.ember";
      try {
        ember::convert::ModelIR ir = ember::convert::load_hf_tokenizer_only(s + "/" + dir);
        ember::convert::WriteOptions opts;
        opts.force = true;
        ember::convert::write_ember(ir, out, opts);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "tokenizer_fuzz: %s/%s: %s\n", s.c_str(), dir, e.what());
        std::abort();  // the shared data is a prerequisite (EMBER_SHARED_DIR)
      }
      ember_model* m = nullptr;
      if (ember_model_load_file(out.c_str(), &m) != EMBER_OK) {
        std::fprintf(stderr, "tokenizer_fuzz: %s: %s\n", dir, ember_last_error());
        std::abort();
      }
      v->push_back(m);
    }
    return v;
  }();
  return *t;
}

}  // namespace

// Converts and loads the tokenizers before the first input (outside its time limit).
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tokenizers();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<ember_model*>& toks = tokenizers();
  if (size == 0) return 0;
  const uint8_t sel = data[0];
  const ember_model* m = toks[(sel & 0x0f) % toks.size()];
  const uint32_t flags = (sel >> 4) & (EMBER_TOKENIZE_ADD_SPECIAL | EMBER_TOKENIZE_PARSE_SPECIAL);
  const char* text = reinterpret_cast<const char*>(data + 1);
  const size_t len = size - 1;

  std::vector<int32_t> ids(len + 8);
  size_t n = 0;
  ember_status s = ember_tokenize(m, text, len, flags, ids.data(), ids.size(), &n);
  if (s == EMBER_ERR_BUFFER_TOO_SMALL) {
    ids.resize(n);
    s = ember_tokenize(m, text, len, flags, ids.data(), ids.size(), &n);
  }
  if (s != EMBER_OK) return 0;  // (never expected: any bytes encode)
  const uint32_t detok_flags = (sel & 0x40) ? EMBER_DETOKENIZE_SKIP_SPECIAL : 0;
  std::string out(4 * len + 64, '\0');
  size_t n_out = 0;
  (void)ember_detokenize(m, ids.data(), n, detok_flags, &out[0], out.size(), &n_out);
  ember_detok_stream st;
  ember_detok_stream_init(&st, detok_flags);
  char piece[256];
  for (size_t i = 0; i < n; ++i) {
    size_t np = 0;
    (void)ember_detok_stream_feed(m, &st, ids[i], piece, sizeof piece, &np);
  }
  // The input's bytes as ids (any value, valid or not): decoding must refuse or succeed, never
  // read out of bounds.
  std::vector<int32_t> raw(len / 4);
  if (!raw.empty()) std::memcpy(raw.data(), text, raw.size() * 4);
  for (int32_t& id : raw) id = (sel & 0x80) ? id : id & 0x1ffff;  // mostly in vocabulary range
  (void)ember_detokenize(m, raw.data(), raw.size(), detok_flags, &out[0], out.size(), &n_out);
  return 0;
}
