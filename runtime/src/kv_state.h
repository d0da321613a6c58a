// Prefix sharing and saved state of a sequence slot's KV cache (kv_state.cc).
#ifndef EMBER_SRC_KV_STATE_H_
#define EMBER_SRC_KV_STATE_H_

#include <cstddef>
#include <cstdint>

#include "core/status.h"

namespace ember {

struct Context;
struct Model;

// A 64-bit tag of what a model's cached keys and values depend on (config, weights): a saved
// state carries it and a load into another model's context is refused.
uint64_t model_identity(const Model& m);

// Copies slot src's first n cached positions (rows as stored, ids, validity) into slot dst, which
// then holds exactly those. n <= src's length; src != dst.
void kv_copy_prefix(Context* ctx, uint32_t src, uint32_t dst, uint32_t n);

// The checksum a state ends with, over its first n bytes (all but the checksum's 8).
uint64_t kv_state_checksum(const uint8_t* state, size_t n);

Status kv_state_size(const Context* ctx, int32_t seq_id, size_t* out);
Status kv_state_save(Context* ctx, int32_t seq_id, uint8_t* buf, size_t cap, size_t* n_out);
Status kv_state_load(Context* ctx, int32_t seq_id, const uint8_t* buf, size_t size);

}  // namespace ember

#endif  // EMBER_SRC_KV_STATE_H_
