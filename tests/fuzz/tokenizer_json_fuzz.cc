// Fuzz target: tokenizer.json (then tokenizer_config.json, after the file separator) read by the
// converter; a tokenizer it accepts is written as a tokenizer-only .ember, loaded by the runtime
// and used, so that nothing the converter lets through can break the runtime.
#include <cstdint>

#include "ember/ember.h"
#include "fuzz_util.h"
#include "hf_model.h"
#include "model_ir.h"
#include "writer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::string> files = ember_fuzz::split_files(data, size, 2);
  ember_fuzz::put_file("tokenizer.json", files[0].empty() ? std::string(" ") : files[0]);
  ember_fuzz::put_file("tokenizer_config.json", files[1]);
  ember_fuzz::put_file("generation_config.json", "");
  const std::string out = ember_fuzz::scratch_dir() + "/tok.ember";
  try {
    ember::convert::ModelIR ir = ember::convert::load_hf_tokenizer_only(ember_fuzz::scratch_dir());
    ember::convert::WriteOptions opts;
    opts.force = true;
    ember::convert::write_ember(ir, out, opts);
  } catch (const ember::convert::ConvertError&) {
    return 0;
  }
  ember_model* m = nullptr;
  if (ember_model_load_file(out.c_str(), &m) != EMBER_OK) return 0;
  static const char kText[] =
      "Hello world! <s> </s> <|endoftext|> \xe2\x96\x81 caf\xc3\xa9 \xf0\x9f\x98\x80 \xff";
  int32_t ids[512];
  size_t n = 0;
  for (uint32_t flags = 0; flags < 4; ++flags) {
    if (ember_tokenize(m, kText, sizeof kText - 1, flags, ids, 512, &n) != EMBER_OK) continue;
    char text[4096];
    size_t n_text = 0;
    (void)ember_detokenize(m, ids, n, flags & 1, text, sizeof text, &n_text);
  }
  ember_model_free(m);
  return 0;
}
