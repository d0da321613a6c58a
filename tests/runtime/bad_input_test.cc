// Hostile model files and bad API arguments: each gives a non-zero status and a message naming what
// is wrong, never a crash (these tests are meant to run under ASan/UBSan too).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "e2e/e2e_util.h"
#include "runtime/rebuild.h"

namespace ember_test {
namespace {

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EMBER_REQUIRE_CONVERTED(path, "models/stories260K/hf", "--quant f32");
    path_ = path;
    const auto bytes = read_file(path_);
    file_.assign(bytes.begin(), bytes.end());
    ASSERT_GT(file_.size(), 1000u);
  }

  // Loads `bytes` from an exactly-sized aligned copy; returns the status, message in *msg.
  // ember_model_required_bytes verifies as the load does: the same status and message, or on
  // success the figure the loaded model reports.
  static ember_status load(const std::vector<uint8_t>& bytes, std::string* msg = nullptr) {
    AlignedBuffer buf(bytes.data(), bytes.size());
    size_t need = 0;
    const ember_status planned = ember_model_required_bytes(buf.p, buf.n, &need);
    const std::string plan_msg = planned == EMBER_OK ? "" : ember_last_error();
    ember_model* m = nullptr;
    const ember_status s = ember_model_load_buffer(buf.p, buf.n, &m);
    if (msg) *msg = s == EMBER_OK ? "" : ember_last_error();
    EXPECT_EQ(planned, s) << "required_bytes: " << plan_msg << "; load: " << ember_last_error();
    if (s == EMBER_OK) {
      EXPECT_NE(m, nullptr);
      ember_model_info info;
      EXPECT_EQ(ember_model_get_info(m, &info), EMBER_OK);
      EXPECT_EQ(info.model_bytes, need);
    } else {
      EXPECT_EQ(plan_msg, ember_last_error());
      EXPECT_EQ(m, nullptr);
      EXPECT_GT(std::strlen(ember_last_error()), 10u) << "status " << ember_status_string(s);
    }
    ember_model_free(m);
    return s;
  }

  // Expects failure with `status` and a message containing every string of `needles`.
  static void expect_fail(const std::vector<uint8_t>& bytes, ember_status status,
                          std::vector<std::string> needles) {
    std::string msg;
    const ember_status s = load(bytes, &msg);
    EXPECT_EQ(s, status) << ember_status_string(s) << ": " << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "message: " << msg;
    std::printf("  -> %s: %s\n", ember_status_string(s), msg.c_str());
  }

  std::string path_;
  std::vector<uint8_t> file_;
};

TEST_F(BadInputTest, RebuiltFileWithoutEditsLoadsAndComputesTheSameLogits) {
  const ModelSpec spec = read_spec(file_);
  const auto rebuilt = write_spec(spec);
  AlignedBuffer buf(rebuilt.data(), rebuilt.size());
  ember_model* m = nullptr;
  ASSERT_EQ(ember_model_load_buffer(buf.p, buf.n, &m), EMBER_OK) << ember_last_error();
  ModelPtr rebuilt_model(m);
  ModelPtr original = load_model(path_);
  ASSERT_TRUE(original);
  const std::vector<int32_t> ids = {1, 403, 407, 261, 378};
  ContextPtr c1 = make_context(original.get()), c2 = make_context(rebuilt_model.get());
  ASSERT_TRUE(c1 && c2);
  const auto a = teacher_forced_logits(c1.get(), 512, ids, 8);
  const auto b = teacher_forced_logits(c2.get(), 512, ids, 8);
  EXPECT_EQ(a, b);
}

TEST_F(BadInputTest, TruncatedFileAtManyOffsets) {
  std::vector<size_t> cuts;
  for (size_t c = 0; c < 1024 && c < file_.size(); ++c) cuts.push_back(c);
  for (size_t c = 1024; c < file_.size(); c += file_.size() / 257) cuts.push_back(c);
  cuts.push_back(file_.size() - 1);
  size_t failures = 0;
  for (size_t c : cuts) {
    std::vector<uint8_t> part(file_.begin(), file_.begin() + c);
    if (load(part) != EMBER_OK)
      ++failures;
    else
      ADD_FAILURE() << "a file cut at " << c << " of " << file_.size() << " bytes loaded";
  }
  EXPECT_EQ(failures, cuts.size());
  std::string msg;
  std::vector<uint8_t> part(file_.begin(), file_.begin() + file_.size() - 1);
  load(part, &msg);
  std::printf("  cut by one byte: %s\n", msg.c_str());
}

TEST_F(BadInputTest, FlippedHeaderBytes) {
  for (size_t i = 0; i < 12; ++i) {
    auto bad = file_;
    bad[i] ^= 0xFF;
    std::string msg;
    EXPECT_NE(load(bad, &msg), EMBER_OK) << "byte " << i << " flipped";
  }
}

TEST_F(BadInputTest, FlippedBytesAnywhereInTheFlatBufferNeverCrash) {
  uint32_t fb_size = 0;
  std::memcpy(&fb_size, file_.data(), 4);
  size_t refused = 0, total = 0;
  for (size_t i = 0; i < 4 + size_t{fb_size}; i += 3) {
    auto bad = file_;
    bad[i] ^= static_cast<uint8_t>(0x5A + i);
    refused += load(bad) != EMBER_OK;
    ++total;
  }
  std::printf(
      "  %zu of %zu single-byte corruptions of the FlatBuffer refused (the rest hit "
      "strings, scores or padding)\n",
      refused, total);
  EXPECT_GT(refused, 0u);
}

TEST_F(BadInputTest, WrongIdentifier) {
  auto bad = file_;
  std::memcpy(&bad[8], "GGUF", 4);
  expect_fail(bad, EMBER_ERR_BAD_FORMAT, {"identifier", "GGUF", "EMBR"});
}

TEST_F(BadInputTest, TensorOffsetPastTheEnd) {
  ModelSpec s = read_spec(file_);
  TensorSpec* t = s.find("model.norm.weight");
  ASSERT_NE(t, nullptr);
  t->data_offset = (s.weights.size() + 63) / 64 * 64;
  expect_fail(write_spec(s), EMBER_ERR_BAD_FORMAT, {"model.norm.weight", "past the weight region"});
}

TEST_F(BadInputTest, TensorOffsetThatOverflows) {
  ModelSpec s = read_spec(file_);
  TensorSpec* t = s.find("model.layers.1.mlp.down_proj.weight");
  ASSERT_NE(t, nullptr);
  t->data_offset = std::numeric_limits<uint64_t>::max() - 63;
  expect_fail(write_spec(s), EMBER_ERR_BAD_FORMAT, {"model.layers.1.mlp.down_proj.weight"});
}

TEST_F(BadInputTest, MisalignedTensorOffset) {
  ModelSpec s = read_spec(file_);
  s.find("model.layers.0.self_attn.q_proj.weight")->data_offset += 4;
  expect_fail(write_spec(s), EMBER_ERR_BAD_FORMAT, {"q_proj", "aligned"});
}

// A [uint64] shape at 4 mod 8 passes FlatBuffers 2.0's verifier (it checks the vector's length
// field, not the elements); reading it would fault on a core without unaligned 64-bit loads. The
// file is fuzz_model_load's finding.
TEST_F(BadInputTest, MisalignedShapeVector) {
  const auto bytes = read_file(EMBER_FUZZ_REGRESSIONS_DIR "/model_load/shape-misaligned");
  ASSERT_GT(bytes.size(), 1000u);
  expect_fail(std::vector<uint8_t>(bytes.begin(), bytes.end()), EMBER_ERR_BAD_FORMAT,
              {"shape", "8-byte aligned"});
}

TEST_F(BadInputTest, DataSizeDisagreesWithShape) {
  ModelSpec s = read_spec(file_);
  s.find("model.layers.2.mlp.gate_proj.weight")->data_size -= 4;
  expect_fail(write_spec(s), EMBER_ERR_BAD_FORMAT, {"gate_proj", "data_size"});
}

TEST_F(BadInputTest, ShapeDisagreesWithConfig) {
  ModelSpec s = read_spec(file_);
  TensorSpec* t = s.find("model.layers.2.self_attn.k_proj.weight");
  t->shape = {64, 64};
  t->data_size = 64 * 64 * 4;
  expect_fail(write_spec(s), EMBER_ERR_BAD_FORMAT,
              {"model.layers.2.self_attn.k_proj.weight", "[64, 64]", "[32, 64]"});
}

TEST_F(BadInputTest, ConfigDisagreesWithTensors) {
  ModelSpec s = read_spec(file_);
  s.intermediate_size = 170;
  expect_fail(write_spec(s), EMBER_ERR_BAD_FORMAT, {"gate_proj", "[172, 64]", "[170, 64]"});
}

TEST_F(BadInputTest, InconsistentConfig) {
  ModelSpec s = read_spec(file_);
  s.num_kv_heads = 3;
  expect_fail(write_spec(s), EMBER_ERR_BAD_FORMAT, {"num_kv_heads 3", "num_heads 8"});
  s = read_spec(file_);
  s.num_layers = 0;
  expect_fail(write_spec(s), EMBER_ERR_BAD_FORMAT, {"num_layers"});
  s = read_spec(file_);
  s.vocab_size = 0xFFFFFFFFu;
  expect_fail(write_spec(s), EMBER_ERR_BAD_FORMAT, {"vocab_size"});
  s = read_spec(file_);
  s.num_layers = 6;  // one layer more than the tensors
  expect_fail(write_spec(s), EMBER_ERR_BAD_FORMAT, {"model.layers.5.", "missing"});
}

TEST_F(BadInputTest, MissingTensor) {
  ModelSpec s = read_spec(file_);
  s.erase("model.layers.3.mlp.up_proj.weight");
  expect_fail(write_spec(s), EMBER_ERR_BAD_FORMAT,
              {"model.layers.3.mlp.up_proj.weight", "missing"});
  s = read_spec(file_);
  s.tie_embeddings = false;  // then lm_head.weight must exist
  expect_fail(write_spec(s), EMBER_ERR_BAD_FORMAT, {"lm_head.weight", "missing"});
}

TEST_F(BadInputTest, WeightRegionPastTheEnd) {
  ModelSpec s = read_spec(file_);
  s.weights_size_override = s.weights.size() + 64;
  expect_fail(write_spec(s), EMBER_ERR_BAD_FORMAT, {"weight region", "past the end"});
}

TEST_F(BadInputTest, NewerVersionsAndUnknownFeaturesAreRefused) {
  ModelSpec s = read_spec(file_);
  s.min_runtime_version = 99;
  expect_fail(write_spec(s), EMBER_ERR_UNSUPPORTED, {"99"});
  s = read_spec(file_);
  s.required_features |= 1ull << 40;
  expect_fail(write_spec(s), EMBER_ERR_UNSUPPORTED, {"features", "0x10000000000"});
  s = read_spec(file_);
  s.architecture = "gpt2";
  expect_fail(write_spec(s), EMBER_ERR_UNSUPPORTED, {"gpt2"});
}

TEST_F(BadInputTest, BadQuantizationParams) {
  const std::string hf = shared_path("models/stories260K/hf");
  const std::string p8 = converted_model(hf, "--quant u8 --params f32");
  ASSERT_FALSE(p8.empty());
  const auto bytes = read_file(p8);
  const std::vector<uint8_t> file(bytes.begin(), bytes.end());
  const ModelSpec base = read_spec(file);
  const TensorSpec* t = nullptr;
  for (const auto& ts : base.tensors)
    if (ts.dtype == ember::fb::DType::U8_ZERO_ONE && ts.name.find("v_proj") != std::string::npos)
      t = &ts;
  ASSERT_NE(t, nullptr) << "no u8 tensor in the --quant u8 file";
  for (float bad :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(), -1.0f}) {
    ModelSpec s = base;
    std::memcpy(&s.weights[t->params_offset + 4 * 3], &bad, 4);  // scale of row 3, group 0
    expect_fail(write_spec(s), EMBER_ERR_BAD_FORMAT, {t->name, "scale"});
  }
  ModelSpec s = base;
  s.find(t->name)->params_size -= 8;
  expect_fail(write_spec(s), EMBER_ERR_BAD_FORMAT, {t->name, "params_size"});
  s = base;
  s.find(t->name)->group_size = 1000;
  expect_fail(write_spec(s), EMBER_ERR_BAD_FORMAT, {t->name, "group_size"});
  s = base;  // a non-finite min
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(&s.weights[t->params_offset + 4 * 20], &nan, 4);  // min of row 4, group 0
  expect_fail(write_spec(s), EMBER_ERR_BAD_FORMAT, {t->name, "min"});
}

// f16 params (format 3): the same checks on f16 values and sizes, an unknown params type, an
// activation group that does not fit the group.
TEST_F(BadInputTest, BadF16ParamsAndActGroup) {
  const std::string hf = shared_path("models/stories260K/hf");
  const std::string p8 = converted_model(hf, "--quant u8 --group 64 --params f16 --act-group 16");
  ASSERT_FALSE(p8.empty());
  const auto bytes = read_file(p8);
  const ModelSpec base = read_spec(std::vector<uint8_t>(bytes.begin(), bytes.end()));
  const TensorSpec* t = nullptr;
  for (const auto& ts : base.tensors)
    if (ts.dtype == ember::fb::DType::U8_ZERO_ONE && ts.name.find("v_proj") != std::string::npos)
      t = &ts;
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(t->params_dtype, ember::fb::DType::F16);
  ASSERT_EQ(t->act_group, 16u);
  for (uint16_t bad : {uint16_t{0x7E00}, uint16_t{0x7C00}, uint16_t{0xBC00}}) {  // NaN, inf, -1
    ModelSpec s = base;
    std::memcpy(&s.weights[t->params_offset + 2 * 3], &bad, 2);  // scale of row 3, group 0
    expect_fail(write_spec(s), EMBER_ERR_BAD_FORMAT, {t->name, "scale"});
  }
  ModelSpec s = base;
  const uint16_t inf = 0xFC00;
  std::memcpy(&s.weights[t->params_offset + 2 * 20], &inf, 2);  // min of row 4, group 0
  expect_fail(write_spec(s), EMBER_ERR_BAD_FORMAT, {t->name, "min"});
  s = base;
  s.find(t->name)->params_size *= 2;  // the size of f32 params
  expect_fail(write_spec(s), EMBER_ERR_BAD_FORMAT, {t->name, "params_size", "F16"});
  s = base;
  s.find(t->name)->params_dtype = ember::fb::DType::BF16;
  expect_fail(write_spec(s), EMBER_ERR_UNSUPPORTED, {t->name, "params_dtype", "BF16"});
  for (uint32_t act : {6u, 24u, 128u}) {
    s = base;
    s.find(t->name)->act_group = act;
    expect_fail(write_spec(s), EMBER_ERR_BAD_FORMAT, {t->name, "act_group"});
  }
  s = base;  // the control: rebuilt unchanged, it loads
  ember_model* m = nullptr;
  const std::vector<uint8_t> ok = write_spec(s);
  AlignedBuffer buf(ok.data(), ok.size());
  ASSERT_EQ(ember_model_load_buffer(buf.p, buf.n, &m), EMBER_OK) << ember_last_error();
  ember_model_free(m);
}

// Tensor.layout: row blocks only for rank-2 float tensors, with data_size covering whole blocks;
// anything else is refused by name, and a row-major file of the same weights still loads.
TEST_F(BadInputTest, BadFloatLayout) {
  const std::string hf = shared_path("models/stories260K/hf");
  const std::string p32 = converted_model(hf, "--quant f32");
  ASSERT_FALSE(p32.empty());
  const auto bytes = read_file(p32);
  const ModelSpec base = read_spec(std::vector<uint8_t>(bytes.begin(), bytes.end()));
  const std::string gate = "model.layers.1.mlp.gate_proj.weight";  // (172, 64): a partial block
  ASSERT_EQ(const_cast<ModelSpec&>(base).find(gate)->layout, ember::fb::Layout::BLOCKS16);
  ModelSpec s = base;
  s.find(gate)->data_size = 172 * 64 * 4;  // the row-major size
  expect_fail(write_spec(s), EMBER_ERR_BAD_FORMAT, {gate, "data_size"});
  s = base;
  s.find("model.norm.weight")->layout = ember::fb::Layout::BLOCKS16;
  expect_fail(write_spec(s), EMBER_ERR_BAD_FORMAT, {"model.norm.weight", "layout", "rank 1"});
  s = base;
  s.find(gate)->layout = static_cast<ember::fb::Layout>(7);
  expect_fail(write_spec(s), EMBER_ERR_BAD_FORMAT, {gate, "layout 7"});
  const std::string p8 = converted_model(hf, "--quant u8 --group 64");
  ASSERT_FALSE(p8.empty());
  const auto b8 = read_file(p8);
  s = read_spec(std::vector<uint8_t>(b8.begin(), b8.end()));
  s.find(gate)->layout = ember::fb::Layout::BLOCKS16;
  expect_fail(write_spec(s), EMBER_ERR_BAD_FORMAT, {gate, "layout", "U8_ZERO_ONE"});
}

// A runtime older than a file's format refuses it by its min_runtime_version, and by the feature
// bits where the version says less.
TEST_F(BadInputTest, NewerRuntimeVersionOrFeatureIsRefused) {
  const std::string hf = shared_path("models/stories260K/hf");
  const std::string p8 = converted_model(hf, "--quant u8 --group 64");
  ASSERT_FALSE(p8.empty());
  const auto bytes = read_file(p8);
  ModelSpec s = read_spec(std::vector<uint8_t>(bytes.begin(), bytes.end()));
  EXPECT_EQ(s.min_runtime_version, 3u);
  s.min_runtime_version = 5;
  expect_fail(write_spec(s), EMBER_ERR_UNSUPPORTED, {"runtime version 5"});
  s.min_runtime_version = 3;
  s.required_features |= 1ull << 6;
  expect_fail(write_spec(s), EMBER_ERR_UNSUPPORTED, {"features", "0x40"});
}

// Format 1 stored u8 matrices row major: this runtime refuses such a file by name and says what to
// do, rather than reading its bytes in the wrong layout.
TEST_F(BadInputTest, U8FileOfFormat1IsRefusedByName) {
  EMBER_REQUIRE_CONVERTED(p8, "models/stories260K/hf", "--quant u8");
  const auto bytes = read_file(p8);
  ModelSpec s = read_spec(std::vector<uint8_t>(bytes.begin(), bytes.end()));
  s.format_version = 1;
  s.min_runtime_version = 1;
  expect_fail(write_spec(s), EMBER_ERR_UNSUPPORTED, {"format 1", "convert the model again"});
  // A float-only row-major file of format 1 (nothing in it changed) still loads.
  EMBER_REQUIRE_CONVERTED(p32, "models/stories260K/hf", "--quant f32 --float-layout rows");
  const auto b32 = read_file(p32);
  ModelSpec f = read_spec(std::vector<uint8_t>(b32.begin(), b32.end()));
  EXPECT_EQ(f.min_runtime_version, 1u);
  f.format_version = 1;
  ember_model* m = nullptr;
  const std::vector<uint8_t> out = write_spec(f);
  ASSERT_EQ(ember_model_load_buffer(out.data(), out.size(), &m), EMBER_OK) << ember_last_error();
  ember_model_free(m);
}

TEST_F(BadInputTest, FilesThatCannotBeOpened) {
  ember_model* m = nullptr;
  EXPECT_EQ(ember_model_load_file("/nonexistent/model.ember", &m), EMBER_ERR_IO);
  EXPECT_NE(std::string(ember_last_error()).find("/nonexistent/model.ember"), std::string::npos);
  EXPECT_EQ(ember_model_load_file("/tmp", &m), EMBER_ERR_IO);
  const std::string empty = temp_path("empty.ember");
  write_file(empty, "", 0);
  EXPECT_EQ(ember_model_load_file(empty.c_str(), &m), EMBER_ERR_BAD_FORMAT);
  EXPECT_EQ(m, nullptr);
}

// The checks the tokenizer made while building its tables are made by the plan: a broken byte
// piece is refused by ember_model_required_bytes as by the load (load() compares the two).
TEST_F(BadInputTest, BrokenBytePiece) {
  auto bad = file_;
  const std::string piece = "<0x41>";
  auto at = std::search(bad.begin(), bad.end(), piece.begin(), piece.end());
  ASSERT_NE(at, bad.end());
  at[3] = 'Z';
  expect_fail(bad, EMBER_ERR_BAD_FORMAT, {"byte piece", "<0xXX>"});
}

TEST_F(BadInputTest, MisalignedBuffer) {
  std::vector<uint8_t> padded(1, 0);  // one byte, then the model
  padded.insert(padded.end(), file_.begin(), file_.end());
  AlignedBuffer buf(padded.data(), padded.size());
  ember_model* m = nullptr;
  EXPECT_EQ(ember_model_load_buffer(static_cast<uint8_t*>(buf.p) + 1, file_.size(), &m),
            EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(ember_last_error()).find("aligned"), std::string::npos);
  size_t need = 0;
  EXPECT_EQ(ember_model_required_bytes(static_cast<uint8_t*>(buf.p) + 1, file_.size(), &need),
            EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(ember_last_error()).find("aligned"), std::string::npos);
}

TEST_F(BadInputTest, TokenizerOnlyFileTokenizesButHasNoContext) {
  const std::string hf = shared_path("models/stories260K/hf");
  const std::string p = converted_model(hf, "--quant f32 --tokenizer-only");
  ASSERT_FALSE(p.empty());
  ModelPtr m = load_model(p);
  ASSERT_TRUE(m);
  EXPECT_EQ(tokenize(m.get(), "Once upon a time"), (std::vector<int32_t>{1, 403, 407, 261, 378}));
  ember_context_params cp = ember_context_default_params();
  size_t bytes = 0;
  EXPECT_EQ(ember_context_required_bytes(m.get(), &cp, &bytes), EMBER_ERR_INVALID_ARGUMENT);
  ember_context* c = nullptr;
  EXPECT_EQ(ember_context_create(m.get(), &cp, nullptr, 0, &c), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(c, nullptr);
  EXPECT_NE(std::string(ember_last_error()).find("only a tokenizer"), std::string::npos)
      << ember_last_error();
}

// ------------------------------------------------------------------------------ API arguments --

TEST_F(BadInputTest, NullPointers) {
  ember_model* m = nullptr;
  EXPECT_EQ(ember_model_load_file(nullptr, &m), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(ember_model_load_file(path_.c_str(), nullptr), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(ember_model_load_buffer(nullptr, 100, &m), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(ember_model_load_buffer_in(nullptr, 100, nullptr, 0, &m), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(ember_model_load_buffer_in(file_.data(), file_.size(), nullptr, 0, nullptr),
            EMBER_ERR_INVALID_ARGUMENT);
  size_t model_bytes = 0;
  EXPECT_EQ(ember_model_required_bytes(nullptr, 100, &model_bytes), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(ember_model_required_bytes(file_.data(), file_.size(), nullptr),
            EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(ember_model_get_info(nullptr, nullptr), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(ember_model_describe(nullptr, nullptr, 0, nullptr), EMBER_ERR_INVALID_ARGUMENT);
  ModelPtr model = load_model(path_);
  ASSERT_TRUE(model);
  char small[4];
  EXPECT_EQ(ember_model_describe(model.get(), nullptr, 10, nullptr), EMBER_ERR_INVALID_ARGUMENT);
  size_t need = 0;
  EXPECT_EQ(ember_model_describe(model.get(), small, sizeof small, &need), EMBER_OK);
  EXPECT_EQ(std::strlen(small), 3u);
  EXPECT_GT(need, 1000u);
  ember_context_params cp = ember_context_default_params();
  size_t bytes = 0;
  EXPECT_EQ(ember_context_required_bytes(nullptr, &cp, &bytes), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(ember_context_required_bytes(model.get(), nullptr, &bytes), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(ember_context_required_bytes(model.get(), &cp, nullptr), EMBER_ERR_INVALID_ARGUMENT);
  ember_context* c = nullptr;
  EXPECT_EQ(ember_context_create(nullptr, &cp, nullptr, 0, &c), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(ember_context_create(model.get(), &cp, nullptr, 0, nullptr),
            EMBER_ERR_INVALID_ARGUMENT);
  ContextPtr ctx = make_context(model.get());
  ASSERT_TRUE(ctx);
  EXPECT_EQ(ember_decode(nullptr, nullptr), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(ember_decode(ctx.get(), nullptr), EMBER_ERR_INVALID_ARGUMENT);
  ember_batch b{1, nullptr, nullptr, nullptr, nullptr};
  EXPECT_EQ(ember_decode(ctx.get(), &b), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(ember_last_error()).find("token"), std::string::npos);
  EXPECT_EQ(ember_kv_clear(nullptr, 0), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(ember_kv_clear(ctx.get(), 1), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(ember_kv_length(nullptr, 0), 0u);
  EXPECT_EQ(ember_get_logits(nullptr, 0), nullptr);
  EXPECT_EQ(ember_get_logits(ctx.get(), 0), nullptr);  // nothing decoded yet
  ember_sampler_params sp = ember_sampler_default_params();
  uint64_t rng = ember_rng_seed(1);
  int32_t id = 0;
  std::vector<float> logits(512, 0.0f);
  EXPECT_EQ(ember_sample(nullptr, logits.data(), &sp, &rng, &id), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(ember_sample(ctx.get(), nullptr, &sp, &rng, &id), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(ember_sample(ctx.get(), logits.data(), nullptr, &rng, &id), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(ember_sample(ctx.get(), logits.data(), &sp, nullptr, &id), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(ember_sample(ctx.get(), logits.data(), &sp, &rng, nullptr), EMBER_ERR_INVALID_ARGUMENT);
  ember_generate_params gp = ember_generate_default_params();
  EXPECT_EQ(ember_generate(nullptr, "a", 1, &gp, nullptr, nullptr, nullptr, 0, nullptr, nullptr),
            EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(
      ember_generate(ctx.get(), "a", 1, nullptr, nullptr, nullptr, nullptr, 0, nullptr, nullptr),
      EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(
      ember_generate(ctx.get(), nullptr, 5, &gp, nullptr, nullptr, nullptr, 0, nullptr, nullptr),
      EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(ember_generate(ctx.get(), "a", 1, &gp, nullptr, nullptr, nullptr, 10, nullptr, nullptr),
            EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(ember_force_kernel_variant(nullptr), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(ember_force_kernel_variant("no-such-isa"), EMBER_ERR_UNSUPPORTED);
}

TEST_F(BadInputTest, BadBatches) {
  ModelPtr model = load_model(path_);
  ASSERT_TRUE(model);
  ember_context_params cp = ember_context_default_params();
  cp.n_ctx = 8;
  cp.n_seq_max = 2;
  cp.n_batch_max = 4;
  ember_context* raw = nullptr;
  ASSERT_EQ(ember_context_create(model.get(), &cp, nullptr, 0, &raw), EMBER_OK)
      << ember_last_error();
  ContextPtr ctx(raw);
  auto run = [&](std::vector<int32_t> tok, std::vector<int32_t> pos, std::vector<int32_t> seq) {
    ember_batch b{uint32_t(tok.size()), tok.data(), pos.data(), seq.data(), nullptr};
    const ember_status s = ember_decode(ctx.get(), &b);
    if (s != EMBER_OK) std::printf("  -> %s: %s\n", ember_status_string(s), ember_last_error());
    return s;
  };
  EXPECT_EQ(run({}, {}, {}), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(run({512}, {0}, {0}), EMBER_ERR_INVALID_ARGUMENT);  // id == vocab
  EXPECT_NE(std::string(ember_last_error()).find("512"), std::string::npos);
  EXPECT_EQ(run({-1}, {0}, {0}), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(run({1}, {1}, {0}), EMBER_ERR_INVALID_ARGUMENT);  // slot 0 starts at 0
  EXPECT_NE(std::string(ember_last_error()).find("pos 1"), std::string::npos);
  EXPECT_EQ(run({1, 5}, {0, 0}, {0, 0}), EMBER_ERR_INVALID_ARGUMENT);  // repeated position
  EXPECT_EQ(run({1}, {0}, {2}), EMBER_ERR_INVALID_ARGUMENT);           // seq out of range
  EXPECT_EQ(run({1}, {0}, {-1}), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(run({1, 2, 3, 4, 5}, {0, 1, 2, 3, 4}, {0, 0, 0, 0, 0}), EMBER_ERR_INVALID_ARGUMENT);
  // Nothing above touched the cache.
  EXPECT_EQ(ember_kv_length(ctx.get(), 0), 0u);
  EXPECT_EQ(ember_kv_length(ctx.get(), 1), 0u);
  // A good batch over both slots, then fill slot 0 to n_ctx = 8.
  EXPECT_EQ(run({1, 1, 403}, {0, 0, 1}, {0, 1, 0}), EMBER_OK);
  EXPECT_EQ(ember_get_logits(ctx.get(), 0), nullptr);  // only the last token asked for logits
  EXPECT_NE(ember_get_logits(ctx.get(), 2), nullptr);
  EXPECT_EQ(ember_get_logits(ctx.get(), 3), nullptr);
  EXPECT_EQ(run({407, 261, 378, 432}, {2, 3, 4, 5}, {0, 0, 0, 0}), EMBER_OK);
  EXPECT_EQ(run({383, 286}, {6, 7}, {0, 0}), EMBER_OK);
  EXPECT_EQ(ember_kv_length(ctx.get(), 0), 8u);
  EXPECT_EQ(run({1}, {8}, {0}), EMBER_ERR_CONTEXT_FULL);
  EXPECT_EQ(ember_kv_length(ctx.get(), 0), 8u);
  EXPECT_EQ(run({403}, {1}, {1}), EMBER_OK);  // the other slot still has room
  EXPECT_EQ(ember_kv_clear(ctx.get(), 0), EMBER_OK);
  EXPECT_EQ(ember_kv_length(ctx.get(), 0), 0u);
  EXPECT_EQ(ember_kv_length(ctx.get(), 1), 2u);
  EXPECT_EQ(ember_kv_clear(ctx.get(), -1), EMBER_OK);
  EXPECT_EQ(ember_kv_length(ctx.get(), 1), 0u);
}

TEST_F(BadInputTest, BadContextParams) {
  ModelPtr model = load_model(path_);
  ASSERT_TRUE(model);
  size_t bytes = 0;
  ember_context_params cp = ember_context_default_params();
  cp.n_ctx = 513;  // max_context is 512
  EXPECT_EQ(ember_context_required_bytes(model.get(), &cp, &bytes), EMBER_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(ember_last_error()).find("513"), std::string::npos);
  cp = ember_context_default_params();
  cp.n_seq_max = 0;
  EXPECT_EQ(ember_context_required_bytes(model.get(), &cp, &bytes), EMBER_ERR_INVALID_ARGUMENT);
  cp = ember_context_default_params();
  cp.n_batch_max = 0;
  EXPECT_EQ(ember_context_required_bytes(model.get(), &cp, &bytes), EMBER_ERR_INVALID_ARGUMENT);
}

TEST_F(BadInputTest, PromptLongerThanTheContext) {
  ModelPtr model = load_model(path_);
  ASSERT_TRUE(model);
  ContextPtr ctx = make_context(model.get(), /*n_ctx=*/16);
  ASSERT_TRUE(ctx);
  const std::string prompt =
      "Once upon a time there was a little girl named Lily who liked to play";
  ember_generate_params gp = ember_generate_default_params();
  gp.max_new_tokens = 4;
  ember_status s = ember_generate(ctx.get(), prompt.data(), prompt.size(), &gp, nullptr, nullptr,
                                  nullptr, 0, nullptr, nullptr);
  EXPECT_EQ(s, EMBER_ERR_CONTEXT_FULL);
  const std::string msg = ember_last_error();
  std::printf("  -> %s\n", msg.c_str());
  EXPECT_NE(msg.find("tokens"), std::string::npos) << msg;
  EXPECT_NE(msg.find("n_ctx = 16"), std::string::npos) << msg;
  // Longer than the planned prompt bytes (16 * n_ctx = 256).
  const std::string huge(1000, 'a');
  s = ember_generate(ctx.get(), huge.data(), huge.size(), &gp, nullptr, nullptr, nullptr, 0,
                     nullptr, nullptr);
  EXPECT_EQ(s, EMBER_ERR_CONTEXT_FULL);
  EXPECT_NE(std::string(ember_last_error()).find("1000 bytes"), std::string::npos);
  // A prompt that fits still works in the same context afterwards.
  EXPECT_EQ(generate_greedy(ctx.get(), "Once upon a time", 4, false).size(), 4u);
}

TEST_F(BadInputTest, BadSamplerParams) {
  EMBER_LOAD_MODEL_AND_CONTEXT(model, ctx, path_);
  std::vector<float> logits(512, 0.0f);
  uint64_t rng = ember_rng_seed(1);
  int32_t id = 0;
  ember_sampler_params sp = ember_sampler_default_params();
  sp.temperature = -1.0f;
  EXPECT_EQ(ember_sample(ctx.get(), logits.data(), &sp, &rng, &id), EMBER_ERR_INVALID_ARGUMENT);
  sp = ember_sampler_default_params();
  sp.temperature = 1.0f;
  sp.top_p = 0.0f;
  EXPECT_EQ(ember_sample(ctx.get(), logits.data(), &sp, &rng, &id), EMBER_ERR_INVALID_ARGUMENT);
  sp.top_p = 1.0f;
  sp.top_k = -3;
  EXPECT_EQ(ember_sample(ctx.get(), logits.data(), &sp, &rng, &id), EMBER_ERR_INVALID_ARGUMENT);
}

}  // namespace
}  // namespace ember_test
