// The thread's last error message (ember_last_error). Thread-local where the platform has threads;
// on bare metal (no TLS runtime) one static buffer.
#include "core/status.h"

#include <cstdarg>
#include <cstdio>

#ifndef EMBER_THREAD_LOCAL
#if defined(EMBER_BAREMETAL_BUILD)
#define EMBER_THREAD_LOCAL
#else
#define EMBER_THREAD_LOCAL thread_local
#endif
#endif

namespace ember {
namespace {
EMBER_THREAD_LOCAL char g_last_error[512];
}  // namespace

Status set_error(Status s, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(g_last_error, sizeof g_last_error, fmt, ap);
  va_end(ap);
  return s;
}

const char* last_error() { return g_last_error; }

void clear_error() { g_last_error[0] = '\0'; }

}  // namespace ember
