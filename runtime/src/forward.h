// The Llama forward pass over a batch of tokens (each with its position and sequence slot).
#ifndef EMBER_SRC_FORWARD_H_
#define EMBER_SRC_FORWARD_H_

#include "context.h"
#include "core/status.h"
#include "ember/ember.h"

namespace ember {

// Checks every token of the batch (ids, slots, positions, capacity) before touching any state, then
// runs the model, appends K/V to the slots and leaves logits for the tokens that asked for them.
Status decode(Context* ctx, const ember_batch& batch);

// Context shift of slot `seq` (checked by the caller: n_keep + n_discard <= its length): drops
// positions [n_keep, n_keep + n_discard) and moves the later ones down by n_discard, their keys
// re-rotated for their new positions (f16 / u8 keys are widened, rotated and stored again; values
// move as stored). Allocates nothing.
void kv_shift(Context* ctx, uint32_t seq, uint32_t n_keep, uint32_t n_discard);

}  // namespace ember

#endif  // EMBER_SRC_FORWARD_H_
