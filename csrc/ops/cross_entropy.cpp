#include "ops/cross_entropy.h"

#include <cmath>
#include <vector>

#include "ops/row_access.h"
#include "runtime/dispatch.h"

namespace logitloss {
namespace {

using namespace row_access;

// Pass over the class indices before any logit is read: every target in range (or ignored), and
// the mean's denominator, sum of weight[target] over the kept positions, summed in row order.
template <class T>
bool check_targets(const ArrayCall& call, const CrossEntropyOperands& ops, int64_t classes, double& denominator,
                   int64_t& bad_value) {
  const T* weight = static_cast<const T*>(ops.weight);
  RowCursor cursor(call.layout, 0);
  denominator = 0.0;
  for (int64_t r = 0; r < call.layout.rows; ++r, cursor.next()) {
    const int64_t y = load_scalar<int64_t>(call.base[ops.target] + cursor.offset(ops.target));
    if (y == ops.ignore_index) continue;
    if (y < 0 || y >= classes) {
      bad_value = y;
      return false;
    }
    denominator += weight ? (double)weight[y] : 1.0;
  }
  return true;
}

// One position's loss from its statistics and log_sum = log_total(s): sum_c v_c (L - z_c) =
// gap + mass L, plus for an index target y the (1 - e) w_y (max - z_y + L) term. A zero loss is
// -0.0, as torch's (a negated log-probability: -(w_y logp_y), -sum_c(w_c y_c logp_c)).
double position_loss(const SliceStats& s, double log_sum, double gap, double mass, bool index_target, double e,
                     double w_y, double z_y) {
  double loss = gap + mass * log_sum;
  if (index_target) loss += (1.0 - e) * w_y * ((s.max - z_y) + log_sum);
  return loss == 0 ? -0.0 : loss;
}

// The gradient at an index target y: g ((1 - e) w_y (p_y - 1) + p_y mass - v_y), with p_y - 1
// taken as -(count - 1 + others) / total when z_y is the max (no cancellation). v_y must be the
// value the vector lanes used (rounded as they round it), so a one-class row gives exactly 0.
double target_lane_gradient(const SliceStats& s, double g, double e, double w_y, double z_y, double mass, double v_y) {
  const double total = s.count + s.others;
  const double p_y = std::exp(z_y - s.max) / total;
  const double p_y_minus_1 = z_y == s.max ? -(s.count - 1.0 + s.others) / total : p_y - 1.0;
  return g * ((1.0 - e) * w_y * p_y_minus_1 + p_y * mass - v_y);
}

// The class axis is the contiguous one (or strided with no contiguous alternative): one fused
// kernel call per position. Losses are settled in batches of up to kRowBatch positions, their
// log totals in one vector call (for short rows a scalar log1p per row cost more than the row).
template <class T>
void cross_entropy_rows(const TypedKernels<T>& k, const ArrayCall& call, const CrossEntropyOperands& ops,
                        double g_common, std::vector<double>& row_loss) {
  const ReductionLayout& L = call.layout;
  const int64_t C = L.length;
  const T* weight = static_cast<const T*>(ops.weight);
  const double e = ops.label_smoothing;
  const bool stream = stream_output<T>(call, ops.grad, ops.input);
  const KernelTable& table = active_kernels();
  // Smoothing's target terms v_c = e / C * w_c at most 1 / C (see gap_fusable). Only smoothing
  // has such terms; a nan weight makes the bound fail.
  double largest_weight = 1.0;
  if (weight && e > 0) {
    largest_weight = 0.0;
    for (int64_t c = 0; c < C; ++c) {
      const double w = std::fabs((double)weight[c]);
      if (!(w <= largest_weight)) largest_weight = w;
    }
  }
  const bool bounded_mass = e * largest_weight <= 1.0;
  // A regular position's loss waiting for its log total.
  struct PendingLoss {
    int64_t r;
    char* loss_at;  // where the per-position loss goes (null: no such output)
    double gap, mass, w_y, z_y;
  };
  for_each_row_range(L, [&](int64_t begin, int64_t end, RowCursor& cur) {
    PendingLoss pending[kRowBatch];
    SliceStats stats[kRowBatch];
    double log_sums[kRowBatch];
    int64_t waiting = 0;
    auto finish = [&](int64_t r, char* loss_at, double loss) {
      if (loss_at) store_scalar<T>(loss_at, (T)loss);
      if (!row_loss.empty()) row_loss[(size_t)r] = loss;
    };
    auto settle = [&] {
      table.log_totals(stats, waiting, log_sums);
      for (int64_t i = 0; i < waiting; ++i) {
        const PendingLoss& p = pending[i];
        finish(p.r, p.loss_at,
               position_loss(stats[i], log_sums[i], p.gap, p.mass, !ops.probability_targets, e, p.w_y, p.z_y));
      }
      waiting = 0;
    };
    for (int64_t r = begin; r < end; ++r, cur.next()) {
      const T* x = row_input<T>(call.base[ops.input] + cur.offset(ops.input), L.row_stride[ops.input], C, 0);
      char* grad_bytes = ops.grad == kNoOperand ? nullptr : call.base[ops.grad] + cur.offset(ops.grad);
      const int64_t grad_stride = ops.grad == kNoOperand ? 0 : L.row_stride[ops.grad];
      char* loss_at = ops.loss == kNoOperand ? nullptr : call.base[ops.loss] + cur.offset(ops.loss);
      const double g = g_common * (ops.upstream == kNoOperand
                                       ? 1.0
                                       : (double)load_scalar<T>(call.base[ops.upstream] + cur.offset(ops.upstream)));

      // 1. The position's target: an index (maybe ignored) or a distribution.
      int64_t y = -1;
      double w_y = 0.0, z_y = 0.0;
      const T* target_probs = nullptr;
      if (ops.probability_targets) {
        target_probs = row_input<T>(call.base[ops.target] + cur.offset(ops.target), L.row_stride[ops.target], C, 1);
      } else {
        y = load_scalar<int64_t>(call.base[ops.target] + cur.offset(ops.target));
        if (y == ops.ignore_index) {
          if (grad_bytes) {
            for (int64_t c = 0; c < C; ++c) store_scalar<T>(grad_bytes + c * grad_stride, T(0));
          }
          // With no classes, label smoothing's e / C is inf and torch's 0 * inf makes the loss nan.
          finish(r, loss_at, C == 0 && e > 0 ? kNan : 0.0);
          continue;
        }
        w_y = weight ? (double)weight[y] : 1.0;
        // (C == 0 never gets here: every class index is out of range)
        // Read before the gradient (possibly in place) overwrites it; memcpy: arrays may be unaligned.
        z_y = (double)load_scalar<T>(reinterpret_cast<const char*>(x + y));
      }

      // No classes (probability targets of shape (N, 0, ...)): the loss is an empty sum, negated
      // (-0.0, as torch), and the gradient is empty. (Index targets get here only if ignored.)
      if (C == 0) {
        finish(r, loss_at, -0.0);
        continue;
      }

      // 2. One fused pass: statistics, target terms and (if asked) the gradient.
      const TargetTerms<T> terms{
          weight,
          target_probs,
          ops.probability_targets ? (T)(1.0 - e) : T(0),
          (T)(e / (double)C),
          ops.probability_targets ? 0.0 : g * (1.0 - e) * w_y,
          g,
          (T)g,
          bounded_mass,
      };
      T* grad = grad_bytes ? row_output<T>(grad_bytes, grad_stride, C, 2) : nullptr;
      const FusedStats fused = k.row_softmax_fused(x, C, grad, chunk_scratch(C), staging_for<T>(stream, C), terms);
      const SliceStats& s = fused.stats;
      if (!regular_row(s)) {  // a nan, an all -inf row, or +inf: nan, as torch
        if (grad_bytes) {
          for (int64_t c = 0; c < C; ++c) store_scalar<T>(grad_bytes + c * grad_stride, (T)kNan);
        }
        finish(r, loss_at, kNan);
        continue;
      }

      // 3. The target lane of the gradient without cancellation; the loss once its log is taken.
      if (grad && !ops.probability_targets) {
        store_scalar<T>(reinterpret_cast<char*>(grad + y),
                        (T)target_lane_gradient(s, g, e, w_y, z_y, fused.mass, w_y * (double)terms.target_offset));
      }
      if (grad) finish_row_output(grad_bytes, grad_stride, C, grad);
      pending[waiting] = {r, loss_at, fused.gap, fused.mass, w_y, z_y};
      stats[waiting] = s;
      if (++waiting == kRowBatch) settle();
    }
    if (waiting > 0) settle();
  });
}

// K-dim input (N, C, d1..dk): the class axis is strided and the positions are contiguous. Phase 1
// takes every position's statistics with the column kernel (no transposed copy); the target terms
// are summed row by row over the classes; phase 2 writes the gradient row by row over whole
// contiguous rows; the target lanes and the rows needing edge-case rules are fixed last.
template <class T>
void cross_entropy_columns(const TypedKernels<T>& k, const ArrayCall& call, const CrossEntropyOperands& ops,
                           double g_common, std::vector<double>& row_loss) {
  const ReductionLayout& L = call.layout;
  const int64_t C = L.length;
  const T* weight = static_cast<const T*>(ops.weight);
  const double e = ops.label_smoothing;
  const ColumnBlocks cb = column_blocks(L);
  const int64_t positions = cb.blocks.rows * cb.columns;
  const std::vector<SliceStats> stats = column_statistics(k, call, ops.input, cb, kStatsCompensated);
  const double a1 = ops.probability_targets ? (double)(T)(1.0 - e) : 0.0;
  const double a0 = (double)(T)(e / (double)C);
  const bool has_terms = a1 != 0 || a0 != 0;
  auto element = [&](int op, int64_t block, int64_t column, int64_t c) {
    return column_address(call, cb, op, block, column) + c * L.row_stride[op];
  };
  auto target_mass = [&](int64_t block, int64_t column, int64_t c) {  // v_c at a position
    const double y = ops.probability_targets ? (double)load_scalar<T>(element(ops.target, block, column, c)) : 0.0;
    return (weight ? (double)weight[c] : 1.0) * (a1 * y + a0);
  };

  // 1. Per position: target, upstream gradient, target logit (before any in-place write).
  std::vector<int64_t> y(positions, -1);
  std::vector<double> g(positions), z_y(positions), gap(positions, 0.0), mass(positions, 0.0);
  for (int64_t i = 0; i < positions; ++i) {
    const int64_t block = i / cb.columns, column = i % cb.columns;
    g[i] = g_common * (ops.upstream == kNoOperand ? 1.0 : (double)load_scalar<T>(column_address(call, cb, ops.upstream, block, column)));
    if (ops.probability_targets) continue;
    y[i] = load_scalar<int64_t>(column_address(call, cb, ops.target, block, column));
    if (y[i] != ops.ignore_index) z_y[i] = (double)load_scalar<T>(element(ops.input, block, column, y[i]));
  }
  // 2. Target terms, class by class: gap = sum_c v_c (max - z_c), mass = sum_c v_c.
  if (has_terms) {
    for (int64_t block = 0; block < cb.blocks.rows; ++block) {
      for (int64_t c = 0; c < C; ++c) {
        for (int64_t column = 0; column < cb.columns; ++column) {
          const int64_t i = block * cb.columns + column;
          const double v = target_mass(block, column, c);
          gap[i] += v * (stats[i].max - (double)load_scalar<T>(element(ops.input, block, column, c)));
          mass[i] += v;
        }
      }
    }
  }
  // 3. Losses and the parameters of the gradient pass.
  std::vector<T> shift(positions, T(0)), scale(positions, T(0));
  std::vector<char> regular(positions, 0);
  for (int64_t i = 0; i < positions; ++i) {
    const SliceStats& s = stats[i];
    double loss;
    if (!ops.probability_targets && y[i] == ops.ignore_index) {
      loss = 0.0;
    } else if (!regular_row(s)) {
      loss = kNan;
    } else {
      regular[i] = 1;
      const double w_y = ops.probability_targets ? 0.0 : (weight ? (double)weight[y[i]] : 1.0);
      loss = position_loss(s, log_total(s), gap[i], mass[i], !ops.probability_targets, e, w_y, z_y[i]);
      shift[i] = (T)s.max;
      scale[i] = (T)(g[i] * ((1.0 - e) * w_y + mass[i]) / (s.count + s.others));
    }
    const int64_t block = i / cb.columns, column = i % cb.columns;
    if (ops.loss != kNoOperand) store_scalar<T>(const_cast<char*>(column_address(call, cb, ops.loss, block, column)), (T)loss);
    if (!row_loss.empty()) row_loss[(size_t)i] = loss;
  }
  if (ops.grad == kNoOperand) return;
  // 4. The gradient, row by row over the classes: g (scale p - v).
  for_each_column_row<T>(call, cb, ops.input, ops.grad, [&](int64_t block, int64_t c, const T* x_row, T* grad_row) {
    const size_t at = (size_t)(block * cb.columns);
    k.column_scaled_exp(x_row, 1, 0, cb.columns, shift.data() + at, scale.data() + at, grad_row, 0);
    if (!has_terms) return;
    for (int64_t column = 0; column < cb.columns; ++column) {
      grad_row[column] = (T)((double)grad_row[column] - g[at + column] * target_mass(block, column, c));
    }
  });
  // 5. Target lanes without cancellation; ignored positions 0; edge-case positions nan.
  for (int64_t i = 0; i < positions; ++i) {
    const int64_t block = i / cb.columns, column = i % cb.columns;
    const bool ignored = !ops.probability_targets && y[i] == ops.ignore_index;
    if (ignored || !regular[i]) {
      for (int64_t c = 0; c < C; ++c) store_scalar<T>(const_cast<char*>(element(ops.grad, block, column, c)), ignored ? T(0) : (T)kNan);
      continue;
    }
    if (ops.probability_targets) continue;
    const double w_y = weight ? (double)weight[y[i]] : 1.0;
    store_scalar<T>(const_cast<char*>(element(ops.grad, block, column, y[i])),
                    (T)target_lane_gradient(stats[i], g[i], e, w_y, z_y[i], mass[i], w_y * a0));
  }
}

template <class T>
CrossEntropyResult cross_entropy_typed(const ArrayCall& call, const CrossEntropyOperands& ops) {
  const TypedKernels<T>& k = kernels_for<T>(active_kernels());
  const ReductionLayout& L = call.layout;
  CrossEntropyResult result;
  // torch negates the sum of probability-target terms: a zero total is -0.0 there (index targets
  // sum per-position losses from +0.0).
  const double zero_total = ops.probability_targets ? -0.0 : 0.0;
  if (L.rows == 0) {  // an empty batch: the mean is 0 / 0, the sum 0 (as torch)
    // (index targets, no classes and label smoothing: torch's 0 * (e / C) = 0 * inf is nan)
    const bool smoothing_without_classes = !ops.probability_targets && L.length == 0 && ops.label_smoothing > 0;
    result.loss = ops.reduction == LossReduction::kMean || smoothing_without_classes ? kNan : zero_total;
    return result;
  }
  // Probability targets: the positions, numel / C (torch: nan when numel is 0, also for C == 0).
  double denominator = ops.probability_targets && L.length == 0 ? kNan : (double)L.rows;
  if (!ops.probability_targets && !check_targets<T>(call, ops, L.length, denominator, result.bad_target_value)) {
    result.bad_target = true;
    return result;
  }
  // The mean is sum(w_y loss_y) / sum(w_y): invariant under scaling every weight by one power of
  // two. When the denominator is extreme (subnormal or huge weights), rescale so that 1 / sum(w_y)
  // and the per-row factors stay in range, as torch's w / sum(w) does.
  CrossEntropyOperands scaled_ops = ops;
  std::vector<T> scaled_weight;
  if (ops.weight && ops.reduction == LossReduction::kMean && !ops.probability_targets && denominator > 0 &&
      std::fabs(std::log2(denominator)) > 64) {
    int exponent = 0;
    std::frexp(denominator, &exponent);
    const T* weight = static_cast<const T*>(ops.weight);
    scaled_weight.resize((size_t)L.length);
    bool finite = true;
    for (int64_t c = 0; c < L.length; ++c) {
      scaled_weight[c] = (T)std::ldexp((double)weight[c], -exponent);
      finite &= scaled_weight[c] - scaled_weight[c] == 0;
    }
    if (finite) {  // else other weights are so much larger that the mean overflows anyway
      denominator = std::ldexp(denominator, -exponent);
      scaled_ops.weight = scaled_weight.data();
    }
  }
  // d reduced loss / d per-row loss, before any per-row upstream gradient.
  const double g_common = ops.reduction == LossReduction::kMean ? ops.upstream_scalar / denominator
                          : ops.reduction == LossReduction::kSum ? ops.upstream_scalar
                                                                 : 1.0;
  std::vector<double> row_loss(ops.reduction == LossReduction::kNone ? 0 : (size_t)L.rows);
  if (L.length > 0 && use_columns<T>(L, {ops.input, ops.grad, ops.probability_targets ? ops.target : kNoOperand})) {
    cross_entropy_columns(k, call, scaled_ops, g_common, row_loss);
  } else {
    cross_entropy_rows(k, call, scaled_ops, g_common, row_loss);
  }
  // Reduction in row order: the same sum whatever the threads.
  double sum = 0.0;
  for (double v : row_loss) sum += v;
  if (sum == 0) sum = zero_total;
  result.loss = ops.reduction == LossReduction::kMean ? sum / denominator : sum;
  return result;
}

}  // namespace

CrossEntropyResult run_cross_entropy(const ArrayCall& call, const CrossEntropyOperands& ops) {
  return call.dtype == DType::kFloat32 ? cross_entropy_typed<float>(call, ops) : cross_entropy_typed<double>(call, ops);
}

}  // namespace logitloss
