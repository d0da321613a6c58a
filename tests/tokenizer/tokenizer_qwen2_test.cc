// Qwen2-style tokenizers: the NFC normalizer (runtime NFC from converter-stored utf8proc data,
// checked against utf8proc_NFC itself) and the Qwen2 split regex (single digits), built from the
// shared GPT-2 / Llama 3 tokenizer.json files with those two parts swapped in.
#include <gtest/gtest.h>
#include <utf8proc.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <random>

#include "support/json_file.h"
#include "support/test_support.h"
#include "tokenizer_fixture.h"

namespace {

using json = nlohmann::json;

const char* const kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

std::string write_variant(const std::string& src_dir, const std::string& name,
                          void (*edit)(json* tj)) {
  json tj = ember_test::read_json(src_dir + "/tokenizer.json");
  edit(&tj);
  return ember_test::write_tokenizer_dir(name, tj.dump());
}

std::string utf8(uint32_t cp) {
  utf8proc_uint8_t buf[4];
  const auto n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(cp), buf);
  return std::string(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
}

std::string nfc_reference(const std::string& s) {
  utf8proc_uint8_t* r = utf8proc_NFC(reinterpret_cast<const utf8proc_uint8_t*>(s.c_str()));
  std::string out(reinterpret_cast<char*>(r));
  std::free(r);
  return out;
}

// Random valid UTF-8 rich in what NFC changes: combining marks in any order, decomposed and
// precomposed Latin/Greek/Vietnamese, Hangul jamo and syllables, singletons, exclusions.
std::string random_nfc_text(std::mt19937_64& rng) {
  static const uint32_t kPool[] = {
      'a',     'e',     'o',    'A',    'u',    ' ',    'n',    0x0300, 0x0301, 0x0302, 0x0303,
      0x0308,  0x0323,  0x0327, 0x031B, 0x0345, 0x0344, 0x0340, 0x00C5, 0x212B, 0x2126, 0x1E0A,
      0x1E9B,  0x03B1,  0x0391, 0x1F00, 0x1F80, 0x0958, 0x0915, 0x093C, 0x094D, 0x05D1, 0x05BC,
      0x05B0,  0x1100,  0x1161, 0x11A8, 0xAC00, 0xAC01, 0xD7A3, 0x0CC6, 0x0CC2, 0x0CD5, 0x0BC6,
      0x0BBE,  0x0F73,  0x0F71, 0x0F72, 0x2ADC, 0x0338, 0x226E, 0x3099, 0x304B, 0x304C, 0x1D15E,
      0x1D165, 0x1D16E, 0xFB1D, 0xF900, '1',    '2',    0x0661};
  const int len = static_cast<int>(rng() % 24);
  std::string s;
  for (int i = 0; i < len; ++i) s += utf8(kPool[rng() % (sizeof(kPool) / sizeof(kPool[0]))]);
  return s;
}

TEST(TokenizerQwen2, NfcNormalizerMatchesUtf8proc) {
  EMBER_REQUIRE_SHARED(gpt2, "tokenizers/gpt2");
  const std::string nfc_dir = write_variant(gpt2, "gpt2_nfc", [](json* tj) {
    (*tj)["normalizer"] = {{"type", "NFC"}};
    // Qwen2 ships its added tokens with normalized false (matched in the raw text).
    for (json& a : (*tj)["added_tokens"]) a["normalized"] = false;
  });
  std::string err;
  const ember_model* plain = ember_test::tokenizer_model(gpt2, &err);
  ASSERT_NE(plain, nullptr) << err;
  const ember_model* nfc = ember_test::tokenizer_model(nfc_dir, &err);
  ASSERT_NE(nfc, nullptr) << err;
  std::mt19937_64 rng(7);
  int pass = 0, changed = 0;
  const int n = 5000;
  for (int i = 0; i < n; ++i) {
    const std::string text = random_nfc_text(rng);
    const std::string ref = nfc_reference(text);
    if (ref != text) ++changed;
    const auto got = ember_test::tokenize(nfc, text, 0);
    const auto want = ember_test::tokenize(plain, ref, 0);
    if (got == want) {
      ++pass;
    } else {
      ADD_FAILURE() << "NFC of " << ::testing::PrintToString(text) << " differs from utf8proc's "
                    << ::testing::PrintToString(ref) << ": decoded "
                    << ::testing::PrintToString(ember_test::detokenize(nfc, got, 0));
      if (i > 20) break;
    }
  }
  std::printf("[tokenizer] NFC vs utf8proc_NFC: %d/%d (%d texts changed by NFC)\n", pass, n,
              changed);
  EXPECT_GT(changed, n / 2);
}

// Qwen2's regex differs from Llama 3's only in splitting numbers into single digits, so on the
// Llama 3 vectors without digits the ids must be the recorded ones.
TEST(TokenizerQwen2, SplitRegexOnLlama3Vectors) {
  EMBER_REQUIRE_SHARED(llama3, "tokenizers/llama3");
  EMBER_REQUIRE_SHARED(vec, "tokenizers/llama3/vectors.jsonl");
  const std::string dir = write_variant(llama3, "llama3_qwen2_regex", [](json* tj) {
    (*tj)["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = kQwen2Regex;
  });
  std::string err;
  const ember_model* m = ember_test::tokenizer_model(dir, &err);
  ASSERT_NE(m, nullptr) << err;
  int n = 0, pass = 0, digit_texts = 0;
  for (const std::string& line : ember_test::read_lines(vec)) {
    const json j = json::parse(line);
    if (j["add_special"].get<bool>()) continue;
    const std::string text = j["text"].get<std::string>();
    const auto got = ember_test::tokenize(m, text, EMBER_TOKENIZE_PARSE_SPECIAL);
    // Every id decodes to text holding at most one decimal digit in a row.
    bool has_digit = false;
    for (int32_t id : got) {
      const std::string piece = ember_test::detokenize(m, {id}, 0);
      int run = 0;
      for (char c : piece) {
        run = (c >= '0' && c <= '9') ? run + 1 : 0;
        EXPECT_LE(run, 1) << "token " << id << " " << ::testing::PrintToString(piece);
        has_digit = has_digit || run;
      }
    }
    EXPECT_EQ(ember_test::detokenize(m, got, 0), text);
    if (has_digit) {
      ++digit_texts;
      continue;
    }
    ++n;
    const auto want = j["ids"].get<std::vector<int32_t>>();
    if (got == want) {
      ++pass;
    } else {
      ADD_FAILURE() << ::testing::PrintToString(text);
    }
  }
  std::printf("[tokenizer] qwen2 regex on llama3 vectors without digits: %d/%d (%d with digits)\n",
              pass, n, digit_texts);
  EXPECT_GT(n, 200);
}

}  // namespace

namespace {

bool numeric(uint32_t cp) {
  const auto c = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

std::vector<uint32_t> code_points(const std::string& s) {
  std::vector<uint32_t> out;
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  utf8proc_ssize_t i = 0, n = static_cast<utf8proc_ssize_t>(s.size());
  while (i < n) {
    utf8proc_int32_t cp;
    const auto l = utf8proc_iterate(p + i, n - i, &cp);
    if (l <= 0) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    out.push_back(static_cast<uint32_t>(cp));
    i += l;
  }
  return out;
}

// SmolLM-style pre-tokenizer: Sequence[Digits(individual_digits), ByteLevel(use_regex)]. On the
// GPT-2 vectors without numeric characters the ids are the recorded ones; elsewhere every numeric
// character is a token of its own.
TEST(TokenizerSmolLM, DigitsThenByteLevel) {
  EMBER_REQUIRE_SHARED(gpt2, "tokenizers/gpt2");
  EMBER_REQUIRE_SHARED(vec, "tokenizers/gpt2/vectors.jsonl");
  const std::string dir = write_variant(gpt2, "gpt2_digits", [](json* tj) {
    (*tj)["pre_tokenizer"] = {{"type", "Sequence"},
                              {"pretokenizers",
                               {{{"type", "Digits"}, {"individual_digits", true}},
                                {{"type", "ByteLevel"},
                                 {"add_prefix_space", false},
                                 {"trim_offsets", true},
                                 {"use_regex", true}}}}};
  });
  std::string err;
  const ember_model* m = ember_test::tokenizer_model(dir, &err);
  ASSERT_NE(m, nullptr) << err;
  int n = 0, pass = 0, with_digits = 0;
  for (const std::string& line : ember_test::read_lines(vec)) {
    const json j = json::parse(line);
    const std::string text = j["text"].get<std::string>();
    const auto got = ember_test::tokenize(m, text, 0);
    EXPECT_EQ(ember_test::detokenize(m, got, 0), text);
    bool has_num = false;
    for (uint32_t cp : code_points(text)) has_num = has_num || numeric(cp);
    if (has_num) {
      ++with_digits;
      for (int32_t id : got) {
        const auto cps = code_points(ember_test::detokenize(m, {id}, 0));
        int nums = 0;
        for (uint32_t cp : cps) nums += numeric(cp);
        EXPECT_TRUE(nums == 0 || cps.size() == 1)
            << "token " << id << " in " << ::testing::PrintToString(text);
      }
      continue;
    }
    ++n;
    if (got == j["ids"].get<std::vector<int32_t>>()) {
      ++pass;
    } else {
      ADD_FAILURE() << ::testing::PrintToString(text);
    }
  }
  std::printf(
      "[tokenizer] Digits+ByteLevel on gpt2 vectors without numbers: %d/%d (%d with numbers)\n",
      pass, n, with_digits);
  EXPECT_GT(n, 200);
}

}  // namespace
