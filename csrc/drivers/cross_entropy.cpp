// Driver for softmax cross-entropy (drivers/cross_entropy.h): per position (the class axis at one
// (n, d1..dk)), the loss and gradient from one fused kernel pass. The derivation -- the loss as
// gap + mass L, the gradient g (mass p - v), the target lane without cancellation -- is in
// kernels/softmax_cross_entropy-inl.h; here the index target's own lane is added to it.
#include "drivers/cross_entropy.h"

#include <cmath>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "drivers/column_mode.h"
#include "drivers/cross_entropy_rules.h"
#include "drivers/row_buffers.h"
#include "drivers/row_loops.h"
#include "drivers/scalar_access.h"
#include "drivers/streaming.h"
#include "kernels/kernel_table.h"
#include "runtime/dispatch.h"

namespace logitloss {
namespace {

using namespace drivers;

// Per-thread rows of the logit options (row_buffers.h slots; 0-3 are the operands' (3 the Hessian), 4 staging).
constexpr int kTransformedSlot = 5;
constexpr int kChainSlot = 6;

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

// What every position of one cross_entropy_rows call shares. S: the storage type of the input
// and gradient (bfloat16 read in registers); weights, targets, losses are the compute type.
template <class S>
struct RowsCall {
  const KernelsOf<S>& kernels;
  const ArrayCall& call;
  const CrossEntropyOperands& ops;
  const compute_t<S>* weight;    // C class weights, or null
  int64_t classes;    // C
  double smoothing;   // e
  double g_common;    // d reduced loss / d per-position loss, before any per-position upstream
  bool stream;        // the gradient is streamed (drivers/streaming.h)
  bool bounded_mass;  // smoothing_mass_bounded
  std::vector<double>& row_loss;  // per-position losses for the reduction (empty: none)
  bool stream_hessian;            // the Hessian is streamed
};

// Stores a position's loss where it goes: the per-position output (loss_at, may be null) and the
// reduction's list.
template <class S>
void finish_loss(const RowsCall<S>& rows, int64_t r, char* loss_at, double loss) {
  using T = compute_t<S>;
  if (loss_at) store_scalar<T>(loss_at, (T)loss);
  if (!rows.row_loss.empty()) rows.row_loss[(size_t)r] = loss;
}

// Regular positions' losses waiting for their log totals, settled kRowBatch at a time: their log
// totals in one vector call (for short rows a scalar log1p per row cost more than the row).
template <class T>
class PendingLosses {
 public:
  PendingLosses(const RowsCall<T>& rows, const KernelTable& table) : rows_(rows), table_(table) {}
  // row_weight: z-loss's weight of the position (w_y, or 1 for probability targets); target_gap:
  // max - z_y (index targets).
  void add(int64_t r, char* loss_at, const FusedStats& fused, double w_y, double target_gap, double row_weight) {
    pending_[waiting_] = {r, loss_at, fused.gap, fused.mass, w_y, target_gap, row_weight};
    stats_[waiting_] = fused.stats;
    if (++waiting_ == kRowBatch) settle();
  }
  void settle() {
    if (waiting_ == 0) return;
    table_.log_totals(stats_, waiting_, log_sums_);
    for (int64_t i = 0; i < waiting_; ++i) {
      const Pending& p = pending_[i];
      double loss = position_loss(log_sums_[i], p.gap, p.mass, !rows_.ops.probability_targets, rows_.smoothing, p.w_y,
                                  p.target_gap);
      if (rows_.ops.z_loss != 0) {
        const double lse = stats_[i].max + log_sums_[i];
        loss += rows_.ops.z_loss * p.row_weight * (lse * lse);
      }
      finish_loss(rows_, p.r, p.loss_at, loss);
    }
    waiting_ = 0;
  }

 private:
  struct Pending {
    int64_t r;
    char* loss_at;
    double gap, mass, w_y, target_gap, row_weight;
  };
  const RowsCall<T>& rows_;
  const KernelTable& table_;
  Pending pending_[kRowBatch];
  SliceStats stats_[kRowBatch];
  double log_sums_[kRowBatch];
  int64_t waiting_ = 0;
};

// The logit options of one position: the fused pass reads z'' (a per-thread row it writes itself,
// chunk by chunk), and its gradient is taken with respect to z'': times 1 / temperature (folded
// into g) or, under softcap, the per-element chain factor, which the fused pass applies as it
// stores the gradient (so it still streams once). z-loss alone with the Hessian takes the
// transform too, as a copy (T = 1): the Hessian's z-loss term reads the logits after the
// gradient, which may have been written over them. Returns whether the row is transformed.
template <class T>
bool prepare_logit_options(const CrossEntropyOperands& ops, int64_t classes, bool hessian, const T*& x, double& g,
                           LogitTransform<T>& transform) {
  transform = LogitTransform<T>{x, nullptr, nullptr, ops.softcap, ops.temperature};
  if (!(ops.softcap != 0 || ops.temperature != 1 || (hessian && ops.z_loss != 0))) return false;
  transform.out = scratch<T>(kTransformedSlot, classes);
  if (ops.softcap != 0) transform.chain = scratch<T>(kChainSlot, classes);
  else g /= ops.temperature;
  x = transform.out;
  return true;
}

// Temperature alone (no cap): the loss from the compensated quotient (x - max) / T
// (kernels/tempered_statistics-inl.h), its statistics and its target terms, not from the rounded
// z'' (which costs a tiny loss |z''_c - max''| eps, and every term max'' - z''_c up to |z''| eps);
// the gradient keeps the fused pass's (normwise bound). Taken before the fused pass, which may
// write the gradient over x.
struct TemperedLoss {
  bool active;
  FusedStats fused;   // of z'' = x / T: stats {max / T, count, others}, the gap and the mass
  double target_gap;  // index targets: (max - x_y) / T
};

template <class T>
TemperedLoss tempered_loss(const TypedKernels<T>& kernels, const T* x, int64_t classes, int64_t y, double temperature,
                           const TargetTerms<T>& terms) {
  TemperedLoss loss{true, kernels.row_tempered_stats(x, classes, temperature, terms), 0.0};
  if (y >= 0) {
    const double x_y = (double)load_scalar<T>(reinterpret_cast<const char*>(x + y));
    loss.target_gap = tempered_gap(loss.fused.stats.max, x_y, temperature);
  }
  loss.fused.stats.max /= temperature;
  return loss;
}

// The Hessian under the options: the fused pass's (with respect to z'') carried to the input
// logits (kernels/logit_transform-inl.h), once the gradient's target lane is final.
template <class T>
void carry_hessian_to_input(const TypedKernels<T>& kernels, const CrossEntropyOperands& ops, T* hessian, const T* grad,
                            const LogitTransform<T>& transform, int64_t classes, const SliceStats& stats,
                            double z_loss_scale) {
  const bool capped = ops.softcap != 0;
  kernels.row_transformed_hessian(hessian, grad, transform.out, transform.chain, classes, stats.max,
                                  stats.count + stats.others, z_loss_scale, capped ? 1.0 : 1.0 / ops.temperature,
                                  capped ? 2.0 * ops.temperature / (ops.softcap * ops.softcap) : 0.0);
}

// The gradient's index-target lane without cancellation, with z-loss's share; the fused pass
// multiplied its own (cancelling) value of the lane by the chain factor: so is this one, rounded
// to T first as that lane was.
template <class T>
T target_lane_value(const FusedStats& fused, const TargetTerms<T>& terms, const LogitTransform<T>& transform, double g,
                    double e, double w_y, double z_y, int64_t y) {
  const SliceStats& stats = fused.stats;
  double lane = target_lane_gradient(stats, g, e, w_y, z_y, fused.mass, w_y * (double)terms.target_offset);
  if (terms.scale_per_lse != 0) lane += z_loss_target_lane(stats, terms.scale_per_lse, z_y);
  return transform.chain ? (T)lane * transform.chain[y] : (T)lane;
}

// One position of cross_entropy_rows: its target, one fused pass (statistics, target terms and
// the gradient), the target lane; its loss goes to `losses` to wait for its log total.
template <class S>
void cross_entropy_position(const RowsCall<S>& rows, int64_t r, const RowCursor& cursor, PendingLosses<S>& losses) {
  using T = compute_t<S>;
  constexpr bool kSameType = std::is_same_v<S, T>;  // bfloat16: no logit options, no Hessian (bindings)
  const ArrayCall& call = rows.call;
  const CrossEntropyOperands& ops = rows.ops;
  const ReductionLayout& layout = call.layout;
  const int64_t classes = rows.classes;
  const double e = rows.smoothing;
  const S* x = row_input<S>(call.base[ops.input] + cursor.offset(ops.input), layout.row_stride[ops.input], classes, 0);
  char* grad_bytes = ops.grad == kNoOperand ? nullptr : call.base[ops.grad] + cursor.offset(ops.grad);
  const int64_t grad_stride = ops.grad == kNoOperand ? 0 : layout.row_stride[ops.grad];
  char* loss_at = ops.loss == kNoOperand ? nullptr : call.base[ops.loss] + cursor.offset(ops.loss);
  char* hessian_bytes = ops.hessian == kNoOperand ? nullptr : call.base[ops.hessian] + cursor.offset(ops.hessian);
  const int64_t hessian_stride = ops.hessian == kNoOperand ? 0 : layout.row_stride[ops.hessian];
  auto fill_outputs = [&](T value) {  // an ignored position (0) or an edge case (nan)
    if (grad_bytes) {
      for (int64_t c = 0; c < classes; ++c) store_scalar<S>(grad_bytes + c * grad_stride, storage_value<S>(value));
    }
    if (hessian_bytes) {
      for (int64_t c = 0; c < classes; ++c) store_scalar<T>(hessian_bytes + c * hessian_stride, value);
    }
  };
  double g = rows.g_common * (ops.upstream == kNoOperand
                                        ? 1.0
                                        : (double)load_scalar<T>(call.base[ops.upstream] + cursor.offset(ops.upstream)));

  // 1. The position's target: an index (maybe ignored) or a distribution.
  int64_t y = -1;
  double w_y = 0.0, z_y = 0.0;
  const T* target_probabilities = nullptr;
  if (ops.probability_targets) {
    target_probabilities =
        row_input<T>(call.base[ops.target] + cursor.offset(ops.target), layout.row_stride[ops.target], classes, 1);
  } else {
    y = load_scalar<int64_t>(call.base[ops.target] + cursor.offset(ops.target));
    if (y == ops.ignore_index) {
      fill_outputs(T(0));
      // With no classes, label smoothing's e / C is inf and torch's 0 * inf makes the loss nan.
      finish_loss(rows, r, loss_at, classes == 0 && e > 0 ? kNan : 0.0);
      return;
    }
    w_y = rows.weight ? (double)rows.weight[y] : 1.0;
  }

  // No classes (probability targets of shape (N, 0, ...)): the loss is an empty sum, negated
  // (-0.0, as torch), and the gradient is empty. (Index targets get here only if ignored.)
  if (classes == 0) {
    finish_loss(rows, r, loss_at, -0.0);
    return;
  }

  LogitTransform<T> transform{};
  bool has_transform = false;
  if constexpr (kSameType) has_transform = prepare_logit_options(ops, classes, hessian_bytes != nullptr, x, g, transform);
  // (C == 0 never gets here for index targets: every class index is out of range.)
  // Read before the gradient (possibly in place) overwrites it; memcpy: arrays may be unaligned.
  // A transformed row is written by the fused pass (and never aliases the gradient): read after.
  auto target_logit = [&] { return (double)load_value<S>(reinterpret_cast<const char*>(x + y)); };
  if (!ops.probability_targets && !has_transform) z_y = target_logit();
  const double row_weight = ops.probability_targets ? 1.0 : w_y;
  // The Hessian under the options is the fused pass's (with respect to z'') carried to z once the
  // gradient's target lane is final: both stay in cache (not streamed) until then.
  const bool transformed_hessian = hessian_bytes && has_transform;

  // 2. One fused pass: statistics, target terms and (if asked) the gradient.
  const TargetTerms<T> terms{
      rows.weight,
      target_probabilities,
      ops.probability_targets ? (T)(1.0 - e) : T(0),
      (T)(e / (double)classes),
      ops.probability_targets ? 0.0 : g * (1.0 - e) * w_y,
      g,
      (T)g,
      rows.bounded_mass,
      kSameType && hessian_bytes ? row_output<T>(hessian_bytes, hessian_stride, classes, 3) : nullptr,
      rows.stream_hessian && !transformed_hessian,
      2.0 * ops.z_loss * g * row_weight,
      has_transform ? &transform : nullptr,
  };
  // (not when no loss is wanted: cross_entropy_backward)
  TemperedLoss tempered{false, {}, 0.0};
  if constexpr (kSameType) {
    if (ops.softcap == 0 && ops.temperature != 1 && (loss_at || !rows.row_loss.empty())) {
      tempered = tempered_loss(rows.kernels, transform.source, classes, y, ops.temperature, terms);
    }
  }
  S* grad = grad_bytes ? row_output<S>(grad_bytes, grad_stride, classes, 2) : nullptr;
  FusedStats fused;
  if constexpr (kSameType) {
    fused = rows.kernels.row_softmax_fused(x, classes, grad, chunk_scratch(classes),
                                           staging_for<T>(rows.stream && !transformed_hessian, classes), terms);
  } else {  // the float32 terms always staged (one rounding of the output, in pass 3)
    fused = rows.kernels.row_softmax_fused(x, classes, grad, chunk_scratch(classes),
                                           grad ? scratch<T>(kStagingSlot, classes) : nullptr, rows.stream, terms);
  }
  const SliceStats& stats = fused.stats;
  if (!ops.probability_targets && has_transform) z_y = target_logit();
  if (!regular_row(stats)) {  // a nan, an all -inf row, or +inf: nan, as torch
    fill_outputs((T)kNan);
    finish_loss(rows, r, loss_at, kNan);
    return;
  }

  // 3. The target lane of the gradient without cancellation; the loss once its log is taken.
  if (grad && !ops.probability_targets) {
    if constexpr (kSameType) {
      store_scalar<T>(reinterpret_cast<char*>(grad + y), target_lane_value(fused, terms, transform, g, e, w_y, z_y, y));
    } else {
      double target_lane = target_lane_gradient(stats, g, e, w_y, z_y, fused.mass, w_y * (double)terms.target_offset);
      if (terms.scale_per_lse != 0) target_lane += z_loss_target_lane(stats, terms.scale_per_lse, z_y);
      store_scalar<S>(reinterpret_cast<char*>(grad + y), storage_value<S>(target_lane));
    }
  }
  if constexpr (kSameType) {
    if (transformed_hessian) {
      carry_hessian_to_input(rows.kernels, ops, terms.hessian, grad, transform, classes, stats, terms.scale_per_lse);
    }
  }
  if (grad) finish_row_output(grad_bytes, grad_stride, classes, grad);
  if (terms.hessian) finish_row_output(hessian_bytes, hessian_stride, classes, terms.hessian);
  if (tempered.active) {
    FusedStats compensated = fused;  // its mass: the same sum of v_c
    compensated.stats = tempered.fused.stats;
    compensated.gap = tempered.fused.gap;
    losses.add(r, loss_at, compensated, w_y, tempered.target_gap, row_weight);
  } else {
    losses.add(r, loss_at, fused, w_y, stats.max - z_y, row_weight);
  }
}

// The class axis is the contiguous one (or strided with no contiguous alternative): one fused
// kernel call per position (cross_entropy_position), losses settled in batches (PendingLosses).
template <class S>
void cross_entropy_rows(const KernelsOf<S>& kernels, const ArrayCall& call, const CrossEntropyOperands& ops,
                        double g_common, std::vector<double>& row_loss) {
  using T = compute_t<S>;
  const T* weight = static_cast<const T*>(ops.weight);
  const int64_t classes = call.layout.length;
  const RowsCall<S> rows{kernels,
                         call,
                         ops,
                         weight,
                         classes,
                         ops.label_smoothing,
                         g_common,
                         stream_output<S>(call, ops.grad, ops.input),
                         smoothing_mass_bounded(weight, classes, ops.label_smoothing),
                         row_loss,
                         stream_output<T>(call, ops.hessian, ops.input)};
  const KernelTable& table = active_kernels();
  for_each_row_range(call.layout, [&](int64_t begin, int64_t end, RowCursor& cursor) {
    PendingLosses<S> losses(rows, table);
    for (int64_t r = begin; r < end; ++r, cursor.next()) cross_entropy_position(rows, r, cursor, losses);
    losses.settle();
  });
}

// One class row of column mode's Hessian diagonal: hessian holds e = exp(x - max) per column and
// grad the gradient's g M p term (before the target terms); h = g M p (1 - p), with 1 - p as
// ((count - e) + others) / total (kernels/hessian_terms-inl.h), in double.
template <class T>
void finish_column_hessian(T* hessian, const T* grad, const SliceStats* stats, int64_t columns) {
  for (int64_t column = 0; column < columns; ++column) {
    const SliceStats& position = stats[column];
    const double complement =
        ((position.count - (double)hessian[column]) + position.others) / (position.count + position.others);
    hessian[column] = (T)((double)grad[column] * complement);
  }
}

// K-dim input (N, classes, d1..dk): the class axis is strided and the positions are contiguous. Phase 1
// takes every position's statistics with the column kernel (no transposed copy); the target terms
// are summed row by row over the classes; phase 2 writes the gradient row by row over whole
// contiguous rows; the target lanes and the rows needing edge-case rules are fixed last.
template <class T>
void cross_entropy_columns(const TypedKernels<T>& kernels, const ArrayCall& call, const CrossEntropyOperands& ops,
                           double g_common, std::vector<double>& row_loss) {
  const ReductionLayout& layout = call.layout;
  const int64_t classes = layout.length;
  const T* weight = static_cast<const T*>(ops.weight);
  const double e = ops.label_smoothing;
  const ColumnBlocks blocks = column_blocks(layout);
  const int64_t positions = blocks.layout.rows * blocks.columns;
  const std::vector<SliceStats> stats = column_statistics(kernels, call, ops.input, blocks, kStatsCompensated);
  const double target_scale = ops.probability_targets ? (double)(T)(1.0 - e) : 0.0;
  const double target_offset = (double)(T)(e / (double)classes);
  const bool has_terms = target_scale != 0 || target_offset != 0;
  auto element = [&](int op, int64_t block, int64_t column, int64_t c) {
    return column_address(call, blocks, op, block, column) + c * layout.row_stride[op];
  };
  auto target_mass = [&](int64_t block, int64_t column, int64_t c) {  // v_c at a position
    const double y = ops.probability_targets ? (double)load_scalar<T>(element(ops.target, block, column, c)) : 0.0;
    return (weight ? (double)weight[c] : 1.0) * (target_scale * y + target_offset);
  };

  // 1. Per position: target, upstream gradient, target logit (before any in-place write).
  std::vector<int64_t> y(positions, -1);
  std::vector<double> g(positions), z_y(positions), gap(positions, 0.0), mass(positions, 0.0);
  for (int64_t i = 0; i < positions; ++i) {
    const int64_t block = i / blocks.columns, column = i % blocks.columns;
    g[i] = g_common * (ops.upstream == kNoOperand
                           ? 1.0
                           : (double)load_scalar<T>(column_address(call, blocks, ops.upstream, block, column)));
    if (ops.probability_targets) continue;
    y[i] = load_scalar<int64_t>(column_address(call, blocks, ops.target, block, column));
    if (y[i] != ops.ignore_index) z_y[i] = (double)load_scalar<T>(element(ops.input, block, column, y[i]));
  }
  // 2. Target terms, class by class: gap = sum_c v_c (max - z_c), mass = sum_c v_c.
  if (has_terms) {
    for (int64_t block = 0; block < blocks.layout.rows; ++block) {
      for (int64_t c = 0; c < classes; ++c) {
        for (int64_t column = 0; column < blocks.columns; ++column) {
          const int64_t i = block * blocks.columns + column;
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
    const SliceStats& position_stats = stats[i];
    double loss;
    if (!ops.probability_targets && y[i] == ops.ignore_index) {
      loss = 0.0;
    } else if (!regular_row(position_stats)) {
      loss = kNan;
    } else {
      regular[i] = 1;
      const double w_y = ops.probability_targets ? 0.0 : (weight ? (double)weight[y[i]] : 1.0);
      loss = position_loss(log_total(position_stats), gap[i], mass[i], !ops.probability_targets, e, w_y,
                           position_stats.max - z_y[i]);
      shift[i] = (T)position_stats.max;
      scale[i] = (T)(g[i] * ((1.0 - e) * w_y + mass[i]) / (position_stats.count + position_stats.others));
    }
    const int64_t block = i / blocks.columns, column = i % blocks.columns;
    if (ops.loss != kNoOperand) {
      store_scalar<T>(const_cast<char*>(column_address(call, blocks, ops.loss, block, column)), (T)loss);
    }
    if (!row_loss.empty()) row_loss[(size_t)i] = loss;
  }
  if (ops.grad == kNoOperand) return;
  // 4. The gradient, row by row over the classes: g (scale p - v); the Hessian's diagonal
  // (kernels/hessian_terms-inl.h) from the same g M p and e = exp(x - max), formed first (the
  // gradient may overwrite x), 1 - p as ((count - e) + others) / total without cancellation.
  const std::vector<T> unit(ops.hessian == kNoOperand ? 0 : (size_t)blocks.columns, T(1));
  for_each_column_row<T>(call, blocks, ops.input, ops.grad, [&](int64_t block, int64_t c, const T* x_row, T* grad_row) {
    const size_t at = (size_t)(block * blocks.columns);
    T* hessian_row = ops.hessian == kNoOperand ? nullptr : reinterpret_cast<T*>(const_cast<char*>(element(ops.hessian, block, 0, c)));
    if (hessian_row) kernels.column_scaled_exp(x_row, 1, 0, blocks.columns, shift.data() + at, unit.data(), hessian_row, 0);
    kernels.column_scaled_exp(x_row, 1, 0, blocks.columns, shift.data() + at, scale.data() + at, grad_row, 0);
    if (hessian_row) finish_column_hessian(hessian_row, grad_row, stats.data() + at, blocks.columns);
    if (!has_terms) return;
    for (int64_t column = 0; column < blocks.columns; ++column) {
      grad_row[column] = (T)((double)grad_row[column] - g[at + column] * target_mass(block, column, c));
    }
  });
  // 5. Target lanes without cancellation; ignored positions 0; edge-case positions nan.
  for (int64_t i = 0; i < positions; ++i) {
    const int64_t block = i / blocks.columns, column = i % blocks.columns;
    const bool ignored = !ops.probability_targets && y[i] == ops.ignore_index;
    if (ignored || !regular[i]) {
      for (int64_t c = 0; c < classes; ++c) {
        store_scalar<T>(const_cast<char*>(element(ops.grad, block, column, c)), ignored ? T(0) : (T)kNan);
        if (ops.hessian != kNoOperand) {
          store_scalar<T>(const_cast<char*>(element(ops.hessian, block, column, c)), ignored ? T(0) : (T)kNan);
        }
      }
      continue;
    }
    if (ops.probability_targets) continue;
    const double w_y = weight ? (double)weight[y[i]] : 1.0;
    store_scalar<T>(const_cast<char*>(element(ops.grad, block, column, y[i])),
                    (T)target_lane_gradient(stats[i], g[i], e, w_y, z_y[i], mass[i], w_y * target_offset));
  }
}

// The mean is sum(w_y loss_y) / sum(w_y): invariant under scaling every weight by one power of
// two. When the denominator is extreme (subnormal or huge weights), the weights are rescaled into
// `scaled` (and the denominator with them) so that 1 / sum(w_y) and the per-row factors stay in
// range, as torch's w / sum(w) does. `scaled` stays empty where no rescaling is needed or where
// other weights are so much larger that the mean overflows anyway.
template <class T>
void rescale_extreme_weights(const T* weight, int64_t classes, double& denominator, std::vector<T>& scaled) {
  if (!(std::fabs(std::log2(denominator)) > 64)) return;
  int exponent = 0;
  std::frexp(denominator, &exponent);
  scaled.resize((size_t)classes);
  bool finite = true;
  for (int64_t c = 0; c < classes; ++c) {
    scaled[c] = (T)std::ldexp((double)weight[c], -exponent);
    finite &= scaled[c] - scaled[c] == 0;
  }
  if (!finite) {
    scaled.clear();
    return;
  }
  denominator = std::ldexp(denominator, -exponent);
}

// S: the storage type of the input and gradient (bfloat16: rows only, see cross_entropy_position).
template <class S>
CrossEntropyResult cross_entropy_typed(const ArrayCall& call, const CrossEntropyOperands& ops) {
  using T = compute_t<S>;
  const KernelsOf<S>& kernels = kernels_for<S>(active_kernels());
  const ReductionLayout& layout = call.layout;
  CrossEntropyResult result;
  // torch negates the sum of probability-target terms: a zero total is -0.0 there (index targets
  // sum per-position losses from +0.0).
  const double zero_total = ops.probability_targets ? -0.0 : 0.0;
  if (layout.rows == 0) {  // an empty batch: the mean is 0 / 0, the sum 0 (as torch)
    // (index targets, no classes and label smoothing: torch's 0 * (e / C) = 0 * inf is nan)
    const bool smoothing_without_classes = !ops.probability_targets && layout.length == 0 && ops.label_smoothing > 0;
    result.loss = ops.reduction == LossReduction::kMean || smoothing_without_classes ? kNan : zero_total;
    return result;
  }
  // Probability targets: the positions, numel / C (torch: nan when numel is 0, also for C == 0).
  double denominator = ops.probability_targets && layout.length == 0 ? kNan : (double)layout.rows;
  if (!ops.probability_targets && !check_targets<T>(call, ops, layout.length, denominator, result.bad_target_value)) {
    result.bad_target = true;
    return result;
  }
  CrossEntropyOperands scaled_ops = ops;
  std::vector<T> scaled_weight;
  if (ops.weight && ops.reduction == LossReduction::kMean && !ops.probability_targets && denominator > 0) {
    rescale_extreme_weights<T>(static_cast<const T*>(ops.weight), layout.length, denominator, scaled_weight);
    if (!scaled_weight.empty()) scaled_ops.weight = scaled_weight.data();
  }
  // d reduced loss / d per-row loss, before any per-row upstream gradient.
  const double g_common = ops.reduction == LossReduction::kMean ? ops.upstream_scalar / denominator
                          : ops.reduction == LossReduction::kSum ? ops.upstream_scalar
                                                                 : 1.0;
  std::vector<double> row_loss(ops.reduction == LossReduction::kNone ? 0 : (size_t)layout.rows);
  // The logit options transform rows (cross_entropy_position): K-dim inputs take the row path.
  bool columns = false;
  if constexpr (std::is_same_v<S, T>) {
    columns = layout.length > 0 && !ops.has_logit_options() &&
              use_columns<T>(layout, {ops.input, ops.grad, ops.probability_targets ? ops.target : kNoOperand, ops.hessian});
    if (columns) cross_entropy_columns(kernels, call, scaled_ops, g_common, row_loss);
  }
  if (!columns) cross_entropy_rows<S>(kernels, call, scaled_ops, g_common, row_loss);
  // Reduction in row order: the same sum whatever the threads.
  double sum = 0.0;
  for (double v : row_loss) sum += v;
  if (sum == 0) sum = zero_total;
  result.loss = ops.reduction == LossReduction::kMean ? sum / denominator : sum;
  return result;
}

}  // namespace

CrossEntropyResult run_cross_entropy(const ArrayCall& call, const CrossEntropyOperands& ops) {
  if (call.dtype == DType::kBFloat16) {
    if (ops.has_logit_options() || ops.hessian != kNoOperand) {
      throw std::logic_error("logitloss: bfloat16 cross_entropy takes no logit options and no Hessian");
    }
    return cross_entropy_typed<bfloat16>(call, ops);
  }
  return call.dtype == DType::kFloat32 ? cross_entropy_typed<float>(call, ops) : cross_entropy_typed<double>(call, ops);
}

}  // namespace logitloss
