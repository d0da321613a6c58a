// Helpers shared by the test suites: where ../shared is, temp files, commands, and skipping
// (converting models: support/convert.h).
#ifndef EMBER_TESTS_SUPPORT_TEST_SUPPORT_H_
#define EMBER_TESTS_SUPPORT_TEST_SUPPORT_H_

#include <gtest/gtest.h>

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
std::vector<unsigned char> read_file(const std::string& path);
void write_file(const std::string& path, const void* data, size_t size);
// Runs a shell command; returns its exit status and captures stdout+stderr into *output.
int run_command(const std::string& cmd, std::string* output);

}  // namespace ember_test

// Skips the current test with a clear message when a ../shared file is absent.
#define EMBER_REQUIRE_SHARED(var, rel)                                                        \
  std::string var = ::ember_test::shared_path(rel);                                           \
  if (var.empty()) {                                                                          \
    GTEST_SKIP() << "shared data '" << (rel) << "' not found under " << ::ember_test::shared_dir() \
                 << " (set EMBER_SHARED_DIR to the shared/ folder)";                          \
  }

#endif  // EMBER_TESTS_SUPPORT_TEST_SUPPORT_H_
