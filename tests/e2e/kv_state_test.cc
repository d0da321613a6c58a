// Prefix sharing and saved state (ember_kv_copy, ember_kv_state_*, prefix reuse in requests) on the
// shared stories260K: a reused prefix skips its prefill and gives exactly the tokens of a cold run;
// a restored slot continues with exactly the original's tokens and logits; a state of another
// model, cache type or n_ctx is refused by name; a truncated or corrupted one is refused and leaves
// the slot as it was.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "e2e/e2e_util.h"

namespace ember_test {
namespace {

const ember_kv_type kTypes[] = {EMBER_KV_F32, EMBER_KV_F16, EMBER_KV_U8};
const char* kv_name(ember_kv_type kv) {
  return kv == EMBER_KV_F32 ? "f32" : (kv == EMBER_KV_F16 ? "f16" : "u8");
}

ContextPtr make_ctx(const ember_model* m, ember_kv_type kv, uint32_t n_ctx = 256,
                    uint32_t n_seq = 1) {
  ember_context_params p = ember_context_default_params();
  p.n_ctx = n_ctx;
  p.n_seq_max = n_seq;
  p.n_batch_max = 32;
  p.n_queue_max = 4;
  p.kv_type = kv;
  ember_context* c = nullptr;
  EXPECT_EQ(ember_context_create(m, &p, nullptr, 0, &c), EMBER_OK) << ember_last_error();
  return ContextPtr(c);
}

struct Generated {
  std::vector<int32_t> ids;  // generated only
  ember_generate_stats stats{};
};

Generated generate(ember_context* ctx, const std::string& prompt, uint32_t n_new,
                   int ctx_shift = 0) {
  ember_generate_params gp = ember_generate_default_params();
  gp.max_new_tokens = n_new;
  gp.ctx_shift = ctx_shift;
  std::vector<int32_t> ids(1024);
  size_t n = 0;
  Generated g;
  EXPECT_EQ(ember_generate(ctx, prompt.data(), prompt.size(), &gp, nullptr, nullptr, ids.data(),
                           ids.size(), &n, &g.stats),
            EMBER_OK)
      << ember_last_error();
  const size_t from = std::min<size_t>(g.stats.n_prompt_tokens, n);
  g.ids.assign(ids.begin() + from, ids.begin() + n);
  return g;
}

// Decodes ids at positions from.. of `seq`, one token per pass; returns each token's logits.
std::vector<std::vector<float>> feed(ember_context* ctx, uint32_t vocab, int32_t seq,
                                     const std::vector<int32_t>& ids, uint32_t from) {
  std::vector<std::vector<float>> out;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t tok = ids[i], pos = static_cast<int32_t>(from + i);
    const uint8_t want = 1;
    const ember_batch b{1, &tok, &pos, &seq, &want};
    EXPECT_EQ(ember_decode(ctx, &b), EMBER_OK) << ember_last_error();
    const float* l = ember_get_logits(ctx, 0);
    if (l == nullptr) return {};
    out.emplace_back(l, l + vocab);
  }
  return out;
}

// Greedy continuation of a slot whose last logits are `last`: n tokens, each fed back.
std::vector<int32_t> continue_greedy(ember_context* ctx, uint32_t vocab, int32_t seq,
                                     std::vector<float> last, uint32_t n,
                                     std::vector<std::vector<float>>* logits) {
  std::vector<int32_t> out;
  for (uint32_t i = 0; i < n; ++i) {
    const int32_t tok = argmax_of(last);
    out.push_back(tok);
    const auto l = feed(ctx, vocab, seq, {tok}, ember_kv_length(ctx, seq));
    if (l.empty()) break;
    last = l[0];
    logits->push_back(last);
  }
  return out;
}

// `model` (stories260K, u8), its `info` and kPrompt's `ids`; skips without ../shared, stops where
// anything fails.
#define LOAD_STORIES(model, info, ids)                            \
  EMBER_REQUIRE_SHARED(model##_src_, "models/stories260K/hf");    \
  ModelPtr model = load_model(converted_model(model##_src_, "")); \
  ASSERT_TRUE(model);                                             \
  [[maybe_unused]] ember_model_info info;                         \
  ASSERT_EQ(ember_model_get_info(model.get(), &info), EMBER_OK);  \
  [[maybe_unused]] const std::vector<int32_t> ids = tokenize(model.get(), kPrompt)

const char* kPrompt = "Once upon a time, there was a little girl named Lily. She loved to play";

TEST(PrefixReuse, GenerateReusesTheCachedPrompt) {
  LOAD_STORIES(model, info, ids);
  const std::string longer = std::string(kPrompt) + " with her ball in the park.";
  for (ember_kv_type kv : {EMBER_KV_F32, EMBER_KV_U8}) {
    SCOPED_TRACE(kv_name(kv));
    ContextPtr warm = make_ctx(model.get(), kv);
    ASSERT_TRUE(warm);
    const Generated first = generate(warm.get(), kPrompt, 40);
    EXPECT_EQ(first.stats.n_prompt_reused, 0u);
    // The same prompt again: everything but its last token is found in the slot.
    const Generated again = generate(warm.get(), kPrompt, 40);
    EXPECT_EQ(again.stats.n_prompt_reused, again.stats.n_prompt_tokens - 1);
    ContextPtr cold = make_ctx(model.get(), kv);
    const Generated cold_run = generate(cold.get(), kPrompt, 40);
    EXPECT_EQ(cold_run.ids, first.ids);
    EXPECT_EQ(again.ids, cold_run.ids);
    // A longer prompt that starts with it: the shared ids are reused, the rest computed.
    const std::vector<int32_t> a = tokenize(model.get(), kPrompt),
                               b = tokenize(model.get(), longer);
    size_t shared = 0;
    while (shared < a.size() && shared + 1 < b.size() && a[shared] == b[shared]) ++shared;
    ASSERT_GT(shared, 10u);
    const Generated ext = generate(warm.get(), longer, 40);
    EXPECT_GE(ext.stats.n_prompt_reused, shared);
    EXPECT_LT(ext.stats.n_prompt_reused, ext.stats.n_prompt_tokens);
    ContextPtr cold2 = make_ctx(model.get(), kv);
    EXPECT_EQ(ext.ids, generate(cold2.get(), longer, 40).ids);
    std::printf(
        "[ reuse %s ] prompt %u tokens: %u reused on the second run; longer prompt %u "
        "tokens: %u reused\n",
        kv_name(kv), again.stats.n_prompt_tokens, again.stats.n_prompt_reused,
        ext.stats.n_prompt_tokens, ext.stats.n_prompt_reused);
  }
}

// Requests sharing a header: the first computes it; later ones admitted together find it in the
// finished slot or copy it from a busy one; every request's tokens equal its cold run's.
TEST(PrefixReuse, RequestsShareAHeaderAcrossSlots) {
  LOAD_STORIES(model, info, prompt_ids);
  const std::string header = std::string(kPrompt) + ". One day, ";
  const char* tails[] = {"she saw a big dog.", "her mom said no.", "it was raining.",
                         "a bird sang.", "Tom came to play."};
  const uint32_t n_header = static_cast<uint32_t>(tokenize(model.get(), header).size());
  ContextPtr ctx = make_ctx(model.get(), EMBER_KV_U8, 256, 3);
  ASSERT_TRUE(ctx);
  std::vector<uint64_t> ids;
  auto submit = [&](const std::string& text) {
    ember_request_params rp = ember_request_default_params();
    rp.prompt = text.c_str();
    rp.prompt_len = text.size();
    rp.max_new_tokens = 24;
    uint64_t id = 0;
    EXPECT_EQ(ember_request_submit(ctx.get(), &rp, &id), EMBER_OK) << ember_last_error();
    ids.push_back(id);
  };
  auto run = [&] {
    uint32_t pending = 1;
    while (pending > 0) {
      ASSERT_EQ(ember_step(ctx.get(), &pending), EMBER_OK) << ember_last_error();
    }
  };
  submit(header + tails[0]);
  run();
  for (int i = 1; i < 5; ++i) submit(header + tails[i]);  // 3 slots: two wait, then reuse too
  run();
  uint32_t computed = 0, total = 0;
  for (int i = 0; i < 5; ++i) {
    ember_request_info info;
    ASSERT_EQ(ember_request_info_get(ctx.get(), ids[i], &info), EMBER_OK);
    if (i > 0) {  // (the header's last token may merge with the tail's first)
      EXPECT_GE(info.n_prompt_reused, n_header - 2) << "request " << i;
    }
    computed += info.n_prompt_tokens - info.n_prompt_reused;
    total += info.n_prompt_tokens;
    ContextPtr cold = make_ctx(model.get(), EMBER_KV_U8);
    const std::string text = header + tails[i];
    const Generated c = generate(cold.get(), text, 24);
    EXPECT_EQ(std::vector<int32_t>(info.generated, info.generated + info.n_generated), c.ids)
        << "request " << i;
    ASSERT_EQ(ember_request_release(ctx.get(), ids[i]), EMBER_OK);
  }
  std::printf("[ reuse ] 5 requests with a %u-token header: %u of %u prompt tokens computed\n",
              n_header, computed, total);
  EXPECT_LT(computed, total - 3 * n_header);
}

// A shifted slot's moved positions attended to dropped ones: they are not reused (only n_keep).
TEST(PrefixReuse, ShiftedPositionsAreNotReused) {
  LOAD_STORIES(model, info, ids);
  ContextPtr ctx = make_ctx(model.get(), EMBER_KV_F32, 64);
  ASSERT_TRUE(ctx);
  (void)generate(ctx.get(), kPrompt, 120, /*ctx_shift=*/1);
  const Generated again = generate(ctx.get(), kPrompt, 20);
  EXPECT_LE(again.stats.n_prompt_reused, 1u);
  ContextPtr cold = make_ctx(model.get(), EMBER_KV_F32, 64);
  EXPECT_EQ(again.ids, generate(cold.get(), kPrompt, 20).ids);
}

TEST(KvCopy, CopiedPrefixContinuesLikeTheOriginal) {
  LOAD_STORIES(model, info, ids);
  for (ember_kv_type kv : kTypes) {
    SCOPED_TRACE(kv_name(kv));
    ContextPtr ctx = make_ctx(model.get(), kv, 256, 2);
    ASSERT_TRUE(ctx);
    const auto ref = feed(ctx.get(), info.vocab_size, 0, ids, 0);
    ASSERT_EQ(ref.size(), ids.size());
    const uint32_t k = static_cast<uint32_t>(ids.size()) - 5;
    ASSERT_EQ(ember_kv_copy(ctx.get(), 0, 1, k), EMBER_OK) << ember_last_error();
    EXPECT_EQ(ember_kv_length(ctx.get(), 1), k);
    const auto got =
        feed(ctx.get(), info.vocab_size, 1, std::vector<int32_t>(ids.begin() + k, ids.end()), k);
    ASSERT_EQ(got.size(), 5u);
    for (size_t i = 0; i < 5; ++i) EXPECT_EQ(got[i], ref[k + i]) << "position " << k + i;
    // Bad arguments are refused and change nothing.
    EXPECT_EQ(ember_kv_copy(ctx.get(), 0, 1, static_cast<uint32_t>(ids.size()) + 1),
              EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(ember_kv_copy(ctx.get(), 0, 2, 1), EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(ember_kv_copy(ctx.get(), -1, 1, 1), EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(ember_kv_length(ctx.get(), 1), ids.size());
  }
}

std::vector<uint8_t> save(ember_context* ctx, int32_t seq) {
  size_t n = 0;
  EXPECT_EQ(ember_kv_state_size(ctx, seq, &n), EMBER_OK) << ember_last_error();
  std::vector<uint8_t> buf(n);
  size_t written = 0;
  EXPECT_EQ(ember_kv_state_save(ctx, seq, nullptr, 0, &written), EMBER_ERR_BUFFER_TOO_SMALL);
  EXPECT_EQ(written, n);
  EXPECT_EQ(ember_kv_state_save(ctx, seq, buf.data(), buf.size(), &written), EMBER_OK)
      << ember_last_error();
  EXPECT_EQ(written, n);
  return buf;
}

// Prefill, save; the original continues 30 greedy tokens; a fresh context restores the state (into
// another slot number, too) and continues: the same tokens and the same logits, bit for bit. A
// request whose prompt is the saved ids reuses all but the last and generates the same tokens.
TEST(KvState, RestoredSlotContinuesExactly) {
  LOAD_STORIES(model, info, ids);
  const uint32_t V = info.vocab_size;
  for (ember_kv_type kv : kTypes) {
    SCOPED_TRACE(kv_name(kv));
    ContextPtr a = make_ctx(model.get(), kv);
    ASSERT_TRUE(a);
    const auto prefill = feed(a.get(), V, 0, ids, 0);
    ASSERT_EQ(prefill.size(), ids.size());
    const std::vector<uint8_t> state = save(a.get(), 0);
    std::vector<std::vector<float>> la, lb;
    const std::vector<int32_t> ta = continue_greedy(a.get(), V, 0, prefill.back(), 30, &la);

    ContextPtr b = make_ctx(model.get(), kv, 256, 2);
    ASSERT_TRUE(b);
    ASSERT_EQ(ember_kv_state_load(b.get(), 1, state.data(), state.size()), EMBER_OK)
        << ember_last_error();
    EXPECT_EQ(ember_kv_length(b.get(), 1), ids.size());
    const std::vector<int32_t> tb = continue_greedy(b.get(), V, 1, prefill.back(), 30, &lb);
    EXPECT_EQ(ta, tb);
    EXPECT_TRUE(la == lb) << "logits differ after the restore";

    ContextPtr c = make_ctx(model.get(), kv);
    ASSERT_EQ(ember_kv_state_load(c.get(), 0, state.data(), state.size()), EMBER_OK);
    ember_request_params rp = ember_request_default_params();
    rp.prompt_ids = ids.data();
    rp.n_prompt_ids = ids.size();
    rp.max_new_tokens = 30;
    uint64_t id = 0;
    ASSERT_EQ(ember_request_submit(c.get(), &rp, &id), EMBER_OK);
    uint32_t pending = 1;
    while (pending > 0) {
      ASSERT_EQ(ember_step(c.get(), &pending), EMBER_OK);
    }
    ember_request_info ri;
    ASSERT_EQ(ember_request_info_get(c.get(), id, &ri), EMBER_OK);
    EXPECT_EQ(ri.n_prompt_reused, ids.size() - 1);
    EXPECT_EQ(std::vector<int32_t>(ri.generated, ri.generated + ri.n_generated), ta);
  }
}

TEST(KvState, RefusesAnotherModelCacheTypeOrContextByName) {
  LOAD_STORIES(model, info, ids);
  EMBER_REQUIRE_CONVERTED(other_path, "models/aidreams260K/hf", "");
  EMBER_REQUIRE_CONVERTED(f32_path, "models/stories260K/hf", "--quant f32");
  ModelPtr other = load_model(other_path), f32 = load_model(f32_path);
  ASSERT_TRUE(other && f32);
  ContextPtr a = make_ctx(model.get(), EMBER_KV_F32, 128);  // (aidreams260K's max_context)
  ASSERT_EQ(feed(a.get(), info.vocab_size, 0, ids, 0).size(), ids.size());
  const std::vector<uint8_t> state = save(a.get(), 0);
  struct Case {
    ContextPtr ctx;
    const char* names;
  };
  Case cases[] = {{make_ctx(model.get(), EMBER_KV_U8, 128), "cache type is u8"},
                  {make_ctx(model.get(), EMBER_KV_F16, 128), "cache type is f16"},
                  {make_ctx(model.get(), EMBER_KV_F32, 64), "n_ctx is 64"},
                  {make_ctx(other.get(), EMBER_KV_F32, 128), "another model"},
                  {make_ctx(f32.get(), EMBER_KV_F32, 128), "another model"}};
  for (Case& c : cases) {
    ASSERT_TRUE(c.ctx);
    EXPECT_EQ(ember_kv_state_load(c.ctx.get(), 0, state.data(), state.size()),
              EMBER_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::strstr(ember_last_error(), c.names), nullptr) << ember_last_error();
    EXPECT_EQ(ember_kv_length(c.ctx.get(), 0), 0u);
  }
}

// Every truncation and a byte flip at every 7th offset (and each header byte) is refused; the slot
// keeps what it held.
TEST(KvState, RefusesTruncatedOrCorruptedState) {
  LOAD_STORIES(model, info, ids);
  for (ember_kv_type kv : kTypes) {
    SCOPED_TRACE(kv_name(kv));
    ContextPtr a = make_ctx(model.get(), kv);
    ASSERT_EQ(feed(a.get(), info.vocab_size, 0, ids, 0).size(), ids.size());
    const std::vector<uint8_t> state = save(a.get(), 0);
    ContextPtr b = make_ctx(model.get(), kv);
    ASSERT_EQ(feed(b.get(), info.vocab_size, 0, {ids[0], ids[1], ids[2]}, 0).size(), 3u);
    size_t refused = 0;
    for (size_t n = 0; n < state.size(); ++n) {
      const std::vector<uint8_t> cut(state.begin(), state.begin() + n);
      refused += ember_kv_state_load(b.get(), 0, cut.data(), cut.size()) != EMBER_OK;
    }
    EXPECT_EQ(refused, state.size());
    std::vector<uint8_t> longer = state;
    longer.push_back(0);
    EXPECT_EQ(ember_kv_state_load(b.get(), 0, longer.data(), longer.size()), EMBER_ERR_BAD_FORMAT);
    size_t flips = 0;
    refused = 0;
    for (size_t i = 0; i < state.size(); i += (i < 48 ? 1 : 7)) {
      std::vector<uint8_t> bad = state;
      bad[i] ^= static_cast<uint8_t>(1u << (i % 8));
      ++flips;
      refused += ember_kv_state_load(b.get(), 0, bad.data(), bad.size()) != EMBER_OK;
    }
    EXPECT_EQ(refused, flips);
    EXPECT_EQ(ember_kv_length(b.get(), 0), 3u);
    EXPECT_EQ(ember_kv_state_load(b.get(), 0, state.data(), state.size()), EMBER_OK);
    EXPECT_EQ(ember_kv_length(b.get(), 0), ids.size());
  }
}

TEST(KvState, FileRoundTripAndErrors) {
  LOAD_STORIES(model, info, ids);
  ContextPtr a = make_ctx(model.get(), EMBER_KV_U8);
  ASSERT_EQ(feed(a.get(), info.vocab_size, 0, ids, 0).size(), ids.size());
  const std::filesystem::path dir = std::filesystem::path(testing::TempDir()) / "kv_state_test";
  std::filesystem::create_directories(dir);
  const std::string file = (dir / "slot.emkv").string();
  ASSERT_EQ(ember_kv_state_save_file(a.get(), 0, file.c_str()), EMBER_OK) << ember_last_error();
  EXPECT_EQ(std::filesystem::file_size(file), save(a.get(), 0).size());
  ContextPtr b = make_ctx(model.get(), EMBER_KV_U8);
  ASSERT_EQ(ember_kv_state_load_file(b.get(), 0, file.c_str()), EMBER_OK) << ember_last_error();
  EXPECT_EQ(ember_kv_length(b.get(), 0), ids.size());
  const std::string missing = (dir / "missing.emkv").string();
  EXPECT_EQ(ember_kv_state_load_file(b.get(), 0, missing.c_str()), EMBER_ERR_IO);
  EXPECT_NE(std::strstr(ember_last_error(), "missing.emkv"), nullptr) << ember_last_error();
  const std::string nodir = (dir / "no/such/dir/slot.emkv").string();
  EXPECT_EQ(ember_kv_state_save_file(a.get(), 0, nodir.c_str()), EMBER_ERR_IO);
  // Saving over a state replaces it whole; no temporary is left beside it.
  ASSERT_EQ(ember_kv_state_save_file(a.get(), 0, file.c_str()), EMBER_OK);
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) entries += e.is_regular_file();
  EXPECT_EQ(entries, 1u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ember_test
