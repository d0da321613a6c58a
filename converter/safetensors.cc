#include "safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "core/half.h"
#include "util.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the safetensors reader assumes a little-endian host"
#endif

namespace ember {
namespace convert {
namespace {

using json = nlohmann::json;

// The reference implementation refuses headers above 100 MB; so do we (a lying length must not make
// us allocate gigabytes).
constexpr uint64_t kMaxHeaderBytes = 100u * 1000u * 1000u;

size_t dtype_size(const std::string& dtype) {
  if (dtype == "F32") return 4;
  if (dtype == "F16" || dtype == "BF16") return 2;
  return 0;
}

// A non-negative integer that fits in uint64 (json numbers may be negative, float or huge).
bool as_u64(const json& j, uint64_t* out) {
  if (j.is_number_unsigned()) {
    *out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer()) {
    const int64_t v = j.get<int64_t>();
    if (v < 0) return false;
    *out = static_cast<uint64_t>(v);
    return true;
  }
  return false;
}

}  // namespace

std::vector<SafetensorsEntry> parse_safetensors_header(const uint8_t* data, size_t size,
                                                       const std::string& file,
                                                       std::map<std::string, std::string>* metadata,
                                                       uint64_t* data_start) {
  if (size < 8)
    fail(file, "file is " + std::to_string(size) + " bytes, too short for a safetensors header");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
  if (n > size - 8) {
    fail(file, "header length " + std::to_string(n) + " runs past the end of the file (" +
                   std::to_string(size) + " bytes)");
  }
  if (n > kMaxHeaderBytes) fail(file, "header length " + std::to_string(n) + " exceeds 100 MB");
  if (n < 2) fail(file, "header length " + std::to_string(n) + " is too short for a JSON object");
  const uint64_t data_size = size - 8 - n;

  // nlohmann keeps the last of duplicate keys silently; a parser callback sees every key.
  std::set<std::string> seen;
  std::string duplicate;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!seen.insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(data + 8, data + 8 + n, cb);
  } catch (const json::exception& e) {
    fail(file, std::string("header is not valid JSON: ") + e.what());
  }
  if (!duplicate.empty()) fail(file, "tensor '" + duplicate + "' appears twice in the header");
  if (!header.is_object()) fail(file, "header is not a JSON object");

  std::vector<SafetensorsEntry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail(file, "__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          fail(file, "__metadata__ value '" + m.key() + "' is not a string");
        if (metadata) (*metadata)[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!v.is_object()) fail(file, where + ": entry is not an object");
    SafetensorsEntry e;
    e.name = name;
    auto dt = v.find("dtype");
    if (dt == v.end() || !dt->is_string()) fail(file, where + ": missing or non-string dtype");
    e.dtype = dt->get<std::string>();
    const size_t esize = dtype_size(e.dtype);
    if (esize == 0) {
      fail(file, where + ": unsupported dtype '" + e.dtype + "' (F32, F16 and BF16 are supported)");
    }
    auto sh = v.find("shape");
    if (sh == v.end() || !sh->is_array()) fail(file, where + ": missing or non-array shape");
    uint64_t count = 1;
    for (const json& d : *sh) {
      uint64_t dim;
      if (!as_u64(d, &dim))
        fail(file, where + ": shape holds a value that is not a non-negative integer");
      e.shape.push_back(dim);
      if (dim != 0 && count > std::numeric_limits<uint64_t>::max() / dim) {
        fail(file, where + ": shape product overflows 64 bits");
      }
      count *= dim;
    }
    auto off = v.find("data_offsets");
    if (off == v.end() || !off->is_array() || off->size() != 2) {
      fail(file, where + ": data_offsets must be an array of two integers");
    }
    if (!as_u64((*off)[0], &e.begin) || !as_u64((*off)[1], &e.end)) {
      fail(file, where + ": data_offsets hold a value that is not a non-negative integer");
    }
    if (e.begin > e.end) {
      fail(file, where + ": data_offsets begin " + std::to_string(e.begin) + " > end " +
                     std::to_string(e.end));
    }
    if (e.end > data_size) {
      fail(file, where + ": data_offsets end " + std::to_string(e.end) +
                     " is past the data region (" + std::to_string(data_size) + " bytes)");
    }
    if (count > std::numeric_limits<uint64_t>::max() / esize) {
      fail(file, where + ": byte size overflows 64 bits");
    }
    if (count * esize != e.end - e.begin) {
      fail(file, where + ": shape holds " + std::to_string(count) + " " + e.dtype + " values (" +
                     std::to_string(count * esize) + " bytes) but data_offsets span " +
                     std::to_string(e.end - e.begin) + " bytes");
    }
    entries.push_back(std::move(e));
  }

  // Ranges must tile the data region exactly: no overlap (two tensors sharing bytes) and no hole.
  std::vector<const SafetensorsEntry*> by_offset;
  for (const auto& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const SafetensorsEntry* a, const SafetensorsEntry* b) {
              return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
            });
  uint64_t pos = 0;
  const SafetensorsEntry* prev = nullptr;
  for (const SafetensorsEntry* e : by_offset) {
    if (e->begin < pos) {
      fail(file, "tensor '" + e->name + "' bytes [" + std::to_string(e->begin) + ", " +
                     std::to_string(e->end) + ") overlap tensor '" + prev->name + "' [" +
                     std::to_string(prev->begin) + ", " + std::to_string(prev->end) + ")");
    }
    if (e->begin > pos) {
      fail(file, "data region has a hole at bytes [" + std::to_string(pos) + ", " +
                     std::to_string(e->begin) + ") before tensor '" + e->name + "'");
    }
    pos = e->end;
    prev = e;
  }
  if (pos != data_size) {
    fail(file, "data region is " + std::to_string(data_size) + " bytes but the tensors cover " +
                   std::to_string(pos));
  }
  std::sort(entries.begin(), entries.end(),
            [](const SafetensorsEntry& a, const SafetensorsEntry& b) { return a.name < b.name; });
  if (data_start) *data_start = 8 + n;
  return entries;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      ::close(fd);
      fail(path, std::string("mmap failed: ") + std::strerror(errno));
    }
    map_ = static_cast<const uint8_t*>(m);
  }
  ::close(fd);
  try {
    static const uint8_t empty[1] = {0};
    entries_ = parse_safetensors_header(map_ ? map_ : empty, size_, path, &metadata_, &data_start_);
  } catch (...) {
    if (map_) ::munmap(const_cast<uint8_t*>(map_), size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), size_);
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  auto it =
      std::lower_bound(entries_.begin(), entries_.end(), name,
                       [](const SafetensorsEntry& e, const std::string& n) { return e.name < n; });
  return it != entries_.end() && it->name == name ? &*it : nullptr;
}

FloatTensor SafetensorsFile::read(const std::string& name) const {
  const SafetensorsEntry* e = find(name);
  if (!e) fail(path_, "no tensor '" + name + "'");
  FloatTensor t;
  t.shape = e->shape;
  t.source_dtype = e->dtype;
  const uint8_t* src = map_ + data_start_ + e->begin;
  const uint64_t bytes = e->end - e->begin;
  if (e->dtype == "F32") {
    t.data.resize(bytes / 4);
    if (bytes) std::memcpy(t.data.data(), src, bytes);
  } else {
    t.data.resize(bytes / 2);
    const bool bf = e->dtype == "BF16";
    for (size_t i = 0; i < t.data.size(); ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      t.data[i] = bf ? bf16_to_f32(h) : f16_to_f32(h);
    }
  }
  return t;
}

std::map<std::string, FloatTensor> read_safetensors(const std::string& path) {
  SafetensorsFile f(path);
  std::map<std::string, FloatTensor> out;
  for (const auto& e : f.entries()) out.emplace(e.name, f.read(e.name));
  return out;
}

std::map<std::string, FloatTensor> load_safetensors_dir(const std::string& dir,
                                                        std::string* source_dtype) {
  const std::string single = dir + "/model.safetensors";
  const std::string index = dir + "/model.safetensors.index.json";
  std::map<std::string, FloatTensor> out;
  std::set<std::string> dtypes;
  if (file_exists(single)) {
    SafetensorsFile f(single);
    for (const auto& e : f.entries()) {
      out.emplace(e.name, f.read(e.name));
      dtypes.insert(e.dtype);
    }
  } else if (file_exists(index)) {
    const json j = read_json(index);
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
      fail(index, "missing object 'weight_map'");
    }
    // shard file -> tensor names it must hold
    std::map<std::string, std::vector<std::string>> shards;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string()) fail(index, "weight_map['" + it.key() + "'] is not a string");
      const std::string shard = it.value().get<std::string>();
      if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..") {
        fail(index, "weight_map['" + it.key() + "'] = '" + shard +
                        "' is not a file name in the model directory");
      }
      shards[shard].push_back(it.key());
    }
    if (shards.empty()) fail(index, "weight_map is empty");
    for (const auto& [shard, names] : shards) {
      SafetensorsFile f(dir + "/" + shard);
      std::set<std::string> listed(names.begin(), names.end());
      for (const auto& e : f.entries()) {
        if (!listed.count(e.name)) {
          fail(f.path(), "tensor '" + e.name + "' is not listed for this shard in " + index);
        }
      }
      for (const auto& name : names) {
        if (!f.find(name))
          fail(f.path(), "tensor '" + name + "' listed in " + index + " is missing");
        dtypes.insert(f.find(name)->dtype);
        out.emplace(name, f.read(name));
      }
    }
  } else {
    throw ConvertError(dir + ": no model.safetensors or model.safetensors.index.json");
  }
  if (source_dtype) {
    std::string s;
    for (const auto& d : dtypes) s += (s.empty() ? "" : "+") + d;
    *source_dtype = s;
  }
  return out;
}

}  // namespace convert
}  // namespace ember
