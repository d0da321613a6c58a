// Hugging Face tokenizer.json (+ tokenizer_config.json, generation_config.json beside it) -> the
// TokenizerSpec stored in the model file; and its FlatBuffers serialization. Throws ConvertError
// naming the file and field for anything unsupported (never a silently wrong tokenizer).
#ifndef EMBER_CONVERTER_TOKENIZER_JSON_H_
#define EMBER_CONVERTER_TOKENIZER_JSON_H_

#include <string>

#include "flatbuffers/flatbuffers.h"
#include "model_ir.h"

namespace ember {
namespace convert {

// `dir` holds tokenizer.json (required) and optionally tokenizer_config.json.
TokenizerSpec load_hf_tokenizer(const std::string& dir);

flatbuffers::Offset<fb::Tokenizer> build_tokenizer(flatbuffers::FlatBufferBuilder& fbb,
                                                   const TokenizerSpec& spec);

}  // namespace convert
}  // namespace ember

#endif  // EMBER_CONVERTER_TOKENIZER_JSON_H_
