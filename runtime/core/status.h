// Status and Result<T>: errors without exceptions (ExecuTorch style). A failure is reported once,
// where it is detected, with a message naming the offending value (set_error), then passed up.
#ifndef EMBER_CORE_STATUS_H_
#define EMBER_CORE_STATUS_H_

#include <utility>

#include "ember/ember.h"

namespace ember {

enum class Status : int {
  kOk = EMBER_OK,
  kInvalidArgument = EMBER_ERR_INVALID_ARGUMENT,
  kIo = EMBER_ERR_IO,
  kBadFormat = EMBER_ERR_BAD_FORMAT,
  kUnsupported = EMBER_ERR_UNSUPPORTED,
  kOutOfMemory = EMBER_ERR_OUT_OF_MEMORY,
  kContextFull = EMBER_ERR_CONTEXT_FULL,
  kBufferTooSmall = EMBER_ERR_BUFFER_TOO_SMALL,
  kInternal = EMBER_ERR_INTERNAL,
  kBusy = EMBER_ERR_BUSY,
};

inline ember_status to_c(Status s) { return static_cast<ember_status>(s); }

// Records a printf-style message as this thread's last error and returns `s` (so a check reads
// `return set_error(Status::kBadFormat, "tensor '%s': ...", name)`). Messages longer than 511 bytes
// are truncated.
Status set_error(Status s, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
const char* last_error();
void clear_error();

// A value or the status that prevented it. T must be default-constructible and movable.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)), status_(Status::kOk) {}  // NOLINT: implicit by design
  Result(Status s) : status_(s) {}                                     // NOLINT
  bool ok() const { return status_ == Status::kOk; }
  Status status() const { return status_; }
  T& value() { return value_; }
  const T& value() const { return value_; }
  T& operator*() { return value_; }
  T* operator->() { return &value_; }

 private:
  T value_{};
  Status status_;
};

#define EMBER_RETURN_IF_ERROR(expr)                        \
  do {                                                     \
    ::ember::Status ember_s_ = (expr);                     \
    if (ember_s_ != ::ember::Status::kOk) return ember_s_; \
  } while (0)

// Overflow-checked size arithmetic for untrusted numbers: false on overflow.
inline bool checked_mul(unsigned long long a, unsigned long long b, unsigned long long* out) {
  return !__builtin_mul_overflow(a, b, out);
}
inline bool checked_add(unsigned long long a, unsigned long long b, unsigned long long* out) {
  return !__builtin_add_overflow(a, b, out);
}

}  // namespace ember

#endif  // EMBER_CORE_STATUS_H_
