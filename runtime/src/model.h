// A verified, read-only model: the .ember file (mapped or a caller's buffer) plus the few small
// things built once at load (per-layer weight views, float copies of the norm vectors and biases,
// the tokenizer's lookup tables). Weight matrices are used in place, never copied. Like a context,
// a model is planned, then built in one block: plan_model() verifies the file and lays the block
// out (the Model itself first), init_model() builds it there (the caller's arena or one
// allocation).
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
  LayerWeights* layers = nullptr;     // (num_layers), in the block
  float* vectors = nullptr;           // the float copies of norms/biases, in the block
  size_t max_groups = 0;  // most zero-one groups per row over the u8 matrices multiplied (0: none)
  size_t max_act_groups = 0;   // most activation groups per row over those matrices (0: none)
  size_t u8_k_max = 0;         // most columns (inputs) of a u8 matrix multiplied (0: none)
  size_t max_piece_bytes = 0;  // longest tokenizer piece (sizes the detok buffer)

  Tokenizer tokenizer;  // its tables in the block

  // The block the model lives in: ModelPlan::total bytes, the Model at its start.
  size_t block_bytes = 0;
  bool owns_block = false;  // allocated by the runtime: ember_model_free frees it
};

// Byte offsets of everything a load builds in the model's block (all 64-aligned), and the total.
struct ModelPlan {
  uint32_t n_layers = 0;
  size_t off_layers = 0;                          // (n_layers) LayerWeights
  size_t off_vectors = 0, n_vector_floats = 0;    // float copies of norms and biases
  size_t off_tokenizer = 0, tokenizer_bytes = 0;  // the tokenizer's lookup tables
  size_t total = 0;                               // the Model itself at 0, then the above
};

// Verifies `data` (size bytes) as a load does, every check included, and lays out the block; on
// failure the error message is set. Allocates nothing.
Status plan_model(const uint8_t* data, size_t size, ModelPlan* plan);
// Builds the model planned from the same `data` in `block` (plan.total bytes, 64-aligned): *out is
// the Model at the block's start, which borrows `data`. Nothing to undo on failure.
Status init_model(const uint8_t* data, size_t size, const ModelPlan& plan, uint8_t* block,
                  Model** out);
// Ends the model's lifetime; its block (and a mapping) are the caller's to free.
void destroy_model(Model* m);

}  // namespace ember

// The opaque C handle is the Model itself.
struct ember_model : ember::Model {};

namespace ember {
// The tokenizer of a model (for api_tokenizer.cc); nullptr when `m` is NULL.
const Tokenizer* model_tokenizer(const ember_model* m);
}  // namespace ember

namespace ember {
// Row `row` of a weight matrix as floats (cols values): the embedding lookup.
void dequantize_row(const WeightRef& w, size_t row, float* out);
}  // namespace ember
#endif  // EMBER_SRC_MODEL_H_
