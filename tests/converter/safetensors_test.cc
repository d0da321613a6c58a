// The safetensors reader against crafted files: every way a header can lie gives a ConvertError
// that names the file and the tensor, never a crash (run under ASan/UBSan too).
#include "safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "converter_test_util.h"

namespace ember {
namespace convert {
namespace {

using ember_test::make_raw_safetensors;
using ember_test::make_safetensors;
using ember_test::RawTensor;

// Expects parse to throw, with every `needles` in the message.
void expect_error(const std::vector<uint8_t>& file, const std::vector<std::string>& needles) {
  const std::string msg = ember_test::error_message<ConvertError>(
      [&] { parse_safetensors_header(file.data(), file.size(), "crafted.safetensors"); });
  EXPECT_NE(msg.find("crafted.safetensors"), std::string::npos) << msg;
  for (const auto& n : needles)
    EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
}

std::vector<uint8_t> zeros(size_t n) { return std::vector<uint8_t>(n, 0); }

TEST(Safetensors, ReadsF32F16BF16Exactly) {
  std::map<std::string, RawTensor> t;
  t["a"] = {"F32", {2, 2}, ember_test::f32_bytes({1.5f, -2.0f, 3.25f, 1e-40f})};
  // f16: 1.0, -2.0, 2^-24 (subnormal), 65504
  t["b"] = {"F16", {4}, {0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00, 0xFF, 0x7B}};
  // bf16: 1.0, -3.0
  t["c"] = {"BF16", {1, 2}, {0x80, 0x3F, 0x40, 0xC0}};
  t["empty"] = {"F32", {0, 3}, {}};
  const std::string path = ember_test::temp_path("good.safetensors");
  ember_test::write_bytes(path, make_safetensors(t));
  SafetensorsFile f(path);
  ASSERT_EQ(f.entries().size(), 4u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const FloatTensor a = f.read("a");
  EXPECT_EQ(a.shape, (std::vector<uint64_t>{2, 2}));
  EXPECT_EQ(a.data, (std::vector<float>{1.5f, -2.0f, 3.25f, 1e-40f}));
  EXPECT_EQ(f.read("b").data, (std::vector<float>{1.0f, -2.0f, std::ldexp(1.0f, -24), 65504.0f}));
  EXPECT_EQ(f.read("b").source_dtype, "F16");
  EXPECT_EQ(f.read("c").data, (std::vector<float>{1.0f, -3.0f}));
  EXPECT_TRUE(f.read("empty").data.empty());
  EXPECT_THROW(f.read("nope"), ConvertError);
}

TEST(Safetensors, TooShortFile) {
  expect_error({1, 0, 0}, {"too short"});
  expect_error({}, {"too short"});
}

TEST(Safetensors, HeaderLengthPastEnd) {
  expect_error(make_raw_safetensors("{}", {}, 1000), {"header length 1000", "past the end"});
  // 2^64 - 1 must not overflow the bounds check.
  expect_error(make_raw_safetensors("{}", {}, UINT64_MAX - 1), {"past the end"});
}

TEST(Safetensors, HeaderNotJsonOrNotObject) {
  expect_error(make_raw_safetensors("{\"a\": ", {}), {"not valid JSON"});
  expect_error(make_raw_safetensors("[1, 2]  ", {}), {"not a JSON object"});
}

TEST(Safetensors, OffsetsPastEnd) {
  expect_error(
      make_raw_safetensors(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", zeros(8)),
      {"tensor 'w'", "past the data region"});
}

TEST(Safetensors, BeginAfterEnd) {
  expect_error(
      make_raw_safetensors(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", zeros(8)),
      {"tensor 'w'", "begin 8 > end 4"});
}

TEST(Safetensors, OverlappingTensors) {
  expect_error(make_raw_safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                    R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                    zeros(12)),
               {"tensor 'b'", "overlap", "'a'"});
  // Exactly the same range twice is an overlap too.
  expect_error(make_raw_safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                    R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                                    zeros(8)),
               {"overlap"});
}

TEST(Safetensors, HoleOrTrailingBytes) {
  expect_error(
      make_raw_safetensors(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", zeros(8)),
      {"hole", "'a'"});
  expect_error(
      make_raw_safetensors(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", zeros(8)),
      {"data region is 8 bytes", "cover 4"});
}

TEST(Safetensors, ShapeDisagreesWithByteRange) {
  expect_error(
      make_raw_safetensors(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", zeros(8)),
      {"tensor 'w'", "3 F32 values (12 bytes)", "span 8 bytes"});
  expect_error(make_raw_safetensors(R"({"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,16]}})",
                                    zeros(16)),
               {"tensor 'w'", "8 bytes"});
}

TEST(Safetensors, ShapeProductOverflow) {
  // 2^32 * 2^32 * 4 wraps to 0 in 64 bits; 2^62 * 4 bytes wraps too.
  expect_error(
      make_raw_safetensors(
          R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,0]}})", {}),
      {"tensor 'w'", "overflows"});
  expect_error(
      make_raw_safetensors(
          R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})", {}),
      {"tensor 'w'", "overflows"});
}

TEST(Safetensors, BadShapeValues) {
  expect_error(
      make_raw_safetensors(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", {}),
      {"tensor 'w'", "non-negative integer"});
  expect_error(
      make_raw_safetensors(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,0]}})", {}),
      {"tensor 'w'"});
  expect_error(
      make_raw_safetensors(R"({"w":{"dtype":"F32","shape":"4","data_offsets":[0,16]}})", zeros(16)),
      {"tensor 'w'", "shape"});
  expect_error(
      make_raw_safetensors(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", zeros(4)),
      {"tensor 'w'", "data_offsets"});
  expect_error(make_raw_safetensors(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", zeros(4)),
               {"tensor 'w'", "dtype"});
  expect_error(make_raw_safetensors(R"({"w":[1,2,3]})", {}), {"tensor 'w'", "not an object"});
}

TEST(Safetensors, UnknownDtype) {
  expect_error(
      make_raw_safetensors(R"({"w":{"dtype":"Q4_K","shape":[2],"data_offsets":[0,8]}})", zeros(8)),
      {"tensor 'w'", "unsupported dtype 'Q4_K'"});
  expect_error(
      make_raw_safetensors(R"({"w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", zeros(8)),
      {"tensor 'w'", "'I64'"});
}

TEST(Safetensors, DuplicateNames) {
  expect_error(make_raw_safetensors(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                    R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                    zeros(8)),
               {"tensor 'w'", "twice"});
}

TEST(Safetensors, TruncatedRealFileAtManyOffsets) {
  EMBER_REQUIRE_SHARED(path, "models/stories260K/hf/model.safetensors");
  const auto bytes = ember_test::read_file(path);
  ASSERT_EQ(bytes.size(), 1044992u);
  {
    const auto entries = parse_safetensors_header(bytes.data(), bytes.size(), path);
    EXPECT_EQ(entries.size(), 47u);
  }
  size_t errors = 0, cuts = 0;
  for (size_t cut = 0; cut < bytes.size(); cut += (cut < 4096 ? 37 : 9973)) {
    ++cuts;
    try {
      parse_safetensors_header(bytes.data(), cut, "cut.safetensors");
    } catch (const ConvertError& e) {
      ++errors;
      EXPECT_NE(std::string(e.what()).find("cut.safetensors"), std::string::npos);
    }
  }
  EXPECT_EQ(errors, cuts);  // every truncation is caught
}

TEST(Safetensors, FlippedHeaderBytesNeverCrash) {
  EMBER_REQUIRE_SHARED(path, "models/stories260K/hf/model.safetensors");
  const auto orig = ember_test::read_file(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | orig[i];
  for (size_t pos = 0; pos < 8 + n; pos += 7) {
    auto b = orig;
    b[pos] ^= 0x5A;
    try {
      parse_safetensors_header(b.data(), b.size(), "flipped");
    } catch (const ConvertError&) {
    }
  }
  SUCCEED();  // the point is no crash/UB under the sanitizers
}

TEST(Safetensors, ShardedIndex) {
  const std::string dir = ember_test::make_temp_dir("sharded");
  std::map<std::string, RawTensor> s1, s2;
  s1["x.weight"] = {"F32", {2}, ember_test::f32_bytes({1, 2})};
  s1["y.weight"] = {"F32", {1}, ember_test::f32_bytes({3})};
  s2["z.weight"] = {"BF16", {1}, {0x80, 0x3F}};
  ember_test::write_bytes(dir + "/model-00001-of-00002.safetensors", make_safetensors(s1));
  ember_test::write_bytes(dir + "/model-00002-of-00002.safetensors", make_safetensors(s2));
  const std::string index = dir + "/model.safetensors.index.json";
  ember_test::write_text(
      index, R"({"metadata":{},"weight_map":{"x.weight":"model-00001-of-00002.safetensors",)"
             R"("y.weight":"model-00001-of-00002.safetensors",)"
             R"("z.weight":"model-00002-of-00002.safetensors"}})");
  std::string dt;
  auto t = load_safetensors_dir(dir, &dt);
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t["x.weight"].data, (std::vector<float>{1, 2}));
  EXPECT_EQ(t["z.weight"].data, (std::vector<float>{1}));
  EXPECT_EQ(dt, "BF16+F32");

  // A tensor in a shard that the index does not list there (e.g. the same name in two shards).
  s2["y.weight"] = {"F32", {1}, ember_test::f32_bytes({4})};
  ember_test::write_bytes(dir + "/model-00002-of-00002.safetensors", make_safetensors(s2));
  {
    const std::string e =
        ember_test::error_message<ConvertError>([&] { load_safetensors_dir(dir); });
    EXPECT_NE(e.find("'y.weight' is not listed"), std::string::npos) << e;
  }
  // A listed tensor missing from its shard.
  ember_test::write_text(
      index,
      R"({"weight_map":{"x.weight":"model-00001-of-00002.safetensors",)"
      R"("y.weight":"model-00001-of-00002.safetensors","w.weight":"model-00001-of-00002.safetensors"}})");
  {
    const std::string e =
        ember_test::error_message<ConvertError>([&] { load_safetensors_dir(dir); });
    EXPECT_NE(e.find("'w.weight'"), std::string::npos) << e;
  }
  // A shard path that leaves the directory.
  ember_test::write_text(index, R"({"weight_map":{"x.weight":"../x.safetensors"}})");
  EXPECT_THROW(load_safetensors_dir(dir), ConvertError);
  ember_test::write_text(index, R"({"weight_map":{"x.weight":"missing.safetensors"}})");
  EXPECT_THROW(load_safetensors_dir(dir), ConvertError);
  ember_test::write_text(index, R"({"weight_map": 3})");
  EXPECT_THROW(load_safetensors_dir(dir), ConvertError);
}

TEST(Safetensors, NoWeightsInDirectory) {
  const std::string dir = ember_test::make_temp_dir("noweights");
  {
    const std::string e =
        ember_test::error_message<ConvertError>([&] { load_safetensors_dir(dir); });
    EXPECT_NE(e.find("no model.safetensors"), std::string::npos) << e;
  }
}

TEST(Safetensors, LoadsTheThreeStories260KCheckpoints) {
  EMBER_REQUIRE_SHARED(root, "models/stories260K");
  for (const char* sub : {"hf", "hf-bf16", "hf-f16"}) {
    std::string dt;
    auto t = load_safetensors_dir(root + "/" + sub, &dt);
    EXPECT_EQ(t.size(), 47u) << sub;
    EXPECT_EQ(t["model.embed_tokens.weight"].shape, (std::vector<uint64_t>{512, 64})) << sub;
    EXPECT_EQ(t["model.layers.4.mlp.down_proj.weight"].shape, (std::vector<uint64_t>{64, 172}))
        << sub;
    EXPECT_EQ(dt,
              std::string(sub) == "hf" ? "F32" : (std::string(sub) == "hf-f16" ? "F16" : "BF16"));
  }
}

}  // namespace
}  // namespace convert
}  // namespace ember
