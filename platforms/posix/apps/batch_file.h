// ember-run --batch-file: every prompt of a file through the continuous batcher (ember_step).
#ifndef EMBER_APPS_BATCH_FILE_H_
#define EMBER_APPS_BATCH_FILE_H_

#include <cstdint>
#include <string>

#include "ember/ember.h"

namespace ember_app {

// The defaults every line starts from (ember-run's flags).
struct BatchDefaults {
  uint32_t max_tokens = 128;
  ember_sampler_params sampler{};
  bool stop_at_bos = true;
};

// Runs the file's prompts with `parallel` slots (0: min(8, lines)) on a context made from `cp`
// (n_seq_max / n_queue_max / n_batch_max are set here). stdout: one JSON object per line, in the
// file's order; stderr: a summary. Returns the exit code: 0, or 1 when the file cannot be read or
// the context cannot be made (a bad line only gets an error object).
int run_batch_file(const ember_model* model, ember_context_params cp, const std::string& path,
                   uint32_t parallel, const BatchDefaults& defaults);

}  // namespace ember_app

#endif  // EMBER_APPS_BATCH_FILE_H_
