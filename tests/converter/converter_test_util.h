// Test-only helpers: craft safetensors files byte by byte (independently of the reader under test)
// and model directories derived from a Hugging Face checkpoint in ../shared.
#ifndef EMBER_TESTS_CONVERTER_CONVERTER_TEST_UTIL_H_
#define EMBER_TESTS_CONVERTER_CONVERTER_TEST_UTIL_H_

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/convert.h"
#include "support/json_file.h"
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
    h[name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {off, off + t.bytes.size()}}};
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
    for (const auto& kv : tensors)
      out.insert(out.end(), kv.second.bytes.begin(), kv.second.bytes.end());
    return out;
  }();
}

// A file with a hand-written header text and data region.
inline std::vector<uint8_t> make_raw_safetensors(const std::string& header,
                                                 const std::vector<uint8_t>& data,
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

inline void write_text(const std::string& path, const std::string& s) {
  write_file(path, s.data(), s.size());
}

inline bool exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

// The tensors of a safetensors file as its header describes them (read here, independently of the
// reader under test); {} and a test failure for a file too short for its header.
inline std::map<std::string, RawTensor> read_raw_safetensors(const std::string& path) {
  const std::vector<unsigned char> raw = read_file(path);
  uint64_t n = 0;
  if (raw.size() >= 8) std::memcpy(&n, raw.data(), 8);
  if (raw.size() < 8 || n > raw.size() - 8) {
    ADD_FAILURE() << path << ": not a safetensors file";
    return {};
  }
  const auto data = raw.begin() + 8 + static_cast<long>(n);
  const nlohmann::json header = nlohmann::json::parse(raw.begin() + 8, data);
  std::map<std::string, RawTensor> out;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const nlohmann::json& e = it.value();
    const auto begin = e.at("data_offsets")[0].get<long>(),
               end = e.at("data_offsets")[1].get<long>();
    out[it.key()] = {e.at("dtype").get<std::string>(), e.at("shape").get<std::vector<uint64_t>>(),
                     std::vector<uint8_t>(data + begin, data + end)};
  }
  return out;
}

// A copy of the Hugging Face checkpoint `src` in the temp directory `name`, with config.json edited
// by `config` and the tensors by `tensors`; the tokenizer files are linked, never copied.
inline std::string derived_checkpoint(
    const std::string& src, const std::string& name,
    const std::function<void(nlohmann::json&)>& config,
    const std::function<void(std::map<std::string, RawTensor>&)>& tensors) {
  const std::string dir = make_temp_dir(name);
  nlohmann::json c = read_json(src + "/config.json");
  config(c);
  write_text(dir + "/config.json", c.dump(2));
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "generation_config.json"}) {
    if (::access((src + "/" + f).c_str(), F_OK) == 0) {
      EXPECT_EQ(::symlink((src + "/" + f).c_str(), (dir + "/" + f).c_str()), 0) << dir << "/" << f;
    }
  }
  std::map<std::string, RawTensor> t = read_raw_safetensors(src + "/model.safetensors");
  tensors(t);
  write_bytes(dir + "/model.safetensors", make_safetensors(t));
  return dir;
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
