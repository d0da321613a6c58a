// ember-server's engine: one thread owns the context and runs the continuous batcher
// (ember_request_submit / ember_step); HTTP threads hand it jobs and read their text back. A job
// never blocks the engine: text goes into the job's buffer, which its HTTP thread drains at its
// own pace, and a job whose client has gone is cancelled at the next step.
#ifndef EMBER_APPS_SERVER_ENGINE_H_
#define EMBER_APPS_SERVER_ENGINE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ember/ember.h"

namespace ember_app {

// One prompt's request, shared by its HTTP thread and the engine.
struct Job {
  // Set by the HTTP thread before submit; read-only afterwards.
  std::vector<int32_t> prompt_ids;
  uint32_t max_tokens = 16;
  ember_sampler_params sampler{};
  std::vector<std::string> stop;
  bool ignore_eos = false;

  // Set by the HTTP thread when its client is gone; the engine cancels the request.
  std::atomic<bool> cancel{false};

  // Written by the engine, read by the HTTP thread, under `mu`.
  std::mutex mu;
  std::condition_variable cv;
  std::string text;  // released text the HTTP thread has not taken yet
  bool done = false;
  ember_finish_reason finish = EMBER_FINISH_NONE;
  uint32_t n_prompt_tokens = 0, n_generated = 0;
  uint32_t n_cached = 0;  // prompt tokens found in the KV cache (prefix reuse)
  std::string error;      // why it could not run ("" = it ran)

  // Waits up to `seconds` for text or the end; moves the new text to *out. True once done (and
  // all text taken).
  bool wait_text(double seconds, std::string* out);

  // Engine side only.
  uint64_t id = 0;
  bool finished_in_step = false;
};

// Figures for /metrics, read without stopping the engine.
struct EngineMetrics {
  std::atomic<uint64_t> requests_started{0}, requests_finished{0}, requests_cancelled{0};
  std::atomic<uint64_t> requests_rejected{0};  // refused at once: every place taken
  std::atomic<uint64_t> prompt_tokens{0}, generated_tokens{0};
  std::atomic<uint64_t> cached_tokens{0};  // prompt tokens found in the KV cache
  std::atomic<uint32_t> queued{0}, slots_busy{0}, slots_busy_max{0};
  std::atomic<double> tokens_per_second{0};  // generated tokens/s over the last seconds
};

class Engine {
 public:
  // `places` = n_seq_max + n_queue_max of `ctx`, which the engine owns from start() to stop().
  Engine(ember_context* ctx, uint32_t slots, uint32_t places);
  ~Engine();

  void start();

  // Takes `n` request places for a call about to submit `n` jobs; false (nothing taken) when
  // fewer are free or the engine is stopping: the caller answers 503 at once instead of waiting.
  bool reserve(uint32_t n);
  // Gives back places reserved but not used.
  void unreserve(uint32_t n);
  // Hands a job (with a reserved place) to the engine.
  void submit(const std::shared_ptr<Job>& job);

  // Stops taking jobs, lets running ones finish for up to `grace_seconds`, cancels the rest and
  // joins the thread.
  void stop(double grace_seconds);

  EngineMetrics& metrics() { return metrics_; }
  uint32_t slots() const { return slots_; }
  uint32_t places() const { return places_; }

 private:
  void run();
  void admit(const std::shared_ptr<Job>& job);
  void collect_finished();
  void update_gauges();
  static int on_event(const ember_request_event* ev, void* user);

  ember_context* ctx_;
  const uint32_t slots_, places_;
  std::atomic<uint32_t> reserved_{0};
  std::atomic<bool> stopping_{false};

  std::mutex mu_;  // guards incoming_, quit_, cancel_all_
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> incoming_;
  bool quit_ = false, cancel_all_ = false;

  std::vector<std::shared_ptr<Job>> active_;  // engine thread only
  std::thread thread_;
  EngineMetrics metrics_;
  double rate_t0_ = 0;
  uint64_t rate_tokens0_ = 0;
};

}  // namespace ember_app

#endif  // EMBER_APPS_SERVER_ENGINE_H_
