// ember-run --batch-file: every prompt of a file through the continuous batcher (ember_step).
#ifndef EMBER_APPS_BATCH_FILE_H_
#define EMBER_APPS_BATCH_FILE_H_

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "ember/ember.h"

namespace ember_app {

// The defaults every line starts from (ember-run's flags).
struct BatchDefaults {
  uint32_t max_tokens = 128;
  ember_sampler_params sampler{};
  bool stop_at_bos = true;
};

// One line of the file: the request it asks for, or why it cannot run.
struct BatchLine {
  std::string prompt;
  std::string error;  // not empty: the line does not run, its output is {"index", "error"}
  uint32_t max_tokens = 0;
  ember_sampler_params sampler{};
  std::vector<std::string> stops;
};

// The file's bytes cut at '\n' (a '\r' before it dropped). A last line without '\n' counts; the
// empty rest after a final '\n' does not.
std::vector<std::string> split_batch_lines(const std::string& bytes);

// One line over the defaults: a line starting with '{' is a JSON object ({"prompt", "max_tokens",
// "temperature", "top_k", "top_p", "seed", "stop"}; all but "prompt" optional), any other line is
// the prompt itself. A field of the wrong type or out of its type's range sets `error`; values the
// runtime refuses (top_p 0, too many stop strings, ...) are left to ember_request_submit.
BatchLine parse_batch_line(const std::string& text, const BatchDefaults& defaults);

// Runs `lines` on a context made from `cp` with `parallel` slots (0: min(8, lines); n_seq_max /
// n_queue_max / n_batch_max are set here), feeding lines as places free up. `out` gets one JSON
// object per line, in the file's order; `summary` (may be NULL) a line of totals. Returns 0, or 1
// when the context cannot be made (a bad line only gets an error object).
int run_batch(const ember_model* model, ember_context_params cp,
              const std::vector<BatchLine>& lines, uint32_t parallel, bool stop_at_bos, FILE* out,
              FILE* summary);

// ember-run --batch-file: the file at `path` read, split, parsed and run (run_batch) with stdout
// and stderr. Returns the exit code: 0, or 1 when the file cannot be read or the context cannot be
// made.
int run_batch_file(const ember_model* model, ember_context_params cp, const std::string& path,
                   uint32_t parallel, const BatchDefaults& defaults);

}  // namespace ember_app

#endif  // EMBER_APPS_BATCH_FILE_H_
