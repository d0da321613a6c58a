// Model load: the file is checked layer by layer (size, alignment, identifier, FlatBuffers
// verifier, then versions, config, and every tensor's name, shape, dtype, offsets and quantization
// params) before anything reads a weight. Every failure names the field or tensor and the values.
#include "model.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <new>

#include "core/dtype_fb.h"
#include "core/float_blocks.h"
#include "core/format.h"
#include "core/half.h"
#include "core/zero_one.h"
#include "ember_generated.h"
#include "planner.h"

namespace ember {
namespace {

const char* dtype_name(fb::DType t) {
  const char* n = fb::EnumNameDType(t);
  return n && *n ? n : "?";
}

const fb::Tensor* find_tensor(const fb::Model* root, const char* name) {
  const auto* ts = root->tensors();
  if (!ts) return nullptr;
  for (flatbuffers::uoffset_t i = 0; i < ts->size(); ++i) {
    const fb::Tensor* t = ts->Get(i);
    if (t && t->name() && std::strcmp(t->name()->c_str(), name) == 0) return t;
  }
  return nullptr;
}

// The zero-one parameters of a u8 tensor: type, size, alignment, place in the weight region, the
// activation group and, with `scan`, every value (scales finite and >= 0, mins finite).
// A tensor's `what` ("data" / "params") region: aligned, and inside the weight region.
Status check_region(const Model& m, const char* name, const char* what, uint64_t offset,
                    uint64_t size) {
  unsigned long long end = 0;
  if (offset % kWeightAlignment != 0) {
    return set_error(Status::kBadFormat, "tensor '%s': %s_offset %llu is not %zu-byte aligned",
                     name, what, (unsigned long long)offset, kWeightAlignment);
  }
  if (!checked_add(offset, size, &end) || end > m.weights_size) {
    return set_error(Status::kBadFormat,
                     "tensor '%s': %s_offset %llu + size %llu is past the weight region (%llu "
                     "bytes)",
                     name, what, (unsigned long long)offset, (unsigned long long)size,
                     (unsigned long long)m.weights_size);
  }
  return Status::kOk;
}

Status check_zero_one(const Model& m, const fb::Tensor* t, const char* name, const ZeroOneShape& zs,
                      bool scan, WeightRef* w) {
  if (t->params_size() != zs.params_bytes()) {
    return set_error(Status::kBadFormat,
                     "tensor '%s': params_size %llu, %llu row blocks x %llu groups x 32 %s params "
                     "implies %llu",
                     name, (unsigned long long)t->params_size(), (unsigned long long)zs.blocks,
                     (unsigned long long)zs.groups, dtype_name(dtype_to_fb(zs.params_type)),
                     (unsigned long long)zs.params_bytes());
  }
  if (!zero_one_act_group_valid(zs.group, t->act_group())) {
    return set_error(Status::kBadFormat,
                     "tensor '%s': act_group %u for groups of %llu (must divide the group and be "
                     "a multiple of %zu)",
                     name, t->act_group(), (unsigned long long)zs.group, kZeroOneUnitBytes);
  }
  EMBER_RETURN_IF_ERROR(check_region(m, name, "params", t->params_offset(), t->params_size()));
  const void* p = m.weights + t->params_offset();
  for (uint64_t i = 0; scan && i < zs.params_floats(); ++i) {
    const float v = zero_one_param(p, zs.params_type, i);
    const bool is_scale = i % kZeroOneParamFloats < kZeroOneBlockRows;
    if (!std::isfinite(v) || (is_scale && v < 0.0f)) {
      const uint64_t block = i / kZeroOneParamFloats / zs.groups;
      const uint64_t row = block * kZeroOneBlockRows + i % kZeroOneBlockRows;
      return set_error(
          Status::kBadFormat, "tensor '%s': group %llu of row %llu has %s %g (must be finite%s)",
          name, (unsigned long long)(i / kZeroOneParamFloats % zs.groups), (unsigned long long)row,
          is_scale ? "scale" : "min", (double)v, is_scale ? ", >= 0" : "");
    }
  }
  w->params = p;
  w->params_type = zs.params_type;
  w->group = t->group_size();
  w->act_group = t->act_group() == static_cast<uint32_t>(zs.group) ? 0 : t->act_group();
  return Status::kOk;
}

// Checks one tensor against the expected shape (rows, cols) — cols == 0 means a 1-D tensor of
// `rows` values — and fills a WeightRef pointing into the weight region. `scan`: also every
// zero-one parameter (the plan pass; the build pass knows them good).
Status check_tensor(const Model& m, const char* name, uint64_t rows, uint64_t cols, bool scan,
                    WeightRef* out) {
  const fb::Tensor* t = find_tensor(m.root, name);
  if (!t) return set_error(Status::kBadFormat, "tensor '%s' is missing", name);
  const auto* shape = t->shape();
  const size_t want_rank = cols == 0 ? 1 : 2;
  const size_t rank = shape ? shape->size() : 0;
  if (rank != want_rank) {
    return set_error(Status::kBadFormat, "tensor '%s': rank %zu, the config implies rank %zu", name,
                     rank, want_rank);
  }
  const uint64_t r = shape->Get(0);
  const uint64_t c = rank == 2 ? shape->Get(1) : 0;
  if (r != rows || c != cols) {
    if (rank == 2) {
      return set_error(Status::kBadFormat,
                       "tensor '%s': shape [%llu, %llu], the config implies [%llu, %llu]", name,
                       (unsigned long long)r, (unsigned long long)c, (unsigned long long)rows,
                       (unsigned long long)cols);
    }
    return set_error(Status::kBadFormat, "tensor '%s': shape [%llu], the config implies [%llu]",
                     name, (unsigned long long)r, (unsigned long long)rows);
  }
  const fb::DType file_dt = t->dtype();
  DType dt = DType::kF32;
  if (!dtype_from_fb(file_dt, &dt)) {
    return set_error(Status::kUnsupported, "tensor '%s': unknown dtype %u", name,
                     static_cast<unsigned>(file_dt));
  }
  const size_t esize = dtype_element_bytes(dt);
  const fb::Layout layout = t->layout();
  const bool blocked = layout == fb::Layout::BLOCKS16;
  if (layout != fb::Layout::ROWS && (!blocked || rank != 2 || dt == DType::kU8ZeroOne)) {
    return set_error(Status::kBadFormat,
                     "tensor '%s': layout %u (BLOCKS16 is for rank-2 F32, F16 and BF16 tensors; "
                     "this one is rank %zu %s)",
                     name, static_cast<unsigned>(layout), rank, dtype_name(file_dt));
  }
  // As a matrix: a 1-D tensor is one row.
  const uint64_t mrows = rank == 2 ? rows : 1;
  const uint64_t mcols = rank == 2 ? cols : rows;
  ZeroOneShape zs;
  unsigned long long numel = 0, bytes = 0;
  if (dt == DType::kU8ZeroOne) {
    if (m.root->format_version() < kFormatVersionU8Blocks) {
      return set_error(Status::kUnsupported,
                       "tensor '%s': u8 zero-one weights in the row-major layout of format %u; "
                       "this runtime reads the row-block layout of format %u: convert the model "
                       "again with this version's ember-convert",
                       name, m.root->format_version(), kFormatVersionU8Blocks);
    }
    DType pt = DType::kF32;
    if (!dtype_from_fb(t->params_dtype(), &pt) || zero_one_param_bytes(pt) == 0) {
      return set_error(Status::kUnsupported, "tensor '%s': params_dtype %s (%u); F32 or F16 only",
                       name, dtype_name(t->params_dtype()),
                       static_cast<unsigned>(t->params_dtype()));
    }
    if (t->group_size() > mcols || !zero_one_shape(mrows, mcols, t->group_size(), &zs, pt)) {
      return set_error(Status::kBadFormat, "tensor '%s': group_size %u for rows of %llu", name,
                       t->group_size(), (unsigned long long)mcols);
    }
    bytes = zs.data_bytes();
  } else {
    uint64_t values = 0;  // padding rows included
    const bool ok =
        blocked ? float_blocked_values(mrows, mcols, &values) : checked_mul(mrows, mcols, &numel);
    if (blocked) numel = values;
    if (!ok || !checked_mul(numel, esize, &bytes)) {
      return set_error(Status::kBadFormat, "tensor '%s': size overflows", name);
    }
  }
  if (t->data_size() != bytes) {
    return set_error(Status::kBadFormat,
                     "tensor '%s': data_size %llu, shape x %s size implies %llu bytes", name,
                     (unsigned long long)t->data_size(), dtype_name(file_dt), bytes);
  }
  EMBER_RETURN_IF_ERROR(check_region(m, name, "data", t->data_offset(), t->data_size()));
  WeightRef w;
  w.type = dt;
  w.data = m.weights + t->data_offset();
  w.rows = static_cast<uint32_t>(mrows);
  w.cols = static_cast<uint32_t>(mcols);
  w.blocked = blocked;
  if (dt == DType::kU8ZeroOne) EMBER_RETURN_IF_ERROR(check_zero_one(m, t, name, zs, scan, &w));
  *out = w;
  return Status::kOk;
}

Status check_config(const fb::ModelConfig* c, ModelConfig* out, const char** arch) {
  const char* a = c->architecture() ? c->architecture()->c_str() : "";
  if (std::strcmp(a, "llama") != 0 && std::strcmp(a, "mistral") != 0 &&
      std::strcmp(a, "qwen2") != 0) {
    return set_error(Status::kUnsupported,
                     "config.architecture '%s' is not supported (llama, mistral, qwen2)", a);
  }
  *arch = a;
  struct Field {
    const char* name;
    uint32_t value, max;
  } fields[] = {
      {"hidden_size", c->hidden_size(), kMaxHiddenSize},
      {"num_layers", c->num_layers(), kMaxLayers},
      {"num_heads", c->num_heads(), kMaxHeads},
      {"num_kv_heads", c->num_kv_heads(), kMaxHeads},
      {"head_dim", c->head_dim(), kMaxHeadDim},
      {"intermediate_size", c->intermediate_size(), kMaxIntermediate},
      {"vocab_size", c->vocab_size(), kMaxVocab},
      {"max_context", c->max_context(), kMaxContext},
  };
  for (const Field& f : fields) {
    if (f.value == 0 || f.value > f.max) {
      return set_error(Status::kBadFormat, "config.%s = %u (must be in 1..%u)", f.name, f.value,
                       f.max);
    }
  }
  if (c->num_heads() % c->num_kv_heads() != 0) {
    return set_error(Status::kBadFormat, "config: num_kv_heads %u does not divide num_heads %u",
                     c->num_kv_heads(), c->num_heads());
  }
  if (c->head_dim() % 2 != 0) {
    return set_error(Status::kBadFormat, "config.head_dim = %u (RoPE needs an even head_dim)",
                     c->head_dim());
  }
  const uint64_t q_dim = uint64_t{c->num_heads()} * c->head_dim();
  if (q_dim > kMaxHiddenSize) {
    return set_error(Status::kBadFormat, "config: num_heads %u x head_dim %u = %llu exceeds %u",
                     c->num_heads(), c->head_dim(), (unsigned long long)q_dim, kMaxHiddenSize);
  }
  if (!(std::isfinite(c->rope_theta()) && c->rope_theta() > 1.0f)) {
    return set_error(Status::kBadFormat, "config.rope_theta = %g (must be finite and > 1)",
                     (double)c->rope_theta());
  }
  if (!(std::isfinite(c->norm_eps()) && c->norm_eps() >= 0.0f)) {
    return set_error(Status::kBadFormat, "config.norm_eps = %g (must be finite and >= 0)",
                     (double)c->norm_eps());
  }
  if (c->activation() != fb::Activation::SILU) {
    return set_error(Status::kUnsupported, "config.activation %s is not supported (SILU only)",
                     fb::EnumNameActivation(c->activation()));
  }
  if (c->sliding_window() != 0 && c->sliding_window() < c->max_context()) {
    return set_error(Status::kUnsupported,
                     "config.sliding_window %u < max_context %u: sliding-window attention is not "
                     "supported yet",
                     c->sliding_window(), c->max_context());
  }
  ModelConfig& o = *out;
  o.hidden_size = c->hidden_size();
  o.num_layers = c->num_layers();
  o.num_heads = c->num_heads();
  o.num_kv_heads = c->num_kv_heads();
  o.head_dim = c->head_dim();
  o.q_dim = static_cast<uint32_t>(q_dim);
  o.kv_dim = c->num_kv_heads() * c->head_dim();
  o.intermediate_size = c->intermediate_size();
  o.vocab_size = c->vocab_size();
  o.max_context = c->max_context();
  o.rope_theta = c->rope_theta();
  o.norm_eps = c->norm_eps();
  o.tie_embeddings = c->tie_embeddings();
  o.attention_bias = c->attention_bias();
  o.mlp_bias = c->mlp_bias();
  if (const fb::RopeScaling* rs = c->rope_scaling()) {
    const fb::RopeScalingType t = rs->type();
    if (t != fb::RopeScalingType::NONE && t != fb::RopeScalingType::LINEAR &&
        t != fb::RopeScalingType::LLAMA3) {
      return set_error(Status::kUnsupported, "config.rope_scaling.type %s is not supported",
                       fb::EnumNameRopeScalingType(t));
    }
    if (t != fb::RopeScalingType::NONE && !(std::isfinite(rs->factor()) && rs->factor() > 0.0f)) {
      return set_error(Status::kBadFormat, "config.rope_scaling.factor = %g", (double)rs->factor());
    }
    if (t == fb::RopeScalingType::LLAMA3 &&
        !(rs->original_max_position_embeddings() > 0 && std::isfinite(rs->low_freq_factor()) &&
          std::isfinite(rs->high_freq_factor()) &&
          rs->high_freq_factor() > rs->low_freq_factor())) {
      return set_error(Status::kBadFormat,
                       "config.rope_scaling (llama3): original_max_position_embeddings %u, "
                       "low_freq_factor %g, high_freq_factor %g",
                       rs->original_max_position_embeddings(), (double)rs->low_freq_factor(),
                       (double)rs->high_freq_factor());
    }
    o.rope_scaling_type = static_cast<uint8_t>(t);
    o.rope_factor = rs->factor();
    o.rope_low_freq_factor = rs->low_freq_factor();
    o.rope_high_freq_factor = rs->high_freq_factor();
    o.rope_original_max_position = rs->original_max_position_embeddings();
  }
  return Status::kOk;
}

// Where a walk over the file puts what it builds. The plan pass (build false) verifies everything
// and only measures; the build pass, on a file the plan accepted, fills the block the plan laid out
// and skips the costly checks the plan made (the FlatBuffers verifier, the zero-one parameter
// scan). Both passes run the same code, so the plan's sizes are what the build uses.
struct Fill {
  bool build = false;
  LayerWeights* layers = nullptr;  // build: the block's layer table (layers_cap entries)
  uint32_t layers_cap = 0;
  float* vectors = nullptr;  // build: the block's float copies (vectors_cap floats)
  size_t vectors_cap = 0;
  size_t vectors_used = 0;              // floats of copies taken so far (both passes)
  uint8_t* tokenizer_tables = nullptr;  // build: the block's tokenizer tables
  size_t tokenizer_bytes = 0;           // plan: measured; build: given
};

// Value i of a 1-D tensor as a float (what dequantize_row gives for it).
float vector_element(const WeightRef& w, size_t i) {
  switch (w.type) {
    case DType::kF32: {
      float v;
      std::memcpy(&v, static_cast<const float*>(w.data) + i, sizeof v);
      return v;
    }
    case DType::kF16:
      return f16_to_f32(static_cast<const uint16_t*>(w.data)[i]);
    case DType::kBF16:
      return bf16_to_f32(static_cast<const uint16_t*>(w.data)[i]);
    case DType::kU8ZeroOne: {
      ZeroOneShape s;  // (checked by check_tensor)
      zero_one_shape(w.rows, w.cols, w.group, &s, w.params_type);
      const uint8_t q = static_cast<const uint8_t*>(w.data)[zero_one_byte_offset(s, 0, i)];
      return zero_one_dequantize(q, zero_one_params_at(s, w.params, 0, i / s.group));
    }
  }
  return 0.0f;
}

// A 1-D tensor (norm weight or bias) of n values, each finite; the build pass keeps a float copy
// in the block and points *out at it.
Status vector_tensor(Model* m, const char* name, uint32_t n, Fill* fill, const float** out) {
  WeightRef w;
  EMBER_RETURN_IF_ERROR(check_tensor(*m, name, n, 0, !fill->build, &w));
  float* copy = nullptr;
  if (fill->build) {
    if (n > fill->vectors_cap - fill->vectors_used) {
      return set_error(Status::kInternal, "model: the plan has %zu floats of norm/bias copies",
                       fill->vectors_cap);
    }
    copy = fill->vectors + fill->vectors_used;
  }
  for (uint32_t i = 0; i < n; ++i) {
    const float v = vector_element(w, i);
    if (!std::isfinite(v)) {
      return set_error(Status::kBadFormat, "tensor '%s': value %u is not finite", name, i);
    }
    if (copy) copy[i] = v;
  }
  fill->vectors_used += n;
  *out = copy;
  return Status::kOk;
}

Status matrix_tensor(Model* m, const char* name, uint32_t rows, uint32_t cols, const Fill& fill,
                     WeightRef* out) {
  return check_tensor(*m, name, rows, cols, !fill.build, out);
}

// A matrix the forward pass multiplies: a u8 one sizes the activation quantization's scratch
// (float ones need none, so a model with some matrices kept in float plans only what it uses).
void note_multiplied(Model* m, const WeightRef& w) {
  if (w.type != DType::kU8ZeroOne) return;
  const size_t g = zero_one_groups_per_row(w.cols, w.group);
  if (g > m->max_groups) m->max_groups = g;
  if (w.cols > m->u8_k_max) m->u8_k_max = w.cols;
  const size_t h = zero_one_act_group_len(zero_one_group_len(w.cols, w.group), w.act_group);
  const size_t acts = (w.cols + h - 1) / h;
  if (acts > m->max_act_groups) m->max_act_groups = acts;
}

// Bytes of a matrix in the weights region: its values and, for u8, its zero-one parameters.
uint64_t matrix_bytes(const WeightRef& w) {
  uint64_t n = uint64_t{w.rows} * w.cols;
  if (w.blocked) float_blocked_values(w.rows, w.cols, &n);  // padding rows are read too
  switch (w.type) {
    case DType::kU8ZeroOne: {
      ZeroOneShape s;  // (checked at load)
      zero_one_shape(w.rows, w.cols, w.group, &s, w.params_type);
      return s.data_bytes() + s.params_bytes();  // padding rows included: they are read too
    }
    case DType::kF16:
    case DType::kBF16:
      return 2 * n;
    case DType::kF32:
      break;
  }
  return 4 * n;
}

// The tensors of layer l into *lw.
Status load_layer(Model* m, uint32_t l, Fill* fill, LayerWeights* lw) {
  const ModelConfig& c = m->config;
  const uint32_t dim = c.hidden_size, ffn = c.intermediate_size;
  char name[128];
  auto nm = [&](const char* suffix) {
    std::snprintf(name, sizeof name, "model.layers.%u.%s", l, suffix);
    return name;
  };
  EMBER_RETURN_IF_ERROR(vector_tensor(m, nm("input_layernorm.weight"), dim, fill, &lw->attn_norm));
  EMBER_RETURN_IF_ERROR(
      vector_tensor(m, nm("post_attention_layernorm.weight"), dim, fill, &lw->ffn_norm));
  EMBER_RETURN_IF_ERROR(
      matrix_tensor(m, nm("self_attn.q_proj.weight"), c.q_dim, dim, *fill, &lw->wq));
  EMBER_RETURN_IF_ERROR(
      matrix_tensor(m, nm("self_attn.k_proj.weight"), c.kv_dim, dim, *fill, &lw->wk));
  EMBER_RETURN_IF_ERROR(
      matrix_tensor(m, nm("self_attn.v_proj.weight"), c.kv_dim, dim, *fill, &lw->wv));
  EMBER_RETURN_IF_ERROR(
      matrix_tensor(m, nm("self_attn.o_proj.weight"), dim, c.q_dim, *fill, &lw->wo));
  EMBER_RETURN_IF_ERROR(matrix_tensor(m, nm("mlp.gate_proj.weight"), ffn, dim, *fill, &lw->w_gate));
  EMBER_RETURN_IF_ERROR(matrix_tensor(m, nm("mlp.up_proj.weight"), ffn, dim, *fill, &lw->w_up));
  EMBER_RETURN_IF_ERROR(matrix_tensor(m, nm("mlp.down_proj.weight"), dim, ffn, *fill, &lw->w_down));
  if (c.attention_bias) {
    EMBER_RETURN_IF_ERROR(vector_tensor(m, nm("self_attn.q_proj.bias"), c.q_dim, fill, &lw->bq));
    EMBER_RETURN_IF_ERROR(vector_tensor(m, nm("self_attn.k_proj.bias"), c.kv_dim, fill, &lw->bk));
    EMBER_RETURN_IF_ERROR(vector_tensor(m, nm("self_attn.v_proj.bias"), c.kv_dim, fill, &lw->bv));
    // o_proj has a bias only in some families; use it when present.
    if (find_tensor(m->root, nm("self_attn.o_proj.bias"))) {
      EMBER_RETURN_IF_ERROR(vector_tensor(m, name, dim, fill, &lw->bo));
    }
  }
  if (c.mlp_bias) {
    EMBER_RETURN_IF_ERROR(vector_tensor(m, nm("mlp.gate_proj.bias"), ffn, fill, &lw->b_gate));
    EMBER_RETURN_IF_ERROR(vector_tensor(m, nm("mlp.up_proj.bias"), ffn, fill, &lw->b_up));
    EMBER_RETURN_IF_ERROR(vector_tensor(m, nm("mlp.down_proj.bias"), dim, fill, &lw->b_down));
  }
  return Status::kOk;
}

// Every tensor the config names; the build pass fills the block's layer table and float copies.
// Also the bytes a one-token pass reads from the weights: every matrix it multiplies (values and
// zero-one parameters) and one embedding row (a tied table is the output head: counted there).
// A u8 row lies 4 bytes to each 64-byte line of its 16-row block: reading it reads the block.
Status load_weights(Model* m, Fill* fill) {
  const ModelConfig& c = m->config;
  const uint32_t dim = c.hidden_size, L = c.num_layers;
  if (fill->build) {
    if (fill->layers_cap < L) {
      return set_error(Status::kInternal, "model: the plan has %u layers, the config %u",
                       fill->layers_cap, L);
    }
    m->layers = fill->layers;
    m->vectors = fill->vectors;
  }
  EMBER_RETURN_IF_ERROR(
      matrix_tensor(m, "model.embed_tokens.weight", c.vocab_size, dim, *fill, &m->embed));
  if (c.tie_embeddings) {
    m->output = m->embed;
  } else {
    EMBER_RETURN_IF_ERROR(matrix_tensor(m, "lm_head.weight", c.vocab_size, dim, *fill, &m->output));
  }
  EMBER_RETURN_IF_ERROR(vector_tensor(m, "model.norm.weight", dim, fill, &m->final_norm));
  note_multiplied(m, m->output);
  uint64_t read = matrix_bytes(m->output);
  if (!c.tie_embeddings) {
    // A row of a block layout lies in its block's lines: one block is read.
    const uint64_t rows = m->embed.type == DType::kU8ZeroOne || m->embed.blocked
                              ? (uint64_t{c.vocab_size} + kZeroOneBlockRows - 1) / kZeroOneBlockRows
                              : c.vocab_size;
    read += matrix_bytes(m->embed) / rows;
  }
  for (uint32_t l = 0; l < L; ++l) {
    LayerWeights scratch;  // the plan pass keeps no layer table
    LayerWeights* lw = fill->build ? new (&m->layers[l]) LayerWeights() : &scratch;
    EMBER_RETURN_IF_ERROR(load_layer(m, l, fill, lw));
    for (const WeightRef* w :
         {&lw->wq, &lw->wk, &lw->wv, &lw->wo, &lw->w_gate, &lw->w_up, &lw->w_down}) {
      read += matrix_bytes(*w);
      note_multiplied(m, *w);
    }
  }
  m->token_read_bytes = read;
  return Status::kOk;
}

// What FlatBuffers' verifier (2.0) leaves out: it checks a vector's length field for 4-byte
// alignment, not its elements for theirs, so a [uint64] shape at 4 mod 8 passes it, and reading
// one faults on cores without unaligned 64-bit loads (LDRD on Cortex-M). The converter's builder
// aligns every shape; `root` has passed the verifier.
Status check_shape_alignment(const fb::Model* root) {
  const auto* tensors = root->tensors();
  for (flatbuffers::uoffset_t i = 0; tensors && i < tensors->size(); ++i) {
    const auto* shape = tensors->Get(i)->shape();
    if (shape && reinterpret_cast<uintptr_t>(shape->Data()) % alignof(uint64_t) != 0) {
      return set_error(Status::kBadFormat, "tensor %u's shape is not %zu-byte aligned", i,
                       alignof(uint64_t));
    }
  }
  return Status::kOk;
}

// Steps 1-4: size, alignment, size prefix, identifier and (`verify`) the FlatBuffers verifier.
Status check_file(const uint8_t* data, size_t size, bool verify, uint32_t* fb_size_out) {
  // 1. Size and alignment.
  if (data == nullptr) return set_error(Status::kInvalidArgument, "model data is NULL");
  if (size < kSizePrefixBytes + 8) {
    return set_error(Status::kBadFormat, "file of %zu bytes is too small to be an ember model",
                     size);
  }
  if (reinterpret_cast<uintptr_t>(data) % kBufferAlignment != 0) {
    return set_error(Status::kInvalidArgument, "model buffer at %p is not %zu-byte aligned",
                     static_cast<const void*>(data), kBufferAlignment);
  }
  // 2. The size prefix must describe a FlatBuffer inside the file.
  uint32_t fb_size = 0;
  std::memcpy(&fb_size, data, 4);
  if (uint64_t{fb_size} + kSizePrefixBytes > size) {
    return set_error(Status::kBadFormat,
                     "size prefix says the FlatBuffer is %u bytes, the file has only %zu after the "
                     "prefix (truncated?)",
                     fb_size, size - kSizePrefixBytes);
  }
  // 3. Identifier.
  if (std::memcmp(data + 8, kFileIdentifier, 4) != 0) {
    return set_error(
        Status::kBadFormat,
        "file identifier is '%c%c%c%c' (bytes %02x %02x %02x %02x), expected '%s': not "
        "an ember file",
        data[8] >= 32 && data[8] < 127 ? data[8] : '?',
        data[9] >= 32 && data[9] < 127 ? data[9] : '?',
        data[10] >= 32 && data[10] < 127 ? data[10] : '?',
        data[11] >= 32 && data[11] < 127 ? data[11] : '?', data[8], data[9], data[10], data[11],
        kFileIdentifier);
  }
  // 4. FlatBuffers verifier over exactly the prefixed buffer.
  if (verify) {
    flatbuffers::Verifier verifier(data, kSizePrefixBytes + fb_size, /*max_depth=*/64,
                                   /*max_tables=*/1u << 20);
    if (!fb::VerifySizePrefixedModelBuffer(verifier)) {
      return set_error(Status::kBadFormat,
                       "the FlatBuffer (%u bytes) fails verification: corrupted or truncated file",
                       fb_size);
    }
    EMBER_RETURN_IF_ERROR(check_shape_alignment(fb::GetSizePrefixedModel(data)));
  }
  *fb_size_out = fb_size;
  return Status::kOk;
}

// Steps 5-6: versions, features and the weight region.
Status check_root(Model* m, uint32_t fb_size) {
  const fb::Model* root = m->root;
  // 5. Versions and features.
  if (root->format_version() == 0) {
    return set_error(Status::kBadFormat, "format_version is 0 (not written by ember-convert)");
  }
  if (root->min_runtime_version() > kRuntimeVersion) {
    return set_error(Status::kUnsupported,
                     "the file needs runtime version %u (format %u); this runtime is version %u",
                     root->min_runtime_version(), root->format_version(), kRuntimeVersion);
  }
  const uint64_t unknown = root->required_features() & ~kKnownRequiredFeatures;
  if (unknown != 0) {
    return set_error(Status::kUnsupported,
                     "the file requires features 0x%llx this runtime does not know",
                     (unsigned long long)unknown);
  }
  // 6. Weight region.
  m->weights_size = root->weights_size();
  const auto* tensors = root->tensors();
  const bool has_tensors = tensors && tensors->size() > 0;
  if (!has_tensors && root->weights_size() == 0) return Status::kOk;
  unsigned long long wend = 0;
  const uint64_t wo = root->weights_offset();
  if (wo % kWeightAlignment != 0) {
    return set_error(Status::kBadFormat, "weights_offset %llu is not %zu-byte aligned",
                     (unsigned long long)wo, kWeightAlignment);
  }
  if (wo < uint64_t{fb_size} + kSizePrefixBytes) {
    return set_error(Status::kBadFormat, "weights_offset %llu overlaps the FlatBuffer (%llu bytes)",
                     (unsigned long long)wo, (unsigned long long)fb_size + kSizePrefixBytes);
  }
  if (!checked_add(wo, root->weights_size(), &wend) || wend > m->size) {
    return set_error(Status::kBadFormat,
                     "weight region [%llu, %llu + %llu) is past the end of the file (%zu bytes): "
                     "truncated?",
                     (unsigned long long)wo, (unsigned long long)wo,
                     (unsigned long long)root->weights_size(), m->size);
  }
  m->weights = m->data + wo;
  return Status::kOk;
}

// Step 7: the tokenizer (checked and measured by the plan pass, built by the build pass).
Status read_tokenizer(Model* m, Fill* fill) {
  const fb::Tokenizer* tk = m->root->tokenizer();
  if (!tk) return Status::kOk;
  if (fill->build) {
    EMBER_RETURN_IF_ERROR(m->tokenizer.init(tk, fill->tokenizer_tables, fill->tokenizer_bytes));
  } else {
    EMBER_RETURN_IF_ERROR(Tokenizer::plan(tk, &fill->tokenizer_bytes));
  }
  for (flatbuffers::uoffset_t i = 0; i < tk->pieces()->size(); ++i) {
    const auto* p = tk->pieces()->Get(i);
    if (p && p->size() > m->max_piece_bytes) m->max_piece_bytes = p->size();
  }
  return Status::kOk;
}

// Step 8: the config and the tensors (or neither: a tokenizer-only file).
Status read_config_and_tensors(Model* m, Fill* fill) {
  const fb::Model* root = m->root;
  const auto* tensors = root->tensors();
  const bool has_tensors = tensors && tensors->size() > 0;
  if (!root->config()) {
    if (has_tensors) {
      return set_error(Status::kBadFormat, "the file has %u tensors but no config",
                       tensors->size());
    }
    if (!root->tokenizer()) {
      return set_error(Status::kBadFormat, "the file has neither a config nor a tokenizer");
    }
    m->has_config = false;
    return Status::kOk;  // a tokenizer-only file
  }
  EMBER_RETURN_IF_ERROR(check_config(root->config(), &m->config, &m->architecture));
  if (!has_tensors) return set_error(Status::kBadFormat, "the file has a config but no tensors");
  const fb::Tokenizer* tk = root->tokenizer();
  if (tk && tk->pieces()->size() > m->config.vocab_size) {
    return set_error(Status::kBadFormat, "tokenizer has %u pieces, config.vocab_size is %u",
                     tk->pieces()->size(), m->config.vocab_size);
  }
  for (flatbuffers::uoffset_t i = 0; i < tensors->size(); ++i) {
    const fb::Tensor* t = tensors->Get(i);
    unsigned long long n = 1;
    if (t->shape()) {
      for (flatbuffers::uoffset_t d = 0; d < t->shape()->size(); ++d) {
        if (!checked_mul(n, t->shape()->Get(d), &n)) n = 0;
      }
    }
    m->f32_bytes += n * 4;
  }
  m->has_config = true;
  return load_weights(m, fill);
}

// One pass over the file (Fill says which), steps 1 to 8.
Status walk(const uint8_t* data, size_t size, Model* m, Fill* fill) {
  m->data = data;
  m->size = size;
  uint32_t fb_size = 0;
  EMBER_RETURN_IF_ERROR(check_file(data, size, !fill->build, &fb_size));
  m->root = fb::GetSizePrefixedModel(data);
  EMBER_RETURN_IF_ERROR(check_root(m, fb_size));
  EMBER_RETURN_IF_ERROR(read_tokenizer(m, fill));
  return read_config_and_tensors(m, fill);
}

}  // namespace

void dequantize_row(const WeightRef& w, size_t row, float* out) {
  const size_t n = w.cols;
  if (w.blocked) {  // float values 16 apart
    for (size_t i = 0; i < n; ++i) {
      const size_t at = float_blocked_index(n, row, i);
      if (w.type == DType::kF32) {
        std::memcpy(out + i, static_cast<const float*>(w.data) + at, sizeof(float));
      } else {
        const uint16_t h = static_cast<const uint16_t*>(w.data)[at];
        out[i] = w.type == DType::kF16 ? f16_to_f32(h) : bf16_to_f32(h);
      }
    }
    return;
  }
  switch (w.type) {
    case DType::kF32: {
      std::memcpy(out, static_cast<const float*>(w.data) + row * n, n * sizeof(float));
      break;
    }
    case DType::kF16: {
      const uint16_t* p = static_cast<const uint16_t*>(w.data) + row * n;
      for (size_t i = 0; i < n; ++i) out[i] = f16_to_f32(p[i]);
      break;
    }
    case DType::kBF16: {
      const uint16_t* p = static_cast<const uint16_t*>(w.data) + row * n;
      for (size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(p[i]);
      break;
    }
    case DType::kU8ZeroOne: {
      ZeroOneShape s;  // (checked at load)
      zero_one_shape(w.rows, n, w.group, &s, w.params_type);
      zero_one_dequantize_row(s, static_cast<const uint8_t*>(w.data), w.params, row, out);
      break;
    }
  }
}

Status plan_model(const uint8_t* data, size_t size, ModelPlan* out) {
  Model scratch;  // the plan pass writes only its fields
  Fill fill;
  EMBER_RETURN_IF_ERROR(walk(data, size, &scratch, &fill));
  ModelPlan p;
  Planner pl(0);
  size_t off_model = 0;
  pl.add(1, sizeof(ember_model), &off_model);  // at 0: the block is the model
  p.n_layers = scratch.has_config ? scratch.config.num_layers : 0;
  pl.add(p.n_layers, sizeof(LayerWeights), &p.off_layers);
  p.n_vector_floats = fill.vectors_used;
  pl.add(p.n_vector_floats, sizeof(float), &p.off_vectors);
  p.tokenizer_bytes = fill.tokenizer_bytes;
  pl.add(p.tokenizer_bytes, 1, &p.off_tokenizer);
  if (!pl.ok()) {
    return set_error(Status::kBadFormat,
                     "model: the size of its tables overflows (%zu floats, "
                     "%zu bytes of tokenizer tables)",
                     p.n_vector_floats, p.tokenizer_bytes);
  }
  p.total = pl.total();
  *out = p;
  return Status::kOk;
}

Status init_model(const uint8_t* data, size_t size, const ModelPlan& plan, uint8_t* block,
                  Model** out) {
  ember_model* m = new (block) ember_model();
  m->block_bytes = plan.total;
  Fill fill;
  fill.build = true;
  fill.layers = reinterpret_cast<LayerWeights*>(block + plan.off_layers);
  fill.layers_cap = plan.n_layers;
  fill.vectors = reinterpret_cast<float*>(block + plan.off_vectors);
  fill.vectors_cap = plan.n_vector_floats;
  fill.tokenizer_tables = block + plan.off_tokenizer;
  fill.tokenizer_bytes = plan.tokenizer_bytes;
  const Status s = walk(data, size, m, &fill);
  if (s != Status::kOk) {
    m->~ember_model();
    return s;
  }
  *out = m;
  return Status::kOk;
}

void destroy_model(Model* m) { static_cast<ember_model*>(m)->~ember_model(); }

const Tokenizer* model_tokenizer(const ember_model* m) { return m ? &m->tokenizer : nullptr; }

}  // namespace ember
