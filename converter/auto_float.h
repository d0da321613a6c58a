// --auto-float BUDGET[:f16|f32]: which matrices to keep in float, chosen by measured error.
//
// Each matrix the file would quantize is quantized alone (every other tensor f32), the candidate is
// loaded into the runtime in-process, and its output is compared with the all-f32 model's on the
// same tokens, teacher-forced (mean KL(f32 || candidate) per scored token: eval_core.h). The
// matrices are ranked by that KL and kept in float, worst first, while the file grows by at most
// BUDGET over the plain quantized file; one that does not fit is passed over for the smaller ones
// further down the ranking.
//
// The tokens: windows of an evaluation text (--eval-text), or windows sampled from the f32 model
// itself (temperature 1, a fixed seed: the model's own output). The cost: one conversion and one
// evaluation per matrix, written to a temporary directory that is removed afterwards.
#ifndef EMBER_CONVERTER_AUTO_FLOAT_H_
#define EMBER_CONVERTER_AUTO_FLOAT_H_

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "model_ir.h"
#include "writer.h"

namespace ember {
namespace convert {

struct AutoFloatOptions {
  double budget = 0;  // bytes, or a fraction of the quantized file with `percent`
  bool percent = false;
  DType dtype = DType::kF16;    // what the chosen matrices are stored as
  std::string text;             // the argument as given, recorded in the file
  std::string eval_text;        // evaluation text file; empty: sampled from the f32 model
  uint32_t ctx = 0;             // evaluation window (0 = eval_core's default)
  int64_t chunks = -1;          // windows per measurement: -1 = enough for about 2048 scored
                                // tokens, 0 = every whole window of eval_text
  uint32_t threads = 1;         // worker threads of the evaluation contexts
  uint64_t seed = 1;            // for the sampled windows
  std::ostream* log = nullptr;  // the measurements as they are made
};

// "5%", "10MB", "1.5MiB", "300000" (bytes), optionally ":f16" / ":f32"; throws ConvertError naming
// the argument when it is not one of those or is negative.
AutoFloatOptions parse_auto_float(const std::string& arg);

struct AutoFloatEntry {
  std::string name;
  double kl = 0;            // mean KL(f32 || model) with this matrix alone quantized, nats
  uint64_t grow_bytes = 0;  // what keeping it in float adds to the file
  bool kept = false;
};

struct AutoFloatResult {
  std::vector<AutoFloatEntry> ranking;  // worst first
  uint64_t quantized_file_bytes = 0;    // the file without auto-float choices
  uint64_t budget_bytes = 0;
  uint64_t grown_bytes = 0;  // sum of grow_bytes of the kept
  uint64_t tokens = 0;       // scored tokens per evaluation
  uint32_t ctx = 0;          // the evaluation's window
  uint32_t windows = 0;      // and its windows: tokens [0, ctx * windows) of the text were used
};

// Measures, ranks and chooses; adds the chosen matrices to ir->float_choices (after any
// --keep-float ones, which it leaves as they are and does not measure) and every measured KL to
// ir->float_measured. `opts` is what the file will be written with (--quant u8). Throws
// ConvertError on any failure.
AutoFloatResult choose_auto_float(ModelIR* ir, const WriteOptions& opts, const AutoFloatOptions& a);

// The ranking and the choice, one line per matrix.
void print_auto_float(const AutoFloatResult& r, std::ostream& os);

}  // namespace convert
}  // namespace ember

#endif  // EMBER_CONVERTER_AUTO_FLOAT_H_
