// Fuzz target: a saved KV state (ember_kv_state_load) into a context of stories260K (the u8 file
// make_corpora.py converts) with an f32, f16 or u8 cache. Byte 0 picks the cache type (bits 0-1)
// and whether the harness first rewrites the state's checksum (bit 2), so that mutations also
// reach the checks behind it; the rest is the state. A state that loads must save back to the
// same bytes, decode on and be reused by a request. The seeds (one state per cache type, and one
// after a context shift) are written by the harness at start-up from that model.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ember/ember.h"
#include "kv_state.h"

namespace {

constexpr uint32_t kCtx = 32;
const ember_kv_type kTypes[3] = {EMBER_KV_F32, EMBER_KV_F16, EMBER_KV_U8};

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "kv_state_fuzz: %s: %s\n", what, ember_last_error());
  std::abort();
}

void decode(ember_context* ctx, const std::vector<int32_t>& ids, uint32_t from) {
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t tok = ids[i], pos = static_cast<int32_t>(from + i), seq = 0;
    const ember_batch b{1, &tok, &pos, &seq, nullptr};
    if (ember_decode(ctx, &b) != EMBER_OK) die("decode");
  }
}

// One state per cache type (and a shifted u8 one) into the seed corpus, once.
void write_seeds(ember_model* m, ember_context* const* ctx) {
  const std::string dir = EMBER_FUZZ_CORPORA_DIR "/corpus/kv_state";
  const std::string stamp = dir + "/.written";
  if (std::FILE* f = std::fopen(stamp.c_str(), "rb")) {
    std::fclose(f);
    return;
  }
  const char* text = "Once upon a time, there was a little girl";
  int32_t ids[64];
  size_t n = 0;
  if (ember_tokenize(m, text, std::strlen(text), EMBER_TOKENIZE_ADD_SPECIAL, ids, 64, &n) !=
      EMBER_OK) {
    die("tokenize");
  }
  for (int t = 0; t < 4; ++t) {
    ember_context* c = ctx[t < 3 ? t : 2];
    ember_kv_clear(c, -1);
    decode(c, std::vector<int32_t>(ids, ids + n), 0);
    if (t == 3 && ember_kv_shift(c, 0, 1, 4) != EMBER_OK) die("shift");
    size_t size = 0;
    ember_kv_state_size(c, 0, &size);
    std::vector<uint8_t> buf(size + 1);
    buf[0] = static_cast<uint8_t>(t < 3 ? t : 2);
    if (ember_kv_state_save(c, 0, buf.data() + 1, size, &size) != EMBER_OK) die("save");
    const std::string path = dir + "/state-" + std::to_string(t);
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) die(path.c_str());
    std::fwrite(buf.data(), 1, buf.size(), f);
    std::fclose(f);
  }
  if (std::FILE* f = std::fopen(stamp.c_str(), "wb")) std::fclose(f);
}

// Loaded once and never freed (see tokenizer_fuzz.cc: LeakSanitizer and static destructors).
ember_context* const* contexts() {
  static ember_context** ctx = [] {
    ember_model* m = nullptr;
    if (ember_model_load_file(EMBER_FUZZ_CORPORA_DIR "/convert/stories-u8.ember", &m) != EMBER_OK) {
      die("loading the model");
    }
    auto** c = new ember_context*[3];
    for (int t = 0; t < 3; ++t) {
      ember_context_params p = ember_context_default_params();
      p.n_ctx = kCtx;
      p.n_batch_max = 8;
      p.kv_type = kTypes[t];
      if (ember_context_create(m, &p, nullptr, 0, &c[t]) != EMBER_OK) die("context");
    }
    write_seeds(m, c);
    return c;
  }();
  return ctx;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  contexts();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  ember_context* ctx = contexts()[(data[0] & 3) % 3];
  std::vector<uint8_t> state(data + 1, data + size);
  if ((data[0] & 4) && state.size() >= 8) {
    const uint64_t sum = ember::kv_state_checksum(state.data(), state.size() - 8);
    std::memcpy(state.data() + state.size() - 8, &sum, 8);
  }
  ember_kv_clear(ctx, -1);
  if (ember_kv_state_load(ctx, 0, state.data(), state.size()) != EMBER_OK) return 0;
  // Loaded: it saves back to the same bytes, decodes on, and a request reuses its ids.
  std::vector<uint8_t> again(state.size());
  size_t n = 0;
  if (ember_kv_state_save(ctx, 0, again.data(), again.size(), &n) != EMBER_OK || again != state) {
    die("a loaded state does not save back to its bytes");
  }
  const uint32_t len = ember_kv_length(ctx, 0);
  if (len < kCtx) decode(ctx, {1}, len);
  if (ember_kv_state_size(ctx, 0, &n) != EMBER_OK) die("size");
  std::vector<uint8_t> saved(n);
  if (ember_kv_state_save(ctx, 0, saved.data(), saved.size(), &n) != EMBER_OK) die("save");
  ember_kv_clear(ctx, 0);
  if (ember_kv_state_load(ctx, 0, saved.data(), n) != EMBER_OK) die("reload");
  // The slot's ids as a prompt (the state's ids, after the 48-byte header).
  const uint32_t n_ids = len < 8 ? len : 8;
  std::vector<int32_t> ids(n_ids + 1, 1);
  if (n_ids > 0) std::memcpy(ids.data(), state.data() + 48, n_ids * sizeof(int32_t));
  ember_request_params rp = ember_request_default_params();
  rp.prompt_ids = ids.data();
  rp.n_prompt_ids = ids.size();
  rp.max_new_tokens = 2;
  uint64_t id = 0;
  if (ember_request_submit(ctx, &rp, &id) == EMBER_OK) {
    uint32_t pending = 1;
    while (pending > 0 && ember_step(ctx, &pending) == EMBER_OK) {
    }
    ember_request_release(ctx, id);
  }
  return 0;
}
