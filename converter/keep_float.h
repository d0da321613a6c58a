// --keep-float PATTERN[:f16|f32]: mixed precision. The matrices whose names match a pattern are
// stored in float (f32 when no type is given: exactly as converted) while the rest get --quant's
// type. Patterns are fnmatch(3) globs without flags over the Hugging Face tensor names the file
// keeps (`*` any run of characters, dots included; `?` one character; `[...]` a set, `[!...]` its
// complement; `\` quotes the next character), e.g. `lm_head.weight`, `*.down_proj.*`,
// `model.layers.0.*`. A pattern that contains ':' must end with the type (`'[[:digit:]]*:f32'`).
//
// Tied embeddings: the file then holds one table, `model.embed_tokens.weight`, which is also the
// output head, so it answers to both names: `lm_head.weight` keeps it in float (the input
// embedding with it, as they are one tensor).
// 1-D tensors (norms, biases) are float32 in every mode: a pattern may match them along with
// matrices, but one that matches nothing else is an error (it would change nothing), as is one
// that matches no tensor at all, a malformed pattern, and two rules giving one tensor different
// types.
#ifndef EMBER_CONVERTER_KEEP_FLOAT_H_
#define EMBER_CONVERTER_KEEP_FLOAT_H_

#include <string>
#include <vector>

#include "model_ir.h"
#include "quantize.h"

namespace ember {
namespace convert {

struct KeepFloatRule {
  std::string pattern;        // the glob
  DType dtype = DType::kF32;  // kF32 or kF16
  std::string text() const;   // "PATTERN:TYPE", as the file records it
};

// "f16" / "f32" -> *t; false (and *t unchanged) for anything else.
bool float_type_named(const std::string& s, DType* t);

// One --keep-float argument; throws ConvertError naming it when it is empty, has a type other than
// f16 / f32, or is not a well-formed glob (a '[' without its ']', a trailing '\').
KeepFloatRule parse_keep_float(const std::string& arg);

// fnmatch(3) with no flags: `name` matches `pattern` as a whole.
bool glob_match(const std::string& pattern, const std::string& name);

// Throws ConvertError for rules with --quant f32 (nothing is quantized) and for an f16 rule with
// --quant f16 (those tensors are f16 already): checked before the model is read.
void check_keep_float_mode(const std::vector<KeepFloatRule>& rules, QuantMode mode);

// Matches `rules` against the tensors of `ir` (a loaded model) and records the choice in
// ir->keep_float and ir->float_choices. Throws ConvertError for a rule that matches no tensor or
// only 1-D ones, for two rules that give one tensor different types, and as
// check_keep_float_mode.
void apply_keep_float(const std::vector<KeepFloatRule>& rules, QuantMode mode, ModelIR* ir);

}  // namespace convert
}  // namespace ember

#endif  // EMBER_CONVERTER_KEEP_FLOAT_H_
