// SentencePiece tokenizers saved with the Metaspace pre-tokenizer (newer transformers) instead of
// the Prepend/Replace normalizer: on texts where the two are defined to agree (HF Metaspace skips
// its prefix when the text already starts with a space, and split=true cuts runs of spaces), the
// ids must be the recorded Llama 2 ones.
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "support/json_file.h"
#include "support/test_support.h"
#include "tokenizer_fixture.h"

namespace {

using json = nlohmann::json;

void check(const char* scheme, bool split) {
  EMBER_REQUIRE_SHARED(src, "tokenizers/llama2");
  EMBER_REQUIRE_SHARED(vec, "tokenizers/llama2/vectors.jsonl");
  json tj = ember_test::read_json(src + "/tokenizer.json");
  tj["normalizer"] = nullptr;
  tj["pre_tokenizer"] = {{"type", "Metaspace"},
                         {"replacement", "\xE2\x96\x81"},
                         {"prepend_scheme", scheme},
                         {"split", split}};
  tj["decoder"] = {{"type", "Sequence"},
                   {"decoders",
                    {{{"type", "Metaspace"},
                      {"replacement", "\xE2\x96\x81"},
                      {"prepend_scheme", scheme},
                      {"split", split}},
                     {{"type", "ByteFallback"}},
                     {{"type", "Fuse"}}}}};
  const std::string dir = ember_test::write_tokenizer_dir(
      std::string("metaspace_") + scheme + (split ? "_split" : ""), tj.dump());
  std::string err;
  const ember_model* m = ember_test::tokenizer_model(dir, &err);
  ASSERT_NE(m, nullptr) << err;
  int n = 0, pass = 0;
  for (const std::string& line : ember_test::read_lines(vec)) {
    const json j = json::parse(line);
    const std::string t = j["text"].get<std::string>();
    if (!t.empty() && (t[0] == ' ' || t.compare(0, 3, "\xE2\x96\x81") == 0)) continue;
    if (split && (t.find("  ") != std::string::npos || t.find("\xE2\x96\x81") != std::string::npos))
      continue;
    ++n;
    const auto want = j["ids"].get<std::vector<int32_t>>();
    const auto got =
        ember_test::tokenize(m, t, j["add_special"].get<bool>() ? EMBER_TOKENIZE_ADD_SPECIAL : 0);
    if (got == want) {
      ++pass;
    } else {
      ADD_FAILURE() << ::testing::PrintToString(t);
    }
    if (!j["add_special"].get<bool>() && !j.contains("decoded")) {
      EXPECT_EQ(ember_test::detokenize(m, want, 0), t);
    }
  }
  std::printf("[tokenizer] llama2 as Metaspace(%s, split %d): %d/%d\n", scheme, split, pass, n);
  EXPECT_GT(n, 300);
}

TEST(TokenizerMetaspace, Always) { check("always", false); }
TEST(TokenizerMetaspace, AlwaysSplit) { check("always", true); }
TEST(TokenizerMetaspace, First) { check("first", false); }

}  // namespace
