// Fuzz target: a PEFT adapter — adapter_config.json, then (after the file separator)
// adapter_model.safetensors — merged into stories260K (read once from ../shared).
#include <cstdint>
#include <sstream>

#include "fuzz_util.h"
#include "hf_model.h"
#include "lora.h"
#include "model_ir.h"

namespace {
const ember::convert::ModelIR& base_model() {
  static const ember::convert::ModelIR ir = ember::convert::load_hf_model(
      ember_fuzz::shared_dir() + "/models/stories260K/hf", /*load_tokenizer=*/false);
  return ir;
}
}  // namespace

// Reads the base model before the first input (outside its time limit).
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  base_model();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ember::convert::ModelIR& base = base_model();
  const std::vector<std::string> files = ember_fuzz::split_files(data, size, 2);
  ember_fuzz::put_file("adapter_config.json", files[0]);
  ember_fuzz::put_file("adapter_model.safetensors", files[1]);
  ember::convert::ModelIR ir = base;
  std::ostringstream log;
  try {
    ember::convert::apply_loras(ir, {{ember_fuzz::scratch_dir(), 1.0f}}, log);
  } catch (const ember::convert::ConvertError&) {
  }
  return 0;
}
