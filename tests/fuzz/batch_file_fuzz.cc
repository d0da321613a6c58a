// Fuzz target: arbitrary bytes as an `ember-run --batch-file` file. Every line goes through the
// app's own parser (platforms/posix/apps/batch_file.h); the first lines then run as the app runs
// them (run_batch: a context, the continuous batcher, every result line written) on stories260K,
// converted (u8) at start-up from ../shared, with at most a few new tokens each.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "batch_file.h"
#include "ember/ember.h"
#include "fuzz_util.h"
#include "hf_model.h"
#include "writer.h"

namespace {

// Harness limits, so an input stays well inside the time limit: a line may rightly ask for 2^32-1
// new tokens (a long generation is not what is fuzzed here), and a file may hold thousands of
// lines.
constexpr uint32_t kMaxNewTokens = 3;
constexpr size_t kMaxLinesRun = 24;

// Loaded once and never freed (LeakSanitizer's check at exit would see a static's destructor run).
const ember_model* model() {
  static const ember_model* m = [] {
    const std::string dir = ember_fuzz::shared_dir() + "/models/stories260K/hf";
    const std::string out = ember_fuzz::scratch_dir() + "/stories.ember";
    try {
      ember::convert::WriteOptions opts;
      opts.force = true;
      ember::convert::write_ember(ember::convert::load_hf_model(dir), out, opts);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "batch_file_fuzz: %s: %s\n", dir.c_str(), e.what());
      std::abort();  // the shared data is a prerequisite (EMBER_SHARED_DIR)
    }
    ember_model* loaded = nullptr;
    if (ember_model_load_file(out.c_str(), &loaded) != EMBER_OK) {
      std::fprintf(stderr, "batch_file_fuzz: %s: %s\n", out.c_str(), ember_last_error());
      std::abort();
    }
    return loaded;
  }();
  return m;
}

FILE* dev_null() {
  static FILE* f = std::fopen("/dev/null", "w");
  return f;
}

}  // namespace

// Converts and loads the model before the first input (outside its time limit).
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  model();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ember_app::BatchDefaults d;  // ember-run's flags' defaults
  d.max_tokens = kMaxNewTokens;
  d.sampler = ember_sampler_default_params();
  std::vector<ember_app::BatchLine> lines;
  for (const std::string& text :
       ember_app::split_batch_lines(std::string(reinterpret_cast<const char*>(data), size))) {
    lines.push_back(ember_app::parse_batch_line(text, d));
  }
  if (lines.size() > kMaxLinesRun) lines.resize(kMaxLinesRun);
  for (ember_app::BatchLine& l : lines) {
    if (l.max_tokens > kMaxNewTokens) l.max_tokens = kMaxNewTokens;
  }
  ember_context_params cp = ember_context_default_params();
  cp.n_ctx = 32;  // long prompts are shifted or refused, as in the app with a short -c
  cp.n_threads = 1;
  cp.n_batch_max = 8;
  // parallel 0: the app's default, min(8, lines).
  (void)ember_app::run_batch(model(), cp, lines, 0, /*stop_at_bos=*/true, dev_null(), nullptr);
  return 0;
}
