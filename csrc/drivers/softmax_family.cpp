// Drivers for logsumexp / softmax / log_softmax, forward and backward (declared in
// drivers/softmax_family.h): each picks column mode, batches of short rows, or row by row, runs
// the kernels, and hands slices the kernels do not cover to SciPy's and torch's rules
// (drivers/logsumexp_rules.h).
#include "drivers/softmax_family.h"

#include <cmath>
#include <stdexcept>
#include <vector>

#include "drivers/column_mode.h"
#include "drivers/logsumexp_rules.h"
#include "drivers/row_buffers.h"
#include "drivers/row_loops.h"
#include "drivers/scalar_access.h"
#include "drivers/streaming.h"
#include "kernels/kernel_table.h"
#include "runtime/dispatch.h"

namespace logitloss {
namespace {

using namespace drivers;

// Target terms that make row_softmax_fused a plain softmax.
template <class T>
const TargetTerms<T>& plain_softmax() {
  static const TargetTerms<T> terms{nullptr, nullptr, T(0), T(0), 1.0, 0.0, T(0), true, nullptr, false, 0.0, nullptr};
  return terms;
}

// Values only, no weights: rows in batches (for_each_row_batch). S: the storage type of `a`
// (bfloat16 read in registers); values and signs are stored in the compute type.
template <class S>
void logsumexp_values(const ArrayCall& call, const LogsumexpOperands& ops) {
  using T = compute_t<S>;
  for_each_row_batch<S>(active_kernels(), call, ops.a, [&](const int64_t* at, const SliceStats& stats, double log_total) {
    const bool plain = regular_row(stats) && stats.count >= 1 && stats.others >= 0;
    const LogsumexpValue v = plain ? LogsumexpValue{stats.max + log_total, 1.0, stats.max, kNan, true}
                                   : finalize_logsumexp(stats, ops.return_sign);
    store_scalar<T>(call.base[ops.out] + at[ops.out], (T)v.value);
    if (ops.sign != kNoOperand) store_scalar<T>(call.base[ops.sign] + at[ops.sign], (T)v.sign);
  });
}

template <class T>
void logsumexp_typed(const ArrayCall& call, const LogsumexpOperands& ops) {
  const TypedKernels<T>& kernels = kernels_for<T>(active_kernels());
  const ReductionLayout& layout = call.layout;
  const int64_t n = layout.length;
  auto store_value = [&](char* out, char* sign, const LogsumexpValue& v) {
    store_scalar<T>(out, (T)v.value);
    if (sign) store_scalar<T>(sign, (T)v.sign);
  };

  if (ops.b == kNoOperand && use_columns<T>(layout, {ops.a, ops.grad})) {
    const ColumnBlocks blocks = column_blocks(layout);
    const std::vector<SliceStats> stats = column_statistics(kernels, call, ops.a, blocks, kStatsPlain);
    std::vector<LogsumexpValue> values(stats.size());
    for (int64_t i = 0; i < (int64_t)stats.size(); ++i) {
      values[i] = finalize_logsumexp(stats[i], ops.return_sign);
      const int64_t block = i / blocks.columns, c = i % blocks.columns;
      store_value(const_cast<char*>(column_address(call, blocks, ops.out, block, c)),
                  ops.sign == kNoOperand ? nullptr : const_cast<char*>(column_address(call, blocks, ops.sign, block, c)),
                  values[i]);
    }
    if (ops.grad == kNoOperand) return;
    std::vector<T> shift(values.size()), scale(values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      shift[i] = values[i].regular ? (T)values[i].max : T(0);
      scale[i] = values[i].regular ? (T)(values[i].sign * values[i].inverse_total) : T(0);
    }
    for_each_column_row<T>(call, blocks, ops.a, ops.grad, [&](int64_t block, int64_t, const T* a_row, T* grad_row) {
      const size_t at = (size_t)(block * blocks.columns);
      kernels.column_scaled_exp(a_row, 1, 0, blocks.columns, shift.data() + at, scale.data() + at, grad_row, 0);
    });
    for (int64_t i = 0; i < (int64_t)values.size(); ++i) {
      if (values[i].regular) continue;
      const int64_t block = i / blocks.columns, c = i % blocks.columns;
      lse_gradient_fallback<T>(column_address(call, blocks, ops.a, block, c), layout.row_stride[ops.a], nullptr, 0, n,
                               values[i].value, 1.0, const_cast<char*>(column_address(call, blocks, ops.grad, block, c)),
                               layout.row_stride[ops.grad]);
    }
    return;
  }

  if (ops.b == kNoOperand && ops.grad == kNoOperand) {  // values only: rows in batches
    logsumexp_values<T>(call, ops);
    return;
  }

  for_each_row(layout, [&](int64_t, const RowCursor& cursor) {
    const char* a_bytes = call.base[ops.a] + cursor.offset(ops.a);
    const T* a = row_input<T>(a_bytes, layout.row_stride[ops.a], n, 0);
    const char* b_bytes = ops.b == kNoOperand ? nullptr : call.base[ops.b] + cursor.offset(ops.b);
    const T* caller_b = b_bytes ? row_input<T>(b_bytes, layout.row_stride[ops.b], n, 1) : nullptr;
    char* grad_bytes = ops.grad == kNoOperand ? nullptr : call.base[ops.grad] + cursor.offset(ops.grad);
    const int64_t grad_stride = ops.grad == kNoOperand ? 0 : layout.row_stride[ops.grad];
    char* sign_bytes = ops.sign == kNoOperand ? nullptr : call.base[ops.sign] + cursor.offset(ops.sign);
    const RowWeights<T> weights = caller_b ? normalize_row_weights(caller_b, n, 3) : RowWeights<T>{nullptr, 0, true};
    if (!weights.in_range) {
      const LogsumexpValue v = weighted_logsumexp_wide_range(a, caller_b, n, ops.return_sign);
      store_value(call.base[ops.out] + cursor.offset(ops.out), sign_bytes, v);
      if (grad_bytes) lse_gradient_wide_range(a, caller_b, n, v.value, 1.0, grad_bytes, grad_stride);
      return;
    }
    const T* b = weights.b;
    // Unweighted with a gradient: the gradient is the softmax, and its pass yields the statistics.
    const bool fused_softmax = grad_bytes && !b;
    T* grad = fused_softmax ? row_output<T>(grad_bytes, grad_stride, n, 2) : nullptr;
    const SliceStats stats = fused_softmax
                                 ? kernels.row_softmax_fused(a, n, grad, chunk_scratch(n), nullptr, plain_softmax<T>()).stats
                                 : kernels.row_stats(a, b, n, kStatsPlain);
    LogsumexpValue v = finalize_logsumexp(stats, ops.return_sign);
    if (b && stats.max == kInf && !std::isnan(stats.others)) v = weighted_infinite_logsumexp(a, b, n, ops.return_sign);
    // v describes the rescaled weights (the gradient needs it so); the value gets k ln 2 back.
    LogsumexpValue stored = v;
    if (weights.exponent != 0 && std::isfinite(v.value)) stored.value = add_ln2_multiple(v.value, weights.exponent);
    store_value(call.base[ops.out] + cursor.offset(ops.out), sign_bytes, stored);
    if (!grad_bytes) return;
    if (!v.regular) {
      lse_gradient_fallback<T>(reinterpret_cast<const char*>(a), sizeof(T), reinterpret_cast<const char*>(b),
                               sizeof(T), n, v.value, 1.0, grad_bytes, grad_stride);
      return;
    }
    if (!fused_softmax) {
      grad = row_output<T>(grad_bytes, grad_stride, n, 2);
      kernels.row_scaled_exp(a, b, n, (T)v.max, (T)(v.sign * v.inverse_total), grad);
    }
    finish_row_output(grad_bytes, grad_stride, n, grad);
  });
}

template <class T>
void softmax_typed(const ArrayCall& call, int x_op, int out_op, bool log) {
  const TypedKernels<T>& kernels = kernels_for<T>(active_kernels());
  const ReductionLayout& layout = call.layout;
  const int64_t n = layout.length;

  if (use_columns<T>(layout, {x_op, out_op})) {
    const ColumnBlocks blocks = column_blocks(layout);
    const std::vector<SliceStats> stats = column_statistics(kernels, call, x_op, blocks, kStatsPlain);
    std::vector<T> first_param(stats.size()), second_param(stats.size());
    std::vector<double> totals(log ? stats.size() : 0);
    if (log) active_kernels().log_totals(stats.data(), (int64_t)stats.size(), totals.data());
    for (size_t i = 0; i < stats.size(); ++i) {
      const bool regular = regular_row(stats[i]);
      first_param[i] = regular ? (T)stats[i].max : T(0);
      second_param[i] = !regular ? T(0) : log ? (T)totals[i] : (T)(1.0 / (stats[i].count + stats[i].others));
    }
    for_each_column_row<T>(call, blocks, x_op, out_op, [&](int64_t block, int64_t, const T* x_row, T* out_row) {
      const size_t at = (size_t)(block * blocks.columns);
      if (log) kernels.column_log_softmax(x_row, 1, 0, blocks.columns, first_param.data() + at, second_param.data() + at, out_row, 0);
      else kernels.column_scaled_exp(x_row, 1, 0, blocks.columns, first_param.data() + at, second_param.data() + at, out_row, 0);
    });
    for (int64_t i = 0; i < (int64_t)stats.size(); ++i) {
      if (regular_row(stats[i])) continue;
      const int64_t block = i / blocks.columns, c = i % blocks.columns;
      softmax_fallback<T>(column_address(call, blocks, x_op, block, c), layout.row_stride[x_op], n,
                          const_cast<char*>(column_address(call, blocks, out_op, block, c)), layout.row_stride[out_op], log);
    }
    return;
  }

  if (log && n <= kLogSoftmaxBatchedRow) {  // short rows in batches, still in cache when their outputs are written
    for_each_row_batch<T>(active_kernels(), call, x_op, [&](const int64_t* at, const SliceStats& stats, double log_total) {
      const T* x = row_input<T>(call.base[x_op] + at[x_op], layout.row_stride[x_op], n, 0);
      char* out_bytes = call.base[out_op] + at[out_op];
      if (!regular_row(stats)) {
        softmax_fallback<T>(reinterpret_cast<const char*>(x), sizeof(T), n, out_bytes, layout.row_stride[out_op], log);
        return;
      }
      T* out = row_output<T>(out_bytes, layout.row_stride[out_op], n, 1);
      kernels.row_log_softmax(x, n, (T)stats.max, (T)log_total, out, false);
      finish_row_output(out_bytes, layout.row_stride[out_op], n, out);
    });
    return;
  }

  const bool stream = stream_output<T>(call, out_op, x_op);
  for_each_row(layout, [&](int64_t, const RowCursor& cursor) {
    const T* x = row_input<T>(call.base[x_op] + cursor.offset(x_op), layout.row_stride[x_op], n, 0);
    char* out_bytes = call.base[out_op] + cursor.offset(out_op);
    T* out = row_output<T>(out_bytes, layout.row_stride[out_op], n, 1);
    const SliceStats stats =
        log ? kernels.row_stats(x, nullptr, n, kStatsPlain)
            : kernels.row_softmax_fused(x, n, out, chunk_scratch(n), staging_for<T>(stream, n), plain_softmax<T>()).stats;
    if (!regular_row(stats)) {
      softmax_fallback<T>(reinterpret_cast<const char*>(x), sizeof(T), n, out_bytes, layout.row_stride[out_op], log);
      return;
    }
    if (log) kernels.row_log_softmax(x, n, (T)stats.max, (T)log_total(stats), out, stream);
    finish_row_output(out_bytes, layout.row_stride[out_op], n, out);
  });
}

template <class T>
void logsumexp_backward_typed(const ArrayCall& call, const LogsumexpBackwardOperands& ops) {
  const TypedKernels<T>& kernels = kernels_for<T>(active_kernels());
  const ReductionLayout& layout = call.layout;
  const int64_t n = layout.length;
  for_each_row(layout, [&](int64_t, const RowCursor& cursor) {
    const T* a = row_input<T>(call.base[ops.a] + cursor.offset(ops.a), layout.row_stride[ops.a], n, 0);
    const T* caller_b = ops.b == kNoOperand ? nullptr : row_input<T>(call.base[ops.b] + cursor.offset(ops.b), layout.row_stride[ops.b], n, 1);
    const double g = (double)load_scalar<T>(call.base[ops.g] + cursor.offset(ops.g));
    char* out_bytes = call.base[ops.out] + cursor.offset(ops.out);
    const int64_t out_stride = layout.row_stride[ops.out];
    // Weights beyond the kernels' range: rescaled by 2^-k (the shift below moves by k ln 2), or
    // the wide-range path (see normalize_row_weights).
    const RowWeights<T> weights = caller_b ? normalize_row_weights(caller_b, n, 3) : RowWeights<T>{nullptr, 0, true};
    if (!weights.in_range) {
      const double value = ops.result != kNoOperand
                               ? (double)load_scalar<T>(call.base[ops.result] + cursor.offset(ops.result))
                               : weighted_logsumexp_wide_range(a, caller_b, n, false).value;
      lse_gradient_wide_range(a, caller_b, n, value, g, out_bytes, out_stride);
      return;
    }
    const T* b = weights.b;
    // The gradient is g * w * exp(a - value), computed as exp(a - shift) * scale.
    double value, shift, scale;
    bool regular;
    if (ops.result != kNoOperand) {
      value = (double)load_scalar<T>(call.base[ops.result] + cursor.offset(ops.result));
      if (weights.exponent != 0 && std::isfinite(value)) value = add_ln2_multiple(value, -weights.exponent);
      shift = value;
      scale = g;
      regular = std::isfinite(value);
    } else {
      const LogsumexpValue v = finalize_logsumexp(kernels.row_stats(a, b, n, kStatsPlain), false);
      value = v.value;
      shift = v.max;
      scale = g * v.sign * v.inverse_total;
      regular = v.regular;
    }
    if (!regular) {
      lse_gradient_fallback<T>(reinterpret_cast<const char*>(a), sizeof(T), reinterpret_cast<const char*>(b),
                               sizeof(T), n, value, g, out_bytes, out_stride);
      return;
    }
    T* out = row_output<T>(out_bytes, out_stride, n, 2);
    kernels.row_scaled_exp(a, b, n, (T)shift, (T)scale, out);
    finish_row_output(out_bytes, out_stride, n, out);
  });
}

template <class T>
void softmax_backward_typed(const ArrayCall& call, int g_op, int y_op, int out_op, bool log) {
  // T: the storage type of g, y and out (bfloat16 read in registers, the output rounded once).
  const KernelsOf<T>& kernels = kernels_for<T>(active_kernels());
  const ReductionLayout& layout = call.layout;
  const int64_t n = layout.length;
  for_each_row(layout, [&](int64_t, const RowCursor& cursor) {
    const T* g = row_input<T>(call.base[g_op] + cursor.offset(g_op), layout.row_stride[g_op], n, 0);
    const T* y = row_input<T>(call.base[y_op] + cursor.offset(y_op), layout.row_stride[y_op], n, 1);
    char* out_bytes = call.base[out_op] + cursor.offset(out_op);
    T* out = row_output<T>(out_bytes, layout.row_stride[out_op], n, 2);
    if (log) {
      kernels.row_log_softmax_backward(g, y, n, kernels.row_dot(g, nullptr, n), out);
    } else {
      const ScaledSum dot = kernels.row_dot(g, y, n);  // a mean of g: within g's range
      kernels.row_softmax_backward(g, y, n, (compute_t<T>)std::ldexp(dot.value, dot.exponent), out);
    }
    finish_row_output(out_bytes, layout.row_stride[out_op], n, out);
  });
}

// bfloat16 x and out, rows only (a strided row packed by row_input): the softmax from the fused
// pass (its float32 terms staged, each output rounded once), log_softmax from the statistics.
void softmax_bfloat16(const ArrayCall& call, int x_op, int out_op, bool log) {
  const BFloat16Kernels& kernels = kernels_for<bfloat16>(active_kernels());
  const ReductionLayout& layout = call.layout;
  const int64_t n = layout.length;
  const bool stream = stream_output<bfloat16>(call, out_op, x_op);
  for_each_row(layout, [&](int64_t, const RowCursor& cursor) {
    const bfloat16* x = row_input<bfloat16>(call.base[x_op] + cursor.offset(x_op), layout.row_stride[x_op], n, 0);
    char* out_bytes = call.base[out_op] + cursor.offset(out_op);
    bfloat16* out = row_output<bfloat16>(out_bytes, layout.row_stride[out_op], n, 1);
    const SliceStats stats = log ? kernels.row_stats(x, nullptr, n, kStatsPlain)
                                 : kernels.row_softmax_fused(x, n, out, chunk_scratch(n), scratch<float>(kStagingSlot, n),
                                                             stream, plain_softmax<float>()).stats;
    if (!regular_row(stats)) {
      softmax_fallback<bfloat16>(reinterpret_cast<const char*>(x), sizeof(bfloat16), n, out_bytes,
                                 layout.row_stride[out_op], log);
      return;
    }
    if (log) kernels.row_log_softmax(x, n, (float)stats.max, (float)log_total(stats), out, stream);
    finish_row_output(out_bytes, layout.row_stride[out_op], n, out);
  });
}

}  // namespace

void run_logsumexp(const ArrayCall& call, const LogsumexpOperands& ops) {
  if (call.dtype == DType::kBFloat16) {
    if (ops.b != kNoOperand || ops.grad != kNoOperand) throw std::logic_error("logitloss: bfloat16 logsumexp takes values only");
    logsumexp_values<bfloat16>(call, ops);
  } else if (call.dtype == DType::kFloat32) logsumexp_typed<float>(call, ops);
  else logsumexp_typed<double>(call, ops);
}

void run_softmax(const ArrayCall& call, int x, int out, bool log) {
  if (call.dtype == DType::kBFloat16) softmax_bfloat16(call, x, out, log);
  else if (call.dtype == DType::kFloat32) softmax_typed<float>(call, x, out, log);
  else softmax_typed<double>(call, x, out, log);
}

void run_logsumexp_backward(const ArrayCall& call, const LogsumexpBackwardOperands& ops) {
  if (call.dtype == DType::kFloat32) logsumexp_backward_typed<float>(call, ops);
  else logsumexp_backward_typed<double>(call, ops);
}

void run_softmax_backward(const ArrayCall& call, int g, int y, int out, bool log) {
  if (call.dtype == DType::kBFloat16) softmax_backward_typed<bfloat16>(call, g, y, out, log);
  else if (call.dtype == DType::kFloat32) softmax_backward_typed<float>(call, g, y, out, log);
  else softmax_backward_typed<double>(call, g, y, out, log);
}

}  // namespace logitloss
