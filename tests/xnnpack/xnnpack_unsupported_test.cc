// A build without XNNPACK (-DEMBER_USE_XNNPACK=OFF, the default) refuses use_xnnpack = 1 with
// EMBER_ERR_UNSUPPORTED and a message saying how to get it; use_xnnpack = 0 is the normal path.
#include <string>

#include "e2e/e2e_util.h"

namespace ember_test {
namespace {

TEST(XnnpackUnsupported, OptInIsRefusedWithAClearError) {
  EMBER_REQUIRE_CONVERTED(path, "models/stories260K/hf", "--quant f32");
  ModelPtr model = load_model(path);
  ASSERT_TRUE(model);

  ember_context_params p = ember_context_default_params();
  EXPECT_EQ(p.use_xnnpack, 0) << "the default must be Ember's own kernels";
  p.use_xnnpack = 1;
  size_t need = 0;
  EXPECT_EQ(ember_context_required_bytes(model.get(), &p, &need), EMBER_ERR_UNSUPPORTED);
  ember_context* ctx = nullptr;
  EXPECT_EQ(ember_context_create(model.get(), &p, nullptr, 0, &ctx), EMBER_ERR_UNSUPPORTED);
  EXPECT_EQ(ctx, nullptr);
  const std::string msg = ember_last_error();
  EXPECT_NE(msg.find("use_xnnpack"), std::string::npos) << msg;
  EXPECT_NE(msg.find("EMBER_USE_XNNPACK=ON"), std::string::npos) << msg;

  p.use_xnnpack = 2;  // not a boolean
  EXPECT_EQ(ember_context_create(model.get(), &p, nullptr, 0, &ctx), EMBER_ERR_INVALID_ARGUMENT);

  p.use_xnnpack = 0;
  ASSERT_EQ(ember_context_create(model.get(), &p, nullptr, 0, &ctx), EMBER_OK)
      << ember_last_error();
  ember_context_free(ctx);
}

}  // namespace
}  // namespace ember_test
