// Random-weight models of named shapes for benchmarks: "stories15m", "stories110m",
// "tinyllama-1.1b"; the tokenizer is a real one read from `tokenizer_dir` (tokenizer.json).
#ifndef EMBER_CONVERTER_SYNTHETIC_H_
#define EMBER_CONVERTER_SYNTHETIC_H_

#include <cstdint>
#include <string>

#include "model_ir.h"

namespace ember {
namespace convert {

ModelIR make_synthetic(const std::string& shape, uint64_t seed, const std::string& tokenizer_dir);

}  // namespace convert
}  // namespace ember

#endif  // EMBER_CONVERTER_SYNTHETIC_H_
