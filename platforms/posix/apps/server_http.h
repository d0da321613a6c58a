// ember-server's HTTP side (cpp-httplib): routes, authentication, limits, streaming, logs, and the
// life of the process from listening to a graceful exit.
#ifndef EMBER_APPS_SERVER_HTTP_H_
#define EMBER_APPS_SERVER_HTTP_H_

#include <signal.h>

#include <cstdint>
#include <string>

namespace ember_app {

struct ServerOptions {
  std::string model_path, host = "127.0.0.1", api_key, model_id;
  int port = 8080;
  uint32_t parallel = 4, queue = 16, n_ctx = 0, n_threads = 1, n_batch = 64;
  size_t max_body_bytes = 1 << 20;
  uint32_t http_threads = 0;
  int io_timeout_s = 10;
  double shutdown_grace_s = 10;
  bool verbose = false;
};

// Listens, loads the model (/health says 503 until it is ready), serves until one of
// `stop_signals` arrives (they must be blocked in every thread), then stops taking requests, lets
// running ones finish for shutdown_grace_s, and returns 0 (1 when the model cannot be loaded or
// the address cannot be bound).
int run_server(const ServerOptions& o, const sigset_t& stop_signals);

}  // namespace ember_app

#endif  // EMBER_APPS_SERVER_HTTP_H_
