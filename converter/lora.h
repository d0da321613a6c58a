// PEFT LoRA adapters merged into the float32 weights before quantization (issue 4).
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

// Merges the adapters, in order, into ir.tensors (float32, HF layout), appends one AdapterRecord per
// adapter to ir.adapters, and prints per adapted tensor the relative update |dW|/|W| to `log`.
// Throws ConvertError naming the adapter file and tensor on any mismatch.
void apply_loras(ModelIR& ir, const std::vector<LoraRequest>& requests, std::ostream& log);

}  // namespace convert
}  // namespace ember

#endif  // EMBER_CONVERTER_LORA_H_
