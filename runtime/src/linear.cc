// LinearExecutor: weight dtype -> kernel from the active table, activation quantization for u8
// weights, output rows split across the thread pool. Every output element is computed by exactly
// one kernel call whose result does not depend on which rows it was given, so any thread count
// gives the same bits.
#include "linear.h"

#include <cassert>
#include <cstdint>

#include "kernels/kernels.h"
#include "xnnpack_linear.h"

namespace ember {

struct MatmulJob {
  const kernels::KernelTable* table;
  const WeightRef* w;
  const float* x;
  size_t m;
  float* y;
  // u8 only: the quantized input, and the weight's group length
  kernels::S8Acts acts;
  size_t group;
};

namespace {
constexpr size_t kAlign = 64;
inline size_t round_up(size_t v, size_t a) { return (v + a - 1) / a * a; }
}  // namespace

// Work items of one pool dispatch over `rows` output rows (of one weight, or of several weights
// end to end): kItemsPerThread items per thread. pthreadpool hands thread p the items
// [p * per, (p + 1) * per) at first; a thread that finishes its own takes the others' from their
// END. So within a thread's share of the rows the items shrink: item i ends at 1 - (1 - i/per)^2
// of the share (rounded up to 16 rows, whole row blocks). The first items are large, and the last
// ones, which are the ones stolen and the one a thread waits for at the end of a dispatch, are
// small (docs/performance.md: the waits this saves).
constexpr size_t kItemsPerThread = 16;

struct RowSplit {
  size_t rows, threads;
  size_t items() const { return threads * kItemsPerThread; }
  // First row of item t (t = items(): rows).
  size_t boundary(size_t t) const {
    const size_t per = kItemsPerThread, p = t / per, i = t % per;
    const size_t lo = part(p);
    if (i == 0) return lo;
    const size_t hi = part(p + 1), len = hi - lo, rem = per - i;
    const size_t b = lo + round_up(len - len * rem * rem / (per * per), 16);
    return b < hi ? b : hi;
  }
  // First row of thread p's share.
  size_t part(size_t p) const {
    if (p >= threads) return rows;
    const size_t b = round_up(rows * p / threads, 16);
    return b < rows ? b : rows;
  }
};

// One or several weights on one input: the rows of weight j are [row_start[j], row_start[j + 1])
// of one row space, split into the items of `split`.
constexpr size_t kMaxMulti = 8;
struct MultiJob {
  MatmulJob jobs[kMaxMulti];
  size_t row_start[kMaxMulti + 1];
  size_t count;
  RowSplit split;
};

namespace {

// Scratch layout (each part 64-byte aligned):
//   a    (m_max, k_max)           int8   quantized activations
//   d    (m_max, max_act_groups)  float  activation scales
//   sum  (m_max, max_act_groups)  int32  per-activation-group sums of a
//   msum (m_max, max_groups)      float  per-weight-group min terms (kernels.h)
struct ScratchLayout {
  size_t a_off, d_off, sum_off, msum_off, total;
  ScratchLayout(size_t m_max, size_t k_max, size_t max_groups, size_t max_act_groups) {
    a_off = 0;
    d_off = round_up(a_off + m_max * k_max, kAlign);
    sum_off = round_up(d_off + m_max * max_act_groups * sizeof(float), kAlign);
    msum_off = round_up(sum_off + m_max * max_act_groups * sizeof(int32_t), kAlign);
    total = round_up(msum_off + m_max * max_groups * sizeof(float), kAlign) + kAlign;
  }
};

void run_rows(const MatmulJob& job, size_t n0, size_t n1) {
  const WeightRef& w = *job.w;
  const size_t k = w.cols, ldy = w.rows;
  switch (w.type) {
    case DType::kU8ZeroOne: {
      const kernels::U8Matrix u{static_cast<const uint8_t*>(w.data), w.params, w.params_type, k,
                                job.group};
      job.table->matmul_u8s8(u, job.acts, job.m, job.y, ldy, n0, n1);
      break;
    }
    case DType::kF32:
      (w.blocked ? job.table->matmul_f32_blocked : job.table->matmul_f32)(
          static_cast<const float*>(w.data), k, job.x, job.m, job.y, ldy, n0, n1);
      break;
    case DType::kF16:
      (w.blocked ? job.table->matmul_f16_blocked : job.table->matmul_f16)(
          static_cast<const uint16_t*>(w.data), k, job.x, job.m, job.y, ldy, n0, n1);
      break;
    case DType::kBF16:
      (w.blocked ? job.table->matmul_bf16_blocked : job.table->matmul_bf16)(
          static_cast<const uint16_t*>(w.data), k, job.x, job.m, job.y, ldy, n0, n1);
      break;
  }
}

// Item t: the rows [boundary(t), boundary(t + 1)) of the row space, per weight they cover.
void run_multi_item(const MultiJob& mj, size_t t) {
  const size_t r0 = mj.split.boundary(t), r1 = mj.split.boundary(t + 1);
  for (size_t j = 0; j < mj.count; ++j) {
    const size_t b = mj.row_start[j], e = mj.row_start[j + 1];
    if (r1 <= b || r0 >= e) continue;
    run_rows(mj.jobs[j], (r0 > b ? r0 : b) - b, (r1 < e ? r1 : e) - b);
  }
}

void multi_item(void* arg, size_t t) { run_multi_item(*static_cast<const MultiJob*>(arg), t); }

struct QuantJob {
  const kernels::KernelTable* table;
  const float* x;
  size_t k, group, groups, act_group, acts;
  int8_t* a;
  float* d;
  int32_t* sum;
  float* msum;
};

void quant_tile(void* arg, size_t i0, size_t count) {
  const QuantJob& q = *static_cast<const QuantJob*>(arg);
  q.table->quantize_acts_s8(q.x + i0 * q.k, count, q.k, q.group, q.act_group, q.a + i0 * q.k,
                            q.d + i0 * q.acts, q.sum + i0 * q.acts, q.msum + i0 * q.groups);
}

// The activation group of u8 weight w with k columns and groups of `group`.
size_t act_group_of(const WeightRef& w, size_t group) {
  return zero_one_act_group_len(group, w.act_group);
}

// True when the weights can run on one prepared input: all u8 of one (cols, group, act group), or
// all float of one cols.
bool share_input(const WeightRef* const* w, size_t count) {
  const bool u8 = w[0]->type == DType::kU8ZeroOne;
  const size_t k = w[0]->cols;
  const size_t group = u8 ? zero_one_group_len(k, w[0]->group) : 0;
  const size_t act = u8 ? act_group_of(*w[0], group) : 0;
  for (size_t j = 1; j < count; ++j) {
    if ((w[j]->type == DType::kU8ZeroOne) != u8 || w[j]->cols != k ||
        (u8 &&
         (zero_one_group_len(k, w[j]->group) != group || act_group_of(*w[j], group) != act))) {
      return false;
    }
  }
  return true;
}

}  // namespace

size_t LinearExecutor::scratch_bytes(size_t m_max, size_t k_max, size_t max_groups,
                                     size_t max_act_groups) {
  return ScratchLayout(m_max, k_max, max_groups, max_act_groups).total;
}

Status LinearExecutor::init(const ThreadPool* pool, void* scratch, size_t scratch_size,
                            size_t m_max, size_t k_max, size_t max_groups, size_t max_act_groups) {
  const size_t need = scratch_bytes(m_max, k_max, max_groups, max_act_groups);
  if (pool == nullptr || scratch == nullptr || scratch_size < need) {
    return set_error(Status::kBufferTooSmall, "linear scratch: %zu bytes given, %zu needed",
                     scratch_size, need);
  }
  pool_ = pool;
  // Align the base inside the given buffer (scratch_bytes reserves kAlign bytes for this).
  const uintptr_t base = reinterpret_cast<uintptr_t>(scratch);
  scratch_ = reinterpret_cast<void*>(round_up(base, kAlign));
  scratch_size_ = scratch_size - (reinterpret_cast<uintptr_t>(scratch_) - base);
  m_max_ = m_max;
  k_max_ = k_max;
  max_groups_ = max_groups;
  max_act_groups_ = max_act_groups;
  return Status::kOk;
}

void LinearExecutor::quantize_input(const WeightRef& w, const float* x, size_t m, MatmulJob* job) {
  const kernels::KernelTable& table = *job->table;
  const ScratchLayout lay(m_max_, k_max_, max_groups_, max_act_groups_);
  const size_t k = w.cols;
  const size_t group = zero_one_group_len(k, w.group);
  const size_t groups = zero_one_groups_per_row(k, w.group);
  const size_t act_group = act_group_of(w, group);
  const size_t acts = (k + act_group - 1) / act_group;
  assert(groups <= max_groups_ && acts <= max_act_groups_);
  uint8_t* base = static_cast<uint8_t*>(scratch_);
  int8_t* a = reinterpret_cast<int8_t*>(base + lay.a_off);        // (m, k)
  float* d = reinterpret_cast<float*>(base + lay.d_off);          // (m, acts)
  int32_t* sum = reinterpret_cast<int32_t*>(base + lay.sum_off);  // (m, acts)
  float* msum = reinterpret_cast<float*>(base + lay.msum_off);    // (m, groups)
  const size_t threads = pool_->threads();
  if (threads > 1 && m >= 2 * threads && m * k >= ThreadPool::kMinParallelElements) {
    QuantJob qj{&table, x, k, group, groups, act_group, acts, a, d, sum, msum};
    pool_->parallel_ranges(m, 0, quant_tile, &qj);
  } else {
    table.quantize_acts_s8(x, m, k, group, act_group, a, d, sum, msum);
  }
  job->acts = kernels::S8Acts{a, d, sum, msum, act_group};
  job->group = group;
}

void LinearExecutor::linear(const WeightRef& w, const float* x, size_t m, float* y) {
  assert(m <= m_max_ && (w.type != DType::kU8ZeroOne || w.cols <= k_max_));
  if (xnn_ != nullptr && w.type == DType::kF32 && xnn_->run(w, x, m, y)) return;
  MultiJob mj;
  mj.count = 1;
  mj.jobs[0] = MatmulJob{&kernels::active(), &w, x, m, y, {}, 0};
  if (w.type == DType::kU8ZeroOne) quantize_input(w, x, m, &mj.jobs[0]);
  run_multi(&mj);
}

void LinearExecutor::run_multi(MultiJob* mj) {
  const size_t m = mj->jobs[0].m, k = mj->jobs[0].w->cols;
  mj->row_start[0] = 0;
  for (size_t j = 0; j < mj->count; ++j)
    mj->row_start[j + 1] = mj->row_start[j] + mj->jobs[j].w->rows;
  const size_t total_rows = mj->row_start[mj->count];
  if (pool_->threads() > 1 && m * total_rows * k >= ThreadPool::kMinParallelWork) {
    mj->split = RowSplit{total_rows, pool_->threads()};
    pool_->parallel_for(mj->split.items(), multi_item, mj);
    return;
  }
  for (size_t j = 0; j < mj->count; ++j) run_rows(mj->jobs[j], 0, mj->jobs[j].w->rows);
}

void LinearExecutor::linear_multi(const WeightRef* const* w, float* const* y, size_t count,
                                  const float* x, size_t m) {
  while (count > kMaxMulti) {  // more weights than one job holds: in chunks
    linear_multi(w, y, kMaxMulti, x, m);
    w += kMaxMulti;
    y += kMaxMulti;
    count -= kMaxMulti;
  }
  if (count == 0) return;
  // One shared input preparation: all u8 with one (cols, group), or all float.
  const bool u8 = w[0]->type == DType::kU8ZeroOne;
  const bool shared = share_input(w, count);
  if (!shared || (xnn_ != nullptr && !u8)) {  // (XNNPACK: one operator per float weight)
    for (size_t j = 0; j < count; ++j) linear(*w[j], x, m, y[j]);
    return;
  }
  assert(m <= m_max_ && (!u8 || w[0]->cols <= k_max_));
  const kernels::KernelTable& table = kernels::active();
  MultiJob mj;
  mj.count = count;
  for (size_t j = 0; j < count; ++j) {
    mj.jobs[j] = MatmulJob{&table, w[j], x, m, y[j], {}, 0};
  }
  if (u8) {
    quantize_input(*w[0], x, m, &mj.jobs[0]);
    for (size_t j = 1; j < count; ++j) {
      mj.jobs[j].acts = mj.jobs[0].acts;
      mj.jobs[j].group = mj.jobs[0].group;
    }
  }
  run_multi(&mj);
}

bool LinearExecutor::prepare(const WeightRef* const* w, size_t count, const float* x, size_t m) {
  if (count == 0 || w[0]->type != DType::kU8ZeroOne || !share_input(w, count)) return false;
  assert(m <= m_max_ && w[0]->cols <= k_max_);
  MatmulJob job{&kernels::active(), w[0], x, m, nullptr, {}, 0};
  quantize_input(*w[0], x, m, &job);
  prep_x_ = x;
  prep_a_ = job.acts.a;
  prep_d_ = job.acts.d;
  prep_sum_ = job.acts.sum;
  prep_msum_ = job.acts.msum;
  prep_m_ = m;
  prep_k_ = w[0]->cols;
  prep_group_ = job.group;
  prep_act_group_ = job.acts.act_group;
  return true;
}

void LinearExecutor::rows(const WeightRef& w, float* y, size_t r0, size_t r1) const {
  assert(w.type == DType::kU8ZeroOne && w.cols == prep_k_ &&
         zero_one_group_len(w.cols, w.group) == prep_group_ &&
         act_group_of(w, prep_group_) == prep_act_group_ && r0 <= r1 && r1 <= w.rows);
  const MatmulJob job{&kernels::active(),
                      &w,
                      prep_x_,
                      prep_m_,
                      y,
                      {prep_a_, prep_d_, prep_sum_, prep_msum_, prep_act_group_},
                      prep_group_};
  run_rows(job, r0, r1);
}

}  // namespace ember
