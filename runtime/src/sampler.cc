#include "sampler.h"

#include <algorithm>
#include <cmath>

namespace ember {

uint64_t rng_seed(uint64_t seed) {
  // splitmix64 of the seed, so that nearby seeds give unrelated streams; xorshift needs nonzero.
  uint64_t z = seed + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return z == 0 ? 0x2545f4914f6cdd1dull : z;
}

float rng_uniform(uint64_t* state) {
  uint64_t x = *state == 0 ? 0x2545f4914f6cdd1dull : *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return static_cast<float>((x * 0x2545f4914f6cdd1dull) >> 40) / 16777216.0f;
}

int32_t argmax(const float* logits, size_t n) {
  int32_t best = 0;
  float bv = -INFINITY;
  bool found = false;
  for (size_t i = 0; i < n; ++i) {
    const float v = logits[i];
    if (std::isnan(v)) continue;
    if (!found || v > bv) {
      bv = v;
      best = static_cast<int32_t>(i);
      found = true;
    }
  }
  return best;
}

Status check_sampler(const ember_sampler_params& p) {
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature)) {
    return set_error(Status::kInvalidArgument, "sampler temperature %g (must be finite and >= 0)",
                     (double)p.temperature);
  }
  if (p.top_k < 0) {
    return set_error(Status::kInvalidArgument, "sampler top_k %d (must be >= 0)", p.top_k);
  }
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
    return set_error(Status::kInvalidArgument, "sampler top_p %g (must be in (0, 1])",
                     (double)p.top_p);
  }
  return Status::kOk;
}

Status sample(const float* logits, size_t n, const ember_sampler_params& p, uint64_t* rng_state,
              float* val, int32_t* idx, int32_t* out_id) {
  EMBER_RETURN_IF_ERROR(check_sampler(p));
  if (p.temperature == 0.0f || p.top_k == 1) {
    *out_id = argmax(logits, n);
    return Status::kOk;
  }
  // Candidates: all ids, or the top_k best (ties to the lower id so the order is total).
  for (size_t i = 0; i < n; ++i) idx[i] = static_cast<int32_t>(i);
  auto better = [logits](int32_t a, int32_t b) {
    const float la = std::isnan(logits[a]) ? -INFINITY : logits[a];
    const float lb = std::isnan(logits[b]) ? -INFINITY : logits[b];
    return la > lb || (la == lb && a < b);
  };
  size_t k = n;
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < n) {
    k = static_cast<size_t>(p.top_k);
    std::partial_sort(idx, idx + k, idx + n, better);
  } else if (p.top_p < 1.0f) {
    std::sort(idx, idx + n, better);
  } else {
    // No truncation: keep id order (no sort needed for plain temperature sampling).
  }
  // Softmax of logits / temperature over the k candidates.
  const float inv_t = 1.0f / p.temperature;
  float mx = -INFINITY;
  for (size_t i = 0; i < k; ++i) {
    const float v = logits[idx[i]];
    if (v > mx) mx = v;
  }
  if (!std::isfinite(mx)) {
    *out_id = argmax(logits, n);
    return Status::kOk;
  }
  double sum = 0.0;
  for (size_t i = 0; i < k; ++i) {
    const float v = logits[idx[i]];
    const float e = std::isnan(v) ? 0.0f : std::exp((v - mx) * inv_t);
    val[i] = e;
    sum += e;
  }
  // Top-p: the smallest prefix (candidates are sorted when top_p < 1) whose mass reaches top_p.
  if (p.top_p < 1.0f) {
    double cum = 0.0;
    size_t cut = k;
    for (size_t i = 0; i < k; ++i) {
      cum += val[i] / sum;
      if (cum >= p.top_p) {
        cut = i + 1;
        break;
      }
    }
    k = cut;
    sum = 0.0;
    for (size_t i = 0; i < k; ++i) sum += val[i];
  }
  const double r = static_cast<double>(rng_uniform(rng_state)) * sum;
  double cum = 0.0;
  for (size_t i = 0; i < k; ++i) {
    cum += val[i];
    if (r < cum) {
      *out_id = idx[i];
      return Status::kOk;
    }
  }
  *out_id = idx[k - 1];  // rounding: r landed on the total
  return Status::kOk;
}

}  // namespace ember
