#include "support/convert.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <vector>

#include "support/test_support.h"

namespace ember_test {
namespace {

namespace fs = std::filesystem;

// FNV-1a, 64 bits: a stable name for a cache key.
std::string hash_hex(const std::string& s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// Size and modification time of `path` (following links), or "" if it does not exist.
std::string stamp(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return "";
  return std::to_string(st.st_size) + "@" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

// The stamp of a file, or of every entry of a folder: what a conversion reads from `path`.
std::string content_stamp(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return stamp(path);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(path, ec)) names.push_back(e.path().string());
  std::sort(names.begin(), names.end());
  std::string s;
  for (const std::string& n : names) s += n + "=" + stamp(n) + ";";
  return s;
}

// The words of a command line, without their single quotes.
std::vector<std::string> words(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  std::string w;
  while (in >> w) {
    w.erase(std::remove(w.begin(), w.end(), '\''), w.end());
    if (!w.empty()) out.push_back(w);
  }
  return out;
}

// build/tests/converted/<converter stamp>/: one folder per converter build; starting a new one
// removes those of earlier builds.
std::string build_cache_dir(const std::string& bin_stamp) {
  const fs::path root = fs::path(build_dir()) / "tests" / "converted";
  const fs::path dir = root / hash_hex(bin_stamp);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    for (const auto& e : fs::directory_iterator(root, ec))
      if (e.path() != dir) fs::remove_all(e.path(), ec);
    fs::create_directories(dir, ec);
  }
  return dir.string();
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

}  // namespace

std::string convert_bin() { return EMBER_CONVERT_BIN; }

CommandResult run_convert(const std::string& args) {
  CommandResult r;
  r.code = run_command(quote(convert_bin()) + " " + args, &r.output);
  return r;
}

std::string converted_model(const std::string& source, const std::string& options,
                            std::string* log) {
  const std::string bin = convert_bin();
  if (bin.empty()) {
    ADD_FAILURE() << "this build has no ember-convert (a cross build needs EMBER_HOST_CONVERT)";
    return "";
  }
  const std::string bin_stamp = bin + "=" + stamp(bin);
  std::string key = bin_stamp + "\n" + source + "=" + content_stamp(source) + "\n";
  for (const std::string& w : words(options))  // paths also by what they hold
    key += w + (w.find('/') != std::string::npos ? "=" + content_stamp(w) : "") + " ";

  // Sources made by a test live in the per-process temp directory, and so do their conversions.
  const std::string temp_root = temp_path("");
  const bool temp_source = (source + " " + options).find(temp_root) != std::string::npos;
  std::string dir = temp_root + "converted";
  if (temp_source) {
    std::error_code ec;
    fs::create_directories(dir, ec);
  } else {
    dir = build_cache_dir(bin_stamp);
  }
  const fs::path src(source);
  const std::string name =
      source.empty() ? "synthetic"
                     : src.parent_path().filename().string() + "-" + src.filename().string();
  const std::string out = dir + "/" + name + "-" + hash_hex(key) + ".ember";
  const std::string log_path = out + ".log";

  std::string output;
  struct stat st;
  if (::stat(out.c_str(), &st) != 0) {
    // Written under a name of this process, then renamed: a concurrent test never sees half a file,
    // and the log is in place before the model.
    const std::string tmp = out + "." + std::to_string(::getpid()) + ".tmp";
    const std::string args =
        (source.empty() ? "" : quote(source) + " ") + options + " -o " + quote(tmp) + " --force";
    const CommandResult r = run_convert(args);
    if (r.code != 0) {
      ADD_FAILURE() << "ember-convert failed (exit " << r.code << "): " << bin << " " << args
                    << "\n"
                    << r.output;
      std::remove(tmp.c_str());
      return "";
    }
    const std::string log_tmp = log_path + "." + std::to_string(::getpid());
    write_file(log_tmp, r.output.data(), r.output.size());
    std::rename(log_tmp.c_str(), log_path.c_str());
    if (std::rename(tmp.c_str(), out.c_str()) != 0) {
      ADD_FAILURE() << "cannot rename " << tmp << " to " << out;
      return "";
    }
    output = r.output;
  } else if (log) {
    const std::vector<unsigned char> bytes = read_file(log_path);
    output.assign(bytes.begin(), bytes.end());
  }
  if (log) *log = output;
  return out;
}

}  // namespace ember_test
