// Random-weight Llama models of named shapes, for benchmarks. The weights are uniform in
// +-0.02*sqrt(3) (std 0.02, the usual Llama initialisation), norms are 1, from a seeded
// xoshiro256** stream: the same (shape, seed) gives the same model on every machine. The tokenizer
// is real.
#include "synthetic.h"

#include <cmath>
#include <cstdint>
#include <string>

#include "hf_model.h"
#include "tokenizer_json.h"

namespace ember {
namespace convert {
namespace {

struct Shape {
  const char* name;
  uint32_t dim, ffn, layers, heads, kv_heads, context;
  bool tied;
};

// llama2.c's TinyStories models (tied classifier) and TinyLlama-1.1B (untied, grouped-query).
const Shape kShapes[] = {
    {"stories15m", 288, 768, 6, 6, 6, 256, true},
    {"stories110m", 768, 2048, 12, 12, 12, 1024, true},
    {"tinyllama-1.1b", 2048, 5632, 22, 32, 4, 2048, false},
};

class Rng {  // xoshiro256**, seeded through splitmix64
 public:
  explicit Rng(uint64_t seed) {
    for (auto& v : s_) {
      seed += 0x9e3779b97f4a7c15ull;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      v = z ^ (z >> 31);
    }
  }
  uint64_t next() {
    const uint64_t r = rotl(s_[1] * 5, 7) * 9, t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return r;
  }
  // Uniform in [-1, 1).
  float uniform() { return static_cast<float>(static_cast<int64_t>(next()) >> 40) * 0x1p-23f; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace

ModelIR make_synthetic(const std::string& shape, uint64_t seed, const std::string& tokenizer_dir) {
  const Shape* s = nullptr;
  std::string known;
  for (const Shape& k : kShapes) {
    if (shape == k.name) s = &k;
    known += known.empty() ? k.name : std::string(", ") + k.name;
  }
  if (s == nullptr)
    throw ConvertError("--synthetic: unknown shape '" + shape + "' (known: " + known + ")");

  ModelIR ir;
  ir.tokenizer = load_hf_tokenizer(tokenizer_dir);
  ir.has_tokenizer = true;
  if (ir.tokenizer.pieces.empty())
    throw ConvertError(tokenizer_dir + ": tokenizer has no vocabulary");

  ConfigSpec& c = ir.config;
  c.hidden_size = s->dim;
  c.intermediate_size = s->ffn;
  c.num_layers = s->layers;
  c.num_heads = s->heads;
  c.num_kv_heads = s->kv_heads;
  c.head_dim = s->dim / s->heads;
  c.vocab_size = static_cast<uint32_t>(ir.tokenizer.pieces.size());
  c.max_context = s->context;
  c.tie_embeddings = s->tied;
  c.rope_theta = 10000.0f;
  c.norm_eps = 1e-5f;
  c.bos_token_id = ir.tokenizer.bos_id;
  if (ir.tokenizer.eos_id >= 0) c.eos_token_ids.push_back(ir.tokenizer.eos_id);

  Rng rng(seed);
  const float amp = 0.02f * std::sqrt(3.0f);
  for (const auto& [name, dims] : expected_llama_tensors(c)) {
    FloatTensor t;
    t.shape = dims;
    t.source_dtype = "F32";
    uint64_t count = 1;
    for (uint64_t d : dims) count *= d;
    t.data.resize(count);
    if (dims.size() == 1) {  // RMSNorm weights
      for (auto& v : t.data) v = 1.0f;
    } else {
      for (auto& v : t.data) v = amp * rng.uniform();
    }
    ir.tensors.emplace(name, std::move(t));
  }
  ir.source = "synthetic:" + shape + " seed " + std::to_string(seed);
  ir.source_dtype = "F32";
  return ir;
}

}  // namespace convert
}  // namespace ember
