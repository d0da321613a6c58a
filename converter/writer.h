// ModelIR -> .ember file (layout in schema/ember.fbs and runtime/core/format.h):
//   [uint32 size][FlatBuffer "EMBR"][zero pad][weight region @ weights_offset, 64-aligned]
// Each tensor's data, then its zero-one params, start on a 64-byte boundary of the weight region
// (offsets relative to weights_offset). The file is written to OUT.tmp.XXXXXX beside OUT, fsynced
// and renamed into place only when complete (then the directory is fsynced), so an error, a full
// disk or a kill never leaves a partial OUT; an existing OUT is kept unless `force`.
#ifndef EMBER_CONVERTER_WRITER_H_
#define EMBER_CONVERTER_WRITER_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "model_ir.h"
#include "quantize.h"

namespace ember {
namespace convert {

struct WriteOptions {
  QuantMode mode = QuantMode::U8;
  U8Options u8;                      // zero-one group, params type, activation group
  bool float_blocks = true;          // F32/F16 matrices in row blocks (format 4), else row-major
  bool force = false;                // overwrite an existing output
  std::ostream* progress = nullptr;  // progress bar (stderr), or none
  bool progress_tty = false;         // redraw the bar in place; otherwise one line per phase
};

struct TensorReport {
  std::string name;
  std::string type;    // "f32", "f16", "u8/g64", "u8/row", "u8/g64/f16/a16"
  uint64_t bytes = 0;  // data + params
  double rel_rms_error = 0;
  std::string kept_by;  // the --keep-float rule that kept it in float, or ""
};

struct WriteReport {
  std::vector<TensorReport> tensors;  // in file order
  uint64_t file_size = 0;
  uint64_t weight_bytes = 0;  // sum of TensorReport::bytes
  uint64_t f32_bytes = 0;     // the same tensors stored as float32
};

// The infix of the temporary beside OUT: OUT.tmp.XXXXXX.
inline constexpr const char kTempInfix[] = ".tmp.";

// Removes the temporaries (OUT.tmp.XXXXXX) that killed runs left beside `out`; a live writer's
// temporary is locked (flock) and kept. Returns how many were removed. write_ember calls it.
int remove_stale_temporaries(const std::string& out);

// Throws ConvertError if `out` exists and !force (checked before the slow work, and again at
// rename).
void check_output_path(const std::string& out, bool force);

// Whether tensor `name` of `ir`, stored in float, goes into row blocks: with opts.float_blocks,
// every matrix but an untied embedding (only gathered by row).
bool float_rows_blocked(const ModelIR& ir, const std::string& name, const WriteOptions& opts);

// Writes `ir` (tensors converted per `opts`) to `out`. Throws ConvertError on failure, leaving no
// temporary file behind and any existing `out` untouched.
WriteReport write_ember(const ModelIR& ir, const std::string& out, const WriteOptions& opts);

// Prints the per-tensor table and the totals.
void print_report(const WriteReport& r, std::ostream& os);

}  // namespace convert
}  // namespace ember

#endif  // EMBER_CONVERTER_WRITER_H_
