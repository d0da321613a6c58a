// A verified, read-only model: the .ember file (mapped or a caller's buffer) plus the few small
// things built once at load (per-layer weight views, float copies of the norm vectors and biases,
// the tokenizer's lookup tables). Weight matrices are used in place, never copied.
#ifndef EMBER_SRC_MODEL_H_
#define EMBER_SRC_MODEL_H_

#include <cstddef>
#include <cstdint>

#include "core/limits.h"
#include "core/status.h"
#include "ember/ember.h"
#include "linear.h"
#include "tokenizer.h"

namespace ember {
namespace fb {
struct Model;
}

struct ModelConfig {
  uint32_t hidden_size = 0;  // dim
  uint32_t num_layers = 0;
  uint32_t num_heads = 0;
  uint32_t num_kv_heads = 0;
  uint32_t head_dim = 0;
  uint32_t q_dim = 0;              // num_heads * head_dim
  uint32_t kv_dim = 0;             // num_kv_heads * head_dim
  uint32_t intermediate_size = 0;  // ffn
  uint32_t vocab_size = 0;
  uint32_t max_context = 0;
  float rope_theta = 10000.0f;
  uint8_t rope_scaling_type = 0;  // fb::RopeScalingType
  float rope_factor = 1.0f, rope_low_freq_factor = 1.0f, rope_high_freq_factor = 4.0f;
  uint32_t rope_original_max_position = 0;
  float norm_eps = 1e-5f;
  bool tie_embeddings = false;
  bool attention_bias = false;
  bool mlp_bias = false;
};

struct LayerWeights {
  const float* attn_norm = nullptr;  // (dim) float copy
  const float* ffn_norm = nullptr;   // (dim)
  WeightRef wq;                      // (q_dim, dim)
  WeightRef wk;                      // (kv_dim, dim)
  WeightRef wv;                      // (kv_dim, dim)
  WeightRef wo;                      // (dim, q_dim)
  WeightRef w_gate;                  // (ffn, dim)
  WeightRef w_up;                    // (ffn, dim)
  WeightRef w_down;                  // (dim, ffn)
  // Biases (nullptr when the config has none), float copies.
  const float* bq = nullptr;      // (q_dim)
  const float* bk = nullptr;      // (kv_dim)
  const float* bv = nullptr;      // (kv_dim)
  const float* bo = nullptr;      // (dim)
  const float* b_gate = nullptr;  // (ffn)
  const float* b_up = nullptr;    // (ffn)
  const float* b_down = nullptr;  // (dim)
};

struct Model {
  // The file.
  const uint8_t* data = nullptr;
  size_t size = 0;
  void* map_handle = nullptr;  // non-null or `mapped`: unmap at free
  bool mapped = false;
  const fb::Model* root = nullptr;
  const uint8_t* weights = nullptr;  // data + weights_offset
  uint64_t weights_size = 0;
  uint64_t f32_bytes = 0;         // what the tensors would take in float32
  uint64_t token_read_bytes = 0;  // weight bytes a one-token forward pass reads (see load_weights)

  bool has_config = false;  // false: a tokenizer-only file (ember_context_create refuses it)
  ModelConfig config;
  const char* architecture = "";

  WeightRef embed;                    // (vocab, dim): rows are read (dequantized) per token
  WeightRef output;                   // (vocab, dim): lm_head, or embed when tied
  const float* final_norm = nullptr;  // (dim)
  LayerWeights* layers = nullptr;     // (num_layers), owned (ember_platform_alloc)
  float* vectors = nullptr;           // the float copies of norms/biases, owned
  size_t max_groups = 1;              // most zero-one groups per row over all u8 matrices
  size_t max_piece_bytes = 0;         // longest tokenizer piece (sizes the detok buffer)

  Tokenizer tokenizer;
};

// Verifies `data` (size bytes) and fills *out (constructed by the caller). On failure the error
// message is set and the model holds nothing that needs freeing beyond release_model().
Status load_model(const uint8_t* data, size_t size, Model* out);
// Frees what load_model allocated (not the mapping).
void release_model(Model* m);

}  // namespace ember

// The opaque C handle is the Model itself.
struct ember_model : ember::Model {};

namespace ember {
// The tokenizer of a model (for api_tokenizer.cc); nullptr when `m` is NULL.
const Tokenizer* model_tokenizer(const ember_model* m);
}  // namespace ember

namespace ember {
// Row `row` of a weight matrix as floats (cols values): the embedding lookup, norm vectors.
void dequantize_row(const WeightRef& w, size_t row, float* out);
}  // namespace ember
#endif  // EMBER_SRC_MODEL_H_
