// Prefix sharing and saved state of a sequence slot's KV cache (ember.h: ember_kv_copy,
// ember_kv_state_*). A state is the slot's ids and cached rows as stored, behind a header that
// names the model, the cache type and n_ctx, and followed by a checksum; a load checks all of it
// before it writes anything.
#include "kv_state.h"

#include <cerrno>
#include <cstring>

#include "context.h"
#include "ember/platform.h"
#include "ember_generated.h"
#include "model.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "saved KV states are written in the host's byte order, little-endian"
#endif

namespace ember {
namespace {

constexpr char kMagic[8] = {'E', 'M', 'B', 'E', 'R', 'K', 'V', 'S'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 48;  // magic, then 10 fields (header_fields)
constexpr size_t kChecksumBytes = 8;

// A 64-bit checksum over 8-byte words (multiply and fold, so that a flipped bit spreads both ways).
// It guards against corruption and truncation, not against a forger.
uint64_t checksum(const uint8_t* p, size_t n, uint64_t h) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
  }
  for (; i < n; ++i) {
    h = (h ^ p[i]) * 0x100000001B3ull;
    h ^= h >> 29;
  }
  return h;
}
constexpr uint64_t kSeed = 0xCBF29CE484222325ull;

const char* kv_type_name(uint32_t t) {
  switch (t) {
    case EMBER_KV_F32:
      return "f32";
    case EMBER_KV_F16:
      return "f16";
    case EMBER_KV_U8:
      return "u8";
    default:
      return "unknown";
  }
}

struct Header {
  uint32_t version, kv_type;
  uint64_t model_id;
  uint32_t n_ctx, n_layers, n_kv_heads, head_dim, n_pos, n_valid;
};

void put32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
void put64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }
uint32_t get32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t get64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

void write_header(const Header& h, uint8_t* p) {
  std::memcpy(p, kMagic, 8);
  put32(p + 8, h.version);
  put32(p + 12, h.kv_type);
  put64(p + 16, h.model_id);
  put32(p + 24, h.n_ctx);
  put32(p + 28, h.n_layers);
  put32(p + 32, h.n_kv_heads);
  put32(p + 36, h.head_dim);
  put32(p + 40, h.n_pos);
  put32(p + 44, h.n_valid);
}

Header read_header(const uint8_t* p) {
  Header h{};
  h.version = get32(p + 8);
  h.kv_type = get32(p + 12);
  h.model_id = get64(p + 16);
  h.n_ctx = get32(p + 24);
  h.n_layers = get32(p + 28);
  h.n_kv_heads = get32(p + 32);
  h.head_dim = get32(p + 36);
  h.n_pos = get32(p + 40);
  h.n_valid = get32(p + 44);
  return h;
}

// Bytes of a state of n_pos positions in this context (header, ids, rows, u8 params, checksum).
// The context's plan has bounded every factor, so nothing here overflows.
size_t state_bytes(const Context* ctx, uint32_t n_pos) {
  const ModelConfig& c = ctx->model->config;
  const size_t heads = size_t{c.num_layers} * c.num_kv_heads;
  size_t per_head = 2 * size_t{n_pos} * c.head_dim * ctx->plan.kv_elem_bytes;
  if (ctx->plan.kv_type == EMBER_KV_U8) per_head += 4 * size_t{n_pos} * sizeof(uint16_t);
  return kHeaderBytes + size_t{n_pos} * sizeof(int32_t) + heads * per_head + kChecksumBytes;
}

// Copies one (layer, KV head)'s first n rows between the slot and `p` (to_slot: from p), keys
// then values, then for u8 the key scales, key mins, value scales, value mins. Returns p's end.
template <bool kToSlot, typename Ptr>
Ptr copy_head(Context* ctx, uint32_t seq, uint32_t l, uint32_t h, uint32_t n, Ptr p) {
  const size_t eb = ctx->plan.kv_elem_bytes, T = ctx->plan.n_ctx;
  const size_t rows = size_t{n} * ctx->model->config.head_dim * eb;
  const size_t off = kv_head_offset(ctx, seq, l, h) * eb;
  uint8_t* caches[2] = {ctx->k_cache + off, ctx->v_cache + off};
  for (uint8_t* cache : caches) {
    if (kToSlot) {
      std::memcpy(cache, p, rows);
    } else {
      std::memcpy(const_cast<uint8_t*>(p), cache, rows);
    }
    p += rows;
  }
  if (ctx->plan.kv_type != EMBER_KV_U8) return p;
  const size_t po = kv_params_offset(ctx, seq, l, h);
  uint16_t* params[4] = {ctx->k_params + po, ctx->k_params + po + T, ctx->v_params + po,
                         ctx->v_params + po + T};
  for (uint16_t* q : params) {
    if (kToSlot) {
      std::memcpy(q, p, n * sizeof(uint16_t));
    } else {
      std::memcpy(const_cast<uint8_t*>(p), q, n * sizeof(uint16_t));
    }
    p += n * sizeof(uint16_t);
  }
  return p;
}

Status check_slot(const Context* ctx, int32_t seq_id, const char* fn, bool must_be_free) {
  if (seq_id < 0 || static_cast<uint32_t>(seq_id) >= ctx->plan.n_seq_max) {
    return set_error(Status::kInvalidArgument, "%s: seq_id %d is out of range [0, %u)", fn, seq_id,
                     ctx->plan.n_seq_max);
  }
  const int32_t owner = ctx->slot_owner[seq_id];
  if (must_be_free && owner >= 0) {
    return set_error(Status::kInvalidArgument,
                     "%s: sequence slot %d is held by request %llu (cancel or release it first)",
                     fn, seq_id, static_cast<unsigned long long>(ctx->requests[owner].id));
  }
  return Status::kOk;
}

}  // namespace

uint64_t model_identity(const Model& m) {
  const ModelConfig& c = m.config;
  // What the cached keys and values depend on: the shape and RoPE of the config, and the weights
  // (their sha256 from the converter, or else every byte of the file before them).
  const uint32_t u[] = {c.hidden_size,       c.num_layers,
                        c.num_heads,         c.num_kv_heads,
                        c.head_dim,          c.intermediate_size,
                        c.vocab_size,        c.max_context,
                        c.rope_scaling_type, c.rope_original_max_position,
                        c.tie_embeddings,    c.attention_bias,
                        c.mlp_bias};
  const float f[] = {c.rope_theta, c.rope_factor, c.rope_low_freq_factor, c.rope_high_freq_factor,
                     c.norm_eps};
  uint64_t h = checksum(reinterpret_cast<const uint8_t*>(u), sizeof u, kSeed);
  h = checksum(reinterpret_cast<const uint8_t*>(f), sizeof f, h);
  const flatbuffers::String* digest = m.root ? m.root->weights_sha256() : nullptr;
  if (digest != nullptr && digest->size() > 0) {
    return checksum(reinterpret_cast<const uint8_t*>(digest->data()), digest->size(), h);
  }
  const uint64_t wo = m.root ? m.root->weights_offset() : 0;
  return checksum(m.data, wo < m.size ? static_cast<size_t>(wo) : m.size, h);
}

uint64_t kv_state_checksum(const uint8_t* state, size_t n) { return checksum(state, n, kSeed); }

void kv_copy_prefix(Context* ctx, uint32_t src, uint32_t dst, uint32_t n) {
  const ModelConfig& c = ctx->model->config;
  const size_t eb = ctx->plan.kv_elem_bytes, T = ctx->plan.n_ctx;
  const size_t rows = size_t{n} * c.head_dim * eb;
  for (uint32_t l = 0; l < c.num_layers; ++l) {
    for (uint32_t h = 0; h < c.num_kv_heads; ++h) {
      const size_t from = kv_head_offset(ctx, src, l, h) * eb,
                   to = kv_head_offset(ctx, dst, l, h) * eb;
      std::memcpy(ctx->k_cache + to, ctx->k_cache + from, rows);
      std::memcpy(ctx->v_cache + to, ctx->v_cache + from, rows);
      if (ctx->plan.kv_type != EMBER_KV_U8) continue;
      const size_t pf = kv_params_offset(ctx, src, l, h), pt = kv_params_offset(ctx, dst, l, h);
      for (uint16_t* params : {ctx->k_params, ctx->v_params}) {
        std::memcpy(params + pt, params + pf, n * sizeof(uint16_t));
        std::memcpy(params + pt + T, params + pf + T, n * sizeof(uint16_t));
      }
    }
  }
  std::memcpy(ctx->slot_ids + dst * T, ctx->slot_ids + src * T, n * sizeof(int32_t));
  ctx->seq_len[dst] = n;
  ctx->slot_valid[dst] = ctx->slot_valid[src] < n ? ctx->slot_valid[src] : n;
}

Status kv_state_size(const Context* ctx, int32_t seq_id, size_t* out) {
  EMBER_RETURN_IF_ERROR(check_slot(ctx, seq_id, "ember_kv_state_size", false));
  *out = state_bytes(ctx, ctx->seq_len[seq_id]);
  return Status::kOk;
}

Status kv_state_save(Context* ctx, int32_t seq_id, uint8_t* buf, size_t cap, size_t* n_out) {
  EMBER_RETURN_IF_ERROR(check_slot(ctx, seq_id, "ember_kv_state_save", false));
  const uint32_t seq = static_cast<uint32_t>(seq_id), n = ctx->seq_len[seq];
  const size_t need = state_bytes(ctx, n);
  *n_out = need;
  if (cap < need) {
    return set_error(Status::kBufferTooSmall,
                     "ember_kv_state_save: slot %u's state is %zu bytes, the buffer holds %zu", seq,
                     need, cap);
  }
  const ModelConfig& c = ctx->model->config;
  const Header h{kVersion,
                 static_cast<uint32_t>(ctx->plan.kv_type),
                 model_identity(*ctx->model),
                 ctx->plan.n_ctx,
                 c.num_layers,
                 c.num_kv_heads,
                 c.head_dim,
                 n,
                 ctx->slot_valid[seq]};
  write_header(h, buf);
  uint8_t* p = buf + kHeaderBytes;
  std::memcpy(p, ctx->slot_ids + size_t{seq} * ctx->plan.n_ctx, n * sizeof(int32_t));
  p += n * sizeof(int32_t);
  for (uint32_t l = 0; l < c.num_layers; ++l) {
    for (uint32_t kvh = 0; kvh < c.num_kv_heads; ++kvh) {
      p = copy_head<false, uint8_t*>(ctx, seq, l, kvh, n, p);
    }
  }
  put64(buf + need - kChecksumBytes, checksum(buf, need - kChecksumBytes, kSeed));
  return Status::kOk;
}

namespace {

// Everything a load checks before it writes: the header against this context (the mismatch named),
// the size, the ids and the checksum.
Status check_state(const Context* ctx, const uint8_t* buf, size_t size, Header* out) {
  if (size < kHeaderBytes + kChecksumBytes || std::memcmp(buf, kMagic, 8) != 0) {
    return set_error(Status::kBadFormat, "KV state: %s",
                     size < kHeaderBytes + kChecksumBytes ? "truncated (shorter than its header)"
                                                          : "not a saved KV state (bad magic)");
  }
  const Header h = read_header(buf);
  if (h.version != kVersion) {
    return set_error(Status::kUnsupported, "KV state: version %u, this runtime reads %u", h.version,
                     kVersion);
  }
  const ModelConfig& c = ctx->model->config;
  const uint64_t id = model_identity(*ctx->model);
  if (h.model_id != id || h.n_layers != c.num_layers || h.n_kv_heads != c.num_kv_heads ||
      h.head_dim != c.head_dim) {
    return set_error(Status::kInvalidArgument,
                     "KV state: saved for another model (model id %016llx, %u layers x %u KV heads "
                     "x %u; this model: %016llx, %u x %u x %u)",
                     static_cast<unsigned long long>(h.model_id), h.n_layers, h.n_kv_heads,
                     h.head_dim, static_cast<unsigned long long>(id), c.num_layers, c.num_kv_heads,
                     c.head_dim);
  }
  if (h.kv_type != static_cast<uint32_t>(ctx->plan.kv_type)) {
    return set_error(
        Status::kInvalidArgument,
        "KV state: saved with cache type %s (kv_type %u), this context's cache type is %s",
        kv_type_name(h.kv_type), h.kv_type, kv_type_name(ctx->plan.kv_type));
  }
  if (h.n_ctx != ctx->plan.n_ctx) {
    return set_error(Status::kInvalidArgument,
                     "KV state: saved from a context of n_ctx %u, this context's n_ctx is %u",
                     h.n_ctx, ctx->plan.n_ctx);
  }
  if (h.n_pos > ctx->plan.n_ctx || h.n_valid > h.n_pos) {
    return set_error(Status::kBadFormat, "KV state: %u positions (%u reusable) in n_ctx %u",
                     h.n_pos, h.n_valid, ctx->plan.n_ctx);
  }
  const size_t need = state_bytes(ctx, h.n_pos);
  if (size != need) {
    return set_error(Status::kBadFormat,
                     "KV state: %zu bytes, %u positions need %zu (truncated or trailing data)",
                     size, h.n_pos, need);
  }
  if (get64(buf + size - kChecksumBytes) != checksum(buf, size - kChecksumBytes, kSeed)) {
    return set_error(Status::kBadFormat, "KV state: checksum mismatch (the bytes are corrupted)");
  }
  const uint32_t vocab = c.vocab_size;
  for (uint32_t i = 0; i < h.n_pos; ++i) {
    const uint32_t id32 = get32(buf + kHeaderBytes + 4 * size_t{i});
    if (id32 >= vocab) {
      return set_error(Status::kBadFormat, "KV state: id %u at position %u is out of range [0, %u)",
                       id32, i, vocab);
    }
  }
  *out = h;
  return Status::kOk;
}

}  // namespace

Status kv_state_load(Context* ctx, int32_t seq_id, const uint8_t* buf, size_t size) {
  EMBER_RETURN_IF_ERROR(check_slot(ctx, seq_id, "ember_kv_state_load", true));
  if (buf == nullptr)
    return set_error(Status::kInvalidArgument, "ember_kv_state_load: buf is NULL");
  Header h{};
  EMBER_RETURN_IF_ERROR(check_state(ctx, buf, size, &h));
  const uint32_t seq = static_cast<uint32_t>(seq_id), n = h.n_pos;
  const uint8_t* p = buf + kHeaderBytes;
  std::memcpy(ctx->slot_ids + size_t{seq} * ctx->plan.n_ctx, p, n * sizeof(int32_t));
  p += n * sizeof(int32_t);
  const ModelConfig& c = ctx->model->config;
  for (uint32_t l = 0; l < c.num_layers; ++l) {
    for (uint32_t kvh = 0; kvh < c.num_kv_heads; ++kvh) {
      p = copy_head<true, const uint8_t*>(ctx, seq, l, kvh, n, p);
    }
  }
  ctx->seq_len[seq] = n;
  ctx->slot_valid[seq] = h.n_valid;
  ctx->slot_stamp[seq] = ctx->n_steps;
  return Status::kOk;
}

}  // namespace ember

extern "C" {

using ember::set_error;
using ember::Status;
using ember::to_c;

ember_status ember_kv_copy(ember_context* ctx, int32_t src, int32_t dst, uint32_t n_tokens) {
  if (!ctx) return to_c(set_error(Status::kInvalidArgument, "ember_kv_copy: ctx is NULL"));
  for (const int32_t s : {src, dst}) {
    if (s < 0 || static_cast<uint32_t>(s) >= ctx->plan.n_seq_max) {
      return to_c(set_error(Status::kInvalidArgument,
                            "ember_kv_copy: seq_id %d is out of range [0, %u)", s,
                            ctx->plan.n_seq_max));
    }
  }
  if (ctx->slot_owner[dst] >= 0) {
    return to_c(set_error(Status::kInvalidArgument,
                          "ember_kv_copy: destination slot %d is held by request %llu", dst,
                          static_cast<unsigned long long>(ctx->requests[ctx->slot_owner[dst]].id)));
  }
  if (n_tokens > ctx->seq_len[src]) {
    return to_c(set_error(Status::kInvalidArgument, "ember_kv_copy: %u positions, slot %d holds %u",
                          n_tokens, src, ctx->seq_len[src]));
  }
  if (src != dst)
    ember::kv_copy_prefix(ctx, static_cast<uint32_t>(src), static_cast<uint32_t>(dst), n_tokens);
  ctx->seq_len[dst] = n_tokens;
  if (ctx->slot_valid[dst] > n_tokens) ctx->slot_valid[dst] = n_tokens;
  return EMBER_OK;
}

ember_status ember_kv_state_size(const ember_context* ctx, int32_t seq_id, size_t* out_bytes) {
  if (out_bytes) *out_bytes = 0;
  if (!ctx || !out_bytes) {
    return to_c(set_error(Status::kInvalidArgument, "ember_kv_state_size: %s is NULL",
                          !ctx ? "ctx" : "out_bytes"));
  }
  return to_c(ember::kv_state_size(ctx, seq_id, out_bytes));
}

ember_status ember_kv_state_save(ember_context* ctx, int32_t seq_id, void* buf, size_t cap,
                                 size_t* n_written) {
  if (n_written) *n_written = 0;
  if (!ctx || !n_written || (!buf && cap > 0)) {
    return to_c(set_error(Status::kInvalidArgument, "ember_kv_state_save: %s is NULL",
                          !ctx ? "ctx" : (!n_written ? "n_written" : "buf")));
  }
  return to_c(ember::kv_state_save(ctx, seq_id, static_cast<uint8_t*>(buf), cap, n_written));
}

ember_status ember_kv_state_load(ember_context* ctx, int32_t seq_id, const void* buf, size_t size) {
  if (!ctx) return to_c(set_error(Status::kInvalidArgument, "ember_kv_state_load: ctx is NULL"));
  return to_c(ember::kv_state_load(ctx, seq_id, static_cast<const uint8_t*>(buf), size));
}

ember_status ember_kv_state_save_file(ember_context* ctx, int32_t seq_id, const char* path) {
  if (!ctx || !path) {
    return to_c(set_error(Status::kInvalidArgument, "ember_kv_state_save_file: %s is NULL",
                          !ctx ? "ctx" : "path"));
  }
  size_t n = 0;
  Status s = ember::kv_state_size(ctx, seq_id, &n);
  if (s != Status::kOk) return to_c(s);
  void* buf = ember_platform_alloc(n, 64);
  if (buf == nullptr) {
    return to_c(set_error(Status::kOutOfMemory, "ember_kv_state_save_file: %zu bytes", n));
  }
  s = ember::kv_state_save(ctx, seq_id, static_cast<uint8_t*>(buf), n, &n);
  if (s == Status::kOk) {
    const int err = ember_platform_write_file(path, buf, n);
    if (err != 0) {
      s = set_error(err == ENOSYS ? Status::kUnsupported : Status::kIo,
                    "cannot write the KV state to '%s': %s", path, std::strerror(err));
    }
  }
  ember_platform_free(buf);
  return to_c(s);
}

ember_status ember_kv_state_load_file(ember_context* ctx, int32_t seq_id, const char* path) {
  if (!ctx || !path) {
    return to_c(set_error(Status::kInvalidArgument, "ember_kv_state_load_file: %s is NULL",
                          !ctx ? "ctx" : "path"));
  }
  const void* data = nullptr;
  size_t size = 0;
  void* handle = nullptr;
  const int err = ember_platform_map_file(path, &data, &size, &handle);
  if (err != 0) {
    return to_c(set_error(err == ENOSYS ? Status::kUnsupported : Status::kIo,
                          "cannot read the KV state '%s': %s", path, std::strerror(err)));
  }
  const Status s = ember::kv_state_load(ctx, seq_id, static_cast<const uint8_t*>(data), size);
  ember_platform_unmap_file(data, size, handle);
  return to_c(s);
}

}  // extern "C"
