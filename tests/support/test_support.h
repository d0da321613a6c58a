// Helpers shared by the test suites: where ../shared is, temp files, commands, and skipping
// (converting models: support/convert.h).
#ifndef EMBER_TESTS_SUPPORT_TEST_SUPPORT_H_
#define EMBER_TESTS_SUPPORT_TEST_SUPPORT_H_

#include <gtest/gtest.h>

#include <exception>
#include <string>
#include <vector>

namespace ember_test {

// EMBER_SHARED_DIR from the environment, else the CMake setting (default ../shared).
std::string shared_dir();
// shared_dir() + "/" + rel if it exists, else "" (callers skip: EMBER_REQUIRE_SHARED).
std::string shared_path(const std::string& rel);
// The build tree (where ember-convert and friends are).
std::string build_dir();
// A fresh path under a per-process temp directory (removed at exit).
std::string temp_path(const std::string& name);
// temp_path(name), created as a directory.
std::string make_temp_dir(const std::string& name);
std::vector<unsigned char> read_file(const std::string& path);
void write_file(const std::string& path, const void* data, size_t size);
// Runs a shell command; returns its exit status and captures stdout+stderr into *output.
int run_command(const std::string& cmd, std::string* output);
// True where the environment has CI=true (.ci/run exports it).
bool in_ci();

// The message of the `Error` that `f()` throws, or "" where it throws none.
template <class Error = std::exception, class F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace ember_test

// GTEST_SKIP() for a test whose data or prerequisite is missing, except under CI=true, where it is
// a failure: in CI everything is installed, so a skip there means a broken machine or check.
//   if (absent) EMBER_SKIP_OR_FAIL_IN_CI() << "what is missing";
#define EMBER_SKIP_OR_FAIL_IN_CI()                                                           \
  return GTEST_MESSAGE_(::ember_test::in_ci() ? "CI=true, so this skip fails the test" : "", \
                        ::ember_test::in_ci() ? ::testing::TestPartResult::kFatalFailure     \
                                              : ::testing::TestPartResult::kSkip)

// Skips the current test with a clear message when a ../shared file is absent (fails in CI).
#define EMBER_REQUIRE_SHARED(var, rel)                                             \
  std::string var = ::ember_test::shared_path(rel);                                \
  if (var.empty()) {                                                               \
    EMBER_SKIP_OR_FAIL_IN_CI() << "shared data '" << (rel) << "' not found under " \
                               << ::ember_test::shared_dir()                       \
                               << " (set EMBER_SHARED_DIR to the shared/ folder)"; \
  }

#endif  // EMBER_TESTS_SUPPORT_TEST_SUPPORT_H_
