#include "ops/softmax_family.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/kernel_table.h"
#include "runtime/dispatch.h"
#include "ops/row_access.h"
#include "runtime/thread_pool.h"

namespace logitloss {
namespace {

using namespace row_access;

// log_softmax rows up to this length go in batches (for_each_row_batch): a batch of them stays in
// cache for the pass that writes the outputs.
constexpr int64_t kShortRow = 256;

// ln 2 = kLn2High + kLn2Low, kLn2High with trailing zero bits so that k * kLn2High is exact.
constexpr double kLn2High = 0x1.62e42fefa3800p-1, kLn2Low = 0x1.ef35793c76730p-45;

// value + k ln 2, ln 2 in two parts.
inline double add_ln2_multiple(double value, int k) { return (value + k * kLn2High) + k * kLn2Low; }

// Target terms that make row_softmax_fused a plain softmax.
template <class T>
const TargetTerms<T>& plain_softmax() {
  static const TargetTerms<T> terms{nullptr, nullptr, T(0), T(0), 1.0, 0.0, T(0), true};
  return terms;
}

// SciPy's logsumexp from a slice's statistics:
//   r = others / count, sign = sign(r + 1) * sign(count), value = max + log|count| + log1p(|r|'),
// falling back to log|count + others| + max where that is not finite (cancellation, count == 0).
struct LogsumexpValue {
  double value;
  double sign;
  double max;
  double inverse_total;  // 1 / |count + others|: the gradient is sign * w * exp(x - max) * this
  bool regular;          // finite value and max: the vector kernels apply
};

LogsumexpValue finalize_logsumexp(const SliceStats& s, bool return_sign) {
  const double m = s.max, count = s.count, others = s.others;
  LogsumexpValue v{kNan, kNan, m, kNan, false};
  if (std::isnan(others) || std::isnan(count)) return v;
  if (m == -kInf) {
    v.value = -kInf;
    v.sign = 0.0;
  } else if (m == kInf) {
    v.sign = count > 0 ? 1.0 : (count < 0 ? -1.0 : kNan);
    v.value = std::isnan(v.sign) ? kNan : kInf;
  } else {
    if (count > 0 && others >= 0) {  // the common case: no weights, or positive ones
      v.sign = 1.0;
      v.value = m + (count == 1 ? 0.0 : std::log(count)) + (others == 0 ? 0.0 : std::log1p(others / count));
      v.inverse_total = 1.0 / (count + others);
      v.regular = std::isfinite(v.value);
      return v;
    }
    double r = others == 0 ? 0.0 : others / count;
    const double t = r + 1;
    v.sign = (t > 0 ? 1.0 : (t < 0 ? -1.0 : 0.0)) * (count > 0 ? 1.0 : (count < 0 ? -1.0 : 0.0));
    if (r < -1) r = -r - 2;
    v.value = std::log1p(r) + std::log(std::fabs(count)) + m;
    if (!std::isfinite(v.value)) {
      const double total = count + others;
      v.value = std::log(std::fabs(total)) + m;
      v.sign = total > 0 ? 1.0 : (total < 0 ? -1.0 : 0.0);
    }
    v.inverse_total = 1.0 / std::fabs(count + others);
    v.regular = std::isfinite(v.value);
  }
  if (!return_sign && v.sign < 0) {
    v.value = kNan;
    v.regular = false;
  }
  return v;
}

// A weighted slice whose max is +inf: the sum is the sum of w * inf over the +inf terms, i.e.
// +inf if all their weights are positive, -inf if all negative, nan (inf - inf) if mixed (SciPy).
template <class T>
LogsumexpValue weighted_infinite_logsumexp(const T* x, const T* w, int64_t n, bool return_sign) {
  bool positive = false, negative = false;
  for (int64_t i = 0; i < n; ++i) {  // memcpy access: arrays may be unaligned
    if (load_scalar<T>(reinterpret_cast<const char*>(x + i)) != kInf) continue;
    const T wi = load_scalar<T>(reinterpret_cast<const char*>(w + i));
    positive |= wi > 0;
    negative |= wi < 0;
  }
  LogsumexpValue v{kNan, kNan, kInf, kNan, false};
  if (positive != negative) {
    v.sign = positive ? 1.0 : -1.0;
    v.value = positive || return_sign ? kInf : kNan;
  }
  return v;
}



// Weights beyond the kernels' range. The kernels hold weights in lanes scaled by 2^64 (float) /
// 2^512 (double): float lanes sum 32 terms before widening to double, double lanes a whole chunk
// (2048 terms, 256 per lane) before unscaling, so a weight above ~2^58 (float) / ~2^497 (double)
// overflows there; and sums of weights below ~2^-60 (float lanes) / ~2^-500 (double sums) fall
// into the subnormal range and lose precision. Such a row's weights (largest |b| above 2^56 /
// 2^480 or below 2^-60 / 2^-500) are rescaled by 2^-k, k the exponent of the largest |b| (which
// becomes [0.5, 1)), and k ln 2 is added to the value:
//   log sum b exp(a) = k ln 2 + log sum (b 2^-k) exp(a),
// while the gradient b exp(a - value) is unchanged: (b 2^-k) exp(a - (value - k ln 2)).
// Scaling by a power of two is exact while every nonzero weight stays normal. A row with a
// nonzero weight below the normal range after rescaling (weights spanning more than the format,
// or a subnormal weight next to normal ones) takes the scalar wide-range path instead: there the
// kernels' 1 / total and exp(a - value) could overflow (a subnormal weight at the largest a:
// total ~ 1e-45, the gradient inf where it is 0.04), and the rescale would round.
template <class T>
struct RowWeights {
  const T* b;        // the weights the kernels see: the caller's, or the rescaled copy
  int exponent;      // k: b = caller's weights * 2^-k
  bool in_range;     // false: use weighted_logsumexp_wide_range / lse_gradient_wide_range
};

template <class T>
RowWeights<T> normalize_row_weights(const T* b, int64_t n, int slot) {
  constexpr double kLargest = sizeof(T) == 4 ? 0x1p56 : 0x1p480;
  constexpr double kSmallest = sizeof(T) == 4 ? 0x1p-60 : 0x1p-500;
  constexpr double kSmallestNormal = (double)std::numeric_limits<T>::min();
  const char* bytes = reinterpret_cast<const char*>(b);
  double largest = 0.0, smallest = kInf;  // of the nonzero |b| (nan compares false: ignored,
  for (int64_t i = 0; i < n; ++i) {       // it makes the value nan anyway)
    const double w = std::fabs((double)load_scalar<T>(bytes + i * (int64_t)sizeof(T)));
    if (w > largest) largest = w;
    if (w > 0 && w < smallest) smallest = w;
  }
  if (largest == kInf || largest == 0.0) return {b, 0, true};  // edge-case rules, or nothing left
  int k = 0;
  if (largest > kLargest || largest < kSmallest) std::frexp(largest, &k);
  if (smallest < std::ldexp(kSmallestNormal, k)) return {b, 0, false};
  if (k == 0) return {b, 0, true};
  T* scaled = scratch<T>(slot, n);
  for (int64_t i = 0; i < n; ++i) scaled[i] = std::ldexp(load_scalar<T>(bytes + i * (int64_t)sizeof(T)), -k);
  return {scaled, k, true};
}

// log|b| of a nonzero finite weight as e ln 2 + log|m| (b = m 2^e, m in [0.5, 1)).
inline double log_magnitude(double w) {
  int e = 0;
  const double m = std::frexp(std::fabs(w), &e);
  return add_ln2_multiple(std::log(m), e);
}

// SciPy's weighted logsumexp of a row whose weights are not in the kernels' range (see
// normalize_row_weights), in double and in the log domain: terms s_i exp(t_i), t_i = a_i + log|b_i|, then finalize_logsumexp of
// the largest t against the others. Never regular: the gradient takes lse_gradient_wide_range.
template <class T>
LogsumexpValue weighted_logsumexp_wide_range(const T* a, const T* b, int64_t n, bool return_sign) {
  const char* a_bytes = reinterpret_cast<const char*>(a);
  const char* b_bytes = reinterpret_cast<const char*>(b);
  double top = -kInf, top_sign = 0.0;
  bool has_nan = false, has_inf = false;
  for (int64_t i = 0; i < n; ++i) {
    const double w = load_scalar<T>(b_bytes + i * (int64_t)sizeof(T));
    if (w == 0) continue;
    const double x = load_scalar<T>(a_bytes + i * (int64_t)sizeof(T));
    has_nan |= std::isnan(x) || std::isnan(w);
    has_inf |= x == kInf;
    const double t = x + log_magnitude(w);
    if (t > top) {
      top = t;
      top_sign = w > 0 ? 1.0 : -1.0;
    }
  }
  if (has_nan) return {kNan, kNan, kNan, kNan, false};
  if (has_inf) return weighted_infinite_logsumexp(a, b, n, return_sign);
  double others = 0.0;
  bool top_seen = false;
  for (int64_t i = 0; i < n && top != -kInf; ++i) {
    const double w = load_scalar<T>(b_bytes + i * (int64_t)sizeof(T));
    if (w == 0) continue;
    const double t = (double)load_scalar<T>(a_bytes + i * (int64_t)sizeof(T)) + log_magnitude(w);
    if (t == top && !top_seen) {
      top_seen = true;
      continue;
    }
    others += (w > 0 ? 1.0 : -1.0) * std::exp(t - top);
  }
  LogsumexpValue v = finalize_logsumexp(SliceStats{top, top == -kInf ? 0.0 : top_sign, others}, return_sign);
  v.regular = false;
  return v;
}

// d value / d x of a wide-range row: g s_i exp(a_i - value + log|b_i|), 0 where b == 0.
template <class T>
void lse_gradient_wide_range(const T* a, const T* b, int64_t n, double value, double g, char* out, int64_t os) {
  for (int64_t i = 0; i < n; ++i) {
    const double w = load_scalar<T>(reinterpret_cast<const char*>(b + i));
    const double x = load_scalar<T>(reinterpret_cast<const char*>(a + i));
    const double grad = w == 0 ? 0.0 : g * (w > 0 ? 1.0 : -1.0) * std::exp((x - value) + log_magnitude(w));
    store_scalar<T>(out + i * os, (T)grad);
  }
}

// d value / d x for one slice when the vector kernels do not apply (non-finite value):
// g * w * exp(x - value), 0 where w == 0, in double. Matches torch (nan for all -inf slices).
template <class T>
void lse_gradient_fallback(const char* x, int64_t xs, const char* w, int64_t ws, int64_t n, double value, double g,
                           char* out, int64_t os) {
  for (int64_t i = 0; i < n; ++i) {
    const double wi = w ? (double)load_scalar<T>(w + i * ws) : 1.0;
    const double grad = wi == 0 ? 0.0 : g * wi * std::exp((double)load_scalar<T>(x + i * xs) - value);
    store_scalar<T>(out + i * os, (T)grad);
  }
}

// SciPy's softmax / log_softmax for a slice with a non-finite max or a nan: softmax is all nan;
// log_softmax is x - log(sum exp(x)) (the max replaced by 0), e.g. [inf, 1] -> [nan, -inf].
template <class T>
void softmax_fallback(const char* x, int64_t xs, int64_t n, char* out, int64_t os, bool log) {
  double total = 0.0;
  if (log) {
    for (int64_t i = 0; i < n; ++i) total += std::exp((double)load_scalar<T>(x + i * xs));
  }
  const double log_sum = std::log(total);
  for (int64_t i = 0; i < n; ++i) {
    store_scalar<T>(out + i * os, log ? (T)((double)load_scalar<T>(x + i * xs) - log_sum) : (T)kNan);
  }
}

// ------------------------------------------------------------------------------------------------

template <class T>
void logsumexp_typed(const ArrayCall& call, const LogsumexpOperands& ops) {
  const TypedKernels<T>& k = kernels_for<T>(active_kernels());
  const ReductionLayout& L = call.layout;
  const int64_t n = L.length;
  auto store_value = [&](char* out, char* sign, const LogsumexpValue& v) {
    store_scalar<T>(out, (T)v.value);
    if (sign) store_scalar<T>(sign, (T)v.sign);
  };

  if (ops.b == kNoOperand && use_columns<T>(L, {ops.a, ops.grad})) {
    const ColumnBlocks cb = column_blocks(L);
    const std::vector<SliceStats> stats = column_statistics(k, call, ops.a, cb, kStatsPlain);
    std::vector<LogsumexpValue> values(stats.size());
    for (int64_t i = 0; i < (int64_t)stats.size(); ++i) {
      values[i] = finalize_logsumexp(stats[i], ops.return_sign);
      const int64_t block = i / cb.columns, c = i % cb.columns;
      store_value(const_cast<char*>(column_address(call, cb, ops.out, block, c)),
                  ops.sign == kNoOperand ? nullptr : const_cast<char*>(column_address(call, cb, ops.sign, block, c)),
                  values[i]);
    }
    if (ops.grad == kNoOperand) return;
    std::vector<T> shift(values.size()), scale(values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      shift[i] = values[i].regular ? (T)values[i].max : T(0);
      scale[i] = values[i].regular ? (T)(values[i].sign * values[i].inverse_total) : T(0);
    }
    for_each_column_row<T>(call, cb, ops.a, ops.grad, [&](int64_t block, int64_t, const T* a_row, T* grad_row) {
      const size_t at = (size_t)(block * cb.columns);
      k.column_scaled_exp(a_row, 1, 0, cb.columns, shift.data() + at, scale.data() + at, grad_row, 0);
    });
    for (int64_t i = 0; i < (int64_t)values.size(); ++i) {
      if (values[i].regular) continue;
      const int64_t block = i / cb.columns, c = i % cb.columns;
      lse_gradient_fallback<T>(column_address(call, cb, ops.a, block, c), L.row_stride[ops.a], nullptr, 0, n,
                               values[i].value, 1.0, const_cast<char*>(column_address(call, cb, ops.grad, block, c)),
                               L.row_stride[ops.grad]);
    }
    return;
  }

  if (ops.b == kNoOperand && ops.grad == kNoOperand) {  // values only: rows in batches
    for_each_row_batch<T>(active_kernels(), call, ops.a, [&](const int64_t* at, const SliceStats& s, double log_total) {
      const bool plain = regular_row(s) && s.count >= 1 && s.others >= 0;
      const LogsumexpValue v = plain ? LogsumexpValue{s.max + log_total, 1.0, s.max, kNan, true}
                                     : finalize_logsumexp(s, ops.return_sign);
      store_value(call.base[ops.out] + at[ops.out], ops.sign == kNoOperand ? nullptr : call.base[ops.sign] + at[ops.sign], v);
    });
    return;
  }

  for_each_row(L, [&](int64_t, const RowCursor& cur) {
    const char* a_bytes = call.base[ops.a] + cur.offset(ops.a);
    const T* a = row_input<T>(a_bytes, L.row_stride[ops.a], n, 0);
    const char* b_bytes = ops.b == kNoOperand ? nullptr : call.base[ops.b] + cur.offset(ops.b);
    const T* caller_b = b_bytes ? row_input<T>(b_bytes, L.row_stride[ops.b], n, 1) : nullptr;
    char* grad_bytes = ops.grad == kNoOperand ? nullptr : call.base[ops.grad] + cur.offset(ops.grad);
    const int64_t grad_stride = ops.grad == kNoOperand ? 0 : L.row_stride[ops.grad];
    char* sign_bytes = ops.sign == kNoOperand ? nullptr : call.base[ops.sign] + cur.offset(ops.sign);
    const RowWeights<T> weights = caller_b ? normalize_row_weights(caller_b, n, 3) : RowWeights<T>{nullptr, 0, true};
    if (!weights.in_range) {
      const LogsumexpValue v = weighted_logsumexp_wide_range(a, caller_b, n, ops.return_sign);
      store_value(call.base[ops.out] + cur.offset(ops.out), sign_bytes, v);
      if (grad_bytes) lse_gradient_wide_range(a, caller_b, n, v.value, 1.0, grad_bytes, grad_stride);
      return;
    }
    const T* b = weights.b;
    // Unweighted with a gradient: the gradient is the softmax, and its pass yields the statistics.
    const bool fused_softmax = grad_bytes && !b;
    T* grad = fused_softmax ? row_output<T>(grad_bytes, grad_stride, n, 2) : nullptr;
    const SliceStats stats = fused_softmax ? k.row_softmax_fused(a, n, grad, chunk_scratch(n), nullptr, plain_softmax<T>()).stats
                                           : k.row_stats(a, b, n, kStatsPlain);
    LogsumexpValue v = finalize_logsumexp(stats, ops.return_sign);
    if (b && stats.max == kInf && !std::isnan(stats.others)) v = weighted_infinite_logsumexp(a, b, n, ops.return_sign);
    // v describes the rescaled weights (the gradient needs it so); the value gets k ln 2 back.
    LogsumexpValue stored = v;
    if (weights.exponent != 0 && std::isfinite(v.value)) stored.value = add_ln2_multiple(v.value, weights.exponent);
    store_value(call.base[ops.out] + cur.offset(ops.out), sign_bytes, stored);
    if (!grad_bytes) return;
    if (!v.regular) {
      lse_gradient_fallback<T>(reinterpret_cast<const char*>(a), sizeof(T), reinterpret_cast<const char*>(b),
                               sizeof(T), n, v.value, 1.0, grad_bytes, grad_stride);
      return;
    }
    if (!fused_softmax) {
      grad = row_output<T>(grad_bytes, grad_stride, n, 2);
      k.row_scaled_exp(a, b, n, (T)v.max, (T)(v.sign * v.inverse_total), grad);
    }
    finish_row_output(grad_bytes, grad_stride, n, grad);
  });
}

template <class T>
void softmax_typed(const ArrayCall& call, int x_op, int out_op, bool log) {
  const TypedKernels<T>& k = kernels_for<T>(active_kernels());
  const ReductionLayout& L = call.layout;
  const int64_t n = L.length;

  if (use_columns<T>(L, {x_op, out_op})) {
    const ColumnBlocks cb = column_blocks(L);
    const std::vector<SliceStats> stats = column_statistics(k, call, x_op, cb, kStatsPlain);
    std::vector<T> first_param(stats.size()), second_param(stats.size());
    std::vector<double> totals(log ? stats.size() : 0);
    if (log) active_kernels().log_totals(stats.data(), (int64_t)stats.size(), totals.data());
    for (size_t i = 0; i < stats.size(); ++i) {
      const bool regular = regular_row(stats[i]);
      first_param[i] = regular ? (T)stats[i].max : T(0);
      second_param[i] = !regular ? T(0) : log ? (T)totals[i] : (T)(1.0 / (stats[i].count + stats[i].others));
    }
    for_each_column_row<T>(call, cb, x_op, out_op, [&](int64_t block, int64_t, const T* x_row, T* out_row) {
      const size_t at = (size_t)(block * cb.columns);
      if (log) k.column_log_softmax(x_row, 1, 0, cb.columns, first_param.data() + at, second_param.data() + at, out_row, 0);
      else k.column_scaled_exp(x_row, 1, 0, cb.columns, first_param.data() + at, second_param.data() + at, out_row, 0);
    });
    for (int64_t i = 0; i < (int64_t)stats.size(); ++i) {
      if (regular_row(stats[i])) continue;
      const int64_t block = i / cb.columns, c = i % cb.columns;
      softmax_fallback<T>(column_address(call, cb, x_op, block, c), L.row_stride[x_op], n,
                          const_cast<char*>(column_address(call, cb, out_op, block, c)), L.row_stride[out_op], log);
    }
    return;
  }

  if (log && n <= kShortRow) {  // short rows in batches, still in cache when their outputs are written
    for_each_row_batch<T>(active_kernels(), call, x_op, [&](const int64_t* at, const SliceStats& s, double log_total) {
      const T* x = row_input<T>(call.base[x_op] + at[x_op], L.row_stride[x_op], n, 0);
      char* out_bytes = call.base[out_op] + at[out_op];
      if (!regular_row(s)) {
        softmax_fallback<T>(reinterpret_cast<const char*>(x), sizeof(T), n, out_bytes, L.row_stride[out_op], log);
        return;
      }
      T* out = row_output<T>(out_bytes, L.row_stride[out_op], n, 1);
      k.row_log_softmax(x, n, (T)s.max, (T)log_total, out, false);
      finish_row_output(out_bytes, L.row_stride[out_op], n, out);
    });
    return;
  }

  const bool stream = stream_output<T>(call, out_op, x_op);
  for_each_row(L, [&](int64_t, const RowCursor& cur) {
    const T* x = row_input<T>(call.base[x_op] + cur.offset(x_op), L.row_stride[x_op], n, 0);
    char* out_bytes = call.base[out_op] + cur.offset(out_op);
    T* out = row_output<T>(out_bytes, L.row_stride[out_op], n, 1);
    const SliceStats s = log ? k.row_stats(x, nullptr, n, kStatsPlain)
                             : k.row_softmax_fused(x, n, out, chunk_scratch(n), staging_for<T>(stream, n), plain_softmax<T>()).stats;
    if (!regular_row(s)) {
      softmax_fallback<T>(reinterpret_cast<const char*>(x), sizeof(T), n, out_bytes, L.row_stride[out_op], log);
      return;
    }
    if (log) k.row_log_softmax(x, n, (T)s.max, (T)log_total(s), out, stream);
    finish_row_output(out_bytes, L.row_stride[out_op], n, out);
  });
}

template <class T>
void logsumexp_backward_typed(const ArrayCall& call, const LogsumexpBackwardOperands& ops) {
  const TypedKernels<T>& k = kernels_for<T>(active_kernels());
  const ReductionLayout& L = call.layout;
  const int64_t n = L.length;
  for_each_row(L, [&](int64_t, const RowCursor& cur) {
    const T* a = row_input<T>(call.base[ops.a] + cur.offset(ops.a), L.row_stride[ops.a], n, 0);
    const T* caller_b = ops.b == kNoOperand ? nullptr : row_input<T>(call.base[ops.b] + cur.offset(ops.b), L.row_stride[ops.b], n, 1);
    const double g = (double)load_scalar<T>(call.base[ops.g] + cur.offset(ops.g));
    char* out_bytes = call.base[ops.out] + cur.offset(ops.out);
    const int64_t out_stride = L.row_stride[ops.out];
    // Weights beyond the kernels' range: rescaled by 2^-k (the shift below moves by k ln 2), or
    // the wide-range path (see normalize_row_weights).
    const RowWeights<T> weights = caller_b ? normalize_row_weights(caller_b, n, 3) : RowWeights<T>{nullptr, 0, true};
    if (!weights.in_range) {
      const double value = ops.result != kNoOperand
                               ? (double)load_scalar<T>(call.base[ops.result] + cur.offset(ops.result))
                               : weighted_logsumexp_wide_range(a, caller_b, n, false).value;
      lse_gradient_wide_range(a, caller_b, n, value, g, out_bytes, out_stride);
      return;
    }
    const T* b = weights.b;
    // The gradient is g * w * exp(a - value), computed as exp(a - shift) * scale.
    double value, shift, scale;
    bool regular;
    if (ops.result != kNoOperand) {
      value = (double)load_scalar<T>(call.base[ops.result] + cur.offset(ops.result));
      if (weights.exponent != 0 && std::isfinite(value)) value = add_ln2_multiple(value, -weights.exponent);
      shift = value;
      scale = g;
      regular = std::isfinite(value);
    } else {
      const LogsumexpValue v = finalize_logsumexp(k.row_stats(a, b, n, kStatsPlain), false);
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
    k.row_scaled_exp(a, b, n, (T)shift, (T)scale, out);
    finish_row_output(out_bytes, out_stride, n, out);
  });
}

template <class T>
void softmax_backward_typed(const ArrayCall& call, int g_op, int y_op, int out_op, bool log) {
  const TypedKernels<T>& k = kernels_for<T>(active_kernels());
  const ReductionLayout& L = call.layout;
  const int64_t n = L.length;
  for_each_row(L, [&](int64_t, const RowCursor& cur) {
    const T* g = row_input<T>(call.base[g_op] + cur.offset(g_op), L.row_stride[g_op], n, 0);
    const T* y = row_input<T>(call.base[y_op] + cur.offset(y_op), L.row_stride[y_op], n, 1);
    char* out_bytes = call.base[out_op] + cur.offset(out_op);
    T* out = row_output<T>(out_bytes, L.row_stride[out_op], n, 2);
    if (log) k.row_log_softmax_backward(g, y, n, (T)k.row_dot(g, nullptr, n), out);
    else k.row_softmax_backward(g, y, n, (T)k.row_dot(g, y, n), out);
    finish_row_output(out_bytes, L.row_stride[out_op], n, out);
  });
}

}  // namespace

void run_logsumexp(const ArrayCall& call, const LogsumexpOperands& ops) {
  if (call.dtype == DType::kFloat32) logsumexp_typed<float>(call, ops);
  else logsumexp_typed<double>(call, ops);
}

void run_softmax(const ArrayCall& call, int x, int out, bool log) {
  if (call.dtype == DType::kFloat32) softmax_typed<float>(call, x, out, log);
  else softmax_typed<double>(call, x, out, log);
}

void run_logsumexp_backward(const ArrayCall& call, const LogsumexpBackwardOperands& ops) {
  if (call.dtype == DType::kFloat32) logsumexp_backward_typed<float>(call, ops);
  else logsumexp_backward_typed<double>(call, ops);
}

void run_softmax_backward(const ArrayCall& call, int g, int y, int out, bool log) {
  if (call.dtype == DType::kFloat32) softmax_backward_typed<float>(call, g, y, out, log);
  else softmax_backward_typed<double>(call, g, y, out, log);
}

}  // namespace logitloss
