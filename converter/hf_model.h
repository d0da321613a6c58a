// A Hugging Face Llama model directory -> ModelIR (float32 tensors in HF layout + config +
// tokenizer). The tensor set is checked against the config: every expected tensor present with the
// expected shape, nothing unexpected (a stray bias or an extra layer would otherwise be dropped
// silently). q_proj/k_proj rows stay in HF (rotate_half) order, which is what the runtime uses.
#ifndef EMBER_CONVERTER_HF_MODEL_H_
#define EMBER_CONVERTER_HF_MODEL_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "model_ir.h"

namespace ember {
namespace convert {

// (name, shape) of every tensor a Llama model with this config has, in file order (embedding,
// layer by layer, final norm, lm_head unless tied).
std::vector<std::pair<std::string, std::vector<uint64_t>>> expected_llama_tensors(
    const ConfigSpec& c);

// Checks `tensors` against the config. Drops tensors that carry no weights of their own
// (rotary_emb.inv_freq buffers; an lm_head.weight equal to the tied embedding). Throws ConvertError
// naming `source`, the missing/unexpected tensor(s) or the mismatching shape.
void validate_llama_tensors(const ConfigSpec& c, std::map<std::string, FloatTensor>* tensors,
                            const std::string& source);

// config.json + generation_config.json + safetensors (+ tokenizer.json when present and
// `load_tokenizer`). Fills ir.source and ir.source_dtype.
ModelIR load_hf_model(const std::string& dir, bool load_tokenizer = true);

// Tokenizer only (tokenizer.json, tokenizer_config.json, generation_config.json): for
// --tokenizer-only files. ir.has_config is false and ir.tensors empty.
ModelIR load_hf_tokenizer_only(const std::string& dir);

// "model.layers.10.x" sorts after "model.layers.9.x" (digit runs compare as numbers).
bool natural_less(const std::string& a, const std::string& b);

}  // namespace convert
}  // namespace ember

#endif  // EMBER_CONVERTER_HF_MODEL_H_
