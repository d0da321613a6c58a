#include "app_util.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace ember_app {

double now_seconds() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

int fail(const char* app, const char* what, ember_status s) {
  std::fprintf(stderr, "%s: %s: %s: %s\n", app, what, ember_status_string(s), ember_last_error());
  return 1;
}

std::string json_escape(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (c == '\n') {
      o += "\\n";
    } else if (c == '\t') {
      o += "\\t";
    } else if (c == '\r') {
      o += "\\r";
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      o += buf;
    } else {
      o += c;
    }
  }
  return o;
}

bool parse_list(const std::string& s, uint32_t max, std::vector<uint32_t>* out,
                std::string* error) {
  out->clear();
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    const std::string item = s.substr(i, j - i);
    if (!item.empty()) {
      char* end = nullptr;
      const unsigned long v = std::strtoul(item.c_str(), &end, 10);
      if (end == nullptr || *end != '\0' || item[0] == '-' || v > max) {
        *error = item;
        return false;
      }
      out->push_back(static_cast<uint32_t>(v));
    }
    i = j + 1;
  }
  return true;
}

double median_of(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

ember_status tokenize_text(const ember_model* m, const std::string& text, uint32_t flags,
                           std::vector<int32_t>* ids) {
  ids->resize(text.size() + 16);
  size_t n = 0;
  ember_status s = ember_tokenize(m, text.data(), text.size(), flags, ids->data(), ids->size(), &n);
  if (s == EMBER_ERR_BUFFER_TOO_SMALL) {
    ids->resize(n);
    s = ember_tokenize(m, text.data(), text.size(), flags, ids->data(), ids->size(), &n);
  }
  if (s == EMBER_OK) ids->resize(n);
  return s;
}

bool kv_type_from_name(const std::string& name, ember_kv_type* out) {
  if (name == "f32") {
    *out = EMBER_KV_F32;
  } else if (name == "f16") {
    *out = EMBER_KV_F16;
  } else if (name == "u8") {
    *out = EMBER_KV_U8;
  } else {
    return false;
  }
  return true;
}

}  // namespace ember_app
