// Driver for softmax cross-entropy (torch.nn.functional.cross_entropy semantics): loss and
// gradient in one fused pass per position. The derivation (loss = gap + mass L, gradient
// g (mass p - v), the target lane without cancellation) is in
// kernels/softmax_cross_entropy-inl.h. No Python here.
#pragma once

#include <cmath>
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
  int hessian = kNoOperand;  // full output, optional (only with grad): the Hessian's diagonal
  // The logit options: z'' = softcap tanh(z / softcap) / temperature (softcap 0: no cap) is the
  // row the loss is taken of, plus z_loss w lse(z'')^2 per kept position (w its row weight).
  double temperature = 1.0;
  double softcap = 0.0;
  double z_loss = 0.0;
  bool has_logit_options() const { return temperature != 1.0 || softcap != 0.0 || z_loss != 0.0; }
};

struct CrossEntropyResult {
  double loss = 0.0;         // the reduced loss (mean or sum)
  bool bad_target = false;   // an index target out of range: nothing was computed
  int64_t bad_target_value = 0;
};

// Whether smoothing's target terms v_c = e / C * w_c are at most 1 / C (see gap_fusable): e times
// the largest |w_c| at most 1. Only smoothing has such terms; a nan weight makes the bound fail.
template <class T>
inline bool smoothing_mass_bounded(const T* weight, int64_t classes, double smoothing) {
  double largest_weight = 1.0;
  if (weight && smoothing > 0) {
    largest_weight = 0.0;
    for (int64_t c = 0; c < classes; ++c) {
      const double w = std::fabs((double)weight[c]);
      if (!(w <= largest_weight)) largest_weight = w;
    }
  }
  return smoothing * largest_weight <= 1.0;
}

CrossEntropyResult run_cross_entropy(const ArrayCall& call, const CrossEntropyOperands& ops);

}  // namespace logitloss
