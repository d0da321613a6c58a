// Lays the buffers of one memory block out one after another, each 64-aligned, with overflow
// checks: the context plan (context.cc) and the model plan (model.cc) both compute their offsets
// with it.
#ifndef EMBER_SRC_PLANNER_H_
#define EMBER_SRC_PLANNER_H_

#include <cstddef>
#include <cstdint>

#include "core/format.h"
#include "core/status.h"

namespace ember {

class Planner {
 public:
  explicit Planner(size_t start) : cur_(start) {}
  // count * elem bytes; returns false on overflow.
  bool add(unsigned long long count, size_t elem, size_t* off) {
    unsigned long long bytes = 0, end = 0;
    if (!checked_mul(count, elem, &bytes)) return ok_ = false;
    const unsigned long long start = align_up(cur_, kWeightAlignment);
    if (start < cur_ || !checked_add(start, bytes, &end) || end > SIZE_MAX - kWeightAlignment) {
      return ok_ = false;
    }
    *off = static_cast<size_t>(start);
    cur_ = static_cast<size_t>(end);
    return true;
  }
  bool ok() const { return ok_; }
  size_t total() const { return static_cast<size_t>(align_up(cur_, kWeightAlignment)); }

 private:
  unsigned long long cur_;
  bool ok_ = true;
};

}  // namespace ember

#endif  // EMBER_SRC_PLANNER_H_
