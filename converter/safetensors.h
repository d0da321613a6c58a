// Hugging Face safetensors reader (single file or sharded via model.safetensors.index.json).
//
// File: [uint64 LE header length N][N bytes JSON header][data region]. The header maps each tensor
// name to {dtype, shape, data_offsets: [begin, end)} relative to the data region; "__metadata__" is
// an optional string->string map. Every field is checked before use (the header is hostile input):
// N inside the file, offsets in range, begin <= end, shape product x dtype size == end - begin (no
// overflow), ranges neither overlapping nor leaving holes, no duplicate names, known dtypes only.
// Any violation throws ConvertError naming the file and the tensor.
//
// F32, F16 and BF16 are widened exactly to float32. The file is mmapped; tensors are converted on
// request, so a caller can read a large checkpoint one tensor at a time.
#ifndef EMBER_CONVERTER_SAFETENSORS_H_
#define EMBER_CONVERTER_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model_ir.h"

namespace ember {
namespace convert {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;            // "F32", "F16", "BF16"
  std::vector<uint64_t> shape;  // outermost first ([] = scalar)
  uint64_t begin = 0, end = 0;  // byte range in the data region
};

// Parses and validates the header of a safetensors image held in memory (`size` bytes, the whole
// file). `file` only names the file in error messages. Entries come back sorted by name.
std::vector<SafetensorsEntry> parse_safetensors_header(
    const uint8_t* data, size_t size, const std::string& file,
    std::map<std::string, std::string>* metadata = nullptr, uint64_t* data_start = nullptr);

// A validated, mmapped safetensors file.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // throws ConvertError
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const SafetensorsEntry* find(const std::string& name) const;  // nullptr when absent
  // The tensor widened to float32 (throws ConvertError if absent).
  FloatTensor read(const std::string& name) const;

 private:
  std::string path_;
  const uint8_t* map_ = nullptr;
  size_t size_ = 0;
  uint64_t data_start_ = 0;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Every tensor of one safetensors file, widened to float32.
std::map<std::string, FloatTensor> read_safetensors(const std::string& path);

// The weights of a Hugging Face model directory: model.safetensors, or the shards listed by
// model.safetensors.index.json (weight_map: tensor name -> shard file in the same directory; every
// listed tensor must be in its shard, no tensor may appear in two shards). Throws ConvertError when
// neither file exists. `source_dtype` (optional) receives the dtype(s) read, e.g. "BF16" or
// "F16+F32".
std::map<std::string, FloatTensor> load_safetensors_dir(const std::string& dir,
                                                        std::string* source_dtype = nullptr);

}  // namespace convert
}  // namespace ember

#endif  // EMBER_CONVERTER_SAFETENSORS_H_
