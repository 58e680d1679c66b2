// Driver for binary cross-entropy with logits (torch.nn.functional.binary_cross_entropy_with_logits
// semantics): loss and gradient in one pass over operands that share the input's shape (weight
// and pos_weight broadcast to it with zero strides, never copied). No Python here.
#pragma once

#include <cstdint>

#include "drivers/array_call.h"

namespace logitloss {

// Elements per unit of work: rows are cut into segments of this length, each with its own partial
// sum, so the reduction (partials added in segment order) is the same whatever the threads (and
// the single-row C API, which sums its segments the same way, gives the same bits).
constexpr int64_t kBinaryCrossEntropySegment = 16 * 1024;

struct BinaryCrossEntropyOperands {
  int input = kNoOperand;
  int target = kNoOperand;
  int weight = kNoOperand;      // optional
  int pos_weight = kNoOperand;  // optional
  int upstream = kNoOperand;    // per-element upstream gradient (reduction none, backward), optional
  int loss = kNoOperand;        // per-element output (reduction none), optional
  int grad = kNoOperand;        // optional; may alias input
  LossReduction reduction = LossReduction::kMean;
  double upstream_scalar = 1.0;  // mean/sum: d result / d loss
  bool gradient_only = false;    // backward: the loss is neither stored nor reduced
  int hessian = kNoOperand;      // optional, only with grad (forward): the second derivative
};

// Returns the reduced loss (mean or sum; 0 for none or gradient_only). The mean of no elements is nan, as torch.
double run_binary_cross_entropy(const ArrayCall& call, const BinaryCrossEntropyOperands& ops);

}  // namespace logitloss
