// Continuous batching through the C API (ember_request_* / ember_step): llama2.c's greedy ids for
// every prompt of ../shared's greedy.json whatever the company, the order, the chunk size and the
// thread count; more requests than slots; cancel; refusals before admission; stop ids and
// strings; no heap inside a pass.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "e2e/e2e_util.h"
#include "ember/ember.h"
#include "support/convert.h"
#include "support/heap_counter.h"
#include "support/json_file.h"

namespace {

using namespace ember_test;

struct Golden {
  std::string prompt;
  std::vector<int32_t> ids;  // llama2.c's generated ids (stopped before BOS)
};

std::vector<Golden> golden() {
  std::vector<Golden> out;
  const std::string path = shared_path("models/stories260K/expected/greedy.json");
  if (path.empty()) return out;
  const nlohmann::json doc = read_json(path);
  for (const auto& r : doc["results"]) {
    out.push_back({r["prompt"].get<std::string>(), r["generated_ids"].get<std::vector<int32_t>>()});
  }
  return out;
}

ContextPtr batch_context(const ember_model* m, uint32_t slots, uint32_t queue, uint32_t batch,
                         uint32_t threads, uint32_t n_ctx = 256) {
  ember_context_params p = ember_context_default_params();
  p.n_ctx = n_ctx;
  p.n_seq_max = slots;
  p.n_queue_max = queue;
  p.n_batch_max = batch;
  p.n_threads = threads;
  ember_context* c = nullptr;
  EXPECT_EQ(ember_context_create(m, &p, nullptr, 0, &c), EMBER_OK) << ember_last_error();
  return ContextPtr(c);
}

// What a request produced: from the callback (ids, text) and from polling.
struct Outcome {
  std::vector<int32_t> ids;
  std::string text, polled;
  ember_finish_reason finish = EMBER_FINISH_NONE;
  int finals = 0;
};

int record_event(const ember_request_event* ev, void* user) {
  Outcome& o = *static_cast<Outcome*>(user);
  o.text.append(ev->text, ev->text_len);
  if (ev->finish != EMBER_FINISH_NONE) {
    o.finish = ev->finish;
    ++o.finals;
  } else {
    o.ids.push_back(ev->token);
  }
  return 0;
}

// (The params point into `prompt`: it must outlive the submit.)
ember_request_params greedy_params(const std::string& prompt, Outcome* o, uint32_t max_new = 200) {
  ember_request_params p = ember_request_default_params();
  p.prompt = prompt.c_str();
  p.prompt_len = prompt.size();
  p.max_new_tokens = max_new;
  p.stop_at_bos = 1;
  p.on_event = record_event;
  p.user = o;
  return p;
}

// Steps until nothing is pending (bounded); checks every request's polled text on the way.
void run_all(ember_context* ctx) {
  uint32_t pending = 1;
  for (int i = 0; i < 100000 && pending > 0; ++i) {
    ASSERT_EQ(ember_step(ctx, &pending), EMBER_OK) << ember_last_error();
  }
  ASSERT_EQ(pending, 0u);
}

std::string poll_all(ember_context* ctx, uint64_t id, size_t cap) {
  std::string out;
  std::vector<char> buf(cap);
  for (;;) {
    size_t n = 0;
    EXPECT_EQ(ember_request_text(ctx, id, out.size(), buf.data(), buf.size(), &n), EMBER_OK);
    if (n == 0) break;
    out.append(buf.data(), n);
  }
  return out;
}

class BatchGolden : public testing::Test {
 protected:
  void SetUp() override {
    EMBER_REQUIRE_SHARED(expected, "models/stories260K/expected/greedy.json");
    gold_ = golden();
    ASSERT_EQ(gold_.size(), 5u);
    EMBER_REQUIRE_CONVERTED(path, "models/stories260K/hf", "--quant f32");
    model_ = load_model(path);
    ASSERT_TRUE(model_);
  }
  std::vector<Golden> gold_;
  ModelPtr model_;
};

// The five prompts together, with 1, 2, 3 and 5 slots (the rest queued), in the file's order and
// reversed, prompt chunks of 1, 3, 7 and 64 tokens per pass, 1 and 2 threads: every request gets
// exactly llama2.c's ids, through the callback and through polling alike.
TEST_F(BatchGolden, EveryPromptGetsLlama2cIdsWhateverTheCompany) {
  struct Setup {
    uint32_t slots, batch, threads;
    bool reverse;
  };
  const Setup setups[] = {{1, 64, 1, false}, {2, 3, 1, true},  {3, 7, 2, false},
                          {5, 64, 2, true},  {5, 1, 1, false}, {2, 16, 2, false}};
  for (const Setup& su : setups) {
    SCOPED_TRACE(testing::Message() << "slots " << su.slots << " batch " << su.batch << " threads "
                                    << su.threads << (su.reverse ? " reversed" : ""));
    // n_batch_max must hold a decode token of every slot.
    ContextPtr ctx =
        batch_context(model_.get(), su.slots, 5, std::max(su.batch, su.slots), su.threads);
    ASSERT_TRUE(ctx);
    std::vector<size_t> order(gold_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = su.reverse ? order.size() - 1 - i : i;
    std::vector<Outcome> out(gold_.size());
    std::vector<uint64_t> ids(gold_.size());
    for (size_t i : order) {
      const ember_request_params p = greedy_params(gold_[i].prompt, &out[i]);
      ASSERT_EQ(ember_request_submit(ctx.get(), &p, &ids[i]), EMBER_OK) << ember_last_error();
    }
    run_all(ctx.get());
    for (size_t i = 0; i < gold_.size(); ++i) {
      SCOPED_TRACE("prompt '" + gold_[i].prompt + "'");
      EXPECT_EQ(out[i].ids, gold_[i].ids);
      EXPECT_EQ(out[i].finals, 1);
      EXPECT_EQ(out[i].finish, gold_[i].ids.size() < 200 ? EMBER_FINISH_EOS : EMBER_FINISH_LENGTH);
      ember_request_info info;
      ASSERT_EQ(ember_request_info_get(ctx.get(), ids[i], &info), EMBER_OK);
      EXPECT_EQ(std::vector<int32_t>(info.generated, info.generated + info.n_generated),
                gold_[i].ids);
      EXPECT_EQ(info.text_bytes, out[i].text.size());
      EXPECT_EQ(poll_all(ctx.get(), ids[i], 7), out[i].text);  // small buffer: many polls
      ASSERT_EQ(ember_request_release(ctx.get(), ids[i]), EMBER_OK);
    }
  }
}

// ember_generate (one request on the same machinery) gives the same ids.
TEST_F(BatchGolden, GenerateIsOneRequest) {
  ContextPtr ctx = batch_context(model_.get(), 1, 0, 5, 1);
  for (const Golden& g : gold_) {
    EXPECT_EQ(generate_greedy(ctx.get(), g.prompt, 200, true), g.ids) << g.prompt;
  }
}

// Seeded sampling: each request's tokens follow its own seed, alone or in company (the u8 model,
// 2 threads, more requests than slots).
TEST(Batch, SeededSamplingDoesNotDependOnCompany) {
  EMBER_REQUIRE_CONVERTED(path, "models/stories260K/hf", "--quant u8");
  ModelPtr model = load_model(path);
  const std::vector<std::string> prompts = {"Once upon a time", "The cat", "A big red ball was",
                                            "Tom said",         "",        "She ran to the"};
  auto params = [&](size_t i, Outcome* o) {
    ember_request_params p = ember_request_default_params();
    p.prompt = prompts[i].c_str();
    p.prompt_len = prompts[i].size();
    p.max_new_tokens = 40 + 7 * static_cast<uint32_t>(i);
    p.sampler.temperature = 0.9f;
    p.sampler.top_p = 0.95f;
    p.sampler.top_k = i % 2 ? 40 : 0;
    p.sampler.seed = 1000 + i;
    p.on_event = record_event;
    p.user = o;
    return p;
  };
  // Alone: one slot, one request at a time.
  std::vector<Outcome> alone(prompts.size());
  {
    ContextPtr ctx = batch_context(model.get(), 1, 0, 8, 1);
    for (size_t i = 0; i < prompts.size(); ++i) {
      const ember_request_params p = params(i, &alone[i]);
      uint64_t id = 0;
      ASSERT_EQ(ember_request_submit(ctx.get(), &p, &id), EMBER_OK) << ember_last_error();
      run_all(ctx.get());
      ASSERT_EQ(ember_request_release(ctx.get(), id), EMBER_OK);
      EXPECT_FALSE(alone[i].ids.empty());
    }
  }
  // Together: 3 slots for 6 requests, chunks of 5, 2 threads, submitted in reverse.
  std::vector<Outcome> together(prompts.size());
  ContextPtr ctx = batch_context(model.get(), 3, 3, 5, 2);
  for (size_t k = prompts.size(); k-- > 0;) {
    const ember_request_params p = params(k, &together[k]);
    uint64_t id = 0;
    ASSERT_EQ(ember_request_submit(ctx.get(), &p, &id), EMBER_OK) << ember_last_error();
  }
  run_all(ctx.get());
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(together[i].ids, alone[i].ids) << "request " << i;
    EXPECT_EQ(together[i].text, alone[i].text) << "request " << i;
    EXPECT_EQ(together[i].finish, alone[i].finish) << "request " << i;
  }
}

TEST_F(BatchGolden, CancelFreesTheSlotForTheNextRequest) {
  ContextPtr ctx = batch_context(model_.get(), 1, 2, 8, 1);
  Outcome a, b;
  uint64_t ia = 0, ib = 0;
  ember_request_params pa = greedy_params(gold_[0].prompt, &a);
  ember_request_params pb = greedy_params(gold_[1].prompt, &b);
  ASSERT_EQ(ember_request_submit(ctx.get(), &pa, &ia), EMBER_OK);
  ASSERT_EQ(ember_request_submit(ctx.get(), &pb, &ib), EMBER_OK);
  uint32_t pending = 0;
  for (int i = 0; i < 5; ++i) ASSERT_EQ(ember_step(ctx.get(), &pending), EMBER_OK);
  ember_request_info info;
  ASSERT_EQ(ember_request_info_get(ctx.get(), ib, &info), EMBER_OK);
  EXPECT_EQ(info.queued, 1);  // the one slot is a's
  ASSERT_EQ(ember_request_cancel(ctx.get(), ia), EMBER_OK);
  EXPECT_EQ(a.finish, EMBER_FINISH_CANCELLED);
  EXPECT_EQ(a.finals, 1);
  ASSERT_EQ(ember_step(ctx.get(), &pending), EMBER_OK);  // b takes the slot at once
  ASSERT_EQ(ember_request_info_get(ctx.get(), ib, &info), EMBER_OK);
  EXPECT_EQ(info.queued, 0);
  run_all(ctx.get());
  EXPECT_EQ(b.ids, gold_[1].ids);
  // The cancelled request keeps what it had generated until released; cancelling again is a no-op.
  ASSERT_EQ(ember_request_info_get(ctx.get(), ia, &info), EMBER_OK);
  EXPECT_EQ(info.finish, EMBER_FINISH_CANCELLED);
  EXPECT_GT(info.n_generated, 0u);
  EXPECT_EQ(std::vector<int32_t>(info.generated, info.generated + info.n_generated),
            std::vector<int32_t>(gold_[0].ids.begin(), gold_[0].ids.begin() + info.n_generated));
  EXPECT_EQ(ember_request_cancel(ctx.get(), ia), EMBER_OK);
  EXPECT_EQ(a.finals, 1);
  ASSERT_EQ(ember_request_release(ctx.get(), ia), EMBER_OK);
  EXPECT_EQ(ember_request_release(ctx.get(), ia), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(ember_last_error()).find("unknown or released"), std::string::npos);
}

// A callback that returns nonzero cancels its own request; the others go on.
TEST_F(BatchGolden, CallbackCanStopItsRequest) {
  ContextPtr ctx = batch_context(model_.get(), 2, 0, 8, 1);
  struct Stopper {
    Outcome o;
    size_t after;
  } s{{}, 5};
  auto cb = [](const ember_request_event* ev, void* user) -> int {
    Stopper& st = *static_cast<Stopper*>(user);
    record_event(ev, &st.o);
    return st.o.ids.size() >= st.after ? 1 : 0;
  };
  ember_request_params p = greedy_params(gold_[0].prompt, nullptr);
  p.on_event = cb;
  p.user = &s;
  Outcome other;
  ember_request_params q = greedy_params(gold_[2].prompt, &other);
  uint64_t i1 = 0, i2 = 0;
  ASSERT_EQ(ember_request_submit(ctx.get(), &p, &i1), EMBER_OK);
  ASSERT_EQ(ember_request_submit(ctx.get(), &q, &i2), EMBER_OK);
  run_all(ctx.get());
  EXPECT_EQ(s.o.ids.size(), 5u);
  EXPECT_EQ(s.o.finish, EMBER_FINISH_CANCELLED);
  EXPECT_EQ(other.ids, gold_[2].ids);
}

TEST_F(BatchGolden, RefusedBeforeAdmission) {
  ContextPtr ctx = batch_context(model_.get(), 1, 1, 8, 1, /*n_ctx=*/16);
  Outcome o;
  // Longer than the context: refused, and no place is taken.
  const std::string long_prompt =
      "Once upon a time there was a little girl named Lily who liked to "
      "play in the park with her big red ball every day";
  ember_request_params p = greedy_params(long_prompt, &o);
  uint64_t id = 0;
  EXPECT_EQ(ember_request_submit(ctx.get(), &p, &id), EMBER_ERR_CONTEXT_FULL);
  EXPECT_EQ(id, 0u);
  EXPECT_NE(std::string(ember_last_error()).find("n_ctx = 16"), std::string::npos)
      << ember_last_error();
  std::vector<int32_t> too_many(17, 5);
  p = ember_request_default_params();
  p.prompt_ids = too_many.data();
  p.n_prompt_ids = too_many.size();
  EXPECT_EQ(ember_request_submit(ctx.get(), &p, &id), EMBER_ERR_CONTEXT_FULL);
  // Two places (a slot and a queue place): the third request is BUSY, at once.
  uint64_t a = 0, b = 0, c = 0;
  const std::string cat = "The cat", x = "x";
  ember_request_params s = greedy_params(cat, &o, 4);
  ASSERT_EQ(ember_request_submit(ctx.get(), &s, &a), EMBER_OK);
  ASSERT_EQ(ember_request_submit(ctx.get(), &s, &b), EMBER_OK);
  EXPECT_EQ(ember_request_submit(ctx.get(), &s, &c), EMBER_ERR_BUSY);
  EXPECT_NE(std::string(ember_last_error()).find("request place"), std::string::npos);
  // Bad params name the field.
  ember_request_params bad = greedy_params(x, &o);
  bad.sampler.top_p = 0.0f;
  EXPECT_EQ(ember_request_submit(ctx.get(), &bad, &c), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(ember_last_error()).find("top_p"), std::string::npos);
  bad = greedy_params(x, &o);
  const char* stops[] = {""};
  bad.stop_strings = stops;
  bad.n_stop_strings = 1;
  EXPECT_EQ(ember_request_submit(ctx.get(), &bad, &c), EMBER_ERR_INVALID_ARGUMENT);
  bad = greedy_params(x, &o);
  std::vector<int32_t> bad_ids = {1, 600};
  bad.prompt = nullptr;
  bad.prompt_ids = bad_ids.data();
  bad.n_prompt_ids = bad_ids.size();
  ASSERT_EQ(ember_request_release(ctx.get(), b), EMBER_OK);
  EXPECT_EQ(ember_request_submit(ctx.get(), &bad, &c), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(ember_last_error()).find("600"), std::string::npos);
  // A slot held by a request is not the low-level API's.
  ASSERT_EQ(ember_step(ctx.get(), nullptr), EMBER_OK);
  int32_t tok = 1, pos = 0, seq = 0;
  ember_batch one{1, &tok, &pos, &seq, nullptr};
  EXPECT_EQ(ember_decode(ctx.get(), &one), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(ember_last_error()).find("held by request"), std::string::npos);
  EXPECT_EQ(ember_kv_clear(ctx.get(), -1), EMBER_ERR_INVALID_ARGUMENT);
  run_all(ctx.get());
  EXPECT_EQ(ember_kv_clear(ctx.get(), -1), EMBER_OK);  // the slot is free again
}

// Stop ids and stop strings end the request; neither reaches the output, whether the stop string
// arrives in one token or across several, and the text before it is not held back longer than
// needed.
TEST_F(BatchGolden, StopIdsAndStrings) {
  ContextPtr ctx = batch_context(model_.get(), 3, 3, 16, 1);
  const Golden& g = gold_[0];  // "Once upon a time" -> ", there was a little girl named Lily..."
  std::string full;
  {
    Outcome o;
    const ember_request_params p = greedy_params(g.prompt, &o);
    uint64_t id = 0;
    ASSERT_EQ(ember_request_submit(ctx.get(), &p, &id), EMBER_OK);
    run_all(ctx.get());
    full = o.text;
    ASSERT_EQ(ember_request_release(ctx.get(), id), EMBER_OK);
  }
  ASSERT_NE(full.find(" named Lily"), std::string::npos) << full;
  struct Case {
    std::vector<std::string> stops;
    std::string want_text;
  };
  const size_t at = full.find(" named Lily");
  const std::vector<Case> cases = {
      {{" named Lily"}, full.substr(0, at)},  // across several tokens
      {{"zzz", "little"}, full.substr(0, full.find("little"))},
      {{"Lily.", "girl"}, full.substr(0, full.find("girl"))},  // the earliest match wins
      {{"no such text at all"}, full},  // never matches: everything, at the end
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.stops[0]);
    Outcome o;
    ember_request_params p = greedy_params(g.prompt, &o);
    std::vector<const char*> ptrs;
    for (const auto& s : c.stops) ptrs.push_back(s.c_str());
    p.stop_strings = ptrs.data();
    p.n_stop_strings = static_cast<uint32_t>(ptrs.size());
    uint64_t id = 0;
    ASSERT_EQ(ember_request_submit(ctx.get(), &p, &id), EMBER_OK);
    run_all(ctx.get());
    EXPECT_EQ(o.text, c.want_text);
    EXPECT_EQ(o.finish, c.want_text == full ? EMBER_FINISH_LENGTH : EMBER_FINISH_STOP);
    EXPECT_EQ(poll_all(ctx.get(), id, 64), c.want_text);
    ASSERT_EQ(ember_request_release(ctx.get(), id), EMBER_OK);
  }
  // A stop id: the 10th generated token ends the request and is not part of it.
  Outcome o;
  ember_request_params p = greedy_params(g.prompt, &o);
  const int32_t stop_id = g.ids[9];
  const size_t first = std::find(g.ids.begin(), g.ids.end(), stop_id) - g.ids.begin();
  p.stop_ids = &stop_id;
  p.n_stop_ids = 1;
  uint64_t id = 0;
  ASSERT_EQ(ember_request_submit(ctx.get(), &p, &id), EMBER_OK);
  run_all(ctx.get());
  EXPECT_EQ(o.finish, EMBER_FINISH_STOP);
  EXPECT_EQ(o.ids, std::vector<int32_t>(g.ids.begin(), g.ids.begin() + first));
}

// No allocation inside ember_step (nor submit, poll, cancel, release) once the context exists.
TEST_F(BatchGolden, NoHeapInsideThePass) {
  for (uint32_t threads : {1u, 2u}) {
    ContextPtr ctx = batch_context(model_.get(), 3, 4, 8, threads);
    std::vector<Outcome> out(gold_.size());
    std::vector<uint64_t> ids(gold_.size());
    std::vector<ember_request_params> ps;
    for (size_t i = 0; i < gold_.size(); ++i) {
      ps.push_back(greedy_params(gold_[i].prompt, &out[i]));
      out[i].ids.reserve(256);  // the test's own callback must not allocate either
      out[i].text.reserve(4096);
    }
    const char* stops[] = {"park"};
    ps[1].stop_strings = stops;
    ps[1].n_stop_strings = 1;
    char buf[64];
    size_t n = 0;
    ember_request_info info;
    HeapCounting heap;
    for (size_t i = 0; i < gold_.size(); ++i) {
      ASSERT_EQ(ember_request_submit(ctx.get(), &ps[i], &ids[i]), EMBER_OK);
    }
    uint32_t pending = 1;
    for (int step = 0; pending > 0 && step < 10000; ++step) {
      ASSERT_EQ(ember_step(ctx.get(), &pending), EMBER_OK);
      if (step == 3) {
        ASSERT_EQ(ember_request_cancel(ctx.get(), ids[4]), EMBER_OK);
      }
      ASSERT_EQ(ember_request_text(ctx.get(), ids[0], 0, buf, sizeof buf, &n), EMBER_OK);
      ASSERT_EQ(ember_request_info_get(ctx.get(), ids[2], &info), EMBER_OK);
    }
    for (uint64_t id : ids) ASSERT_EQ(ember_request_release(ctx.get(), id), EMBER_OK);
    EXPECT_EQ(heap.allocs(), 0) << threads << " thread(s): " << heap.bytes() << " bytes";
    EXPECT_EQ(out[0].ids, gold_[0].ids);
  }
}

}  // namespace
