// ember-server: an OpenAI-compatible HTTP server on the continuous batcher. HTTP threads
// (cpp-httplib's pool) parse, tokenize, enqueue and stream; one engine thread runs ember_step
// (server_engine.h). Endpoints: POST /v1/completions, POST /v1/chat/completions, GET /v1/models,
// GET /health, GET /metrics. docs/server.md describes the API, the limits and the errors.
#include <httplib.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "app_util.h"
#include "server_http.h"

namespace {

using ember_app::ServerOptions;

// The key from --api-key-file: the file's first line, surrounding whitespace removed.
bool read_key_file(const std::string& path, std::string* key) {
  std::ifstream f(path);
  if (!f) return false;
  std::getline(f, *key);
  const char* ws = " \t\r\n";
  const size_t b = key->find_first_not_of(ws);
  *key = b == std::string::npos ? "" : key->substr(b, key->find_last_not_of(ws) - b + 1);
  return true;
}

// The name /v1/models gives: the file name without its folder and ".ember".
std::string model_id_of(const std::string& path) {
  std::string id =
      path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  const std::string ext = ".ember";
  if (id.size() > ext.size() && id.compare(id.size() - ext.size(), ext.size(), ext) == 0) {
    id.resize(id.size() - ext.size());
  }
  return id;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ember-server: an OpenAI-compatible completions server for an .ember model"};
  ServerOptions o;
  std::string key_file;
  app.add_option("-m,--model", o.model_path, "Model file (.ember)")->required();
  app.add_option("--host", o.host, "Address to listen on")->capture_default_str();
  app.add_option("--port", o.port, "Port (0 = any free port; the log says which)")
      ->capture_default_str();
  app.add_option("--parallel", o.parallel, "Requests generating at once (KV cache slots)")
      ->capture_default_str();
  app.add_option("--queue", o.queue,
                 "Requests that may wait for a slot; beyond slots + queue a request gets 503")
      ->capture_default_str();
  app.add_option("-c,--ctx", o.n_ctx, "Context length per slot (0 = the model's)")
      ->capture_default_str();
  app.add_option("-t,--threads", o.n_threads, "Worker threads for the kernels")
      ->capture_default_str();
  app.add_option("-b,--batch", o.n_batch, "Most tokens per forward pass")->capture_default_str();
  auto* key_opt = app.add_option(
      "--api-key", o.api_key, "Require 'Authorization: Bearer KEY' on every endpoint but /health");
  app.add_option("--api-key-file", key_file, "Like --api-key, the key read from FILE's first line")
      ->excludes(key_opt);
  app.add_option("--model-id", o.model_id, "Model name in /v1/models (default: the file name)");
  app.add_option("--max-body", o.max_body_bytes, "Largest request body in bytes (413 beyond)")
      ->capture_default_str();
  app.add_option("--http-threads", o.http_threads,
                 "HTTP threads (0 = slots + queue + 8, so that refusals never wait)")
      ->capture_default_str();
  app.add_option("--timeout", o.io_timeout_s,
                 "Seconds a client may take to send a request or accept response bytes")
      ->capture_default_str();
  app.add_option("--shutdown-grace", o.shutdown_grace_s,
                 "On SIGINT/SIGTERM: seconds running requests may take to finish before they are "
                 "cancelled")
      ->capture_default_str();
  app.add_flag("--verbose", o.verbose, "Also log prompt and generated text");
  CLI11_PARSE(app, argc, argv);
  if (!key_file.empty() && !read_key_file(key_file, &o.api_key)) {
    std::fprintf(stderr, "ember-server: cannot read --api-key-file '%s'\n", key_file.c_str());
    return 1;
  }
  if ((!key_file.empty() || key_opt->count() > 0) && o.api_key.empty()) {
    std::fprintf(stderr, "ember-server: the API key is empty\n");
    return 1;
  }
  if (o.parallel == 0 || o.n_batch == 0) {
    std::fprintf(stderr, "ember-server: --parallel and --batch must be at least 1\n");
    return 1;
  }
  if (o.model_id.empty()) o.model_id = model_id_of(o.model_path);

  // SIGINT / SIGTERM are taken by sigwait below, in this thread only: block them before any
  // thread starts (threads inherit the mask). A client gone mid-write must not kill the process.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return ember_app::run_server(o, stop_signals);
}
