// PEFT LoRA adapters merged into the float32 weights before quantization.
#ifndef EMBER_CONVERTER_LORA_H_
#define EMBER_CONVERTER_LORA_H_

#include <ostream>
#include <string>
#include <vector>

#include "model_ir.h"

namespace ember {
namespace convert {

struct LoraRequest {
  std::string dir;     // PEFT adapter directory (adapter_config.json + adapter_model.safetensors)
  float scale = 1.0f;  // user scale on top of lora_alpha / r
};

// Parses "DIR[:SCALE]" (throws ConvertError on a bad scale).
LoraRequest parse_lora_arg(const std::string& arg);

// Merges the adapters, in order, into ir.tensors (float32, HF layout), appends one AdapterRecord
// per adapter to ir.adapters, and prints per adapted tensor the relative update |dW|/|W| to `log`.
// Throws ConvertError naming the adapter file and tensor on any mismatch.
//
// Contract (PEFT semantics; lora.cc has the details):
//  - W' = W + scale * (alpha / r) * B·A (alpha / sqrt(r) with use_rslora), summed in double and
//    rounded once to float32; r and alpha per module from rank_pattern / alpha_pattern.
//  - Accepted keys: [base_model.model.]<module>.lora_{A,B}[.<adapter>].weight,
//    <module>.lora_embedding_{A,B}[.<adapter>] (Embedding LoRA, update (B·A)^T),
//    <module>[.modules_to_save[.<adapter>]].weight for modules_to_save (a full replacement; a tied
//    head is untied, as PEFT replaces a copy of the module).
//  - fan_in_fan_out only says the base weight was stored (in, out); the IR holds (out, in) and
//    lora_A / lora_B are [r, in] / [out, r] either way, so the update is B·A.
//  - Refused by name: peft_type other than LORA, DoRA, QALoRA, lora_bias, layer_replication, bias
//    tensors, adapter_model.bin. Also refused: A/B shapes that do not fit, r disagreeing with the
//    tensors, a target_modules entry matching nothing, a module selected but absent from the file
//    (or present but not selected), a missing A/B partner, NaN/Inf. Each adapter is checked fully
//    before its first write.
void apply_loras(ModelIR& ir, const std::vector<LoraRequest>& requests, std::ostream& log);

}  // namespace convert
}  // namespace ember

#endif  // EMBER_CONVERTER_LORA_H_
