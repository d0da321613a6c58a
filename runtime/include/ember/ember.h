/* Ember — LLM runtime for CPU-only edge devices. The one public header.
 *
 * Lifetimes in one picture:
 *   ember_model    — verified, read-only view of a .ember file (mmap'd by the runtime, or a caller's
 *                    buffer that must outlive the model). Weights are used in place, never copied.
 *   ember_context  — everything that changes while generating: the fixed-size KV cache (sequence
 *                    slots x n_ctx positions), activations, logits, sampler scratch. Sized once from
 *                    ember_context_params; ember_context_required_bytes() gives the exact figure and
 *                    the context may live in a caller-provided arena. Nothing is allocated after
 *                    ember_context_create(): ember_decode / ember_sample / ember_generate never touch
 *                    the heap.
 * A model may be shared by several contexts; a context is used by one thread at a time.
 *
 * Errors: every function returns an ember_status; on failure ember_last_error() gives a message that
 * names what is wrong (thread-local where the platform has threads). No function aborts on bad input.
 */
#ifndef EMBER_EMBER_H_
#define EMBER_EMBER_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EMBER_VERSION_MAJOR 0
#define EMBER_VERSION_MINOR 1
#define EMBER_VERSION_PATCH 0

typedef enum ember_status {
  EMBER_OK = 0,
  EMBER_ERR_INVALID_ARGUMENT = 1, /* a NULL pointer, a value out of range */
  EMBER_ERR_IO = 2,               /* a file could not be opened, read or mapped */
  EMBER_ERR_BAD_FORMAT = 3,       /* not an ember file, truncated, corrupted or inconsistent */
  EMBER_ERR_UNSUPPORTED = 4,      /* a newer format version or an unknown required feature */
  EMBER_ERR_OUT_OF_MEMORY = 5,    /* an allocation failed or a caller's arena is too small */
  EMBER_ERR_CONTEXT_FULL = 6,     /* the tokens do not fit in the context (n_ctx) */
  EMBER_ERR_BUFFER_TOO_SMALL = 7, /* an output buffer is too small; the needed size is reported */
  EMBER_ERR_INTERNAL = 8
} ember_status;

/* Short name of a status ("EMBER_ERR_BAD_FORMAT"). Never NULL. */
const char* ember_status_string(ember_status status);

/* Message of the last failure on this thread ("tensor 'model.norm.weight': data_offset 4096 + size
 * 256 is past the weight region (1024 bytes)"). Valid until the next ember call on this thread. */
const char* ember_last_error(void);

/* ---------------------------------------------------------------- model ---- */

typedef struct ember_model ember_model;

/* Maps the file at `path` read-only and verifies it (size, alignment, identifier, FlatBuffers
 * verifier, then shapes, offsets, scales, versions). On success *out owns the mapping. */
ember_status ember_model_load_file(const char* path, ember_model** out);

/* Verifies and uses `size` bytes at `data` in place (flash, firmware image, caller's memory).
 * `data` must be 16-byte aligned and must stay valid and unchanged until ember_model_free(). */
ember_status ember_model_load_buffer(const void* data, size_t size, ember_model** out);

/* Frees the model (and unmaps a file). NULL is allowed. Contexts using it must be freed first. */
void ember_model_free(ember_model* model);

typedef struct ember_model_info {
  uint32_t hidden_size;
  uint32_t num_layers;
  uint32_t num_heads;
  uint32_t num_kv_heads;
  uint32_t head_dim;
  uint32_t intermediate_size;
  uint32_t vocab_size;
  uint32_t max_context; /* the model's trained context length */
  int32_t bos_id;       /* -1 when the tokenizer has none */
  int32_t eos_id;
  uint64_t file_bytes;    /* size of the model file / buffer */
  uint64_t weight_bytes;  /* bytes of the weight region (every tensor, the embedding table too) */
  uint64_t f32_bytes;     /* what the same weights take in float32 */
  uint32_t format_version;
  const char* architecture; /* "llama"; owned by the model */
  uint64_t token_read_bytes; /* weight bytes one decoded token reads: every matrix multiplied (with
                                its zero-one parameters) and one embedding row */
} ember_model_info;

ember_status ember_model_get_info(const ember_model* model, ember_model_info* out);

/* Writes a human-readable description (config, tokenizer, tensors, provenance, merged adapters) into
 * `buf` (NUL-terminated, truncated to `cap`); *needed receives the full length + 1 if not NULL. */
ember_status ember_model_describe(const ember_model* model, char* buf, size_t cap, size_t* needed);

/* ------------------------------------------------------------ tokenizer ---- */

#define EMBER_TOKENIZE_ADD_SPECIAL 1u   /* add BOS/EOS as the tokenizer config says */
#define EMBER_TOKENIZE_PARSE_SPECIAL 2u /* match special-token text ("<s>") in the input as tokens;
                                         * off by default: user text is plain text */

/* Encodes `len` bytes of `text` (any bytes; invalid UTF-8 is byte-encoded, never an error) into
 * `out_ids` (capacity `cap`). *n_out receives the number of ids; if it exceeds `cap` the call returns
 * EMBER_ERR_BUFFER_TOO_SMALL and *n_out is the needed capacity. Work memory: an 8 KiB stack buffer,
 * or for longer texts one ember_platform_alloc for the call (ember_generate never allocates: it
 * tokenizes in the context's own work area). */
ember_status ember_tokenize(const ember_model* model, const char* text, size_t len, uint32_t flags,
                            int32_t* out_ids, size_t cap, size_t* n_out);

#define EMBER_DETOKENIZE_SKIP_SPECIAL 1u /* drop BOS/EOS/control tokens from the text */

/* Decodes ids to UTF-8 text (not NUL-terminated) as the tokenizer's decoder does. *n_out receives
 * the byte count; EMBER_ERR_BUFFER_TOO_SMALL with the needed size if it exceeds `cap`. */
ember_status ember_detokenize(const ember_model* model, const int32_t* ids, size_t n_ids,
                              uint32_t flags, char* out, size_t cap, size_t* n_out);

/* Streaming decoder: feed ids one at a time, get text that never splits a UTF-8 character (bytes of
 * an incomplete character are held until it completes). Plain struct so it needs no allocation. */
typedef struct ember_detok_stream {
  uint32_t n_pending;
  uint8_t pending[8];
  uint32_t n_emitted; /* tokens fed so far (the first piece may drop a leading space) */
  uint32_t flags;
} ember_detok_stream;

void ember_detok_stream_init(ember_detok_stream* stream, uint32_t flags);

/* Appends the text of `id` (and any completed pending bytes) to `out`; *n_out = bytes written. */
ember_status ember_detok_stream_feed(const ember_model* model, ember_detok_stream* stream, int32_t id,
                                     char* out, size_t cap, size_t* n_out);

/* -------------------------------------------------------------- context ---- */

typedef struct ember_context ember_context;

typedef struct ember_context_params {
  uint32_t n_ctx;       /* KV cache positions per sequence slot (0 = the model's max_context; more
                         * than max_context is EMBER_ERR_INVALID_ARGUMENT, not clamped) */
  uint32_t n_seq_max;   /* sequence slots in the KV cache (>= 1) */
  uint32_t n_batch_max; /* most tokens in one ember_decode call (>= 1) */
  uint32_t n_threads;   /* worker threads for kernels (0 or 1 = the calling thread only) */
  uint32_t n_prompt_bytes_max; /* longest prompt text ember_generate tokenizes in the context's own
                                * work area (0 = 16 * n_ctx); sized once, like everything else */
  uint8_t use_xnnpack; /* 0 (default): Ember's own kernels for every weight. 1: float32 weight
                        * matrices (q/k/v/o/gate/up/down, output head) run through XNNPACK's f32
                        * fully-connected operator; u8/f16/bf16 weights keep Ember's kernels.
                        * Results then differ from the default path in the last bits (XNNPACK sums
                        * in its own order with FMA) and may differ between CPUs (it picks its
                        * kernels per ISA); on one CPU they do not depend on the thread count.
                        * XNNPACK packs (copies) every f32 matrix at ember_context_create: about
                        * the f32 matrices' bytes again, per context, allocated through
                        * ember_platform_alloc outside the arena and not counted by
                        * ember_context_required_bytes; decode still allocates nothing. A build
                        * without XNNPACK (-DEMBER_USE_XNNPACK=OFF, the default, and bare metal)
                        * refuses 1 with EMBER_ERR_UNSUPPORTED. */
} ember_context_params;

ember_context_params ember_context_default_params(void);

/* Exact bytes ember_context_create() takes for these params (context struct, KV cache, activations,
 * logits, scratch; the thread pool's own memory when n_threads > 1 is not included, nor XNNPACK's
 * packed weights with use_xnnpack). */
ember_status ember_context_required_bytes(const ember_model* model, const ember_context_params* params,
                                          size_t* out_bytes);

/* Creates a context. With `arena` NULL the runtime allocates the required bytes once; otherwise the
 * context is placed in [arena, arena + arena_size), which must be 64-byte aligned and at least
 * ember_context_required_bytes() long, and stay valid until ember_context_free(). */
ember_status ember_context_create(const ember_model* model, const ember_context_params* params,
                                  void* arena, size_t arena_size, ember_context** out);

void ember_context_free(ember_context* ctx);

/* Forgets the cached positions of one sequence slot (seq_id), or of all with seq_id = -1. */
ember_status ember_kv_clear(ember_context* ctx, int32_t seq_id);

/* A batch of tokens for one forward pass. Tokens of one sequence must come in position order and
 * each position must follow what the slot already holds (pos == cached length). Arrays of n_tokens. */
typedef struct ember_batch {
  uint32_t n_tokens;
  const int32_t* token;    /* token ids, each in [0, vocab) */
  const int32_t* pos;      /* positions, each in [0, n_ctx) */
  const int32_t* seq_id;   /* sequence slots, each in [0, n_seq_max) */
  const uint8_t* logits;   /* nonzero: compute logits for this token (NULL: only the last one) */
} ember_batch;

/* Runs the model on the batch, appending each token's K/V to its slot. Logits of the tokens that
 * asked for them are available through ember_get_logits() until the next call. */
ember_status ember_decode(ember_context* ctx, const ember_batch* batch);

/* Logits (vocab floats) of batch token i from the last ember_decode, or NULL if it asked for none.
 * Owned by the context. */
const float* ember_get_logits(const ember_context* ctx, uint32_t i);

/* Cached positions in a sequence slot (0 after ember_kv_clear). */
uint32_t ember_kv_length(const ember_context* ctx, int32_t seq_id);

/* ------------------------------------------------------------- sampling ---- */

typedef struct ember_sampler_params {
  float temperature; /* 0 = greedy (argmax, ties to the lowest id) */
  int32_t top_k;     /* 0 = off */
  float top_p;       /* 1 = off */
  uint64_t seed;
} ember_sampler_params;

ember_sampler_params ember_sampler_default_params(void);

/* Samples one id from `logits` (vocab floats). `rng_state` is the caller's generator state: set it
 * to the seed once (ember_rng_seed) and pass it to each call; same seed, same tokens. Uses the
 * context's scratch, never the heap. */
uint64_t ember_rng_seed(uint64_t seed);
ember_status ember_sample(ember_context* ctx, const float* logits, const ember_sampler_params* params,
                          uint64_t* rng_state, int32_t* out_id);

/* ----------------------------------------------------------- generation ---- */

/* Called for each piece of text as it is produced (prompt text first if echo_prompt, then the
 * generated text). Return nonzero to stop. */
typedef int (*ember_text_callback)(const char* text, size_t len, int32_t token_id, void* user);

typedef struct ember_generate_params {
  uint32_t max_new_tokens;
  ember_sampler_params sampler;
  int echo_prompt;          /* stream the prompt text through the callback first */
  int stop_at_bos;          /* also stop when BOS is sampled (llama2.c models end stories with BOS) */
  uint32_t tokenize_flags;  /* EMBER_TOKENIZE_* for the prompt (default ADD_SPECIAL) */
} ember_generate_params;

ember_generate_params ember_generate_default_params(void);

typedef struct ember_generate_stats {
  uint32_t n_prompt_tokens;
  uint32_t n_generated;
  double prompt_seconds;
  double generate_seconds;
} ember_generate_stats;

/* Text in, text out, on sequence slot 0 (cleared first). The prompt is tokenized into the context's
 * token buffer (n_ctx ids); a prompt that does not fit is EMBER_ERR_CONTEXT_FULL. `out_ids` (may be
 * NULL) receives prompt ids then generated ids, up to `ids_cap`; *n_ids the count written. */
ember_status ember_generate(ember_context* ctx, const char* prompt, size_t prompt_len,
                            const ember_generate_params* params, ember_text_callback on_text,
                            void* user, int32_t* out_ids, size_t ids_cap, size_t* n_ids,
                            ember_generate_stats* stats);

/* --------------------------------------------------------------- testing ---- */

/* Kernel variants available on this CPU, best last (e.g. "scalar", "avx2"); `i` < count. */
uint32_t ember_kernel_variant_count(void);
const char* ember_kernel_variant_name(uint32_t i);
/* The variant in use. Forced lower with ember_force_kernel_variant() or EMBER_KERNELS=name before
 * the first model load; returns EMBER_ERR_UNSUPPORTED for a variant this CPU cannot run. */
const char* ember_kernel_variant(void);
ember_status ember_force_kernel_variant(const char* name);


#ifdef __cplusplus
}
#endif

#endif /* EMBER_EMBER_H_ */
