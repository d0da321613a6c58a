// Test-only helpers: craft safetensors files byte by byte (independently of the reader under test)
// and model directories derived from ../shared/models/stories260K/hf.
#ifndef EMBER_TESTS_CONVERTER_CONVERTER_TEST_UTIL_H_
#define EMBER_TESTS_CONVERTER_CONVERTER_TEST_UTIL_H_

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/convert.h"
#include "support/test_support.h"

namespace ember_test {

// One tensor of a crafted safetensors file; `header` is what the header says, `bytes` what the data
// region holds (they may lie about each other on purpose).
struct RawTensor {
  std::string dtype = "F32";
  std::vector<uint64_t> shape;
  std::vector<uint8_t> bytes;
};

inline std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// A well-formed file: tensors back to back in name order, header padded with spaces to 8 bytes.
inline std::vector<uint8_t> make_safetensors(const std::map<std::string, RawTensor>& tensors) {
  nlohmann::ordered_json h;
  h["__metadata__"] = {{"format", "pt"}};
  uint64_t off = 0;
  for (const auto& [name, t] : tensors) {
    h[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {off, off + t.bytes.size()}}};
    off += t.bytes.size();
  }
  std::string hs = h.dump();
  while (hs.size() % 8) hs += ' ';
  return [&] {
    std::vector<uint8_t> out(8);
    out.reserve(8 + hs.size() + off);  // (also keeps GCC 12's -Warray-bounds from a false alarm)
    const uint64_t n = hs.size();
    for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
    out.insert(out.end(), hs.begin(), hs.end());
    for (const auto& kv : tensors) out.insert(out.end(), kv.second.bytes.begin(), kv.second.bytes.end());
    return out;
  }();
}

// A file with a hand-written header text and data region.
inline std::vector<uint8_t> make_raw_safetensors(const std::string& header, const std::vector<uint8_t>& data,
                                                 uint64_t claimed_len = UINT64_MAX) {
  std::vector<uint8_t> out(8);
  const uint64_t n = claimed_len == UINT64_MAX ? header.size() : claimed_len;
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  write_file(path, b.data(), b.size());
}

inline void write_text(const std::string& path, const std::string& s) { write_file(path, s.data(), s.size()); }

inline nlohmann::json read_json_file(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}

inline bool exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

inline std::string make_dir(const std::string& name) {
  const std::string d = temp_path(name);
  ::mkdir(d.c_str(), 0755);
  return d;
}

// Files in `dir` whose name starts with `prefix`.
inline std::vector<std::string> list_prefix(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> r;
  std::string out;
  run_command("ls -a '" + dir + "'", &out);
  size_t pos = 0;
  while (pos < out.size()) {
    size_t nl = out.find('\n', pos);
    if (nl == std::string::npos) nl = out.size();
    std::string name = out.substr(pos, nl - pos);
    if (name.compare(0, prefix.size(), prefix) == 0) r.push_back(name);
    pos = nl + 1;
  }
  return r;
}

}  // namespace ember_test

#endif  // EMBER_TESTS_CONVERTER_CONVERTER_TEST_UTIL_H_
