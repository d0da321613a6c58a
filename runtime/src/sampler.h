// Token sampling: greedy, temperature, top-k, top-p with a caller-held xorshift64* state. Works in
// the context's scratch (vocab floats + vocab ids); never allocates.
#ifndef EMBER_SRC_SAMPLER_H_
#define EMBER_SRC_SAMPLER_H_

#include <cstddef>
#include <cstdint>

#include "core/status.h"
#include "ember/ember.h"

namespace ember {

uint64_t rng_seed(uint64_t seed);
// Uniform float in [0, 1) from the top 24 bits of the next xorshift64* output.
float rng_uniform(uint64_t* state);

// Greedy: the index of the largest logit, ties to the lowest index. NaN logits are never chosen
// unless all are NaN (then 0).
int32_t argmax(const float* logits, size_t n);

// Checks temperature (finite, >= 0), top_k (>= 0), top_p (in (0, 1]); the error names the field.
Status check_sampler(const ember_sampler_params& params);

// Samples from `logits` (n values). val (n floats) and idx (n ids) are scratch.
Status sample(const float* logits, size_t n, const ember_sampler_params& params,
              uint64_t* rng_state, float* val, int32_t* idx, int32_t* out_id);

}  // namespace ember

#endif  // EMBER_SRC_SAMPLER_H_
