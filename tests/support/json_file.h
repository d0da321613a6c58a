// A JSON file read in a test (nlohmann::json: the test links nlohmann_json::nlohmann_json).
#ifndef EMBER_TESTS_SUPPORT_JSON_FILE_H_
#define EMBER_TESTS_SUPPORT_JSON_FILE_H_

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/test_support.h"

namespace ember_test {

// The document in `path`; a missing file or bad JSON throws, which fails the test.
inline nlohmann::json read_json(const std::string& path) {
  const std::vector<unsigned char> bytes = read_file(path);
  return nlohmann::json::parse(bytes.begin(), bytes.end());
}

}  // namespace ember_test

#endif  // EMBER_TESTS_SUPPORT_JSON_FILE_H_
