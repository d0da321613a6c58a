// Small helpers shared by the POSIX apps (ember-run, ember-bench, ember-tokenize, ember-eval):
// clock, error reporting, JSON string escaping, comma-separated lists, tokenizing a whole text.
// Apps use only ember.h from the runtime.
#ifndef EMBER_APPS_APP_UTIL_H_
#define EMBER_APPS_APP_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "ember/ember.h"

namespace ember_app {

// Seconds on a monotonic clock.
double now_seconds();

// Prints "APP: WHAT: STATUS: last error" on stderr and returns 1 (the exit code).
int fail(const char* app, const char* what, ember_status s);

// `s` as the body of a JSON string: quotes, backslashes and control characters escaped (\uXXXX);
// other bytes (UTF-8 included) pass through.
std::string json_escape(const std::string& s);

// "1,2,8" -> {1, 2, 8}. Empty items are skipped; false (and *error = the item) on a non-number or
// a value above `max`.
bool parse_list(const std::string& s, uint32_t max, std::vector<uint32_t>* out, std::string* error);

double median_of(std::vector<double> v);

// "f32" | "f16" | "u8" -> the KV cache type; false for another name.
bool kv_type_from_name(const std::string& name, ember_kv_type* out);

// `text` encoded with ember_tokenize and `flags` into *ids (resized to fit, whatever the length).
ember_status tokenize_text(const ember_model* m, const std::string& text, uint32_t flags,
                           std::vector<int32_t>* ids);

}  // namespace ember_app

#endif  // EMBER_APPS_APP_UTIL_H_
