// Shared helpers of the tokenizer tests: convert a tokenizer directory the way
// `ember-convert --tokenizer-only` does (load_hf_tokenizer -> write_ember), load the file with
// ember_model_load_file, and call the public C API.
#ifndef EMBER_TESTS_TOKENIZER_TOKENIZER_FIXTURE_H_
#define EMBER_TESTS_TOKENIZER_TOKENIZER_FIXTURE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "ember/ember.h"

namespace ember_test {

// Converted and loaded once per directory for the whole process (nullptr + message on failure).
const ember_model* tokenizer_model(const std::string& dir, std::string* error);

std::vector<int32_t> tokenize(const ember_model* m, const std::string& text, uint32_t flags);
std::string detokenize(const ember_model* m, const std::vector<int32_t>& ids, uint32_t flags);
// Feeds ids one at a time through the streaming decoder; *chunks_valid = every chunk was valid
// UTF-8.
std::string detokenize_stream(const ember_model* m, const std::vector<int32_t>& ids, uint32_t flags,
                              bool* chunks_valid);
bool valid_utf8(const std::string& s);

// A fresh temp directory `name` whose tokenizer.json is `tokenizer_json`; returns its path.
std::string write_tokenizer_dir(const std::string& name, const std::string& tokenizer_json);

// Reads a .jsonl file: one JSON object text per line.
std::vector<std::string> read_lines(const std::string& path);

}  // namespace ember_test

#endif  // EMBER_TESTS_TOKENIZER_TOKENIZER_FIXTURE_H_
