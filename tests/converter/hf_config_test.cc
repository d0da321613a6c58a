// config.json / generation_config.json -> ConfigSpec, on the two shared models and crafted configs.
#include "hf_config.h"

#include <gtest/gtest.h>

#include "converter_test_util.h"

namespace ember {
namespace convert {
namespace {

using json = nlohmann::json;

json stories_like() {
  return json::parse(R"({"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":64,
    "intermediate_size":172,"num_hidden_layers":5,"num_attention_heads":8,"num_key_value_heads":4,
    "vocab_size":512,"max_position_embeddings":512,"rms_norm_eps":1e-5,"rope_theta":10000.0,
    "tie_word_embeddings":true,"hidden_act":"silu"})");
}

std::string error_of(const json& j) {
  return ember_test::error_message<ConvertError>([&] { parse_hf_config(j, "config.json"); });
}

TEST(HfConfig, Stories260K) {
  EMBER_REQUIRE_SHARED(dir, "models/stories260K/hf");
  const ConfigSpec c = load_hf_config(dir);
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.hidden_size, 64u);
  EXPECT_EQ(c.num_layers, 5u);
  EXPECT_EQ(c.num_heads, 8u);
  EXPECT_EQ(c.num_kv_heads, 4u);
  EXPECT_EQ(c.head_dim, 8u);
  EXPECT_EQ(c.intermediate_size, 172u);
  EXPECT_EQ(c.vocab_size, 512u);
  EXPECT_EQ(c.max_context, 512u);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-5f);
  EXPECT_FLOAT_EQ(c.rope_theta, 10000.0f);
  EXPECT_EQ(c.rope_scaling_type, fb::RopeScalingType::NONE);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.mlp_bias);
  EXPECT_EQ(c.activation, fb::Activation::SILU);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{2}));
}

TEST(HfConfig, AiDreams260KOtherShapes) {
  EMBER_REQUIRE_SHARED(dir, "models/aidreams260K/hf");
  const ConfigSpec c = load_hf_config(dir);
  EXPECT_EQ(c.num_layers, 4u);
  EXPECT_EQ(c.num_heads, 4u);
  EXPECT_EQ(c.num_kv_heads, 4u);
  EXPECT_EQ(c.head_dim, 16u);
  EXPECT_EQ(c.max_context, 128u);
}

TEST(HfConfig, MissingConfigJson) {
  const std::string dir = ember_test::make_temp_dir("noconfig");
  const std::string e = ember_test::error_message<ConvertError>([&] { load_hf_config(dir); });
  EXPECT_NE(e.find("no config.json"), std::string::npos) << e;
}

TEST(HfConfig, UnsupportedArchitecture) {
  json j = stories_like();
  j["architectures"] = {"MistralForCausalLM"};
  j["model_type"] = "mistral";
  EXPECT_NE(error_of(j).find("unsupported architecture 'MistralForCausalLM'"), std::string::npos)
      << error_of(j);
  j = stories_like();
  j.erase("architectures");
  j["model_type"] = "gpt2";
  EXPECT_NE(error_of(j).find("unsupported architecture 'gpt2'"), std::string::npos) << error_of(j);
}

TEST(HfConfig, HeadDimAndKvHeadsDefaults) {
  json j = stories_like();
  j.erase("num_key_value_heads");
  const ConfigSpec c = parse_hf_config(j, "config.json");
  EXPECT_EQ(c.head_dim, 8u);  // 64 / 8
  EXPECT_EQ(c.num_kv_heads, 8u);
  j["head_dim"] = 16;
  EXPECT_EQ(parse_hf_config(j, "config.json").head_dim, 16u);
}

TEST(HfConfig, RopeScaling) {
  json j = stories_like();
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 8.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  ConfigSpec c = parse_hf_config(j, "config.json");
  EXPECT_EQ(c.rope_scaling_type, fb::RopeScalingType::LLAMA3);
  EXPECT_FLOAT_EQ(c.rope_factor, 8.0f);
  EXPECT_EQ(c.rope_original_max_position, 8192u);
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  c = parse_hf_config(j, "config.json");
  EXPECT_EQ(c.rope_scaling_type, fb::RopeScalingType::LINEAR);
  EXPECT_FLOAT_EQ(c.rope_factor, 2.0f);
  j["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
  EXPECT_EQ(parse_hf_config(j, "config.json").rope_scaling_type, fb::RopeScalingType::DYNAMIC);
  j["rope_scaling"] = {
      {"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 4096}};
  EXPECT_EQ(parse_hf_config(j, "config.json").rope_scaling_type, fb::RopeScalingType::YARN);
  j["rope_scaling"] = {{"rope_type", "longrope"}, {"factor", 4.0}};
  EXPECT_NE(error_of(j).find("unsupported rope_scaling type 'longrope'"), std::string::npos);
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  EXPECT_NE(error_of(j).find("original_max_position_embeddings"), std::string::npos);
}

TEST(HfConfig, EosIdsFromConfigAndGenerationConfig) {
  const std::string dir = ember_test::make_temp_dir("eos");
  json j = stories_like();
  j["eos_token_id"] = 2;
  ember_test::write_text(dir + "/config.json", j.dump());
  ember_test::write_text(dir + "/generation_config.json", R"({"eos_token_id":[2, 7, 9]})");
  EXPECT_EQ(load_hf_config(dir).eos_token_ids, (std::vector<int32_t>{2, 7, 9}));
  ember_test::write_text(dir + "/generation_config.json", R"({"eos_token_id": 900})");
  EXPECT_THROW(load_hf_config(dir), ConvertError);  // out of the vocabulary
}

TEST(HfConfig, BadFieldsAreNamed) {
  json j = stories_like();
  j.erase("hidden_size");
  EXPECT_NE(error_of(j).find("missing field 'hidden_size'"), std::string::npos);
  j = stories_like();
  j["num_hidden_layers"] = -3;
  EXPECT_NE(error_of(j).find("'num_hidden_layers' is negative"), std::string::npos);
  j = stories_like();
  j["vocab_size"] = "512";
  EXPECT_NE(error_of(j).find("'vocab_size' is not an integer"), std::string::npos);
  j = stories_like();
  j["num_key_value_heads"] = 3;
  EXPECT_NE(error_of(j).find("not a multiple of num_key_value_heads"), std::string::npos);
  j = stories_like();
  j["hidden_size"] = 99999999999LL;
  EXPECT_NE(error_of(j).find("too large"), std::string::npos);
  j = stories_like();
  j["hidden_act"] = "relu2";
  EXPECT_NE(error_of(j).find("unsupported hidden_act 'relu2'"), std::string::npos);
  EXPECT_NE(error_of(json::array()).find("not a JSON object"), std::string::npos);
  const std::string dir = ember_test::make_temp_dir("badjson");
  ember_test::write_text(dir + "/config.json", "{\"hidden_size\": ");
  const std::string e = ember_test::error_message<ConvertError>([&] { load_hf_config(dir); });
  EXPECT_NE(e.find("config.json: not valid JSON"), std::string::npos) << e;
}

}  // namespace
}  // namespace convert
}  // namespace ember
