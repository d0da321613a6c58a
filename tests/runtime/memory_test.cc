// Memory contract: ember_context_required_bytes is the exact size of the context (an arena of that
// size works, one byte less is refused, the figure grows exactly by the KV cache per position and
// per slot), ember_model_info.token_read_bytes counts what one token reads, and ember_decode /
// ember_sample / ember_generate never touch the heap. ember_model_required_bytes is the exact size
// of a model load, and a model and context in a caller's arena load and generate with no heap at
// all, the same tokens as on the heap.
//
// Heap counting: tests/support/heap_counter.h (malloc & co. wrapped at link time, operator new
// replaced), and mallinfo2() for the process heap (shared libraries included).
#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "converter/converter_test_util.h"
#include "e2e/e2e_util.h"
#include "support/heap_counter.h"

namespace ember_test {
namespace {

using Counting = HeapCounting;

#define REQUIRE_MODEL(var, quant) \
  EMBER_REQUIRE_CONVERTED(var, "models/stories260K/hf", std::string("--quant ") + quant)

TEST(Memory, HeapCounterSeesAllocations) {
  REQUIRE_MODEL(path, "f32");
  long n = 0;
  {
    Counting c;
    ember_model* m = nullptr;
    ASSERT_EQ(ember_model_load_file(path.c_str(), &m), EMBER_OK);
    ember_model_free(m);
    n = c.allocs();
  }
  EXPECT_GT(n, 0) << "the counting hook does not see the runtime's allocations";
}

TEST(Memory, ArenaOfExactlyRequiredBytes) {
  REQUIRE_MODEL(path, "f32");
  ModelPtr model = load_model(path);
  ASSERT_TRUE(model);
  ember_context_params cp = ember_context_default_params();
  cp.n_ctx = 128;
  size_t need = 0;
  ASSERT_EQ(ember_context_required_bytes(model.get(), &cp, &need), EMBER_OK);
  std::printf("[ memory ] stories260K, n_ctx 128, batch %u: context needs %zu bytes\n",
              cp.n_batch_max, need);
  void* arena = nullptr;
  ASSERT_EQ(posix_memalign(&arena, 64, need), 0);
  ember_context* ctx = nullptr;
  EXPECT_EQ(ember_context_create(model.get(), &cp, arena, need - 1, &ctx), EMBER_ERR_OUT_OF_MEMORY);
  EXPECT_NE(std::string(ember_last_error()).find(std::to_string(need)), std::string::npos);
  EXPECT_EQ(ctx, nullptr);
  EXPECT_EQ(ember_context_create(model.get(), &cp, static_cast<char*>(arena) + 16, need, &ctx),
            EMBER_ERR_INVALID_ARGUMENT);
  // Exactly `need` bytes: ASan would flag any use past the end during a full generation.
  ASSERT_EQ(ember_context_create(model.get(), &cp, arena, need, &ctx), EMBER_OK)
      << ember_last_error();
  const auto ids = generate_greedy(ctx, "Once upon a time", 100, false);
  EXPECT_EQ(ids.size(), 100u);
  ember_context_free(ctx);
  std::free(arena);
}

TEST(Memory, RequiredBytesGrowExactlyByTheKvCache) {
  REQUIRE_MODEL(path, "f32");
  ModelPtr model = load_model(path);
  ASSERT_TRUE(model);
  ember_model_info info;
  ASSERT_EQ(ember_model_get_info(model.get(), &info), EMBER_OK);
  auto bytes = [&](uint32_t n_ctx, uint32_t n_seq, uint32_t n_queue = 0) {
    ember_context_params cp = ember_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_seq_max = n_seq;
    cp.n_queue_max = n_queue;
    cp.n_prompt_bytes_max = 1024;  // keep the tokenizer's work area fixed
    size_t b = 0;
    EXPECT_EQ(ember_context_required_bytes(model.get(), &cp, &b), EMBER_OK);
    return b;
  };
  const size_t kv_per_pos = size_t{2} * info.num_layers * info.num_kv_heads * info.head_dim * 4;
  // Per position: K and V of every layer, one attention score per head, one id of the request
  // record a slot has, and the slot's record of its cached ids (prefix reuse).
  const size_t per_pos = kv_per_pos + size_t{info.num_heads} * 4 + 4 + 4;
  EXPECT_EQ(bytes(128, 1) - bytes(64, 1), 64 * per_pos);
  EXPECT_EQ(bytes(256, 1) - bytes(64, 1), 192 * per_pos);
  // A queue place is one request record (its ids and held-back text); a slot is a whole KV cache,
  // its ids and a record.
  const size_t record = bytes(64, 1, 1) - bytes(64, 1);
  EXPECT_GE(record, 65u * 4);
  const size_t slot_ids = 64 * 4;  // (its length and stamp stay inside a 64-byte block)
  EXPECT_EQ(bytes(64, 2) - bytes(64, 1), 64 * kv_per_pos + slot_ids + record);
  EXPECT_EQ(bytes(64, 4) - bytes(64, 1),
            3 * (64 * kv_per_pos + slot_ids) + (bytes(64, 1, 3) - bytes(64, 1)));
}

// A copy of the stories260K checkpoint with an untied output head (lm_head.weight = a copy of the
// embedding); returns its directory.
std::string untied_checkpoint(const std::string& hf) {
  return derived_checkpoint(
      hf, "untied260K", [](nlohmann::json& c) { c["tie_word_embeddings"] = false; },
      [](std::map<std::string, RawTensor>& t) {
        t["lm_head.weight"] = t.at("model.embed_tokens.weight");
      });
}

// token_read_bytes = every matrix one token multiplies (u8: values + 8 bytes of zero-one parameters
// per group; f32 in row blocks, padding rows included) + one embedding row when the output head is
// not the embedding (row-major then); computed here from the shapes, for f32 and u8 (group 32, and
// one group per row), tied and untied.
TEST(Memory, TokenReadBytesCountWhatOneTokenReads) {
  EMBER_REQUIRE_SHARED(hf, "models/stories260K/hf");
  const std::string untied = untied_checkpoint(hf);
  for (const std::string& dir : {hf, untied}) {
    for (const char* quant : {"f32", "u8 --group 32", "u8 --group 0", "u8 --group 32 --params f32",
                              "u8 --group 0 --params f32"}) {
      const std::string path = converted_model(dir, std::string("--quant ") + quant);
      ASSERT_FALSE(path.empty());
      ModelPtr model = load_model(path);
      ASSERT_TRUE(model);
      ember_model_info info;
      ASSERT_EQ(ember_model_get_info(model.get(), &info), EMBER_OK);
      const uint64_t group =
          std::strcmp(quant, "f32") == 0 ? 0 : (std::strstr(quant, "group 32") ? 32 : 1);
      // u8: blocks of 16 rows (padded), each group's bytes in units of 4 per row, and per block and
      // group 16 scales + 16 mins (runtime/core/zero_one.h), f16 by default.
      const uint64_t params = std::strstr(quant, "--params f32") ? 128 : 64;
      auto blocks = [](uint64_t rows) { return (rows + 15) / 16; };
      auto matrix = [&](uint64_t rows, uint64_t cols) -> uint64_t {
        if (group == 0) return 4 * blocks(rows) * 16 * cols;  // f32 in row blocks (padded)
        const uint64_t g = group == 1 ? cols : group, groups = (cols + g - 1) / g;
        const uint64_t last = cols - (groups - 1) * g;
        const uint64_t row_bytes = (groups - 1) * ((g + 3) / 4 * 4) + (last + 3) / 4 * 4;
        return blocks(rows) * 16 * row_bytes + blocks(rows) * groups * params;
      };
      const uint64_t dim = info.hidden_size, ffn = info.intermediate_size;
      const uint64_t qd = uint64_t{info.num_heads} * info.head_dim,
                     kvd = uint64_t{info.num_kv_heads} * info.head_dim;
      uint64_t want = matrix(info.vocab_size, dim);
      // One embedding row: a u8 row lies in its block's lines, so one block is read.
      const uint64_t row_units = group == 0 ? info.vocab_size : blocks(info.vocab_size);
      if (dir == untied) want += matrix(info.vocab_size, dim) / row_units;
      want += info.num_layers * (matrix(qd, dim) + 2 * matrix(kvd, dim) + matrix(dim, qd) +
                                 2 * matrix(ffn, dim) + matrix(dim, ffn));
      EXPECT_EQ(info.token_read_bytes, want) << dir << " " << quant;
      EXPECT_LT(info.token_read_bytes, info.weight_bytes) << dir << " " << quant;
    }
  }
}

class NoHeap : public ::testing::TestWithParam<std::tuple<const char*, uint32_t>> {};

// Decode, sample and generate on a model converted with `quant`, counting heap allocations.
void expect_no_heap(const std::string& path, const char* quant, uint32_t threads,
                    ember_kv_type kv_type) {
  ModelPtr model = load_model(path);
  ASSERT_TRUE(model);
  ember_context_params cp = ember_context_default_params();
  cp.n_ctx = 256;
  cp.n_batch_max = 16;
  cp.n_threads = threads;
  cp.kv_type = kv_type;
  ember_context* raw = nullptr;
  ASSERT_EQ(ember_context_create(model.get(), &cp, nullptr, 0, &raw), EMBER_OK)
      << ember_last_error();
  ContextPtr ctx(raw);
  std::vector<int32_t> out(512);
  std::vector<int32_t> tok = {1, 403, 407, 261, 378}, pos = {0, 1, 2, 3, 4}, seq(5, 0);
  std::vector<uint8_t> want(5, 1);
  ember_batch b{5, tok.data(), pos.data(), seq.data(), want.data()};
  ember_generate_params gp = ember_generate_default_params();
  gp.max_new_tokens = 60;
  gp.echo_prompt = 1;
  gp.sampler.temperature = 0.8f;
  gp.sampler.top_k = 40;
  gp.sampler.top_p = 0.9f;
  std::string text;
  auto on_text = [](const char* t, size_t n, int32_t, void* user) {
    static_cast<std::string*>(user)->append(t, n);  // may allocate: counted below, so reserve
    return 0;
  };
  text.reserve(1 << 16);
  const std::string prompt = "Once upon a time, in a small town, there lived a dog named Max.";
  long n_allocs = -1;
  size_t n = 0;
  {
    Counting c;
    ASSERT_EQ(ember_kv_clear(ctx.get(), -1), EMBER_OK);
    ASSERT_EQ(ember_decode(ctx.get(), &b), EMBER_OK) << ember_last_error();
    uint64_t rng = ember_rng_seed(5);
    int32_t id = 0;
    ember_sampler_params sp = gp.sampler;
    ASSERT_EQ(ember_sample(ctx.get(), ember_get_logits(ctx.get(), 4), &sp, &rng, &id), EMBER_OK);
    ASSERT_EQ(ember_generate(ctx.get(), prompt.data(), prompt.size(), &gp, on_text, &text,
                             out.data(), out.size(), &n, nullptr),
              EMBER_OK)
        << ember_last_error();
    n_allocs = c.allocs();
  }
  EXPECT_EQ(n_allocs, 0) << "heap allocations during decode/sample/generate";
  EXPECT_GT(n, 20u);
  EXPECT_GT(text.size(), prompt.size());
  std::printf(
      "[ memory ] %s, %u thread(s), kv_type %d: %zu ids, 0 allocations expected, %ld "
      "seen\n",
      quant, threads, static_cast<int>(kv_type), n, n_allocs);
}

TEST_P(NoHeap, DecodeSampleGenerate) {
  const char* quant = std::get<0>(GetParam());
  REQUIRE_MODEL(path, quant);
  expect_no_heap(path, quant, std::get<1>(GetParam()), EMBER_KV_F32);
}

// The f16 and u8 KV caches convert and quantize on the stack: no heap either.
TEST(Memory, NoHeapWithEveryKvCacheType) {
  REQUIRE_MODEL(path, "u8");
  for (ember_kv_type kv : {EMBER_KV_F16, EMBER_KV_U8})
    for (uint32_t threads : {1u, 2u}) expect_no_heap(path, "u8", threads, kv);
}

INSTANTIATE_TEST_SUITE_P(
    Models, NoHeap, ::testing::Combine(::testing::Values("f32", "u8"), ::testing::Values(1u, 2u)),
    [](const ::testing::TestParamInfo<std::tuple<const char*, uint32_t>>& i) {
      return std::string(std::get<0>(i.param)) + "_threads" + std::to_string(std::get<1>(i.param));
    });

// --------------------------------------------------------------- the model in a caller's arena --

// `n` bytes of 64-byte-aligned memory (as a firmware image would give the model file and the
// arena); exactly `n`, so ASan sees any use past the end.
struct Aligned {
  explicit Aligned(size_t bytes) : n(bytes) {
    if (posix_memalign(&p, 64, n == 0 ? 1 : n) != 0) p = nullptr;
  }
  ~Aligned() { std::free(p); }
  Aligned(const Aligned&) = delete;
  Aligned& operator=(const Aligned&) = delete;
  uint8_t* bytes() const { return static_cast<uint8_t*>(p); }
  void* p = nullptr;
  size_t n;
};

std::unique_ptr<Aligned> aligned_file(const std::string& path) {
  const std::vector<unsigned char> bytes = read_file(path);
  auto a = std::make_unique<Aligned>(bytes.size());
  if (a->p) std::memcpy(a->p, bytes.data(), bytes.size());
  return a;
}

ember_context_params arena_context_params() {
  ember_context_params cp = ember_context_default_params();
  cp.n_ctx = 256;
  cp.n_batch_max = 16;
  return cp;  // one thread: a thread pool has memory of its own
}

ember_generate_params sampled_params() {
  ember_generate_params gp = ember_generate_default_params();
  gp.max_new_tokens = 60;
  gp.sampler.temperature = 0.8f;
  gp.sampler.top_k = 40;
  gp.sampler.top_p = 0.9f;
  gp.sampler.seed = 7;
  return gp;
}

const char kArenaPrompt[] = "Once upon a time, in a small town, there lived a dog named Max.";

// Prompt and generated ids of one ember_generate on `model` with the context in
// [arena, arena + arena_size), or on the heap with arena NULL.
std::vector<int32_t> generate_ids(const ember_model* model, const ember_generate_params& gp,
                                  void* arena, size_t arena_size) {
  const ember_context_params cp = arena_context_params();
  ember_context* c = nullptr;
  EXPECT_EQ(ember_context_create(model, &cp, arena, arena_size, &c), EMBER_OK)
      << ember_last_error();
  ContextPtr ctx(c);
  if (!ctx) return {};
  std::vector<int32_t> ids(512);
  size_t n = 0;
  EXPECT_EQ(ember_generate(ctx.get(), kArenaPrompt, sizeof kArenaPrompt - 1, &gp, nullptr, nullptr,
                           ids.data(), ids.size(), &n, nullptr),
            EMBER_OK)
      << ember_last_error();
  ids.resize(n);
  return ids;
}

class ModelArena : public ::testing::TestWithParam<const char*> {};

// A firmware product's whole run: the model file in memory, the model and then the context placed
// in one caller's arena, a generation, both freed; no heap allocation anywhere. The heap counter
// sees what the statically linked code allocates (malloc & co. and operator new); mallinfo2 sees
// the process heap, so an allocation inside a shared library (cpuinfo, libstdc++, libc) shows too.
TEST_P(ModelArena, LoadCreateGenerateWithoutTheHeap) {
  REQUIRE_MODEL(path, GetParam());
  const auto file = aligned_file(path);
  Aligned arena(size_t{16} << 20);
  ASSERT_TRUE(file->p && arena.p);
  (void)ember_kernel_variant();  // the kernels are selected once per process (cpuinfo allocates)
  const ember_context_params cp = arena_context_params();
  const ember_generate_params gp = sampled_params();
  std::vector<int32_t> ids(512);
  size_t model_bytes = 0, ctx_bytes = 0, n = 0;
  ember_status st[5] = {EMBER_ERR_INTERNAL, EMBER_ERR_INTERNAL, EMBER_ERR_INTERNAL,
                        EMBER_ERR_INTERNAL, EMBER_ERR_INTERNAL};
  long n_allocs = -1;
  struct mallinfo2 before {
  }, after{};
  {
    before = mallinfo2();
    Counting c;
    ember_model* model = nullptr;
    ember_context* ctx = nullptr;
    st[0] = ember_model_required_bytes(file->p, file->n, &model_bytes);
    st[1] = ember_model_load_buffer_in(file->p, file->n, arena.p, arena.n, &model);
    if (model) st[2] = ember_context_required_bytes(model, &cp, &ctx_bytes);
    if (model && model_bytes < arena.n) {
      st[3] = ember_context_create(model, &cp, arena.bytes() + model_bytes, arena.n - model_bytes,
                                   &ctx);
    }
    if (ctx) {
      st[4] = ember_generate(ctx, kArenaPrompt, sizeof kArenaPrompt - 1, &gp, nullptr, nullptr,
                             ids.data(), ids.size(), &n, nullptr);
    }
    ember_context_free(ctx);
    ember_model_free(model);
    n_allocs = c.allocs();
    after = mallinfo2();
  }
  for (ember_status s : st) EXPECT_EQ(s, EMBER_OK) << ember_last_error();
  EXPECT_EQ(model_bytes % 64, 0u);  // so the context that follows is aligned
  EXPECT_EQ(n_allocs, 0) << "heap allocations while loading, creating and generating";
  EXPECT_EQ(after.uordblks, before.uordblks) << "the process heap changed (a shared library?)";
  EXPECT_EQ(after.hblkhd, before.hblkhd) << "the process mapped heap memory";
  EXPECT_GT(n, 20u);
  std::printf(
      "[ memory ] %s: model %zu + context %zu bytes in one arena, %zu ids; allocations "
      "%ld, heap in use %zu -> %zu bytes\n",
      GetParam(), model_bytes, ctx_bytes, n, n_allocs, before.uordblks, after.uordblks);
}

// ember_model_required_bytes is what the arena load uses: one byte less is refused with both
// sizes named, the exact size works through a whole generation (ASan would flag a use past the
// end), a larger arena is left untouched past the figure, and loaded models report the figure.
TEST_P(ModelArena, RequiredBytesIsExactlyWhatTheLoadUses) {
  REQUIRE_MODEL(path, GetParam());
  const auto file = aligned_file(path);
  ASSERT_TRUE(file->p);
  size_t need = 0;
  ASSERT_EQ(ember_model_required_bytes(file->p, file->n, &need), EMBER_OK) << ember_last_error();
  std::printf("[ memory ] stories260K %s: a load needs %zu bytes besides the file (%zu bytes)\n",
              GetParam(), need, file->n);
  Aligned arena(need);
  ASSERT_TRUE(arena.p);
  ember_model* m = nullptr;
  EXPECT_EQ(ember_model_load_buffer_in(file->p, file->n, arena.p, need - 1, &m),
            EMBER_ERR_OUT_OF_MEMORY);
  const std::string msg = ember_last_error();
  EXPECT_NE(msg.find(std::to_string(need)), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::to_string(need - 1)), std::string::npos) << msg;
  EXPECT_EQ(m, nullptr);
  EXPECT_EQ(ember_model_load_buffer_in(file->p, file->n, arena.bytes() + 16, need, &m),
            EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(m, nullptr);
  {
    ASSERT_EQ(ember_model_load_buffer_in(file->p, file->n, arena.p, need, &m), EMBER_OK)
        << ember_last_error();
    ModelPtr model(m);
    ember_model_info info;
    ASSERT_EQ(ember_model_get_info(model.get(), &info), EMBER_OK);
    EXPECT_EQ(info.model_bytes, need);
    EXPECT_GT(generate_ids(model.get(), sampled_params(), nullptr, 0).size(), 30u);
  }
  Aligned big(need + 4096);
  ASSERT_TRUE(big.p);
  std::memset(big.p, 0xA5, big.n);
  ASSERT_EQ(ember_model_load_buffer_in(file->p, file->n, big.p, big.n, &m), EMBER_OK);
  ember_model_free(m);
  size_t touched = 0;
  for (size_t i = need; i < big.n; ++i) touched += big.bytes()[i] != 0xA5;
  EXPECT_EQ(touched, 0u) << "the load wrote past its required bytes";
  ModelPtr from_file = load_model(path);
  ASSERT_EQ(ember_model_load_buffer(file->p, file->n, &m), EMBER_OK) << ember_last_error();
  ModelPtr from_buffer(m);
  for (const ember_model* heap : {from_file.get(), from_buffer.get()}) {
    ember_model_info info;
    ASSERT_EQ(ember_model_get_info(heap, &info), EMBER_OK);
    EXPECT_EQ(info.model_bytes, need);
  }
}

// Where the model lives changes no result: the same tokens, greedy and sampled, from a model and
// context in arenas as from a model loaded from the file and a context on the heap.
TEST_P(ModelArena, SameTokensAsAHeapLoadedModel) {
  REQUIRE_MODEL(path, GetParam());
  const auto file = aligned_file(path);
  ASSERT_TRUE(file->p);
  size_t need = 0;
  ASSERT_EQ(ember_model_required_bytes(file->p, file->n, &need), EMBER_OK) << ember_last_error();
  Aligned model_arena(need), ctx_arena(size_t{16} << 20);
  ember_model* m = nullptr;
  ASSERT_EQ(ember_model_load_buffer_in(file->p, file->n, model_arena.p, need, &m), EMBER_OK)
      << ember_last_error();
  ModelPtr in_arena(m);
  ModelPtr on_heap = load_model(path);
  ASSERT_TRUE(on_heap);
  ember_generate_params greedy = ember_generate_default_params();
  greedy.max_new_tokens = 60;
  for (const ember_generate_params& gp : {greedy, sampled_params()}) {
    const auto want = generate_ids(on_heap.get(), gp, nullptr, 0);
    const auto got = generate_ids(in_arena.get(), gp, ctx_arena.p, ctx_arena.n);
    EXPECT_GT(want.size(), 30u);
    EXPECT_EQ(got, want) << "temperature " << gp.sampler.temperature;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, ModelArena, ::testing::Values("f32", "u8"));

}  // namespace
}  // namespace ember_test
