// ember-convert for the test suites: the one binary they run, and the models it converts, cached in
// the build tree so that the suites (one process per test under ctest) share each conversion.
#ifndef EMBER_TESTS_SUPPORT_CONVERT_H_
#define EMBER_TESTS_SUPPORT_CONVERT_H_

#include <string>

#include "support/test_support.h"

namespace ember_test {

// This build's ember-convert, or in a cross build the host's (EMBER_HOST_CONVERT); "" if neither.
std::string convert_bin();

struct CommandResult {
  int code;            // exit status (-1: the shell did not exit normally)
  std::string output;  // stdout and stderr
};

// Runs ember-convert with `args` (uncached): for tests of the converter's own command line.
CommandResult run_convert(const std::string& args);

// `source` (a Hugging Face directory, or "" with --synthetic) converted with `options` (e.g.
// "--quant u8 --group 32"); returns the .ember path. Converted once per converter binary, source,
// options and the contents of the files and folders they name, into the build tree (or, for a
// source in the per-process temp directory, into that directory). `log`, if given, receives the
// converter's output of the run that wrote the file. On failure: a test failure with that output,
// and "".
std::string converted_model(const std::string& source, const std::string& options,
                            std::string* log = nullptr);

}  // namespace ember_test

// `var`: ../shared/<rel> converted with `options`. Skips (or fails, in CI) like
// EMBER_REQUIRE_SHARED where it is absent; stops the test where the conversion fails.
#define EMBER_REQUIRE_CONVERTED(var, rel, options)                               \
  EMBER_REQUIRE_SHARED(var##_source_, rel);                                      \
  const std::string var = ::ember_test::converted_model(var##_source_, options); \
  ASSERT_FALSE(var.empty())

#endif  // EMBER_TESTS_SUPPORT_CONVERT_H_
