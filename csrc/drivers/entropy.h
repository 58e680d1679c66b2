// Driver of entropy_with_logits: H(softmax(x)) along the reduced axes, in nats, and optionally its
// gradient, for every row of an N-d array (kernels/entropy-inl.h has the formulas). Edge cases follow
// softmax's (docs/semantics.md): a row with a nan, a +inf, or only -inf entries has a nan entropy
// and an all-nan gradient; -inf entries among finite ones are masked classes (p = 0, and their
// 0 * inf terms are 0). No Python here.
#pragma once

#include "drivers/array_call.h"

namespace logitloss {

struct EntropyOperands {
  int x = kNoOperand;
  int out = kNoOperand;   // per-row entropy
  int grad = kNoOperand;  // optional: dH/dx, x's shape
};

void run_entropy(const ArrayCall& call, const EntropyOperands& ops);

}  // namespace logitloss
