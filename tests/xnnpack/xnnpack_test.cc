// The opt-in XNNPACK path (use_xnnpack = 1, built with -DEMBER_USE_XNNPACK=ON): stories260K
// converted to f32 runs its matrices through XNNPACK's f32 fully-connected operator and still
// matches llama2.c's run.c (../shared/models/stories260K/expected) within the golden test's
// criterion; greedy ids are equal. Other weight dtypes keep Ember's kernels (same bits with the
// flag on or off). Context creation allocates XNNPACK's packed copy of the f32 matrices; decode and
// generation allocate nothing.
//
// Heap counting: tests/support/heap_counter.h (malloc & co. wrapped at link time), so every
// allocation of the statically linked runtime and platform layer is counted, and XNNPACK allocates
// through ember_platform_alloc (runtime/src/xnnpack_linear.cc). mallinfo2() also checks that the
// process heap (any library) does not grow while decoding.
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "e2e/e2e_util.h"
#include "support/heap_counter.h"

namespace ember_test {
namespace {

using Counting = HeapCounting;

ContextPtr make_ctx(const ember_model* m, bool xnnpack, uint32_t n_threads = 1,
                    uint32_t n_batch = 64) {
  ember_context_params p = ember_context_default_params();
  p.n_batch_max = n_batch;
  p.n_threads = n_threads;
  p.use_xnnpack = xnnpack ? 1 : 0;
  ember_context* c = nullptr;
  const ember_status s = ember_context_create(m, &p, nullptr, 0, &c);
  EXPECT_EQ(s, EMBER_OK) << ember_last_error();
  return ContextPtr(c);
}

// tests/e2e/golden_test.cc's criterion: |got - ref| <= max(1e-5, 1e-4 |ref|) for every logit and
// every argmax equal. Returns the largest |got - ref|.
double expect_within_golden(const std::vector<std::vector<float>>& got, const nlohmann::json& ref,
                            const std::string& what) {
  const auto& want = ref["logits"];
  EXPECT_EQ(got.size(), want.size()) << what;
  double max_abs = 0;
  int beyond = 0;
  for (size_t p = 0; p < got.size() && p < want.size(); ++p) {
    for (size_t j = 0; j < got[p].size(); ++j) {
      const double e = want[p][j].get<double>();
      const double d = std::fabs(double(got[p][j]) - e);
      max_abs = std::max(max_abs, d);
      if (d > std::max(1e-5, 1e-4 * std::fabs(e)) && ++beyond <= 5) {
        ADD_FAILURE() << what << ": position " << p << " logit " << j << ": got " << got[p][j]
                      << ", expected " << e;
      }
    }
    EXPECT_EQ(argmax_of(got[p]), ref["argmax"][p].get<int32_t>()) << what << " position " << p;
  }
  EXPECT_EQ(beyond, 0) << what;
  std::printf("[ %s ] max |logit - run.c| = %.3g\n", what.c_str(), max_abs);
  return max_abs;
}

#define REQUIRE_F32_MODEL(var) EMBER_REQUIRE_CONVERTED(var, "models/stories260K/hf", "--quant f32")

TEST(Xnnpack, F32LogitsWithinGoldenToleranceOfRunC) {
  REQUIRE_F32_MODEL(path);
  EMBER_REQUIRE_SHARED(ref_path, "models/stories260K/expected/logits.json");
  ModelPtr model = load_model(path);
  ASSERT_TRUE(model);
  const nlohmann::json ref = read_json(ref_path);
  const auto ids = ref["input_ids"].get<std::vector<int32_t>>();
  ContextPtr plain = make_ctx(model.get(), false);
  ASSERT_TRUE(plain);
  const auto base = teacher_forced_logits(plain.get(), 512, ids, 64);
  // One batch of 64 (XNNPACK's multi-row GEMM), token by token (its 1-row kernel), odd chunks.
  for (size_t batch : {size_t{64}, size_t{1}, size_t{7}}) {
    for (uint32_t threads : {1u, 2u}) {
      ContextPtr ctx = make_ctx(model.get(), true, threads);
      ASSERT_TRUE(ctx);
      const auto got = teacher_forced_logits(ctx.get(), 512, ids, batch);
      const std::string what =
          "xnnpack batch " + std::to_string(batch) + " threads " + std::to_string(threads);
      expect_within_golden(got, ref, what);
      // The operator really ran: Ember's kernels give other bits (run.c's order, no FMA).
      ASSERT_EQ(got.size(), base.size());
      size_t differ = 0;
      for (size_t p = 0; p < got.size(); ++p) {
        for (size_t j = 0; j < got[p].size(); ++j) differ += got[p][j] != base[p][j];
      }
      EXPECT_GT(differ, 0u) << what << ": bit-identical to Ember's kernels: XNNPACK was not used";
      std::printf("[ %s ] %zu of %zu logits differ from Ember's kernels in some bit\n",
                  what.c_str(), differ, got.size() * 512);
    }
  }
}

// XNNPACK splits the output into tiles across threads, and uses a 1-row kernel for one token and
// an m-row kernel for batches; each element is still one sequential sum over the inputs, so 1 and 2
// threads, and any split of the prompt into batches, give the same bits.
TEST(Xnnpack, SameBitsForThreadCountsAndBatchSplits) {
  REQUIRE_F32_MODEL(path);
  EMBER_REQUIRE_SHARED(ref_path, "models/stories260K/expected/logits.json");
  ModelPtr model = load_model(path);
  ASSERT_TRUE(model);
  const auto ids = read_json(ref_path)["input_ids"].get<std::vector<int32_t>>();
  ContextPtr one = make_ctx(model.get(), true, 1);
  ASSERT_TRUE(one);
  const auto want = teacher_forced_logits(one.get(), 512, ids, 64);
  for (uint32_t threads : {1u, 2u}) {
    ContextPtr ctx = make_ctx(model.get(), true, threads);
    ASSERT_TRUE(ctx);
    for (size_t batch : {size_t{64}, size_t{1}, size_t{7}}) {
      if (threads == 1 && batch == 64) continue;
      EXPECT_EQ(teacher_forced_logits(ctx.get(), 512, ids, batch), want)
          << "batch " << batch << ", " << threads << " threads";
    }
  }
}

TEST(Xnnpack, GreedyIdsMatchRunC) {
  REQUIRE_F32_MODEL(path);
  EMBER_REQUIRE_SHARED(ref_path, "models/stories260K/expected/greedy.json");
  ModelPtr model = load_model(path);
  ASSERT_TRUE(model);
  const nlohmann::json ref = read_json(ref_path);
  for (uint32_t threads : {1u, 2u}) {
    ContextPtr ctx = make_ctx(model.get(), true, threads);
    ASSERT_TRUE(ctx);
    for (const auto& r : ref["results"]) {
      const std::string prompt = r["prompt"];
      SCOPED_TRACE("prompt '" + prompt + "', threads " + std::to_string(threads));
      EXPECT_EQ(generate_greedy(ctx.get(), prompt, 200, /*stop_at_bos=*/true),
                r["generated_ids"].get<std::vector<int32_t>>());
      EXPECT_EQ(generate_greedy(ctx.get(), prompt, 200, /*stop_at_bos=*/false),
                r["generated_ids_ignoring_bos_stop"].get<std::vector<int32_t>>());
    }
  }
}

// u8 and f16 weights have no XNNPACK operator: the flag changes nothing, bit for bit.
TEST(Xnnpack, OtherDtypesKeepEmberKernels) {
  EMBER_REQUIRE_SHARED(ref_path, "models/stories260K/expected/logits.json");
  const auto ids = read_json(ref_path)["input_ids"].get<std::vector<int32_t>>();
  struct Case {
    const char* hf;
    const char* quant;
  };
  for (const Case& c :
       {Case{"models/stories260K/hf", "u8"}, Case{"models/stories260K/hf-f16", "f16"}}) {
    EMBER_REQUIRE_CONVERTED(path, c.hf, std::string("--quant ") + c.quant);
    ModelPtr model = load_model(path);
    ASSERT_TRUE(model);
    for (uint32_t threads : {1u, 2u}) {
      ContextPtr plain = make_ctx(model.get(), false, threads);
      ContextPtr xnn = make_ctx(model.get(), true, threads);
      ASSERT_TRUE(plain && xnn);
      EXPECT_EQ(teacher_forced_logits(xnn.get(), 512, ids, 7),
                teacher_forced_logits(plain.get(), 512, ids, 7))
          << c.quant << ", " << threads << " threads";
    }
  }
}

// Creating the context allocates XNNPACK's packed copy of every f32 matrix (outside the arena);
// decoding at any batch size and generating allocate nothing.
TEST(Xnnpack, PacksAtCreateNoHeapInDecode) {
  REQUIRE_F32_MODEL(path);
  EMBER_REQUIRE_SHARED(ref_path, "models/stories260K/expected/logits.json");
  ModelPtr model = load_model(path);
  ASSERT_TRUE(model);
  ember_model_info info;
  ASSERT_EQ(ember_model_get_info(model.get(), &info), EMBER_OK);
  const unsigned long long dim = info.hidden_size, q_dim = info.num_heads * info.head_dim,
                           kv_dim = info.num_kv_heads * info.head_dim, ffn = info.intermediate_size;
  const unsigned long long matrix_bytes =
      4 * (info.num_layers * (2 * dim * q_dim + 2 * dim * kv_dim + 3 * dim * ffn) +
           dim * info.vocab_size);
  const auto ids = read_json(ref_path)["input_ids"].get<std::vector<int32_t>>();

  for (uint32_t threads : {1u, 2u}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    unsigned long long plain_bytes = 0, xnn_bytes = 0;
    {
      Counting c;
      ContextPtr plain = make_ctx(model.get(), false, threads);
      ASSERT_TRUE(plain);
      plain_bytes = c.bytes();
    }
    ContextPtr ctx;
    {
      Counting c;
      ctx = make_ctx(model.get(), true, threads);
      ASSERT_TRUE(ctx);
      xnn_bytes = c.bytes();
    }
    ASSERT_GE(xnn_bytes, plain_bytes);
    const unsigned long long extra = xnn_bytes - plain_bytes;
    std::printf(
        "[ xnnpack ] threads %u: context create allocates %llu bytes more with use_xnnpack "
        "(f32 matrices: %llu bytes, ratio %.3f)\n",
        threads, extra, matrix_bytes, double(extra) / double(matrix_bytes));
    EXPECT_GE(extra, matrix_bytes) << "XNNPACK should hold a packed copy of every f32 matrix";
    EXPECT_LE(extra, matrix_bytes * 2) << "more than twice the f32 matrices";

    // No warm-up: the first call at each batch size (a new xnn_setup) is counted too. Positions
    // 0..31 in batches of 16, then again token by token, then in batches of 7; the decode calls
    // only (no vectors in between). mallinfo2: the process heap in use (any library, including
    // XNNPACK's shared object) must not grow either.
    std::vector<int32_t> tok(ids.begin(), ids.begin() + 32), pos(32), seq(32, 0);
    for (int i = 0; i < 32; ++i) pos[i] = i;
    long decode_allocs = 0;
    size_t heap_before = 0, heap_after = 0;
    {
      const struct mallinfo2 before = mallinfo2();
      heap_before = before.uordblks + before.hblkhd;
      Counting c;
      for (uint32_t batch : {16u, 1u, 7u}) {
        EXPECT_EQ(ember_kv_clear(ctx.get(), -1), EMBER_OK);
        for (uint32_t i = 0; i < 32; i += batch) {
          const uint32_t n = std::min<uint32_t>(batch, 32 - i);
          ember_batch b{n, &tok[i], &pos[i], &seq[i], nullptr};
          EXPECT_EQ(ember_decode(ctx.get(), &b), EMBER_OK);
        }
      }
      decode_allocs = c.allocs();
      const struct mallinfo2 after = mallinfo2();
      heap_after = after.uordblks + after.hblkhd;
    }
    EXPECT_EQ(decode_allocs, 0) << "ember_decode allocated with use_xnnpack";
    EXPECT_EQ(heap_after, heap_before) << "the heap grew while decoding with use_xnnpack";
    long gen_allocs = 0;
    {
      ember_generate_params gp = ember_generate_default_params();
      gp.max_new_tokens = 50;
      int32_t out[256];
      size_t n = 0;
      Counting c;
      EXPECT_EQ(ember_generate(ctx.get(), "Once upon a time", 16, &gp, nullptr, nullptr, out, 256,
                               &n, nullptr),
                EMBER_OK);
      gen_allocs = c.allocs();
    }
    EXPECT_EQ(gen_allocs, 0) << "ember_generate allocated with use_xnnpack";
  }
}

}  // namespace
}  // namespace ember_test
