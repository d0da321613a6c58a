// Fuzz target: a safetensors file — the header parser on the bytes in memory, then, when it parses,
// the file opened (mmap) and every tensor widened to float32.
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "model_ir.h"
#include "safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ember::convert;
  try {
    parse_safetensors_header(data, size, "fuzz.safetensors");
  } catch (const ConvertError&) {
    return 0;
  }
  const std::string path = ember_fuzz::put_file(
      "model.safetensors", std::string(reinterpret_cast<const char*>(data), size));
  try {
    SafetensorsFile f(path);
    for (const SafetensorsEntry& e : f.entries()) (void)f.read(e.name);
  } catch (const ConvertError&) {
  }
  return 0;
}
