/* Ember — LLM runtime for CPU-only edge devices. The one public header.
 *
 * Lifetimes in one picture:
 *   ember_model    — verified, read-only view of a .ember file (mmap'd by the runtime, or a
 * caller's buffer that must outlive the model). Weights are used in place, never copied; the few
 * tables built at load (per-layer weight views, float copies of norms and biases, tokenizer lookup
 * tables) take ember_model_required_bytes(), one block that may live in a caller-provided arena.
 *   ember_context  — everything that changes while generating: the fixed-size KV cache (sequence
 *                    slots x n_ctx positions), activations, logits, sampler scratch. Sized once
 * from ember_context_params; ember_context_required_bytes() gives the exact figure and the context
 * may live in a caller-provided arena. Nothing is allocated after ember_context_create():
 * ember_decode / ember_sample / ember_generate never touch the heap. A model may be shared by
 * several contexts; a context is used by one thread at a time. Text in, text out: ember_generate
 * for one prompt; ember_request_submit + ember_step for many prompts at once (continuous batching,
 * below).
 *
 * Errors: every function returns an ember_status; on failure ember_last_error() gives a message
 * that names what is wrong (thread-local where the platform has threads). No function aborts on bad
 * input.
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
  EMBER_ERR_INTERNAL = 8,
  EMBER_ERR_BUSY = 9 /* every request place is taken (slots and queue): retry after a
                      * request is released */
} ember_status;

/* Short name of a status ("EMBER_ERR_BAD_FORMAT"). Never NULL. */
const char* ember_status_string(ember_status status);

/* Message of the last failure on this thread ("tensor 'model.norm.weight': data_offset 4096 + size
 * 256 is past the weight region (1024 bytes)"). Valid until the next ember call on this thread. */
const char* ember_last_error(void);

/* ---------------------------------------------------------------- model ---- */

typedef struct ember_model ember_model;

/* Maps the file at `path` read-only and verifies it (size, alignment, identifier, FlatBuffers
 * verifier, then shapes, offsets, scales, versions). On success *out owns the mapping and one
 * allocation of the model's required bytes (ember_model_info.model_bytes). */
ember_status ember_model_load_file(const char* path, ember_model** out);

/* Verifies and uses `size` bytes at `data` in place (flash, firmware image, caller's memory).
 * `data` must be 16-byte aligned and must stay valid and unchanged until ember_model_free().
 * Allocates the model's required bytes once: the same as
 * ember_model_load_buffer_in(data, size, NULL, 0, out). */
ember_status ember_model_load_buffer(const void* data, size_t size, ember_model** out);

/* Exact bytes ember_model_load_buffer_in() takes for the `size` bytes at `data`: the model handle,
 * the per-layer weight table, float copies of the norm vectors and biases, the tokenizer's lookup
 * tables (the weights stay in `data` and are not counted). Verifies the buffer as the load does,
 * every check included: a buffer it accepts loads, a bad one gives the load's status and message.
 * A multiple of 64, so a context may follow the model in the same arena. Allocates nothing. */
ember_status ember_model_required_bytes(const void* data, size_t size, size_t* out_bytes);

/* ember_model_load_buffer with the model's own memory placed like a context's: with `arena` NULL
 * the runtime allocates the required bytes once; otherwise the model is built in [arena,
 * arena + arena_size), which must be 64-byte aligned (EMBER_ERR_INVALID_ARGUMENT) and at least
 * ember_model_required_bytes() long (EMBER_ERR_OUT_OF_MEMORY, the message naming both sizes), and
 * stay valid until ember_model_free(). `data` is borrowed as by ember_model_load_buffer: used in
 * place, never copied, valid and unchanged until ember_model_free(). With an arena the load
 * allocates nothing, except that the first load in a process selects the kernels: where that reads
 * cpuinfo (Linux builds with EMBER_USE_CPUINFO), cpuinfo allocates its tables once for the process;
 * call ember_kernel_variant() before to have that done earlier. */
ember_status ember_model_load_buffer_in(const void* data, size_t size, void* arena,
                                        size_t arena_size, ember_model** out);

/* Frees the model: the memory the runtime allocated for it (none of a caller's arena, which is the
 * caller's again afterwards) and a file's mapping. NULL is allowed. Contexts using it must be
 * freed first. */
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
  uint64_t file_bytes;   /* size of the model file / buffer */
  uint64_t weight_bytes; /* bytes of the weight region (every tensor, the embedding table too) */
  uint64_t f32_bytes;    /* what the same weights take in float32 */
  uint32_t format_version;
  const char* architecture;  /* "llama"; owned by the model */
  uint64_t token_read_bytes; /* weight bytes one decoded token reads: every matrix multiplied (with
                                its zero-one parameters) and one embedding row */
  uint64_t model_bytes;      /* memory the loaded model takes besides its file: what
                                ember_model_required_bytes() gives for the file */
} ember_model_info;

ember_status ember_model_get_info(const ember_model* model, ember_model_info* out);

/* Writes a human-readable description (config, tokenizer, tensors, provenance, merged adapters)
 * into `buf` (NUL-terminated, truncated to `cap`); *needed receives the full length + 1 if not
 * NULL. One line per tensor: name, stored type (F32, F16, BF16, U8_ZERO_ONE), shape, bytes, the
 * layout of a float matrix in row blocks, the group of a u8 matrix, the converter's relative RMS
 * quantization error (every type but F32), and for a matrix that ember-convert --keep-float kept in
 * float the rule that did; the provenance lists the --keep-float rules. */
ember_status ember_model_describe(const ember_model* model, char* buf, size_t cap, size_t* needed);

/* The chat template the converter kept from the checkpoint's tokenizer_config.json (a Jinja
 * template as transformers uses it; the runtime never renders it): *out points to `*len` bytes of
 * NUL-terminated text owned by the model, valid until ember_model_free. A file without one gives
 * "" and 0. */
ember_status ember_model_chat_template(const ember_model* model, const char** out, size_t* len);

/* ------------------------------------------------------------ tokenizer ---- */

#define EMBER_TOKENIZE_ADD_SPECIAL 1u /* add BOS/EOS as the tokenizer config says */
#define EMBER_TOKENIZE_PARSE_SPECIAL                             \
  2u /* match special-token text ("<s>") in the input as tokens; \
      * off by default: user text is plain text */

/* Encodes `len` bytes of `text` (any bytes; invalid UTF-8 is byte-encoded, never an error) into
 * `out_ids` (capacity `cap`). *n_out receives the number of ids; if it exceeds `cap` the call
 * returns EMBER_ERR_BUFFER_TOO_SMALL and *n_out is the needed capacity. Work memory: an 8 KiB stack
 * buffer, or for longer texts one ember_platform_alloc for the call (ember_generate never
 * allocates: it tokenizes in the context's own work area). */
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
ember_status ember_detok_stream_feed(const ember_model* model, ember_detok_stream* stream,
                                     int32_t id, char* out, size_t cap, size_t* n_out);

/* -------------------------------------------------------------- context ---- */

typedef struct ember_context ember_context;

/* How the KV cache stores keys and values. Attention reads each type directly (no float copy);
 * keys and values are converted once, when their token is appended. Bytes per cached value:
 * f32 4, f16 2, u8 1 + 4 / head_dim (see ember_kv_cache_bytes). */
typedef enum ember_kv_type {
  EMBER_KV_F32 = 0, /* float32: the default, exact */
  EMBER_KV_F16 = 1, /* IEEE half, rounded to nearest even (|x| > 65504 becomes +-inf) */
  EMBER_KV_U8 = 2   /* zero-one u8, one f16 scale and min per token and KV head (the weights'
                     * scheme; values clamped to +-65504) */
} ember_kv_type;

typedef struct ember_context_params {
  uint32_t n_ctx;       /* KV cache positions per sequence slot (0 = the model's max_context; more
                         * than max_context is EMBER_ERR_INVALID_ARGUMENT, not clamped) */
  uint32_t n_seq_max;   /* sequence slots in the KV cache (>= 1) */
  uint32_t n_batch_max; /* most tokens in one ember_decode call (>= 1) */
  uint32_t n_threads;   /* worker threads for kernels (0 or 1 = the calling thread only) */
  uint32_t n_prompt_bytes_max; /* longest prompt text ember_generate tokenizes in the context's own
                                * work area (0 = 16 * n_ctx); sized once, like everything else */
  uint8_t use_xnnpack;   /* 0 (default): Ember's own kernels for every weight. 1: float32 weight
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
  uint32_t n_queue_max;  /* requests (ember_request_submit) that may wait for a free sequence slot
                          * beyond the n_seq_max running ones (0 = none) */
  ember_kv_type kv_type; /* KV cache type (default EMBER_KV_F32); another value is
                          * EMBER_ERR_INVALID_ARGUMENT */
} ember_context_params;

ember_context_params ember_context_default_params(void);

/* Exact bytes ember_context_create() takes for these params (context struct, KV cache, activations,
 * logits, scratch; the thread pool's own memory when n_threads > 1 is not included, nor XNNPACK's
 * packed weights with use_xnnpack). */
ember_status ember_context_required_bytes(const ember_model* model,
                                          const ember_context_params* params, size_t* out_bytes);

/* Exact bytes of the KV cache (keys, values and the u8 cache's scales and mins, every slot) that
 * ember_context_required_bytes() includes for these params. Allocates nothing. */
ember_status ember_kv_cache_bytes(const ember_model* model, const ember_context_params* params,
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
 * each position must follow what the slot already holds (pos == cached length). Arrays of n_tokens.
 */
typedef struct ember_batch {
  uint32_t n_tokens;
  const int32_t* token;  /* token ids, each in [0, vocab) */
  const int32_t* pos;    /* positions, each in [0, n_ctx) */
  const int32_t* seq_id; /* sequence slots, each in [0, n_seq_max) */
  const uint8_t* logits; /* nonzero: compute logits for this token (NULL: only the last one) */
} ember_batch;

/* Runs the model on the batch, appending each token's K/V to its slot. Logits of the tokens that
 * asked for them are available through ember_get_logits() until the next call. */
ember_status ember_decode(ember_context* ctx, const ember_batch* batch);

/* Logits (vocab floats) of batch token i from the last ember_decode, or NULL if it asked for none.
 * Owned by the context. */
const float* ember_get_logits(const ember_context* ctx, uint32_t i);

/* Cached positions in a sequence slot (0 after ember_kv_clear). A request's slot keeps what it
 * cached after the request finishes (for the next prompt that starts with the same ids): clear it
 * before decoding into it from position 0 yourself. */
uint32_t ember_kv_length(const ember_context* ctx, int32_t seq_id);

/* Context shift of one sequence slot, for callers of ember_decode (requests do it themselves with
 * ctx_shift): drops positions [n_keep, n_keep + n_discard) and moves the later ones down by
 * n_discard, their keys re-rotated for their new positions (RoPE composes: exact up to float
 * rounding; an f16 or u8 cache rounds or quantizes the rotated keys again). The slot then holds
 * ember_kv_length - n_discard positions and continues at that position. Needs n_discard >= 1 and
 * n_keep + n_discard <= ember_kv_length (EMBER_ERR_INVALID_ARGUMENT otherwise, or for a slot held
 * by a request). Allocates nothing. */
ember_status ember_kv_shift(ember_context* ctx, int32_t seq_id, uint32_t n_keep,
                            uint32_t n_discard);

/* Prefix sharing: copies the first n_tokens cached positions of slot src into slot dst (rows as
 * stored, so the copy is exact), which then holds exactly those and continues at n_tokens. A system
 * prompt or few-shot header is computed once and reused. dst must not be held by a request;
 * n_tokens <= ember_kv_length(src); src == dst truncates. (Requests do this themselves: see
 * "Prefix reuse" below.) Allocates nothing. */
ember_status ember_kv_copy(ember_context* ctx, int32_t src, int32_t dst, uint32_t n_tokens);

/* Saved state of one slot: its ids and cached rows as stored, tagged with the model's identity (its
 * config and the sha256 of its weights, or of the file before them), the cache type, n_ctx and the
 * shape, and closed by a checksum. A device resumes a conversation after a reboot without
 * recomputing it: restore the state into a free slot, then decode (or submit a request whose prompt
 * starts with the saved ids: it reuses them). ember_kv_state_size gives the bytes a save needs;
 * ember_kv_state_save writes them (EMBER_ERR_BUFFER_TOO_SMALL with *n_written the size needed if
 * cap is short). ember_kv_state_load checks everything before it writes anything: a state of
 * another model, cache type or n_ctx is EMBER_ERR_INVALID_ARGUMENT with the mismatch named; a
 * truncated or corrupted one EMBER_ERR_BAD_FORMAT; the slot must not be held by a request. The
 * buffer calls allocate nothing; the file calls read through ember_platform_map_file and write
 * through ember_platform_write_file (all or nothing), save_file allocating the state's bytes for
 * the call. Saved states are for little-endian hosts and this runtime's state version. */
ember_status ember_kv_state_size(const ember_context* ctx, int32_t seq_id, size_t* out_bytes);
ember_status ember_kv_state_save(ember_context* ctx, int32_t seq_id, void* buf, size_t cap,
                                 size_t* n_written);
ember_status ember_kv_state_load(ember_context* ctx, int32_t seq_id, const void* buf, size_t size);
ember_status ember_kv_state_save_file(ember_context* ctx, int32_t seq_id, const char* path);
ember_status ember_kv_state_load_file(ember_context* ctx, int32_t seq_id, const char* path);

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
ember_status ember_sample(ember_context* ctx, const float* logits,
                          const ember_sampler_params* params, uint64_t* rng_state, int32_t* out_id);

/* ----------------------------------------------------------- generation ---- */

/* Called for each piece of text as it is produced (prompt text first if echo_prompt, then the
 * generated text). Return nonzero to stop. */
typedef int (*ember_text_callback)(const char* text, size_t len, int32_t token_id, void* user);

typedef struct ember_generate_params {
  uint32_t max_new_tokens;
  ember_sampler_params sampler;
  int echo_prompt; /* stream the prompt text through the callback first */
  int stop_at_bos; /* also stop when BOS is sampled (llama2.c models end stories with BOS) */
  uint32_t tokenize_flags; /* EMBER_TOKENIZE_* for the prompt (default ADD_SPECIAL) */
  int ctx_shift;           /* as ember_request_params.ctx_shift (default 0) */
  uint32_t n_keep;         /* as ember_request_params.n_keep (default 1) */
} ember_generate_params;

ember_generate_params ember_generate_default_params(void);

typedef struct ember_generate_stats {
  uint32_t n_prompt_tokens;
  uint32_t n_generated;
  double prompt_seconds;
  double generate_seconds;
  uint32_t n_prompt_reused; /* prompt tokens found in the cache (not computed) */
} ember_generate_stats;

/* Text in, text out: one request (below) run to its end. The prompt is tokenized in the context's
 * own memory; a prompt longer than n_ctx tokens is EMBER_ERR_CONTEXT_FULL. `out_ids` (may be NULL)
 * receives prompt ids then generated ids, up to `ids_cap`; *n_ids the count written. Requests
 * submitted to the same context earlier advance with it. */
ember_status ember_generate(ember_context* ctx, const char* prompt, size_t prompt_len,
                            const ember_generate_params* params, ember_text_callback on_text,
                            void* user, int32_t* out_ids, size_t ids_cap, size_t* n_ids,
                            ember_generate_stats* stats);

/* ------------------------------------------------------- continuous batching ---- */
/* Many prompts through one context. Each request gets a sequence slot when one is free (the others
 * wait, in submit order, in a queue of n_queue_max places); each ember_step runs ONE forward pass
 * over every admitted request: one decode token for each that is generating, then prompt chunks of
 * those still prefilling, at most n_batch_max tokens in all (a long prompt is cut into chunks so
 * that it never stalls the others). A request that finishes (or is cancelled) frees its slot at
 * once and the oldest waiting request takes it at the next step. Everything lives in the context:
 * no call below allocates.
 *
 * Same tokens whatever the company: a request's tokens do not depend on the other requests, on
 * the order of admission, on the chunk sizes or on the thread count. Every value of the forward
 * pass is computed per token row in a fixed order (kernels.h: integer dots exact, float sums in a
 * fixed order, attention per token over its own slot), and each request samples with its own
 * generator, seeded from its own sampler.seed.
 *
 * Prefix reuse: a slot keeps the ids it cached after its request finishes. At admission a request
 * takes the free slot whose cached ids share the longest prefix with its prompt (else the least
 * recently used), or copies that prefix from a busy slot when one shares more, and computes only
 * the rest of its prompt (always at least its last token, whose logits it samples from). The
 * cached rows are those a cold run computes, so the tokens are the same; positions moved by a
 * context shift are not reused. */

#define EMBER_MAX_STOP_STRINGS 4 /* stop strings per request */
#define EMBER_MAX_STOP_BYTES 64  /* bytes of one stop string */
#define EMBER_MAX_STOP_IDS 8     /* stop token ids per request (besides the model's EOS ids) */

typedef enum ember_finish_reason {
  EMBER_FINISH_NONE = 0,   /* still queued or running */
  EMBER_FINISH_LENGTH = 1, /* max_new_tokens generated, or the slot's n_ctx positions are full */
  EMBER_FINISH_EOS = 2,    /* the model sampled an end-of-sequence id (or BOS with stop_at_bos) */
  EMBER_FINISH_STOP = 3,   /* a stop id or stop string (neither is part of the output) */
  EMBER_FINISH_CANCELLED = 4, /* ember_request_cancel / release, or the callback returned nonzero */
  EMBER_FINISH_ERROR = 5      /* the forward pass failed (ember_last_error at that ember_step) */
} ember_finish_reason;

/* One event of a request, given to its callback during ember_step (and ember_request_submit with
 * echo_prompt, ember_request_cancel): one per accepted token with the text that token released,
 * then a last one with token -1 and finish != EMBER_FINISH_NONE. Text is UTF-8, never split inside
 * a character; text that may begin a stop string is held back until it cannot. `text` is valid
 * during the call only. */
typedef struct ember_request_event {
  uint64_t request;
  int32_t token; /* the token, or -1 on the final event */
  const char* text;
  size_t text_len;
  ember_finish_reason finish;
} ember_request_event;

/* Return nonzero to cancel the request. A callback may call ember_request_cancel (any request of
 * this context) and nothing else on this context. */
typedef int (*ember_request_callback)(const ember_request_event* event, void* user);

typedef struct ember_request_params {
  const char* prompt;        /* prompt text (prompt_len bytes), tokenized at submit with */
  size_t prompt_len;         /* tokenize_flags into the context's own memory; or NULL and: */
  const int32_t* prompt_ids; /* prompt ids (n_prompt_ids, each in [0, vocab)), copied at submit */
  size_t n_prompt_ids;
  uint32_t tokenize_flags;      /* EMBER_TOKENIZE_* for `prompt` (default ADD_SPECIAL) */
  uint32_t max_new_tokens;      /* default 128 */
  ember_sampler_params sampler; /* its own seed: the request's tokens depend on nothing else */
  const int32_t* stop_ids;      /* n_stop_ids <= EMBER_MAX_STOP_IDS ids that end the request */
  uint32_t n_stop_ids;
  const char* const* stop_strings; /* n_stop_strings <= EMBER_MAX_STOP_STRINGS NUL-terminated, */
  uint32_t n_stop_strings;         /* 1..EMBER_MAX_STOP_BYTES bytes each; copied at submit */
  int stop_at_bos; /* also finish (EOS) when BOS is sampled (llama2.c models end a story
                    * with BOS) */
  int ignore_eos;  /* keep generating past the model's EOS ids (benchmarks) */
  int echo_prompt; /* give the prompt's text to the callback first, at submit */
  int ctx_shift;   /* 0 (default): a request whose slot is full finishes (EMBER_FINISH_LENGTH).
                    * 1: context shift instead: keep the first n_keep positions, drop the oldest
                    * half of the rest (ember_kv_shift) and go on, up to max_new_tokens. The ids
                    * dropped are gone from the request: after a shift, ember_request_info.generated
                    * is NULL and ember_request_text is EMBER_ERR_UNSUPPORTED (read the text
                    * through on_event). */
  uint32_t n_keep; /* positions a context shift keeps (attention sinks; default 1: the BOS);
                    * must be below n_ctx - 1 */
  ember_request_callback on_event; /* may be NULL: poll with ember_request_info / _text */
  void* user;
} ember_request_params;

ember_request_params ember_request_default_params(void);

/* Queues a request; *out_id receives its handle (never 0). Refused before it takes a place:
 * EMBER_ERR_CONTEXT_FULL when the prompt is longer than n_ctx tokens (it could never run),
 * EMBER_ERR_BUSY when the n_seq_max + n_queue_max request places are all taken (finished requests
 * hold theirs until ember_request_release), EMBER_ERR_INVALID_ARGUMENT for bad params. */
ember_status ember_request_submit(ember_context* ctx, const ember_request_params* params,
                                  uint64_t* out_id);

/* One forward pass over the admitted requests (admitting waiting ones into free slots first),
 * then sampling, stop checks and callbacks. *n_pending (may be NULL) receives the requests still
 * queued or running: call again while it is > 0. A request whose pass fails finishes with
 * EMBER_FINISH_ERROR and the status is returned. */
ember_status ember_step(ember_context* ctx, uint32_t* n_pending);

/* Finishes a queued or running request (EMBER_FINISH_CANCELLED; its slot is free at once). A
 * finished request is left as it is. */
ember_status ember_request_cancel(ember_context* ctx, uint64_t request);

/* Forgets a request (cancelling it first if it has not finished) and frees its place. */
ember_status ember_request_release(ember_context* ctx, uint64_t request);

typedef struct ember_request_info {
  ember_finish_reason finish; /* EMBER_FINISH_NONE while queued or running */
  int queued;                 /* 1 while waiting for a slot */
  uint32_t n_prompt_tokens;
  uint32_t n_generated;       /* generated tokens (a stop or EOS id is not counted) */
  const int32_t* generated;   /* the generated ids, owned by the context, valid until release */
  size_t text_bytes;          /* generated text released so far (ember_request_text) */
  double first_token_seconds; /* from submit to the first generated token (0 before it) */
  double total_seconds;       /* from submit to the finish (or to now) */
  uint32_t n_prompt_reused;   /* prompt tokens found in the cache at admission (not computed) */
} ember_request_info;

ember_status ember_request_info_get(const ember_context* ctx, uint64_t request,
                                    ember_request_info* out);

/* Generated text released so far, from byte `offset` on: up to `cap` bytes into `out`, *n_out the
 * bytes written (a piece that does not fit whole is left for the next call). Polling: call with
 * the sum of what earlier calls returned. Stop strings and the text after them are never part of
 * it. */
ember_status ember_request_text(ember_context* ctx, uint64_t request, size_t offset, char* out,
                                size_t cap, size_t* n_out);

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
