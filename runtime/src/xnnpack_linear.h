// Opt-in XNNPACK path for float32 weights (ember_context_params.use_xnnpack): one XNNPACK f32
// fully-connected operator per f32 weight matrix of the model (q/k/v/o/gate/up/down of every layer
// and the output head), created when the context is created and destroyed with it.
//
// Why opt-in: XNNPACK packs (copies) each weight matrix into its own tiled layout (memory outside
// the context's arena: about the f32 matrices' bytes again, see bytes()) and sums in its own order
// with FMA, so its results differ from Ember's kernels in the last bits. Ember's own paths stay the
// default and stay bit-identical across thread counts and ISAs; u8/f16/bf16 weights never use this.
//
// Memory: XNNPACK allocates through an allocator that calls ember_platform_alloc (so the platform's
// allocation hooks see it). Allocation happens only in init(); run() (xnn_setup + xnn_run_operator
// for a batch of m rows) allocates nothing with Debian 12's XNNPACK, which tests/xnnpack checks
// with counting allocation hooks.
//
// Built only with EMBER_USE_XNNPACK; without it init() and check_available() return
// Status::kUnsupported with a message saying so.
#ifndef EMBER_SRC_XNNPACK_LINEAR_H_
#define EMBER_SRC_XNNPACK_LINEAR_H_

#include <cstddef>
#include <cstdint>

#include "core/status.h"
#include "linear.h"

namespace ember {

struct Model;

class XnnpackLinear {
 public:
  // kOk when this build has XNNPACK, else kUnsupported with a message (checked at plan time).
  static Status check_available();

  XnnpackLinear() = default;
  ~XnnpackLinear() { shutdown(); }
  XnnpackLinear(const XnnpackLinear&) = delete;
  XnnpackLinear& operator=(const XnnpackLinear&) = delete;

  // Creates one operator per f32 weight matrix of `m` (none for other dtypes; a model without f32
  // matrices gets no operators and everything runs on Ember's kernels). `pool` is the context's
  // pthreadpool_t (nullptr: the calling thread), used by run().
  Status init(const Model& m, void* pool);
  void shutdown();

  // y (m, w.rows) = x (m, w.cols) . W^T through w's operator; false (nothing written) when w has
  // no operator (not f32, or not one of the model's matrices).
  bool run(const WeightRef& w, const float* x, size_t m, float* y) const;

  size_t operators() const { return count_; }
  // Bytes XNNPACK allocated for the operators and their packed weights (outside the arena).
  size_t bytes() const { return bytes_; }

 private:
  struct Entry {
    const void* data;  // the weight matrix in the model file (the lookup key)
    void* op;          // xnn_operator_t
    uint32_t rows, cols;
  };
  Entry* entries_ = nullptr;  // (capacity_) sorted by data after init(); ember_platform_alloc
  size_t count_ = 0, capacity_ = 0;
  void* pool_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace ember

#endif  // EMBER_SRC_XNNPACK_LINEAR_H_
