// The command-line apps as a user runs them: ember-run's text against llama2.c's (run.c's stdout in
// ../shared/models/stories260K/expected/greedy.json), ember-bench's table and JSON (every field of
// the README's list, the roofline recomputed from the figures it prints), ember-tokenize's ids
// against run.c's prompt ids, and bad input to each: a clear message and an exit code, never a
// crash.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "support/cli.h"
#include "support/convert.h"
#include "support/json_file.h"
#include "support/test_support.h"

namespace {

using json = nlohmann::json;

using ember_test::Cmd;
using ember_test::expect_fails_with;
using ember_test::quote;
using ember_test::run;

// stories260K converted with `args` (e.g. "--quant f32"; "" for the defaults) as `var`.
#define REQUIRE_STORIES(var, args) EMBER_REQUIRE_CONVERTED(var, "models/stories260K/hf", args)

// --- ember-run
// ------------------------------------------------------------------------------------

// Greedy generation of every prompt of greedy.json prints exactly what run.c printed (the prompt,
// the generated text, stopping at BOS where run.c stopped, a newline), with 1 and 2 threads.
TEST(EmberRun, PrintsRunCTextForEveryPrompt) {
  EMBER_REQUIRE_SHARED(expected_path, "models/stories260K/expected/greedy.json");
  REQUIRE_STORIES(model, "--quant f32");
  const json expected = ember_test::read_json(expected_path);
  ASSERT_GE(expected["results"].size(), 5u);
  for (const json& res : expected["results"]) {
    const std::string prompt = res["prompt"].get<std::string>();
    const std::string want = res["run_c_stdout"].get<std::string>();
    const int n = expected["n_new_tokens"].get<int>();
    for (int threads : {1, 2}) {
      const Cmd r =
          run(std::string(EMBER_RUN_BIN) + " -m " + quote(model) + " -p " + quote(prompt) + " -n " +
              std::to_string(n) + " --temp 0 -t " + std::to_string(threads));
      ASSERT_EQ(r.code, 0) << r.err;
      EXPECT_EQ(r.out, want) << "prompt '" << prompt << "', " << threads << " thread(s)";
      // The figures a user reads before flashing anything.
      EXPECT_NE(r.err.find("read per token"), std::string::npos) << r.err;
      EXPECT_NE(r.err.find("KV cache"), std::string::npos) << r.err;
    }
  }
}

// --ctx-shift: 400 tokens in a context of 64 positions, with every KV cache type (the default
// model; BOS does not stop it, so that all 400 are generated); without it, the context's end stops
// it.
// --kv-type shows in the memory line.
TEST(EmberRun, CtxShiftGenerates400TokensIn64Positions) {
  REQUIRE_STORIES(model, "");
  for (const char* kv : {"f32", "f16", "u8"}) {
    const Cmd r =
        run(std::string(EMBER_RUN_BIN) + " -m " + quote(model) +
            " -p 'Once upon a time' -c 64 -n 400 --ctx-shift --no-stop-at-bos --kv-type " + kv);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("generated 400 tokens"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(std::string("KV cache ") + kv), std::string::npos) << r.err;
  }
  const Cmd r = run(std::string(EMBER_RUN_BIN) + " -m " + quote(model) +
                    " -p 'Once upon a time' -c 64 -n 400 --no-stop-at-bos");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err.find("generated 400 tokens"), std::string::npos) << r.err;
  const Cmd bad = run(std::string(EMBER_RUN_BIN) + " -m " + quote(model) + " -p x --kv-type q4");
  ember_test::expect_clean_failure(bad, "--kv-type q4");
}

// greedy.json's five prompts (the empty one included) as a batch file, with 1, 2, 3 and 5 slots, in
// the file's order and reversed: every line's ids are run.c's, in input order on stdout.
TEST(EmberRun, BatchFileGivesRunCIdsForEveryPrompt) {
  REQUIRE_STORIES(model, "--quant f32");
  EMBER_REQUIRE_SHARED(expected_path, "models/stories260K/expected/greedy.json");
  const json ref = ember_test::read_json(expected_path)["results"];
  for (bool reverse : {false, true}) {
    std::vector<size_t> order;
    for (size_t i = 0; i < ref.size(); ++i) order.push_back(reverse ? ref.size() - 1 - i : i);
    const std::string file = ember_test::temp_path(reverse ? "prompts_rev.txt" : "prompts.txt");
    std::string text;
    for (size_t i : order) text += ref[i]["prompt"].get<std::string>() + "\n";
    ember_test::write_file(file, text.data(), text.size());
    for (int parallel : {1, 2, 3, 5}) {
      SCOPED_TRACE(testing::Message() << "--parallel " << parallel << (reverse ? " reversed" : ""));
      const Cmd r =
          run(std::string(EMBER_RUN_BIN) + " -m " + quote(model) + " --batch-file " + quote(file) +
              " --parallel " + std::to_string(parallel) + " -n 200 --temp 0");
      ASSERT_EQ(r.code, 0) << r.err;
      std::istringstream lines(r.out);
      std::string line;
      size_t k = 0;
      for (; std::getline(lines, line); ++k) {
        ASSERT_LT(k, order.size());
        const json o = json::parse(line);
        const json& want = ref[order[k]];
        EXPECT_EQ(o["index"], k);
        EXPECT_EQ(o["ids"], want["generated_ids"]) << "prompt '" << want["prompt"] << "'";
        EXPECT_EQ(o["generated_tokens"], want["generated_ids"].size());
        EXPECT_EQ(o["finish_reason"], want["generated_ids"].size() < 200 ? "eos" : "length");
        EXPECT_EQ(o["prompt_tokens"], want["prompt_ids"].size());
        const std::string full = want["full_text"].get<std::string>();
        const std::string prompt = want["prompt"].get<std::string>();
        if (!prompt.empty()) {
          EXPECT_EQ(prompt + o["text"].get<std::string>(), full);
        }
        EXPECT_GT(o["first_token_ms"].get<double>(), 0.0);
        EXPECT_GE(o["total_ms"].get<double>(), o["first_token_ms"].get<double>());
      }
      EXPECT_EQ(k, order.size());
      EXPECT_NE(r.err.find("5 requests (0 failed)"), std::string::npos) << r.err;
      EXPECT_NE(r.err.find("p95"), std::string::npos) << r.err;
    }
  }
}

// JSON lines set their own options; a bad line gets an error object and the others still run.
TEST(EmberRun, BatchFileLinesAndErrors) {
  REQUIRE_STORIES(model, "");
  const std::string file = ember_test::temp_path("mixed.txt");
  const std::string text =
      "Once upon a time\n"
      "{\"prompt\": \"The little dog\", \"max_tokens\": 5}\n"
      "{\"prompt\": 42}\n"
      "{not json\n"
      "{\"prompt\": \"Once upon a time\", \"stop\": [\"little\", \"zzz\"]}\n"
      "{\"prompt\": \"x\", \"top_p\": 0}\n"
      "{\"prompt\": \"Tom\", \"temperature\": 1.0, \"seed\": 7, \"max_tokens\": 12}\n"
      "{\"prompt\": \"x\", \"max_tokens\": -1}\n"
      "{\"prompt\": \"x\", \"temperature\": 1e300}\n";
  ember_test::write_file(file, text.data(), text.size());
  const Cmd r = run(std::string(EMBER_RUN_BIN) + " -m " + quote(model) + " --batch-file " +
                    quote(file) + " -n 30 --temp 0");
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream lines(r.out);
  std::vector<json> out;
  for (std::string line; std::getline(lines, line);) out.push_back(json::parse(line));
  ASSERT_EQ(out.size(), 9u) << r.out;
  for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i]["index"], i);
  EXPECT_EQ(out[0]["generated_tokens"], 30);
  EXPECT_EQ(out[1]["generated_tokens"], 5);
  EXPECT_EQ(out[1]["finish_reason"], "length");
  EXPECT_NE(out[2]["error"].get<std::string>().find("prompt"), std::string::npos);
  EXPECT_TRUE(out[3].contains("error"));
  const std::string t0 = out[0]["text"], t4 = out[4]["text"];
  ASSERT_NE(t0.find("little"), std::string::npos) << t0;
  EXPECT_EQ(t4, t0.substr(0, t0.find("little")));
  EXPECT_EQ(out[4]["finish_reason"], "stop");
  EXPECT_NE(out[5]["error"].get<std::string>().find("top_p"), std::string::npos);
  EXPECT_EQ(out[6]["generated_tokens"], 12);
  // Numbers out of their field's range are refused, not wrapped (-1 would be 2^32-1 new tokens).
  EXPECT_NE(out[7]["error"].get<std::string>().find("max_tokens"), std::string::npos);
  EXPECT_NE(out[8]["error"].get<std::string>().find("temperature"), std::string::npos);
  EXPECT_NE(r.err.find("9 requests (5 failed)"), std::string::npos) << r.err;
  // A file that cannot be read is an error exit with a message.
  expect_fails_with(std::string(EMBER_RUN_BIN) + " -m " + quote(model) + " --batch-file " +
                        quote(ember_test::temp_path("absent.txt")),
                    "absent batch file", "cannot read --batch-file");
}

TEST(EmberRun, RejectsBadInputWithAMessage) {
  REQUIRE_STORIES(model, "");
  const std::string bin = EMBER_RUN_BIN;

  const std::string missing = ember_test::temp_path("no-such-model.ember");
  expect_fails_with(bin + " -m " + quote(missing) + " -p hi -n 4", "missing model",
                    "loading the model");

  // Not a model: random bytes, and a real model cut in half.
  const std::string junk = ember_test::temp_path("junk.ember");
  std::vector<unsigned char> bytes(4096);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(i * 151 + 7);
  ember_test::write_file(junk, bytes.data(), bytes.size());
  expect_fails_with(bin + " -m " + quote(junk) + " -p hi -n 4", "junk file", "loading the model");

  const std::vector<unsigned char> whole = ember_test::read_file(model);
  const std::string half = ember_test::temp_path("half.ember");
  ember_test::write_file(half, whole.data(), whole.size() / 2);
  expect_fails_with(bin + " -m " + quote(half) + " -p hi -n 4", "truncated model",
                    "loading the model");

  // A context longer than the model's, and a malformed number.
  expect_fails_with(bin + " -m " + quote(model) + " -p hi -n 4 -c 100000", "context too long", "");
  expect_fails_with(bin + " -m " + quote(model) + " -p hi -n many", "-n many", "-n");
}

// --- ember-tokenize
// -------------------------------------------------------------------------------

TEST(EmberTokenize, IdsMatchRunCPromptIds) {
  EMBER_REQUIRE_SHARED(expected_path, "models/stories260K/expected/greedy.json");
  REQUIRE_STORIES(model, "");
  const json expected = ember_test::read_json(expected_path);
  for (const json& res : expected["results"]) {
    const std::string prompt = res["prompt"].get<std::string>();
    const Cmd r = run(std::string(EMBER_TOKENIZE_BIN) + " -m " + quote(model) + " -p " +
                      quote(prompt) + " --ids");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(json::parse(r.out), res["prompt_ids"]) << "prompt '" << prompt << "'";
  }
}

TEST(EmberTokenize, RejectsBadInputWithAMessage) {
  REQUIRE_STORIES(model, "");
  const std::string bin = EMBER_TOKENIZE_BIN;
  expect_fails_with(bin + " -m " + quote(ember_test::temp_path("absent.ember")) + " -p hi",
                    "missing model", "loading the model");
  expect_fails_with(bin + " -m " + quote(model) + " -p hi --ids --json", "--ids with --json",
                    "excludes");
  expect_fails_with(bin + " -m " + quote(model) + " --decode '1 99999'",
                    "an id past the vocabulary", "");
}

// --- ember-bench
// ----------------------------------------------------------------------------------

// --json: one object per (threads, test) in order, with every documented field, spreads that
// bracket the median, and a decode roofline that is what the printed figures give.
TEST(EmberBench, JsonHasEveryTestAndField) {
  REQUIRE_STORIES(model, "");
  const Cmd r = run(std::string(EMBER_BENCH_BIN) + " -m " + quote(model) +
                    " -p 8,16 -n 4 -t 1,2 -r 2 --json --bandwidth-mib 64");
  ASSERT_EQ(r.code, 0) << r.err;
  const json a = json::parse(r.out);
  ASSERT_TRUE(a.is_array());
  ASSERT_EQ(a.size(), 6u) << r.out;
  const char* tests[] = {"pp8", "pp16", "tg4"};
  for (size_t i = 0; i < a.size(); ++i) {
    const json& o = a[i];
    SCOPED_TRACE(o.dump());
    const std::string test = tests[i % 3];
    EXPECT_EQ(o["test"], test);
    EXPECT_EQ(o["threads"], i < 3 ? 1 : 2);
    EXPECT_EQ(o["batch"], test == "tg4" ? 1 : (test == "pp8" ? 8 : 16));
    EXPECT_EQ(o["model"], model.substr(model.rfind('/') + 1));  // the file name
    EXPECT_TRUE(o["kernels"].is_string());
    const double med = o["tps_median"], lo = o["tps_min"], hi = o["tps_max"];
    EXPECT_GT(lo, 0.0);
    EXPECT_LE(lo, med);
    EXPECT_LE(med, hi);
    const double bw = o["bandwidth_gbs"], bw_med = o["bandwidth_median_gbs"];
    EXPECT_GT(bw, 0.0);
    EXPECT_GT(bw_med, 0.0);
    EXPECT_LE(bw_med, bw);
    const double token_bytes = o["token_read_bytes"];
    EXPECT_GT(token_bytes, 0.0);
    if (test == "tg4") {
      ASSERT_TRUE(o.contains("roofline"));
      const double roof = o["roofline"];
      // tokens/s x bytes per token / bandwidth, from the rounded figures printed.
      EXPECT_NEAR(roof, med * token_bytes / (bw * 1e9), 1e-4 + 1e-3 * roof);
    } else {
      EXPECT_FALSE(o.contains("roofline")) << "prefill has no roofline";
    }
  }
}

// The table: a header, one row per test, the decode row with its roofline; without a bandwidth
// probe (--bandwidth-mib 0) the roofline is absent (not 0%) and the JSON says null.
TEST(EmberBench, TablePrintsEveryTest) {
  REQUIRE_STORIES(model, "");
  const std::string bin = EMBER_BENCH_BIN;
  Cmd r = run(bin + " -m " + quote(model) + " -p 8 -n 4 -t 1 -r 1 --bandwidth-mib 16");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("| model"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| pp8 "), std::string::npos) << r.out;
  const size_t tg = r.out.find("| tg4 ");
  ASSERT_NE(tg, std::string::npos) << r.out;
  const std::string tg_row = r.out.substr(tg, r.out.find('\n', tg) - tg);
  EXPECT_NE(tg_row.find('%'), std::string::npos) << tg_row;
  EXPECT_NE(r.err.find("roofline"), std::string::npos) << r.err;

  r = run(bin + " -m " + quote(model) + " -p 0 -n 4 -t 1 -r 1 --bandwidth-mib 0");
  ASSERT_EQ(r.code, 0) << r.err;
  const size_t row = r.out.find("| tg4 ");
  ASSERT_NE(row, std::string::npos) << r.out;
  EXPECT_EQ(r.out.substr(row, r.out.find('\n', row) - row).find('%'), std::string::npos) << r.out;
  r = run(bin + " -m " + quote(model) + " -p 0 -n 4 -t 1 -r 1 --bandwidth-mib 0 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json a = json::parse(r.out);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_TRUE(a[0]["roofline"].is_null()) << r.out;
  EXPECT_TRUE(a[0]["bandwidth_gbs"].is_null()) << r.out;
}

// -d: each test again after that many positions are in the cache, named and tagged with its depth;
// a depth whose tests do not fit the model's context is refused before anything runs.
TEST(EmberBench, DepthRunsTestsAfterAFilledCache) {
  REQUIRE_STORIES(model, "");
  const std::string bin = EMBER_BENCH_BIN;
  Cmd r =
      run(bin + " -m " + quote(model) + " -p 8 -n 4 -d 0,300 -t 1 -r 1 --bandwidth-mib 0 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json a = json::parse(r.out);
  ASSERT_EQ(a.size(), 4u) << r.out;
  const char* names[] = {"pp8", "tg4", "pp8@d300", "tg4@d300"};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(a[i]["test"], names[i]);
    EXPECT_EQ(a[i]["depth"], i < 2 ? 0 : 300);
    EXPECT_GT(a[i]["tps_median"].get<double>(), 0.0);
  }
  expect_fails_with(bin + " -m " + quote(model) + " -p 8 -n 4 -d 510 --bandwidth-mib 0",
                    "-d past the context", "tests need 518 positions, the model has 512");
}

TEST(EmberBench, RejectsBadArgumentsWithAMessage) {
  REQUIRE_STORIES(model, "");
  const std::string bin = EMBER_BENCH_BIN;
  expect_fails_with(bin + " -m " + quote(model) + " -p 8,abc -n 4 --bandwidth-mib 0", "-p 8,abc",
                    "bad -p value 'abc'");

  expect_fails_with(
      bin + " -m " + quote(ember_test::temp_path("absent.ember")) + " -p 8 -n 4 --bandwidth-mib 0",
      "missing model", "absent.ember");

  expect_fails_with(bin + " -m " + quote(model) + " -p 0 -n 100000 --bandwidth-mib 0",
                    "-n beyond the context", "tests need 100000 positions");

  expect_fails_with(bin + " -m " + quote(model) + " -p 8 -n 4 -r 0 --bandwidth-mib 0", "-r 0",
                    "-r");
}

}  // namespace
