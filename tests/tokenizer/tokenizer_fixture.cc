#include "tokenizer_fixture.h"

#include <fstream>
#include <map>
#include <memory>

#include "support/test_support.h"
#include "tokenizer_json.h"
#include "writer.h"

namespace ember_test {

const ember_model* tokenizer_model(const std::string& dir, std::string* error) {
  // Freed at exit, so the sanitizer build checks that a model frees all its tokenizer tables.
  struct Cache : std::map<std::string, ember_model*> {
    ~Cache() {
      for (auto& kv : *this) ember_model_free(kv.second);
    }
  };
  static Cache cache;
  auto it = cache.find(dir);
  if (it != cache.end()) return it->second;
  ember_model* m = nullptr;
  try {
    ember::convert::ModelIR ir;
    ir.has_config = false;
    ir.has_tokenizer = true;
    ir.tokenizer = ember::convert::load_hf_tokenizer(dir);
    ir.source = dir;
    const std::string path = temp_path("tok" + std::to_string(cache.size()) + ".ember");
    ember::convert::WriteOptions opts;
    opts.force = true;
    ember::convert::write_ember(ir, path, opts);
    const ember_status s = ember_model_load_file(path.c_str(), &m);
    if (s != EMBER_OK) {
      *error = std::string("ember_model_load_file: ") + ember_last_error();
      return nullptr;
    }
  } catch (const std::exception& e) {
    *error = e.what();
    return nullptr;
  }
  cache[dir] = m;
  return m;
}

std::vector<int32_t> tokenize(const ember_model* m, const std::string& text, uint32_t flags) {
  std::vector<int32_t> ids(text.size() + 8);
  size_t n = 0;
  ember_status s = ember_tokenize(m, text.data(), text.size(), flags, ids.data(), ids.size(), &n);
  if (s == EMBER_ERR_BUFFER_TOO_SMALL) {
    ids.resize(n);
    s = ember_tokenize(m, text.data(), text.size(), flags, ids.data(), ids.size(), &n);
  }
  EXPECT_EQ(s, EMBER_OK) << ember_last_error();
  ids.resize(s == EMBER_OK ? n : 0);
  return ids;
}

std::string detokenize(const ember_model* m, const std::vector<int32_t>& ids, uint32_t flags) {
  size_t n = 0;
  ember_status s = ember_detokenize(m, ids.data(), ids.size(), flags, nullptr, 0, &n);
  if (s != EMBER_OK && s != EMBER_ERR_BUFFER_TOO_SMALL) {
    ADD_FAILURE() << ember_last_error();
    return "";
  }
  std::string out(n, '\0');
  s = ember_detokenize(m, ids.data(), ids.size(), flags, out.empty() ? nullptr : &out[0],
                       out.size(), &n);
  EXPECT_EQ(s, EMBER_OK) << ember_last_error();
  out.resize(n);
  return out;
}

bool valid_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0, n = s.size();
  while (i < n) {
    const unsigned char b = p[i];
    size_t len;
    unsigned c;
    if (b < 0x80) {
      ++i;
      continue;
    } else if (b >= 0xC2 && b <= 0xDF) {
      len = 2, c = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3, c = b & 0x0F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4, c = b & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      c = c << 6 | (p[i + k] & 0x3F);
    }
    if ((len == 3 && (c < 0x800 || (c >= 0xD800 && c <= 0xDFFF))) ||
        (len == 4 && (c < 0x10000 || c > 0x10FFFF))) {
      return false;
    }
    i += len;
  }
  return true;
}

std::string detokenize_stream(const ember_model* m, const std::vector<int32_t>& ids, uint32_t flags,
                              bool* chunks_valid) {
  ember_detok_stream st;
  ember_detok_stream_init(&st, flags);
  std::string all;
  *chunks_valid = true;
  for (int32_t id : ids) {
    char buf[1024];
    size_t n = 0;
    const ember_status s = ember_detok_stream_feed(m, &st, id, buf, sizeof(buf), &n);
    EXPECT_EQ(s, EMBER_OK) << ember_last_error();
    if (s != EMBER_OK) return all;
    const std::string chunk(buf, n);
    if (!valid_utf8(chunk)) *chunks_valid = false;
    all += chunk;
  }
  return all;
}

std::string write_tokenizer_dir(const std::string& name, const std::string& tokenizer_json) {
  const std::string dir = make_temp_dir(name);
  write_file(dir + "/tokenizer.json", tokenizer_json.data(), tokenizer_json.size());
  return dir;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

}  // namespace ember_test
