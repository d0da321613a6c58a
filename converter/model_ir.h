// The converter's in-memory model: what the readers (safetensors + config.json + tokenizer.json,
// or --synthetic) produce, what LoRA merging edits (in float32), and what the writer quantizes and
// serializes. Workstation code: std containers and exceptions (ConvertError) are fine here; main()
// turns an exception into a message and a non-zero exit, like the runtime's status codes.
#ifndef EMBER_CONVERTER_MODEL_IR_H_
#define EMBER_CONVERTER_MODEL_IR_H_

#include <array>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "ember_generated.h"

namespace ember {
namespace convert {

// Every converter error: the message names the file and the field/tensor at fault.
struct ConvertError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct FloatTensor {
  std::vector<uint64_t> shape;  // outermost first; Linear weights are (out, in)
  std::vector<float> data;      // row-major, product(shape) values
  std::string source_dtype;     // "F32", "F16", "BF16" as read
};

// Mirrors fb::ModelConfig.
struct ConfigSpec {
  std::string architecture = "llama";
  uint32_t hidden_size = 0, num_layers = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0;
  uint32_t intermediate_size = 0, vocab_size = 0, max_context = 0;
  float rope_theta = 10000.0f;
  fb::RopeScalingType rope_scaling_type = fb::RopeScalingType::NONE;
  float rope_factor = 1.0f, rope_low_freq_factor = 1.0f, rope_high_freq_factor = 4.0f;
  uint32_t rope_original_max_position = 0;
  float norm_eps = 1e-5f;
  bool tie_embeddings = false;
  fb::Activation activation = fb::Activation::SILU;
  bool attention_bias = false, mlp_bias = false;
  uint32_t sliding_window = 0;
  int32_t bos_token_id = -1;
  std::vector<int32_t> eos_token_ids;  // config.json / generation_config.json
};

// Mirrors fb::Tokenizer; filled from tokenizer.json by tokenizer_json.cc, which also serializes it.
struct TokenizerSpec {
  fb::TokenizerKind kind = fb::TokenizerKind::SENTENCEPIECE_BPE;
  fb::PreTokenizer pre_tokenizer = fb::PreTokenizer::NONE;
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<uint8_t> types;                   // fb::TokenType values
  std::vector<std::array<uint32_t, 3>> merges;  // (left, right, result) in rank order
  int32_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;
  bool add_bos = false, add_eos = false, byte_fallback = false, add_prefix_space = false;
  bool fuse_unk = false, ignore_merges = false;
  std::vector<int32_t> special_ids, added_ids, eos_ids;
  std::vector<uint32_t> unicode_classes;  // (first_cp << 2) | class, see ember.fbs
  bool prefix_first_only = false, metaspace_split = false;
  bool normalizer_nfc = false;
  std::vector<uint32_t> nfc_ccc, nfc_decomp, nfc_compose;  // see ember.fbs
  bool split_digits = false;
  std::string chat_template;  // tokenizer_config.json's, "" = none
};

// A merged LoRA adapter, recorded in the file (fb::Adapter).
struct AdapterRecord {
  std::string name, sha256;
  uint32_t r = 0;
  float alpha = 0, scale = 1;
  bool use_rslora = false;
  std::vector<std::string> modules;
};

// A matrix stored in float instead of --quant's type, and the --keep-float rule that chose it
// (recorded in the file as fb::FloatChoice).
struct FloatChoiceRecord {
  std::string name;  // the tensor (a name in ModelIR::tensors)
  DType dtype = DType::kF32;
  std::string pattern;  // the rule, "PATTERN:TYPE"
  double kl = -1;       // --auto-float: KL when this matrix alone is quantized; -1 = not measured
};

struct ModelIR {
  ConfigSpec config;
  bool has_config = true;  // false for --tokenizer-only files
  std::map<std::string, FloatTensor>
      tensors;  // HF names, HF layout (q/k rows in rotate_half order)
  bool has_tokenizer = false;
  TokenizerSpec tokenizer;
  std::vector<AdapterRecord> adapters;
  std::string source, source_dtype, command_line;
  std::vector<std::string> keep_float;            // --keep-float rules, "PATTERN:TYPE"
  std::vector<FloatChoiceRecord> float_choices;   // the tensors they keep in float, in name order
  std::vector<FloatChoiceRecord> float_measured;  // --auto-float: measured and left quantized
};

}  // namespace convert
}  // namespace ember

#endif  // EMBER_CONVERTER_MODEL_IR_H_
