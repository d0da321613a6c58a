// Fuzz target: a model directory's config.json (then generation_config.json, after the file
// separator) read by load_hf_config.
#include <cstdint>

#include "fuzz_util.h"
#include "hf_config.h"
#include "model_ir.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::string> files = ember_fuzz::split_files(data, size, 2);
  ember_fuzz::put_file("config.json", files[0].empty() ? std::string(" ") : files[0]);
  ember_fuzz::put_file("generation_config.json", files[1]);
  try {
    (void)ember::convert::load_hf_config(ember_fuzz::scratch_dir());
  } catch (const ember::convert::ConvertError&) {
  }
  return 0;
}
