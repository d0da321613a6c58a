// Helpers of the fuzz targets (libFuzzer entry points, also replayed by the normal test suite):
// a per-process scratch directory, inputs split into several files, where ../shared is.
#ifndef EMBER_TESTS_FUZZ_FUZZ_UTIL_H_
#define EMBER_TESTS_FUZZ_FUZZ_UTIL_H_

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace ember_fuzz {

// Separates the files of a multi-file input (tokenizer.json, then tokenizer_config.json; an
// adapter's config, then its weights). Each target's dictionary holds it.
inline constexpr char kNextFile[] = "\n#ember-fuzz-next-file#\n";

// The input cut at kNextFile into at most `n` parts (the last takes the rest); missing parts are
// absent (""), which the targets treat as "no such file".
inline std::vector<std::string> split_files(const uint8_t* data, size_t size, size_t n) {
  const std::string all(reinterpret_cast<const char*>(data), size);
  const std::string sep = kNextFile;
  std::vector<std::string> parts;
  size_t at = 0;
  while (parts.size() + 1 < n) {
    const size_t next = all.find(sep, at);
    if (next == std::string::npos) break;
    parts.push_back(all.substr(at, next - at));
    at = next + sep.size();
  }
  parts.push_back(all.substr(at));
  parts.resize(n);
  return parts;
}

// A directory of this process's own in /dev/shm (no disk writes per input), else in TMPDIR.
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : std::getenv("TMPDIR");
    std::string d = std::string(base ? base : "/tmp") + "/ember-fuzz-" + std::to_string(::getpid());
    ::mkdir(d.c_str(), 0700);
    return d;
  }();
  return dir;
}

// Writes `bytes` to scratch_dir()/name, or removes that file when `bytes` is absent ("").
inline std::string put_file(const std::string& name, const std::string& bytes) {
  const std::string path = scratch_dir() + "/" + name;
  if (bytes.empty()) {
    std::remove(path.c_str());
    return path;
  }
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
  return path;
}

// EMBER_SHARED_DIR from the environment, else the build's setting.
inline std::string shared_dir() {
  const char* env = std::getenv("EMBER_SHARED_DIR");
  return env && *env ? env : EMBER_FUZZ_SHARED_DIR;
}

}  // namespace ember_fuzz

#endif  // EMBER_TESTS_FUZZ_FUZZ_UTIL_H_
