// One position's cross-entropy loss and the gradient's target lane from the fused pass's
// statistics (the derivation is in kernels/softmax_cross_entropy-inl.h). Shared by the array
// driver (drivers/cross_entropy.cpp) and the single-row C API (drivers/single_row.cpp), so both
// give the same bits. Scalar code in double; baseline code only.
#pragma once

#include <cmath>

#include "kernels/kernel_table.h"

namespace logitloss {
namespace drivers {

// One position's loss from log_sum = log_total(stats): sum_c v_c (L - z_c) = gap + mass L, plus
// for an index target y the (1 - e) w_y (target_gap + L) term, target_gap = max - z_y (e the label
// smoothing). A zero loss is -0.0, as torch's (a negated log-probability: -(w_y logp_y),
// -sum_c(w_c y_c logp_c)).
inline double position_loss(double log_sum, double gap, double mass, bool index_target, double e, double w_y,
                            double target_gap) {
  double loss = gap + mass * log_sum;
  if (index_target) loss += (1.0 - e) * w_y * (target_gap + log_sum);
  return loss == 0 ? -0.0 : loss;
}

// (max - x_y) / temperature with the quotient compensated (kernels/tempered_statistics-inl.h's
// policy): x data of T widened, the difference error-free, the division's exact remainder added,
// so the result is within an ULP of double of the exact quotient.
inline double tempered_gap(double max, double x_y, double temperature) {
  const double high = max - x_y;  // TwoDiff: high + low = max - x_y exactly
  const double x_y_virtual = max - high;
  const double low = (max - (high + x_y_virtual)) + (x_y_virtual - x_y);
  const double quotient = high / temperature;
  return quotient + (std::fma(-quotient, temperature, high) + low) / temperature;
}

// The gradient at an index target y: g ((1 - e) w_y (p_y - 1) + p_y mass - v_y), with p_y - 1
// taken as -(count - 1 + others) / total when z_y is the max (no cancellation). v_y must be the
// value the vector lanes used (rounded as they round it), so a one-class row gives exactly 0.
inline double target_lane_gradient(const SliceStats& stats, double g, double e, double w_y, double z_y,
                                   double mass, double v_y) {
  const double total = stats.count + stats.others;
  const double p_y = std::exp(z_y - stats.max) / total;
  const double p_y_minus_1 = z_y == stats.max ? -(stats.count - 1.0 + stats.others) / total : p_y - 1.0;
  return g * ((1.0 - e) * w_y * p_y_minus_1 + p_y * mass - v_y);
}

// z-loss's share of the gradient at the target lane (the fused pass's scale_per_lse lse p_y, the
// lane the driver rewrites): lse = max + log(total), as the kernel forms it.
inline double z_loss_target_lane(const SliceStats& stats, double scale_per_lse, double z_y) {
  const double total = stats.count + stats.others;
  return scale_per_lse * (stats.max + std::log(total)) * (std::exp(z_y - stats.max) / total);
}

}  // namespace drivers
}  // namespace logitloss
