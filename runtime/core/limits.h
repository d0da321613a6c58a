// Limits on what a model's config and tokenizer may declare. They keep every size computed from
// them (products of a few of these, in 64-bit) far from overflow. Defined once for the runtime,
// which checks them all at load, and the converter, which checks token ids against kMaxVocab.
#ifndef EMBER_CORE_LIMITS_H_
#define EMBER_CORE_LIMITS_H_

#include <cstdint>

namespace ember {

constexpr uint32_t kMaxHiddenSize = 1u << 16;  // also bounds num_heads x head_dim
constexpr uint32_t kMaxLayers = 1024;
constexpr uint32_t kMaxHeads = 1024;  // num_heads and num_kv_heads
constexpr uint32_t kMaxHeadDim = 1024;
constexpr uint32_t kMaxIntermediate = 1u << 18;
constexpr uint32_t kMaxVocab = 1u << 22;  // config.vocab_size, tokenizer pieces, token ids
constexpr uint32_t kMaxContext = 1u << 22;

}  // namespace ember

#endif  // EMBER_CORE_LIMITS_H_
