// Facts about the .ember file that the converter (writer) and the runtime (reader) share, so the
// two cannot drift apart. The FlatBuffer schema is schema/ember.fbs; this header holds what the
// schema cannot express: versions, feature bits, alignment, the file layout around the FlatBuffer.
#ifndef EMBER_CORE_FORMAT_H_
#define EMBER_CORE_FORMAT_H_

#include <cstddef>
#include <cstdint>

namespace ember {

// Version of the format this code writes; readers accept files with min_runtime_version <= it.
constexpr uint32_t kFormatVersion = 4;
constexpr uint32_t kRuntimeVersion = 4;
// Format 2 stores u8 zero-one matrices in row blocks (core/zero_one.h); format 1 stored them row
// major. A file with u8 tensors needs runtime 2; a float-only file still reads with runtime 1.
constexpr uint32_t kFormatVersionU8Blocks = 2;
// Format 3 adds f16 zero-one params and activation groups smaller than the weight group
// (Tensor.params_dtype, Tensor.act_group). A file that uses either needs runtime 3 (an older one
// refuses it by its min_runtime_version, and by the feature bits); one that uses neither is read
// by runtime 2 as before.
constexpr uint32_t kFormatVersionU8Params = 3;
// Format 4 adds float matrices in row blocks (Tensor.layout BLOCKS16, core/float_blocks.h), which
// the float GEMVs read without transposes. A file with one needs runtime 4.
constexpr uint32_t kFormatVersionFloatBlocks = 4;

// Required-feature bits: a reader refuses a file that sets a required bit it does not know.
enum FeatureBits : uint64_t {
  kFeatureZeroOneU8 = 1ull << 0,         // some tensor is U8_ZERO_ONE
  kFeatureF16 = 1ull << 1,               // some tensor is F16
  kFeatureBF16 = 1ull << 2,              // some tensor is BF16
  kFeatureZeroOneF16Params = 1ull << 3,  // some U8_ZERO_ONE tensor has params_dtype F16
  kFeatureActGroups = 1ull << 4,         // some U8_ZERO_ONE tensor has an act_group of its own
  kFeatureFloatBlocks = 1ull << 5,       // some float matrix has layout BLOCKS16
};
constexpr uint64_t kKnownRequiredFeatures = kFeatureZeroOneU8 | kFeatureF16 | kFeatureBF16 |
                                            kFeatureZeroOneF16Params | kFeatureActGroups |
                                            kFeatureFloatBlocks;

// Alignment of the weight region and of each tensor's data and params inside it (cache line; also
// enough for any SIMD load and for in-place use from flash).
constexpr size_t kWeightAlignment = 64;
// Alignment a caller's buffer must have for ember_model_load_buffer.
constexpr size_t kBufferAlignment = 16;

// File: [uint32 fb_size][FlatBuffer, identifier at bytes 8..12][pad][weights @ weights_offset].
constexpr size_t kSizePrefixBytes = 4;
constexpr const char* kFileIdentifier = "EMBR";

constexpr uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace ember

#endif  // EMBER_CORE_FORMAT_H_
