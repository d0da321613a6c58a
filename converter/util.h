// Helpers shared by the converter's readers: errors that name the file, files, JSON fields, names.
#ifndef EMBER_CONVERTER_UTIL_H_
#define EMBER_CONVERTER_UTIL_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model_ir.h"

namespace ember {
namespace convert {

// Throws ConvertError("<file>: <what>"): every converter error names the file at fault.
[[noreturn]] void fail(const std::string& file, const std::string& what);

// True if `path` is a regular file (a symbolic link to one counts).
bool file_exists(const std::string& path);

// The bytes of `path`; fails naming the file if it cannot be opened or read.
std::string read_file(const std::string& path);

bool ends_with(const std::string& s, const std::string& suffix);

// A tensor shape for messages: "[172, 64]".
std::string shape_str(const std::vector<uint64_t>& shape);

// Lower-case hex of n bytes (digests).
std::string hex_string(const unsigned char* bytes, size_t n);

// The JSON document in `path` (Json = nlohmann::ordered_json where the order of keys matters);
// fails naming the file if it cannot be read or parsed.
template <class Json = nlohmann::json>
Json read_json(const std::string& path) {
  const std::string text = read_file(path);
  try {
    return Json::parse(text);
  } catch (const typename Json::exception& e) {
    fail(path, std::string("not valid JSON: ") + e.what());
  }
}

// j[key], or nullptr where the key is absent or null (JSON's two ways of not giving a value).
template <class Json>
const Json* find_field(const Json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

// j[key] as a bool, `fallback` where it is absent or null; fails naming `file` and the key where it
// is anything but true or false.
template <class Json>
bool get_bool(const Json& j, const char* key, bool fallback, const std::string& file) {
  const Json* v = find_field(j, key);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) fail(file, std::string("'") + key + "' must be true or false");
  return v->template get<bool>();
}

// j[key], a token id or a list of them, appended to `ids` without repeats; fails naming `file` and
// the key for a value that is not a token id. Absent or null: nothing.
void add_token_ids(const nlohmann::json& j, const char* key, const std::string& file,
                   std::vector<int32_t>* ids);

}  // namespace convert
}  // namespace ember

#endif  // EMBER_CONVERTER_UTIL_H_
