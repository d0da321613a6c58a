// Linear layers of one context: picks the kernel for the weight's dtype from the active
// KernelTable, quantizes activations for u8 weights, and splits output rows across the context's
// thread pool. All scratch memory is handed in at init() from the context's arena; linear() never
// allocates.
#ifndef EMBER_SRC_LINEAR_H_
#define EMBER_SRC_LINEAR_H_

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"
#include "core/zero_one.h"
#include "thread_pool.h"

namespace ember {

// A weight matrix used in place from the model file: (rows = outputs, cols = inputs).
struct WeightRef {
  DType type = DType::kF32;
  const void* data = nullptr;       // (rows, cols) of `type`; u8: row blocks
  const void* params = nullptr;     // kU8ZeroOne: row blocks' params (core/zero_one.h)
  DType params_type = DType::kF32;  // kU8ZeroOne: of the params, kF32 or kF16
  uint32_t rows = 0, cols = 0;
  uint32_t group = 0;      // kU8ZeroOne: weights per group (0 = whole row)
  uint32_t act_group = 0;  // kU8ZeroOne: activation group (0 = the weight group)
  bool blocked = false;    // float types: row blocks of 16 (core/float_blocks.h), not row-major
};

struct MatmulJob;     // linear.cc: one weight's matmul over one input
struct MultiJob;      // linear.cc: several weights' matmuls over one input, one dispatch
class XnnpackLinear;  // xnnpack_linear.h: opt-in XNNPACK operators for f32 weights

class LinearExecutor {
 public:
  // Scratch bytes for inputs of up to m_max rows x k_max columns to u8 weights with at most
  // max_groups groups and max_act_groups activation groups per row (float weights need none:
  // k_max and the group counts cover the u8 ones).
  static size_t scratch_bytes(size_t m_max, size_t k_max, size_t max_groups, size_t max_act_groups);

  LinearExecutor() = default;
  LinearExecutor(const LinearExecutor&) = delete;
  LinearExecutor& operator=(const LinearExecutor&) = delete;

  // Rows are split across `pool` (which must outlive this executor).
  Status init(const ThreadPool* pool, void* scratch, size_t scratch_size, size_t m_max,
              size_t k_max, size_t max_groups, size_t max_act_groups);

  // y (m, w.rows), row-major with leading dimension w.rows  =  x (m, w.cols) . W^T.
  // m <= m_max, and w.cols <= k_max for u8 weights. Results are bit-identical for any thread
  // count.
  void linear(const WeightRef& w, const float* x, size_t m, float* y);

  // y[i] = x . w[i]^T for i in [0, count): several weights applied to ONE input x (m, cols), e.g.
  // q/k/v or gate/up. When the weights are all u8 with the same cols and group, x is quantized
  // once; every weight's rows then run in ONE pool dispatch (a work item that straddles two
  // weights runs as one call per weight).
  // Float weights also share one dispatch. Mixed u8 layouts fall back to linear() per weight.
  // Each output element is computed exactly as linear() computes it: same bits.
  void linear_multi(const WeightRef* const* w, float* const* y, size_t count, const float* x,
                    size_t m);

  // linear_multi split in two, for callers that run weight rows inside their own pool tasks:
  // prepare() quantizes x (m, cols) once for weights that share it — all u8 of one (cols, group,
  // act group);
  // it returns false (and does nothing) otherwise. rows() then computes columns [r0, r1) of
  // y (m, w.rows) = x . w^T for one of those weights, the same bits as linear(); calls for
  // disjoint outputs may run concurrently. Valid until the next linear / linear_multi / prepare.
  bool prepare(const WeightRef* const* w, size_t count, const float* x, size_t m);
  void rows(const WeightRef& w, float* y, size_t r0, size_t r1) const;

  uint32_t threads() const { return pool_->threads(); }
  // use_xnnpack: f32 weights that have an operator in `x` run through it in linear() and
  // linear_multi() (not bit-identical to Ember's kernels); nullptr (default) = never.
  void set_xnnpack(const XnnpackLinear* x) { xnn_ = x; }

 private:
  // Quantizes x (m, w.cols) into the scratch for u8 weight w; fills job's acts.
  void quantize_input(const WeightRef& w, const float* x, size_t m, MatmulJob* job);
  // Runs the job's weights over all their rows: one pool dispatch, or on the calling thread.
  void run_multi(MultiJob* mj);

  const ThreadPool* pool_ = nullptr;
  void* scratch_ = nullptr;
  size_t scratch_size_ = 0, m_max_ = 0, k_max_ = 0, max_groups_ = 0;
  const XnnpackLinear* xnn_ = nullptr;
  size_t max_act_groups_ = 0;
  // The input of the last prepare(): x (m, k) quantized into a / d / sum / msum with `group` and
  // `act_group`.
  const float* prep_x_ = nullptr;
  const int8_t* prep_a_ = nullptr;
  const float* prep_d_ = nullptr;
  const int32_t* prep_sum_ = nullptr;
  const float* prep_msum_ = nullptr;
  size_t prep_m_ = 0, prep_k_ = 0, prep_group_ = 0, prep_act_group_ = 0;
};

}  // namespace ember

#endif  // EMBER_SRC_LINEAR_H_
