// Converter: unsupported tokenizer.json features are errors naming the field; the CLI path
// (ember-convert --tokenizer-only, ember-tokenize) works end to end; a corrupt tokenizer table in a
// model file is refused at load with a message.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "support/convert.h"
#include "support/json_file.h"
#include "support/test_support.h"
#include "tokenizer_fixture.h"
#include "tokenizer_json.h"
#include "writer.h"

namespace {

using json = nlohmann::json;

// Writes `tj` as DIR/tokenizer.json in a fresh directory and returns the converter's error.
std::string convert_error(const json& tj, const std::string& name) {
  const std::string dir = ember_test::write_tokenizer_dir(name, tj.dump());
  return ember_test::error_message<ember::convert::ConvertError>(
      [&] { ember::convert::load_hf_tokenizer(dir); });
}

class TokenizerConvert : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string p = ember_test::shared_path("models/stories260K/hf/tokenizer.json");
    if (p.empty())
      EMBER_SKIP_OR_FAIL_IN_CI() << "shared models/stories260K/hf/tokenizer.json not found";
    tj_ = ember_test::read_json(p);
    const std::string g = ember_test::shared_path("tokenizers/gpt2/tokenizer.json");
    if (!g.empty()) gpt2_ = ember_test::read_json(g);
  }
  json tj_, gpt2_;
};

TEST_F(TokenizerConvert, UnknownModelType) {
  json t = tj_;
  t["model"]["type"] = "Unigram";
  const std::string e = convert_error(t, "unigram");
  EXPECT_NE(e.find("model.type"), std::string::npos) << e;
  EXPECT_NE(e.find("Unigram"), std::string::npos) << e;
}

TEST_F(TokenizerConvert, UnknownPreTokenizer) {
  json t = tj_;
  t["pre_tokenizer"] = {{"type", "Whitespace"}};
  const std::string e = convert_error(t, "whitespace");
  EXPECT_NE(e.find("pre_tokenizer"), std::string::npos) << e;
  EXPECT_NE(e.find("Whitespace"), std::string::npos) << e;
}

TEST_F(TokenizerConvert, UnknownSplitRegex) {
  if (gpt2_.is_null()) EMBER_SKIP_OR_FAIL_IN_CI() << "shared tokenizers/gpt2 not found";
  json t = gpt2_;
  t["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern", {{"Regex", "\\p{L}+|\\d+"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  const std::string e = convert_error(t, "regex");
  EXPECT_NE(e.find("regex"), std::string::npos) << e;
}

TEST_F(TokenizerConvert, UnknownNormalizer) {
  json t = tj_;
  t["normalizer"] = {{"type", "NFKC"}};
  const std::string e = convert_error(t, "nfkc");
  EXPECT_NE(e.find("normalizer.type 'NFKC'"), std::string::npos) << e;
}

TEST_F(TokenizerConvert, MergeNamesUnknownToken) {
  json t = tj_;
  t["model"]["merges"].push_back("\xE2\x96\x81t zzqx");
  const std::string e = convert_error(t, "merge");
  EXPECT_NE(e.find("model.merges[165]"), std::string::npos) << e;
  EXPECT_NE(e.find("'zzqx' is not in model.vocab"), std::string::npos) << e;
}

TEST_F(TokenizerConvert, AddedTokenOptions) {
  json t = tj_;
  t["added_tokens"][1]["lstrip"] = true;
  const std::string e = convert_error(t, "lstrip");
  EXPECT_NE(e.find("lstrip"), std::string::npos) << e;
}

TEST_F(TokenizerConvert, MissingFileAndBadJson) {
  const std::string dir = ember_test::make_temp_dir("empty");
  const auto load = [&] { ember::convert::load_hf_tokenizer(dir); };
  std::string e = ember_test::error_message<ember::convert::ConvertError>(load);
  EXPECT_NE(e.find("tokenizer.json"), std::string::npos) << e;
  ember_test::write_file(dir + "/tokenizer.json", "{\"model\": [", 11);
  e = ember_test::error_message<ember::convert::ConvertError>(load);
  EXPECT_NE(e.find("not valid JSON"), std::string::npos) << e;
}

// A tokenizer table whose merge names an id past the vocabulary is refused at load.
TEST_F(TokenizerConvert, RuntimeRefusesCorruptTable) {
  const std::string dir = ember_test::shared_path("models/stories260K/hf");
  ember::convert::ModelIR ir;
  ir.has_config = false;
  ir.has_tokenizer = true;
  ir.tokenizer = ember::convert::load_hf_tokenizer(dir);
  ir.tokenizer.merges.push_back({1u, 2u, 99999u});
  const std::string path = ember_test::temp_path("corrupt.ember");
  ember::convert::WriteOptions opts;
  opts.force = true;
  ember::convert::write_ember(ir, path, opts);
  ember_model* m = nullptr;
  const ember_status s = ember_model_load_file(path.c_str(), &m);
  EXPECT_NE(s, EMBER_OK);
  EXPECT_EQ(m, nullptr);
  EXPECT_NE(std::string(ember_last_error()).find("merge"), std::string::npos) << ember_last_error();
  ember_model_free(m);
}

// The user's path: ember-convert --tokenizer-only, then ember-tokenize.
TEST(TokenizerCli, ConvertThenTokenize) {
  EMBER_REQUIRE_SHARED(dir, "models/stories260K/hf");
  const std::string bin = ember_test::build_dir();
  const std::string out_file = ember_test::converted_model(dir, "--tokenizer-only");
  ASSERT_FALSE(out_file.empty());
  std::string out;
  ASSERT_EQ(ember_test::run_command(bin + "/platforms/posix/apps/ember-tokenize -m '" + out_file +
                                        "' -p 'Once upon a time' --ids",
                                    &out),
            0)
      << out;
  // tokenizer_cases.json: "Once upon a time" -> [1, 403, 407, 261, 378] (tokenizers.js, run.c).
  EXPECT_NE(out.find("[1, 403, 407, 261, 378]"), std::string::npos) << out;
  ASSERT_EQ(ember_test::run_command(bin + "/platforms/posix/apps/ember-tokenize -m '" + out_file +
                                        "' --decode '1, 403, 407, 261, 378' --skip-special",
                                    &out),
            0)
      << out;
  EXPECT_NE(out.find("Once upon a time"), std::string::npos) << out;
  ASSERT_EQ(ember_test::run_command(bin + "/platforms/posix/apps/ember-tokenize -m '" + out_file +
                                        "' -p 'a<s>b' --parse-special --json",
                                    &out),
            0)
      << out;
  EXPECT_NE(out.find("\"ids\": [1, 261, 1, 268]"), std::string::npos) << out;
}

}  // namespace
