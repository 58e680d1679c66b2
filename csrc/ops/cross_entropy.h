// Driver for softmax cross-entropy (torch.nn.functional.cross_entropy semantics): loss and
// gradient in one fused pass per position. No Python here.
//
// Per position (a "row": the class axis at one (n, d1..dk)), with p = softmax(z) over C classes,
// L = log(sum exp(z - max)) computed as log(count) + log1p(others / count), and the weighted
// target distribution v (see TargetTerms):
//   index target y, smoothing e:  v_c = w_c e / C
//     loss = (1 - e) w_y (max - z_y + L) + sum_c v_c (max - z_c) + L sum_c v_c
//     grad = g [((1 - e) w_y + sum v) p - v - (1 - e) w_y onehot_y]
//   probability target y:         v_c = w_c ((1 - e) y_c + e / C)
//     loss = sum_c v_c (max - z_c) + L sum_c v_c,   grad = g [(sum v) p - v]
// g is the upstream gradient divided by the mean's denominator. The target lane p_y - 1 is
// computed as -(count - 1 + others) / total when z_y is the max, with no cancellation.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/softmax_family.h"

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
