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

}  // namespace ember

#endif  // EMBER_SRC_FORWARD_H_
