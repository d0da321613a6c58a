// The C API (everything in ember.h except the tokenizer functions, in api_tokenizer.cc, and
// ember_generate, in generate.cc): argument checks, then the C++ internals.
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>

#include "context.h"
#include "core/format.h"
#include "ember/ember.h"
#include "ember/platform.h"
#include "ember_generated.h"
#include "forward.h"
#include "kernels/kernels.h"
#include "model.h"
#include "sampler.h"

using ember::set_error;
using ember::Status;
using ember::to_c;

extern "C" {

const char* ember_status_string(ember_status status) {
  switch (status) {
    case EMBER_OK:
      return "EMBER_OK";
    case EMBER_ERR_INVALID_ARGUMENT:
      return "EMBER_ERR_INVALID_ARGUMENT";
    case EMBER_ERR_IO:
      return "EMBER_ERR_IO";
    case EMBER_ERR_BAD_FORMAT:
      return "EMBER_ERR_BAD_FORMAT";
    case EMBER_ERR_UNSUPPORTED:
      return "EMBER_ERR_UNSUPPORTED";
    case EMBER_ERR_OUT_OF_MEMORY:
      return "EMBER_ERR_OUT_OF_MEMORY";
    case EMBER_ERR_CONTEXT_FULL:
      return "EMBER_ERR_CONTEXT_FULL";
    case EMBER_ERR_BUFFER_TOO_SMALL:
      return "EMBER_ERR_BUFFER_TOO_SMALL";
    case EMBER_ERR_INTERNAL:
      return "EMBER_ERR_INTERNAL";
    case EMBER_ERR_BUSY:
      return "EMBER_ERR_BUSY";
  }
  return "EMBER_ERR_UNKNOWN";
}

const char* ember_last_error(void) { return ember::last_error(); }

/* ------------------------------------------------------------------------------------ model -- */

namespace {

// The block of `bytes` a model or context lives in: the caller's arena (64-byte aligned, at least
// `bytes` long), or with `arena` NULL one allocation (*owned).
Status place_block(const char* what, size_t bytes, void* arena, size_t arena_size, uint8_t** block,
                   bool* owned) {
  *owned = false;
  if (arena) {
    if (reinterpret_cast<uintptr_t>(arena) % ember::kWeightAlignment != 0) {
      return set_error(Status::kInvalidArgument, "arena %p is not %zu-byte aligned", arena,
                       ember::kWeightAlignment);
    }
    if (arena_size < bytes) {
      return set_error(Status::kOutOfMemory,
                       "arena of %zu bytes is too small: the %s needs %zu bytes", arena_size, what,
                       bytes);
    }
    *block = static_cast<uint8_t*>(arena);
    return Status::kOk;
  }
  *block = static_cast<uint8_t*>(ember_platform_alloc(bytes, ember::kWeightAlignment));
  if (!*block)
    return set_error(Status::kOutOfMemory, "cannot allocate the %s (%zu bytes)", what, bytes);
  *owned = true;
  return Status::kOk;
}

// Plans the model, places its block (arena or one allocation) and builds it there. A mapping
// (`mapped`) belongs to the model from here on: unmapped if the load fails.
ember_status load(const uint8_t* data, size_t size, void* map_handle, bool mapped, void* arena,
                  size_t arena_size, ember_model** out) {
  // Kernel selection (cpuinfo) happens once, here, not inside the first forward pass.
  (void)ember::kernels::active();
  ember::ModelPlan plan;
  Status s = ember::plan_model(data, size, &plan);
  uint8_t* block = nullptr;
  bool owned = false;
  if (s == Status::kOk) s = place_block("model", plan.total, arena, arena_size, &block, &owned);
  ember::Model* m = nullptr;
  if (s == Status::kOk) s = ember::init_model(data, size, plan, block, &m);
  if (s != Status::kOk) {
    if (owned) ember_platform_free(block);
    if (mapped) ember_platform_unmap_file(data, size, map_handle);
    return to_c(s);
  }
  m->owns_block = owned;
  m->map_handle = map_handle;
  m->mapped = mapped;
  *out = static_cast<ember_model*>(m);
  return EMBER_OK;
}

}  // namespace

ember_status ember_model_load_file(const char* path, ember_model** out) {
  if (!out) return to_c(set_error(Status::kInvalidArgument, "ember_model_load_file: out is NULL"));
  *out = nullptr;
  if (!path)
    return to_c(set_error(Status::kInvalidArgument, "ember_model_load_file: path is NULL"));
  const void* data = nullptr;
  size_t size = 0;
  void* handle = nullptr;
  const int err = ember_platform_map_file(path, &data, &size, &handle);
  if (err == ESTALE) {
    return to_c(set_error(Status::kIo,
                          "cannot map '%s': the file changed size while being mapped (replace "
                          "model files by rename, not in place)",
                          path));
  }
  if (err != 0) {
    return to_c(set_error(Status::kIo, "cannot open or map '%s': %s", path, std::strerror(err)));
  }
  return load(static_cast<const uint8_t*>(data), size, handle, true, nullptr, 0, out);
}

ember_status ember_model_load_buffer(const void* data, size_t size, ember_model** out) {
  return ember_model_load_buffer_in(data, size, nullptr, 0, out);
}

ember_status ember_model_required_bytes(const void* data, size_t size, size_t* out_bytes) {
  if (!data || !out_bytes) {
    return to_c(set_error(Status::kInvalidArgument, "ember_model_required_bytes: %s is NULL",
                          !data ? "data" : "out_bytes"));
  }
  ember::ModelPlan plan;
  const Status s = ember::plan_model(static_cast<const uint8_t*>(data), size, &plan);
  if (s != Status::kOk) return to_c(s);
  *out_bytes = plan.total;
  return EMBER_OK;
}

ember_status ember_model_load_buffer_in(const void* data, size_t size, void* arena,
                                        size_t arena_size, ember_model** out) {
  if (!out)
    return to_c(set_error(Status::kInvalidArgument, "ember_model_load_buffer: out is NULL"));
  *out = nullptr;
  if (!data)
    return to_c(set_error(Status::kInvalidArgument, "ember_model_load_buffer: data is NULL"));
  return load(static_cast<const uint8_t*>(data), size, nullptr, false, arena, arena_size, out);
}

void ember_model_free(ember_model* model) {
  if (!model) return;
  const uint8_t* data = model->data;
  const size_t size = model->size;
  void* handle = model->map_handle;
  const bool mapped = model->mapped;
  const bool owned = model->owns_block;
  ember::destroy_model(model);
  if (owned) ember_platform_free(model);  // the block starts with the model
  if (mapped) ember_platform_unmap_file(data, size, handle);
}

ember_status ember_model_get_info(const ember_model* model, ember_model_info* out) {
  if (!model || !out) {
    return to_c(set_error(Status::kInvalidArgument, "ember_model_get_info: %s is NULL",
                          !model ? "model" : "out"));
  }
  std::memset(out, 0, sizeof *out);
  const ember::ModelConfig& c = model->config;
  out->hidden_size = c.hidden_size;
  out->num_layers = c.num_layers;
  out->num_heads = c.num_heads;
  out->num_kv_heads = c.num_kv_heads;
  out->head_dim = c.head_dim;
  out->intermediate_size = c.intermediate_size;
  out->vocab_size = c.vocab_size;
  out->max_context = c.max_context;
  out->bos_id = model->tokenizer.loaded() ? model->tokenizer.bos_id() : -1;
  out->eos_id = model->tokenizer.loaded() ? model->tokenizer.eos_id() : -1;
  out->file_bytes = model->size;
  out->weight_bytes = model->weights_size;
  out->f32_bytes = model->f32_bytes;
  out->token_read_bytes = model->token_read_bytes;
  out->model_bytes = model->block_bytes;
  out->format_version = model->root->format_version();
  out->architecture = model->architecture;
  return EMBER_OK;
}

ember_status ember_model_chat_template(const ember_model* model, const char** out, size_t* len) {
  if (!model || !out || !len) {
    return to_c(set_error(Status::kInvalidArgument, "ember_model_chat_template: %s is NULL",
                          !model ? "model"
                          : !out ? "out"
                                 : "len"));
  }
  const ember::fb::Tokenizer* t = model->root->tokenizer();
  const flatbuffers::String* tmpl = t ? t->chat_template() : nullptr;
  *out = tmpl ? tmpl->c_str() : "";
  *len = tmpl ? tmpl->size() : 0;
  return EMBER_OK;
}

namespace {

// snprintf into a bounded buffer, counting the full length.
struct Writer {
  char* buf;
  size_t cap;
  size_t len = 0;
  void printf(const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
    va_list ap;
    va_start(ap, fmt);
    char* dst = buf && len < cap ? buf + len : nullptr;
    const size_t room = buf && len < cap ? cap - len : 0;
    const int n = std::vsnprintf(dst, room, fmt, ap);
    va_end(ap);
    if (n > 0) len += static_cast<size_t>(n);
  }
};

const char* str(const flatbuffers::String* s) { return s ? s->c_str() : ""; }

}  // namespace

ember_status ember_model_describe(const ember_model* model, char* buf, size_t cap, size_t* needed) {
  if (!model)
    return to_c(set_error(Status::kInvalidArgument, "ember_model_describe: model is NULL"));
  if (!buf && cap > 0) {
    return to_c(
        set_error(Status::kInvalidArgument, "ember_model_describe: buf is NULL, cap %zu", cap));
  }
  namespace fb = ember::fb;
  const fb::Model* r = model->root;
  Writer w{buf, cap};
  w.printf(
      "file: %zu bytes, format_version %u, min_runtime_version %u, required_features 0x%llx"
      ", optional_features 0x%llx\n",
      model->size, r->format_version(), r->min_runtime_version(),
      (unsigned long long)r->required_features(), (unsigned long long)r->optional_features());
  if (model->has_config) {
    const ember::ModelConfig& c = model->config;
    w.printf(
        "config: %s, hidden_size %u, layers %u, heads %u, kv_heads %u, head_dim %u, "
        "intermediate_size %u, vocab %u, max_context %u\n",
        model->architecture, c.hidden_size, c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim,
        c.intermediate_size, c.vocab_size, c.max_context);
    w.printf(
        "        rope_theta %g, rope_scaling %s (factor %g), norm_eps %g, tie_embeddings %d, "
        "attention_bias %d, mlp_bias %d\n",
        (double)c.rope_theta,
        fb::EnumNameRopeScalingType(static_cast<fb::RopeScalingType>(c.rope_scaling_type)),
        (double)c.rope_factor, (double)c.norm_eps, c.tie_embeddings, c.attention_bias, c.mlp_bias);
  } else {
    w.printf("config: none (tokenizer-only file)\n");
  }
  if (const fb::Tokenizer* t = r->tokenizer()) {
    w.printf(
        "tokenizer: %s, pre_tokenizer %s, %u pieces, %u merges, bos %d, eos %d, unk %d, pad %d, "
        "add_bos %d, add_eos %d, byte_fallback %d, %u special, %u added, %u eos ids\n",
        fb::EnumNameTokenizerKind(t->kind()), fb::EnumNamePreTokenizer(t->pre_tokenizer()),
        t->pieces() ? t->pieces()->size() : 0, t->merges() ? t->merges()->size() : 0, t->bos_id(),
        t->eos_id(), t->unk_id(), t->pad_id(), t->add_bos(), t->add_eos(), t->byte_fallback(),
        t->special_ids() ? t->special_ids()->size() : 0,
        t->added_ids() ? t->added_ids()->size() : 0, t->eos_ids() ? t->eos_ids()->size() : 0);
    if (t->chat_template()) w.printf("chat_template: %u bytes\n", t->chat_template()->size());
  } else {
    w.printf("tokenizer: none\n");
  }
  const auto* ts = r->tensors();
  const unsigned n_t = ts ? ts->size() : 0;
  w.printf("tensors: %u, weight region %llu bytes at offset %llu (f32 equivalent %llu bytes)\n",
           n_t, (unsigned long long)r->weights_size(), (unsigned long long)r->weights_offset(),
           (unsigned long long)model->f32_bytes);
  if (r->weights_sha256()) w.printf("weights sha256: %s\n", str(r->weights_sha256()));
  const fb::Provenance* prov = r->provenance();
  const auto* choices = prov ? prov->float_choices() : nullptr;
  for (unsigned i = 0; i < n_t; ++i) {
    const fb::Tensor* t = ts->Get(i);
    w.printf("  %-48s %-11s [", str(t->name()), fb::EnumNameDType(t->dtype()));
    if (t->shape()) {
      for (unsigned d = 0; d < t->shape()->size(); ++d) {
        w.printf(d ? ", %llu" : "%llu", (unsigned long long)t->shape()->Get(d));
      }
    }
    w.printf("] %llu bytes", (unsigned long long)(t->data_size() + t->params_size()));
    if (t->layout() == fb::Layout::BLOCKS16) w.printf(", row blocks of 16");
    if (t->dtype() == fb::DType::U8_ZERO_ONE) {
      w.printf(", group %u, %s params, act group %u", t->group_size(),
               fb::EnumNameDType(t->params_dtype()),
               t->act_group() != 0 ? t->act_group() : t->group_size());
    }
    if (t->dtype() != fb::DType::F32 || t->quant_rel_rms_error() != 0.0f) {
      w.printf(", rel rms error %.3g", (double)t->quant_rel_rms_error());
    }
    // A matrix kept in float: the --keep-float rule that chose it, and a measured error if any.
    for (unsigned c = 0; choices && c < choices->size(); ++c) {
      const fb::FloatChoice* fc = choices->Get(c);
      if (std::strcmp(str(fc->name()), str(t->name())) != 0) continue;
      if (fc->pattern() && fc->pattern()->size() > 0) {
        w.printf(", kept float by '%s'", str(fc->pattern()));
      }
      if (fc->kl() >= 0.0f) w.printf(", KL %.3g when quantized alone", (double)fc->kl());
      break;
    }
    w.printf("\n");
  }
  if (prov) {
    w.printf("provenance: source '%s', converter %s, source dtype %s\n  command: %s\n",
             str(prov->source()), str(prov->converter_version()), str(prov->source_dtype()),
             str(prov->command_line()));
    if (const auto* keep = prov->keep_float()) {
      w.printf("  keep-float:");
      for (unsigned k = 0; k < keep->size(); ++k) w.printf(" '%s'", str(keep->Get(k)));
      unsigned kept = 0;
      for (unsigned c = 0; choices && c < choices->size(); ++c)
        kept += choices->Get(c)->pattern() && choices->Get(c)->pattern()->size() > 0;
      w.printf(" (%u tensors kept in float)\n", kept);
    }
  }
  const auto* ads = r->adapters();
  w.printf("adapters merged: %u\n", ads ? ads->size() : 0);
  for (unsigned i = 0; ads && i < ads->size(); ++i) {
    const fb::Adapter* a = ads->Get(i);
    w.printf("  %s: sha256 %s, r %u, alpha %g, scale %g, rslora %d, modules:", str(a->name()),
             str(a->sha256()), a->r(), (double)a->alpha(), (double)a->scale(), a->use_rslora());
    if (a->modules()) {
      for (unsigned j = 0; j < a->modules()->size(); ++j)
        w.printf(" %s", str(a->modules()->Get(j)));
    }
    w.printf("\n");
  }
  if (needed) *needed = w.len + 1;
  if (cap > 0 && w.len >= cap) buf[cap - 1] = '\0';
  return EMBER_OK;
}

/* ---------------------------------------------------------------------------------- context -- */

ember_context_params ember_context_default_params(void) {
  ember_context_params p;
  p.n_ctx = 0;
  p.n_seq_max = 1;
  p.n_batch_max = 32;
  p.n_threads = 1;
  p.n_prompt_bytes_max = 0;
  p.use_xnnpack = 0;
  p.n_queue_max = 0;
  p.kv_type = EMBER_KV_F32;
  return p;
}

ember_status ember_context_required_bytes(const ember_model* model,
                                          const ember_context_params* params, size_t* out_bytes) {
  if (!model || !params || !out_bytes) {
    return to_c(set_error(Status::kInvalidArgument, "ember_context_required_bytes: %s is NULL",
                          !model ? "model" : (!params ? "params" : "out_bytes")));
  }
  ember::ContextPlan plan;
  const Status s = ember::plan_context(*model, *params, &plan);
  if (s != Status::kOk) return to_c(s);
  *out_bytes = plan.total;
  return EMBER_OK;
}

ember_status ember_kv_cache_bytes(const ember_model* model, const ember_context_params* params,
                                  size_t* out_bytes) {
  if (!model || !params || !out_bytes) {
    return to_c(set_error(Status::kInvalidArgument, "ember_kv_cache_bytes: %s is NULL",
                          !model ? "model" : (!params ? "params" : "out_bytes")));
  }
  ember::ContextPlan plan;
  const Status s = ember::plan_context(*model, *params, &plan);
  if (s != Status::kOk) return to_c(s);
  *out_bytes = plan.kv_bytes;
  return EMBER_OK;
}

ember_status ember_context_create(const ember_model* model, const ember_context_params* params,
                                  void* arena, size_t arena_size, ember_context** out) {
  if (!out) return to_c(set_error(Status::kInvalidArgument, "ember_context_create: out is NULL"));
  *out = nullptr;
  if (!model || !params) {
    return to_c(set_error(Status::kInvalidArgument, "ember_context_create: %s is NULL",
                          !model ? "model" : "params"));
  }
  ember::ContextPlan plan;
  Status s = ember::plan_context(*model, *params, &plan);
  if (s != Status::kOk) return to_c(s);
  uint8_t* block = nullptr;
  bool owned = false;
  s = place_block("context", plan.total, arena, arena_size, &block, &owned);
  if (s != Status::kOk) return to_c(s);
  ember::Context* ctx = nullptr;
  s = ember::init_context(*model, plan, block, &ctx);
  if (s != Status::kOk) {
    if (owned) ember_platform_free(block);
    return to_c(s);
  }
  ctx->owns_block = owned;
  *out = static_cast<ember_context*>(ctx);
  return EMBER_OK;
}

void ember_context_free(ember_context* ctx) {
  if (!ctx) return;
  const bool owned = ctx->owns_block;
  uint8_t* block = ctx->base;
  ember::destroy_context(ctx);
  if (owned) ember_platform_free(block);
}

namespace {

// Slots that a request holds belong to ember_step: the low-level calls leave them alone.
Status check_slot_free(const ember_context* ctx, uint32_t slot, const char* fn) {
  const int32_t owner = ctx->slot_owner[slot];
  if (owner < 0) return Status::kOk;
  return set_error(Status::kInvalidArgument,
                   "%s: sequence slot %u is held by request %llu (cancel or release it first)", fn,
                   slot, static_cast<unsigned long long>(ctx->requests[owner].id));
}

}  // namespace

ember_status ember_kv_clear(ember_context* ctx, int32_t seq_id) {
  if (!ctx) return to_c(set_error(Status::kInvalidArgument, "ember_kv_clear: ctx is NULL"));
  if (seq_id == -1) {
    for (uint32_t s = 0; s < ctx->plan.n_seq_max; ++s) {
      const Status st = check_slot_free(ctx, s, "ember_kv_clear");
      if (st != Status::kOk) return to_c(st);
    }
    for (uint32_t s = 0; s < ctx->plan.n_seq_max; ++s) ctx->seq_len[s] = ctx->slot_valid[s] = 0;
    return EMBER_OK;
  }
  if (seq_id < 0 || static_cast<uint32_t>(seq_id) >= ctx->plan.n_seq_max) {
    return to_c(set_error(Status::kInvalidArgument,
                          "ember_kv_clear: seq_id %d is out of range [0, %u)", seq_id,
                          ctx->plan.n_seq_max));
  }
  const Status st = check_slot_free(ctx, static_cast<uint32_t>(seq_id), "ember_kv_clear");
  if (st != Status::kOk) return to_c(st);
  ctx->seq_len[seq_id] = ctx->slot_valid[seq_id] = 0;
  return EMBER_OK;
}

ember_status ember_decode(ember_context* ctx, const ember_batch* batch) {
  if (!ctx || !batch) {
    return to_c(
        set_error(Status::kInvalidArgument, "ember_decode: %s is NULL", !ctx ? "ctx" : "batch"));
  }
  for (uint32_t i = 0; batch->seq_id != nullptr && i < batch->n_tokens; ++i) {
    const int32_t s = batch->seq_id[i];
    if (s < 0 || static_cast<uint32_t>(s) >= ctx->plan.n_seq_max) continue;  // (decode says so)
    const Status st = check_slot_free(ctx, static_cast<uint32_t>(s), "ember_decode");
    if (st != Status::kOk) return to_c(st);
  }
  return to_c(ember::decode(ctx, *batch));
}

const float* ember_get_logits(const ember_context* ctx, uint32_t i) {
  if (!ctx || i >= ctx->n_last_batch || ctx->logit_row[i] < 0) return nullptr;
  return ctx->logits + static_cast<size_t>(ctx->logit_row[i]) * ctx->model->config.vocab_size;
}

ember_status ember_kv_shift(ember_context* ctx, int32_t seq_id, uint32_t n_keep,
                            uint32_t n_discard) {
  if (!ctx) return to_c(set_error(Status::kInvalidArgument, "ember_kv_shift: ctx is NULL"));
  if (seq_id < 0 || static_cast<uint32_t>(seq_id) >= ctx->plan.n_seq_max) {
    return to_c(set_error(Status::kInvalidArgument,
                          "ember_kv_shift: seq_id %d is out of range [0, %u)", seq_id,
                          ctx->plan.n_seq_max));
  }
  const uint32_t slot = static_cast<uint32_t>(seq_id), len = ctx->seq_len[slot];
  const Status st = check_slot_free(ctx, slot, "ember_kv_shift");
  if (st != Status::kOk) return to_c(st);
  if (n_discard == 0 || n_keep > len || n_discard > len - n_keep) {
    return to_c(set_error(Status::kInvalidArgument,
                          "ember_kv_shift: n_keep %u + n_discard %u (must be >= 1) exceed the %u "
                          "positions of slot %d",
                          n_keep, n_discard, len, seq_id));
  }
  ember::kv_shift(ctx, slot, n_keep, n_discard);
  return EMBER_OK;
}

uint32_t ember_kv_length(const ember_context* ctx, int32_t seq_id) {
  if (!ctx || seq_id < 0 || static_cast<uint32_t>(seq_id) >= ctx->plan.n_seq_max) return 0;
  return ctx->seq_len[seq_id];
}

/* --------------------------------------------------------------------------------- sampling -- */

ember_sampler_params ember_sampler_default_params(void) {
  ember_sampler_params p;
  p.temperature = 0.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.seed = 0;
  return p;
}

uint64_t ember_rng_seed(uint64_t seed) { return ember::rng_seed(seed); }

ember_status ember_sample(ember_context* ctx, const float* logits,
                          const ember_sampler_params* params, uint64_t* rng_state,
                          int32_t* out_id) {
  if (!ctx || !logits || !params || !rng_state || !out_id) {
    return to_c(set_error(
        Status::kInvalidArgument, "ember_sample: %s is NULL",
        !ctx
            ? "ctx"
            : (!logits ? "logits" : (!params ? "params" : (!rng_state ? "rng_state" : "out_id")))));
  }
  return to_c(ember::sample(logits, ctx->model->config.vocab_size, *params, rng_state,
                            ctx->sample_val, ctx->sample_idx, out_id));
}

/* ---------------------------------------------------------------------------------- kernels -- */

uint32_t ember_kernel_variant_count(void) {
  return static_cast<uint32_t>(ember::kernels::variant_count());
}

const char* ember_kernel_variant_name(uint32_t i) {
  if (i >= ember::kernels::variant_count()) return "";
  return ember::kernels::variant(i).name;
}

const char* ember_kernel_variant(void) { return ember::kernels::active().name; }

ember_status ember_force_kernel_variant(const char* name) {
  if (!name)
    return to_c(set_error(Status::kInvalidArgument, "ember_force_kernel_variant: name is NULL"));
  if (!ember::kernels::force_variant(name)) {
    return to_c(set_error(Status::kUnsupported,
                          "kernel variant '%s' is unknown or cannot run on this CPU", name));
  }
  return EMBER_OK;
}

}  // extern "C"
