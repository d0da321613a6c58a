// Running a command-line app in a test: exit code, stdout and stderr apart, shell quoting, and the
// checks every app's bad-input test makes (a clear message and an exit code, never a crash).
#ifndef EMBER_TESTS_SUPPORT_CLI_H_
#define EMBER_TESTS_SUPPORT_CLI_H_

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support/test_support.h"

namespace ember_test {

struct Cmd {
  int code;         // exit status; a signal shows as 128 + n (the shell's), -1 if the shell died
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs `cmd` through the shell with stdout and stderr kept apart.
inline Cmd run(const std::string& cmd) {
  const std::string err_path = temp_path("stderr.txt");
  Cmd r;
  r.code = run_command("{ " + cmd + " 2>'" + err_path + "'; }", &r.out);
  const std::vector<unsigned char> err = read_file(err_path);
  r.err.assign(err.begin(), err.end());
  return r;
}

// A shell word: 'text' with each ' written as '\''.
inline std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// An exit that is a deliberate error, not a crash (no signal, no sanitizer abort).
inline void expect_clean_failure(const Cmd& r, const std::string& what) {
  EXPECT_GT(r.code, 0) << what << ": expected a failure\nstdout: " << r.out
                       << "\nstderr: " << r.err;
  EXPECT_LT(r.code, 128) << what << ": exit code " << r.code
                         << " looks like a crash\nstderr: " << r.err;
  EXPECT_EQ(r.err.find("Sanitizer"), std::string::npos) << what << ": " << r.err;
  EXPECT_EQ(r.err.find("runtime error"), std::string::npos) << what << ": " << r.err;
}

// Runs `cmd`, which must fail cleanly (expect_clean_failure) with `needle` in its stderr (any
// message at all when `needle` is empty).
inline void expect_fails_with(const std::string& cmd, const std::string& what,
                              const std::string& needle) {
  const Cmd r = run(cmd);
  expect_clean_failure(r, what);
  if (needle.empty()) {
    EXPECT_FALSE(r.err.empty()) << what << ": no message";
  } else {
    EXPECT_NE(r.err.find(needle), std::string::npos) << what << ": " << r.err;
  }
}

}  // namespace ember_test

#endif  // EMBER_TESTS_SUPPORT_CLI_H_
