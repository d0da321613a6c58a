// Test-only: reads a valid .ember file into plain structs that a test edits (drop a tensor, lie
// about an offset, change the config) and writes it back as a new file — the way a corrupted or
// hostile file would look. The tokenizer is not copied (the edits target config and tensors; a file
// without a tokenizer loads for decode-only use, which the control case checks).
#ifndef EMBER_TESTS_RUNTIME_REBUILD_H_
#define EMBER_TESTS_RUNTIME_REBUILD_H_

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ember_generated.h"

namespace ember_test {

struct TensorSpec {
  std::string name;
  std::vector<uint64_t> shape;
  ember::fb::DType dtype;
  uint32_t group_size;
  uint64_t data_offset, data_size, params_offset, params_size;
  ember::fb::DType params_dtype = ember::fb::DType::F32;
  uint32_t act_group = 0;
  ember::fb::Layout layout = ember::fb::Layout::ROWS;
};

struct ModelSpec {
  uint32_t format_version, min_runtime_version;
  uint64_t required_features;
  bool has_config = true;
  std::string architecture;
  uint32_t hidden_size, num_layers, num_heads, num_kv_heads, head_dim, intermediate_size,
      vocab_size, max_context;
  float rope_theta, norm_eps;
  bool tie_embeddings;
  std::vector<TensorSpec> tensors;
  std::vector<uint8_t> weights;  // the weight region
  // Set to override the computed weights_offset / weights_size (0 = computed).
  uint64_t weights_offset_override = 0, weights_size_override = 0;

  TensorSpec* find(const std::string& n) {
    for (auto& t : tensors)
      if (t.name == n) return &t;
    return nullptr;
  }
  void erase(const std::string& n) {
    for (size_t i = 0; i < tensors.size(); ++i)
      if (tensors[i].name == n) {
        tensors.erase(tensors.begin() + i);
        return;
      }
  }
};

inline ModelSpec read_spec(const std::vector<uint8_t>& file) {
  namespace fb = ember::fb;
  const fb::Model* m = fb::GetSizePrefixedModel(file.data());
  ModelSpec s;
  s.format_version = m->format_version();
  s.min_runtime_version = m->min_runtime_version();
  s.required_features = m->required_features();
  const fb::ModelConfig* c = m->config();
  s.has_config = c != nullptr;
  if (c) {
    s.architecture = c->architecture() ? c->architecture()->str() : "";
    s.hidden_size = c->hidden_size();
    s.num_layers = c->num_layers();
    s.num_heads = c->num_heads();
    s.num_kv_heads = c->num_kv_heads();
    s.head_dim = c->head_dim();
    s.intermediate_size = c->intermediate_size();
    s.vocab_size = c->vocab_size();
    s.max_context = c->max_context();
    s.rope_theta = c->rope_theta();
    s.norm_eps = c->norm_eps();
    s.tie_embeddings = c->tie_embeddings();
  }
  if (m->tensors()) {
    for (const fb::Tensor* t : *m->tensors()) {
      TensorSpec ts;
      ts.name = t->name()->str();
      if (t->shape()) ts.shape.assign(t->shape()->begin(), t->shape()->end());
      ts.dtype = t->dtype();
      ts.group_size = t->group_size();
      ts.data_offset = t->data_offset();
      ts.data_size = t->data_size();
      ts.params_offset = t->params_offset();
      ts.params_size = t->params_size();
      ts.params_dtype = t->params_dtype();
      ts.act_group = t->act_group();
      ts.layout = t->layout();
      s.tensors.push_back(ts);
    }
  }
  s.weights.assign(file.begin() + m->weights_offset(),
                   file.begin() + m->weights_offset() + m->weights_size());
  return s;
}

inline std::vector<uint8_t> write_spec(const ModelSpec& s) {
  namespace fb = ember::fb;
  // The FlatBuffer's size does not depend on the offset values (fixed-width scalars), so build
  // once with a placeholder to learn the size, then again with the real offset.
  auto build = [&](uint64_t wo) {
    flatbuffers::FlatBufferBuilder bb;
    flatbuffers::Offset<fb::ModelConfig> c2 = 0;
    if (s.has_config) {
      c2 = fb::CreateModelConfig(bb, bb.CreateString(s.architecture), s.hidden_size, s.num_layers,
                                 s.num_heads, s.num_kv_heads, s.head_dim, s.intermediate_size,
                                 s.vocab_size, s.max_context, s.rope_theta, 0, s.norm_eps,
                                 s.tie_embeddings);
    }
    std::vector<flatbuffers::Offset<fb::Tensor>> t2;
    for (const TensorSpec& t : s.tensors) {
      t2.push_back(fb::CreateTensor(bb, bb.CreateString(t.name), bb.CreateVector(t.shape), t.dtype,
                                    t.group_size, t.data_offset, t.data_size, t.params_offset,
                                    t.params_size, 0.0f, t.params_dtype, t.act_group, t.layout));
    }
    auto tv2 = bb.CreateVector(t2);
    const uint64_t wsize = s.weights_size_override ? s.weights_size_override : s.weights.size();
    auto root = fb::CreateModel(bb, s.format_version, s.min_runtime_version, s.required_features, 0,
                                c2, 0, tv2, wo, wsize);
    fb::FinishSizePrefixedModelBuffer(bb, root);
    return std::vector<uint8_t>(bb.GetBufferPointer(), bb.GetBufferPointer() + bb.GetSize());
  };
  std::vector<uint8_t> probe = build(1ull << 40);
  const uint64_t wo = (probe.size() + 63) / 64 * 64;
  std::vector<uint8_t> out = build(s.weights_offset_override ? s.weights_offset_override : wo);
  out.resize(wo, 0);
  out.insert(out.end(), s.weights.begin(), s.weights.end());
  return out;
}

// A copy of `bytes` in 16-byte-aligned memory of exactly that size (so ASan sees any overread).
struct AlignedBuffer {
  void* p = nullptr;
  size_t n = 0;
  explicit AlignedBuffer(const uint8_t* data, size_t size) : n(size) {
    if (posix_memalign(&p, 16, size == 0 ? 1 : size) != 0) p = nullptr;
    if (p && size) std::memcpy(p, data, size);
  }
  ~AlignedBuffer() { std::free(p); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
};

}  // namespace ember_test

#endif  // EMBER_TESTS_RUNTIME_REBUILD_H_
