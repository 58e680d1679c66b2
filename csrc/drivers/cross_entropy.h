// Driver for softmax cross-entropy (torch.nn.functional.cross_entropy semantics): loss and
// gradient in one fused pass per position. The derivation (loss = gap + mass L, gradient
// g (mass p - v), the target lane without cancellation) is in
// kernels/softmax_cross_entropy-inl.h. No Python here.
#pragma once

#include <cstdint>
#include <vector>

#include "drivers/array_call.h"

namespace logitloss {

struct CrossEntropyOperands {
  int input = kNoOperand;
  int target = kNoOperand;    // int64 class indices (per-row operand) or probabilities (full)
  int loss = kNoOperand;      // per-row output (reduction none), optional
  int grad = kNoOperand;      // full output, optional; may alias input
  int upstream = kNoOperand;  // per-row upstream gradient (reduction none, backward), optional
  bool probability_targets = false;
  const void* weight = nullptr;  // C class weights in the compute dtype, contiguous; or null
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  LossReduction reduction = LossReduction::kMean;
  double upstream_scalar = 1.0;  // mean/sum: d result / d loss
};

struct CrossEntropyResult {
  double loss = 0.0;         // the reduced loss (mean or sum)
  bool bad_target = false;   // an index target out of range: nothing was computed
  int64_t bad_target_value = 0;
};

CrossEntropyResult run_cross_entropy(const ArrayCall& call, const CrossEntropyOperands& ops);

}  // namespace logitloss
