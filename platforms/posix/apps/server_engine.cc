#include "server_engine.h"

#include <chrono>

#include "app_util.h"

namespace ember_app {

bool Job::wait_text(double seconds, std::string* out) {
  std::unique_lock<std::mutex> lk(mu);
  if (text.empty() && !done) {
    cv.wait_for(lk, std::chrono::duration<double>(seconds), [&] { return !text.empty() || done; });
  }
  out->append(text);
  text.clear();
  return done;
}

Engine::Engine(ember_context* ctx, uint32_t slots, uint32_t places)
    : ctx_(ctx), slots_(slots), places_(places) {}

Engine::~Engine() {
  if (thread_.joinable()) stop(0);
}

void Engine::start() {
  rate_t0_ = now_seconds();
  thread_ = std::thread([this] { run(); });
}

bool Engine::reserve(uint32_t n) {
  if (stopping_.load()) return false;
  uint32_t cur = reserved_.load();
  do {
    if (cur + n > places_) {
      metrics_.requests_rejected += n;
      return false;
    }
  } while (!reserved_.compare_exchange_weak(cur, cur + n));
  return true;
}

void Engine::unreserve(uint32_t n) { reserved_ -= n; }

void Engine::submit(const std::shared_ptr<Job>& job) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    incoming_.push_back(job);
  }
  cv_.notify_one();
}

void Engine::stop(double grace_seconds) {
  stopping_ = true;
  const double deadline = now_seconds() + grace_seconds;
  // Running and queued requests may finish within the grace period; reserved_ counts them from
  // reserve() to their release.
  while (reserved_.load() > 0 && now_seconds() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    cancel_all_ = true;
    quit_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

int Engine::on_event(const ember_request_event* ev, void* user) {
  Job* job = static_cast<Job*>(user);
  {
    std::lock_guard<std::mutex> lk(job->mu);
    if (ev->text_len > 0) job->text.append(ev->text, ev->text_len);
  }
  if (ev->text_len > 0) job->cv.notify_all();
  if (ev->finish != EMBER_FINISH_NONE) job->finished_in_step = true;
  return job->cancel.load() ? 1 : 0;
}

// Submits a job to the batcher (its place is reserved, so the batcher has room).
void Engine::admit(const std::shared_ptr<Job>& job) {
  ember_request_params p = ember_request_default_params();
  p.prompt_ids = job->prompt_ids.data();
  p.n_prompt_ids = job->prompt_ids.size();
  p.max_new_tokens = job->max_tokens;
  p.sampler = job->sampler;
  p.stop_at_bos = job->ignore_eos ? 0 : 1;  // llama2.c-style models end a text with BOS
  p.ignore_eos = job->ignore_eos ? 1 : 0;
  std::vector<const char*> stops;
  for (const std::string& s : job->stop) stops.push_back(s.c_str());
  p.stop_strings = stops.data();
  p.n_stop_strings = static_cast<uint32_t>(stops.size());
  p.on_event = on_event;
  p.user = job.get();
  const ember_status s = cancel_all_ ? EMBER_ERR_BUSY : ember_request_submit(ctx_, &p, &job->id);
  if (s != EMBER_OK) {
    {
      std::lock_guard<std::mutex> lk(job->mu);
      job->error = cancel_all_ ? "the server is shutting down"
                               : std::string(ember_status_string(s)) + ": " + ember_last_error();
      job->done = true;
    }
    job->cv.notify_all();
    unreserve(1);
    return;
  }
  ++metrics_.requests_started;
  metrics_.prompt_tokens += job->prompt_ids.size();
  active_.push_back(job);
}

// Releases the requests that finished in the last step and wakes their HTTP threads.
void Engine::collect_finished() {
  for (size_t i = 0; i < active_.size();) {
    const std::shared_ptr<Job> job = active_[i];
    if (!job->finished_in_step) {
      ++i;
      continue;
    }
    ember_request_info info;
    ember_request_info_get(ctx_, job->id, &info);
    ember_request_release(ctx_, job->id);
    metrics_.generated_tokens += info.n_generated;
    metrics_.cached_tokens += info.n_prompt_reused;
    ++metrics_.requests_finished;
    if (info.finish == EMBER_FINISH_CANCELLED) ++metrics_.requests_cancelled;
    {
      std::lock_guard<std::mutex> lk(job->mu);
      job->finish = info.finish;
      job->n_prompt_tokens = info.n_prompt_tokens;
      job->n_generated = info.n_generated;
      job->n_cached = info.n_prompt_reused;
      job->done = true;
    }
    job->cv.notify_all();
    active_[i] = active_.back();
    active_.pop_back();
    unreserve(1);
  }
}

void Engine::update_gauges() {
  uint32_t queued = 0, busy = 0;
  for (const std::shared_ptr<Job>& job : active_) {
    ember_request_info info;
    if (ember_request_info_get(ctx_, job->id, &info) != EMBER_OK) continue;
    if (info.finish != EMBER_FINISH_NONE) continue;
    if (info.queued) {
      ++queued;
    } else {
      ++busy;
    }
  }
  metrics_.queued = queued;
  metrics_.slots_busy = busy;
  if (busy > metrics_.slots_busy_max) metrics_.slots_busy_max = busy;
  // Tokens/s over windows of at least two seconds (generated tokens counted at release, plus those
  // of running requests so that a long request shows while it runs).
  const double t = now_seconds();
  if (t - rate_t0_ >= 2.0) {
    uint64_t tokens = metrics_.generated_tokens.load();
    for (const std::shared_ptr<Job>& job : active_) {
      ember_request_info info;
      if (ember_request_info_get(ctx_, job->id, &info) == EMBER_OK) tokens += info.n_generated;
    }
    metrics_.tokens_per_second =
        tokens >= rate_tokens0_ ? (tokens - rate_tokens0_) / (t - rate_t0_) : 0.0;
    rate_t0_ = t;
    rate_tokens0_ = tokens;
  }
}

void Engine::run() {
  for (;;) {
    std::deque<std::shared_ptr<Job>> fresh;
    bool cancel_all = false;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait_for(lk, std::chrono::milliseconds(active_.empty() ? 1000 : 0),
                   [&] { return quit_ || !incoming_.empty() || !active_.empty(); });
      fresh.swap(incoming_);
      cancel_all = cancel_all_;
      if (quit_ && fresh.empty() && active_.empty()) break;
    }
    for (const std::shared_ptr<Job>& job : fresh) admit(job);
    for (const std::shared_ptr<Job>& job : active_) {
      if (cancel_all || job->cancel.load()) ember_request_cancel(ctx_, job->id);
    }
    update_gauges();
    if (!active_.empty()) {
      uint32_t pending = 0;
      const ember_status s = ember_step(ctx_, &pending);
      if (s != EMBER_OK) {
        std::fprintf(stderr, "ember-server: step: %s: %s\n", ember_status_string(s),
                     ember_last_error());
      }
      collect_finished();
      update_gauges();
    }
  }
  metrics_.queued = 0;
  metrics_.slots_busy = 0;
}

}  // namespace ember_app
