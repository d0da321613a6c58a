// XnnpackLinear: XNNPACK f32 fully-connected operators for the f32 weight matrices of a model
// (opt-in, ember_context_params.use_xnnpack). See xnnpack_linear.h for what differs from Ember's
// own kernels and where the memory comes from.
#include "xnnpack_linear.h"

#include <cstdint>
#include <cstring>

#include "core/float_blocks.h"
#include "model.h"

#if EMBER_USE_XNNPACK
#include <xnnpack.h>

#include <cmath>

#include "ember/platform.h"
#endif

namespace ember {

#if EMBER_USE_XNNPACK
namespace {

// XNNPACK's allocations go through the platform layer (ember_platform_alloc), like the runtime's
// own: one header in front of each block keeps its size (for reallocate) and the platform block.
constexpr size_t kHeader = 64;  // >= 16 bytes, and XNNPACK's usual alignment

// Bytes allocated while an XnnpackLinear::init() runs on this thread (operators are created on the
// calling thread), so each context can say how much XNNPACK took.
thread_local size_t* t_tally = nullptr;

void* xa_aligned_allocate(void*, size_t alignment, size_t size) {
  if (alignment < kHeader) alignment = kHeader;
  if ((alignment & (alignment - 1)) != 0 || size > SIZE_MAX - alignment) return nullptr;
  uint8_t* base = static_cast<uint8_t*>(ember_platform_alloc(size + alignment, alignment));
  if (base == nullptr) return nullptr;
  uint8_t* p = base + alignment;
  void* const b = base;
  std::memcpy(p - sizeof(void*), &b, sizeof b);
  std::memcpy(p - sizeof(void*) - sizeof(size_t), &size, sizeof size);
  if (t_tally != nullptr) *t_tally += size;
  return p;
}

void* xa_allocate(void* ctx, size_t size) { return xa_aligned_allocate(ctx, kHeader, size); }

void xa_deallocate(void*, void* p) {
  if (p == nullptr) return;
  void* base = nullptr;
  std::memcpy(&base, static_cast<uint8_t*>(p) - sizeof(void*), sizeof base);
  ember_platform_free(base);
}

void* xa_reallocate(void* ctx, void* p, size_t size) {
  if (p == nullptr) return xa_allocate(ctx, size);
  size_t old = 0;
  std::memcpy(&old, static_cast<uint8_t*>(p) - sizeof(void*) - sizeof(size_t), sizeof old);
  void* q = xa_allocate(ctx, size);
  if (q == nullptr) return nullptr;
  std::memcpy(q, p, old < size ? old : size);
  xa_deallocate(ctx, p);
  return q;
}

const xnn_allocator kAllocator = {nullptr,       xa_allocate,         xa_reallocate,
                                  xa_deallocate, xa_aligned_allocate, xa_deallocate};

const char* xnn_status_name(xnn_status s) {
  switch (s) {
    case xnn_status_success:
      return "success";
    case xnn_status_uninitialized:
      return "uninitialized";
    case xnn_status_invalid_parameter:
      return "invalid parameter";
    case xnn_status_invalid_state:
      return "invalid state";
    case xnn_status_unsupported_parameter:
      return "unsupported parameter";
    case xnn_status_unsupported_hardware:
      return "unsupported hardware";
    case xnn_status_out_of_memory:
      return "out of memory";
  }
  return "unknown status";
}

// xnn_initialize once per process (it also installs the allocator: a later call would replace it).
xnn_status initialize_once() {
  static const xnn_status s = xnn_initialize(&kAllocator);
  return s;
}

}  // namespace

Status XnnpackLinear::check_available() { return Status::kOk; }

Status XnnpackLinear::init(const Model& m, void* pool) {
  shutdown();
  const xnn_status is = initialize_once();
  if (is != xnn_status_success) {
    return set_error(Status::kUnsupported, "use_xnnpack: xnn_initialize failed (%s)",
                     xnn_status_name(is));
  }
  // The f32 matrices: 7 per layer and the output head.
  const uint32_t layers = m.config.num_layers;
  capacity_ = size_t{layers} * 7 + 1;
  entries_ = static_cast<Entry*>(ember_platform_alloc(capacity_ * sizeof(Entry), alignof(Entry)));
  if (entries_ == nullptr) {
    capacity_ = 0;
    return set_error(Status::kOutOfMemory, "use_xnnpack: cannot allocate %zu operator entries",
                     size_t{layers} * 7 + 1);
  }
  pool_ = pool;
  // One row-major scratch for the f32 matrices stored in row blocks, the size of the largest.
  size_t blocked_max = 0;
  auto note_blocked = [&](const WeightRef& w) {
    if (w.type == DType::kF32 && w.blocked && size_t{w.rows} * w.cols > blocked_max)
      blocked_max = size_t{w.rows} * w.cols;
  };
  for (uint32_t l = 0; l < layers; ++l) {
    const LayerWeights& lw = m.layers[l];
    for (const WeightRef* w : {&lw.wq, &lw.wk, &lw.wv, &lw.wo, &lw.w_gate, &lw.w_up, &lw.w_down})
      note_blocked(*w);
  }
  note_blocked(m.output);
  float* unblocked = nullptr;
  if (blocked_max > 0) {
    unblocked = static_cast<float*>(ember_platform_alloc(blocked_max * sizeof(float), 64));
    if (unblocked == nullptr) {
      shutdown();
      return set_error(Status::kOutOfMemory,
                       "use_xnnpack: cannot allocate %zu bytes to unblock f32 matrices for XNNPACK",
                       blocked_max * sizeof(float));
    }
  }
  t_tally = &bytes_;
  Status status = Status::kOk;
  auto add = [&](const WeightRef& w, const char* what, uint32_t layer) {
    if (status != Status::kOk || w.type != DType::kF32 || w.data == nullptr) return;
    for (size_t i = 0; i < count_; ++i) {
      if (entries_[i].data == w.data) return;  // one matrix used twice: one operator
    }
    xnn_operator_t op = nullptr;
    const float* kernel = static_cast<const float*>(w.data);
    if (w.blocked) {  // XNNPACK packs (copies) from row-major values: unblock them for the call
      for (size_t r = 0; r < w.rows; ++r)
        for (size_t t = 0; t < w.cols; ++t)
          unblocked[r * w.cols + t] = kernel[float_blocked_index(w.cols, r, t)];
      kernel = unblocked;
    }
    // Kernel (output_channels = rows, input_channels = cols), row-major: XNNPACK's default layout.
    // No bias (forward.cc adds biases), no clamp.
    const xnn_status s = xnn_create_fully_connected_nc_f32(w.cols, w.rows, w.cols, w.rows, kernel,
                                                           nullptr, -INFINITY, INFINITY, 0, &op);
    if (s != xnn_status_success) {
      status =
          set_error(s == xnn_status_out_of_memory ? Status::kOutOfMemory : Status::kUnsupported,
                    "use_xnnpack: xnn_create_fully_connected_nc_f32 for %s %u (%u x %u) "
                    "failed: %s",
                    what, layer, w.rows, w.cols, xnn_status_name(s));
      return;
    }
    entries_[count_++] = Entry{w.data, op, w.rows, w.cols};
  };
  for (uint32_t l = 0; l < layers; ++l) {
    const LayerWeights& lw = m.layers[l];
    add(lw.wq, "q_proj of layer", l);
    add(lw.wk, "k_proj of layer", l);
    add(lw.wv, "v_proj of layer", l);
    add(lw.wo, "o_proj of layer", l);
    add(lw.w_gate, "gate_proj of layer", l);
    add(lw.w_up, "up_proj of layer", l);
    add(lw.w_down, "down_proj of layer", l);
  }
  add(m.output, "the output head after layer", layers - 1);
  t_tally = nullptr;
  if (unblocked != nullptr) ember_platform_free(unblocked);
  if (status != Status::kOk) {
    shutdown();
    return status;
  }
  // Sorted by data pointer for run()'s binary search (insertion sort: a few hundred entries).
  for (size_t i = 1; i < count_; ++i) {
    const Entry e = entries_[i];
    size_t j = i;
    for (; j > 0 &&
           reinterpret_cast<uintptr_t>(entries_[j - 1].data) > reinterpret_cast<uintptr_t>(e.data);
         --j) {
      entries_[j] = entries_[j - 1];
    }
    entries_[j] = e;
  }
  return Status::kOk;
}

void XnnpackLinear::shutdown() {
  for (size_t i = 0; i < count_; ++i)
    xnn_delete_operator(static_cast<xnn_operator_t>(entries_[i].op));
  if (entries_ != nullptr) ember_platform_free(entries_);
  entries_ = nullptr;
  count_ = capacity_ = 0;
  pool_ = nullptr;
  bytes_ = 0;
}

bool XnnpackLinear::run(const WeightRef& w, const float* x, size_t m, float* y) const {
  if (w.type != DType::kF32 || count_ == 0) return false;
  const uintptr_t key = reinterpret_cast<uintptr_t>(w.data);
  size_t lo = 0, hi = count_;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (reinterpret_cast<uintptr_t>(entries_[mid].data) < key) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo == count_ || entries_[lo].data != w.data || entries_[lo].rows != w.rows ||
      entries_[lo].cols != w.cols) {
    return false;
  }
  xnn_operator_t op = static_cast<xnn_operator_t>(entries_[lo].op);
  pthreadpool_t pool = static_cast<pthreadpool_t>(pool_);
  // XNNPACK may read up to XNN_EXTRA_BYTES past the end of x: every input (xb, att, hb) is followed
  // by another buffer of the same context block, so such reads stay inside the block.
  if (xnn_setup_fully_connected_nc_f32(op, m, x, y, pool) != xnn_status_success ||
      xnn_run_operator(op, pool) != xnn_status_success) {
    return false;  // cannot happen for a created operator and m >= 1; Ember's kernels take over
  }
  return true;
}

#else  // !EMBER_USE_XNNPACK

Status XnnpackLinear::check_available() {
  return set_error(Status::kUnsupported,
                   "use_xnnpack: this build of Ember has no XNNPACK (configure with "
                   "-DEMBER_USE_XNNPACK=ON); leave use_xnnpack at 0 for Ember's own kernels");
}

Status XnnpackLinear::init(const Model&, void*) { return check_available(); }

void XnnpackLinear::shutdown() {
  entries_ = nullptr;
  count_ = capacity_ = 0;
  pool_ = nullptr;
  bytes_ = 0;
}

bool XnnpackLinear::run(const WeightRef&, const float*, size_t, float*) const { return false; }

#endif  // EMBER_USE_XNNPACK

}  // namespace ember
