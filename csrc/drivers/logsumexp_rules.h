// SciPy's logsumexp rules, from a slice's statistics or, where the kernels do not apply, from
// the elements in double: the value and sign (finalize_logsumexp), weights beyond the kernels'
// range (normalize_row_weights and the wide-range path), +inf with weights, and the gradients and
// softmax of slices the vector kernels do not cover. Scalar code in double; used by
// drivers/softmax_family.cpp. Baseline code only.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "drivers/row_buffers.h"
#include "drivers/scalar_access.h"
#include "kernels/kernel_table.h"

namespace logitloss {
namespace drivers {

// ln 2 = kLn2High + kLn2Low, kLn2High with trailing zero bits so that k * kLn2High is exact.
constexpr double kLn2High = 0x1.62e42fefa3800p-1, kLn2Low = 0x1.ef35793c76730p-45;

// value + k ln 2, ln 2 in two parts.
inline double add_ln2_multiple(double value, int k) { return (value + k * kLn2High) + k * kLn2Low; }

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

inline LogsumexpValue finalize_logsumexp(const SliceStats& stats, bool return_sign) {
  const double max = stats.max, count = stats.count, others = stats.others;
  LogsumexpValue v{kNan, kNan, max, kNan, false};
  if (std::isnan(others) || std::isnan(count)) return v;
  if (max == -kInf) {
    v.value = -kInf;
    v.sign = 0.0;
  } else if (max == kInf) {
    v.sign = count > 0 ? 1.0 : (count < 0 ? -1.0 : kNan);
    v.value = std::isnan(v.sign) ? kNan : kInf;
  } else {
    if (count > 0 && others >= 0) {  // the common case: no weights, or positive ones
      v.sign = 1.0;
      v.value = max + (count == 1 ? 0.0 : std::log(count)) + (others == 0 ? 0.0 : std::log1p(others / count));
      v.inverse_total = 1.0 / (count + others);
      v.regular = std::isfinite(v.value);
      return v;
    }
    double ratio = others == 0 ? 0.0 : others / count;
    const double ratio_plus_one = ratio + 1;
    v.sign = (ratio_plus_one > 0 ? 1.0 : (ratio_plus_one < 0 ? -1.0 : 0.0)) * (count > 0 ? 1.0 : (count < 0 ? -1.0 : 0.0));
    if (ratio < -1) ratio = -ratio - 2;
    v.value = std::log1p(ratio) + std::log(std::fabs(count)) + max;
    if (!std::isfinite(v.value)) {
      const double total = count + others;
      v.value = std::log(std::fabs(total)) + max;
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
    const T weight = load_scalar<T>(reinterpret_cast<const char*>(w + i));
    positive |= weight > 0;
    negative |= weight < 0;
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
void lse_gradient_wide_range(const T* a, const T* b, int64_t n, double value, double g, char* out, int64_t out_stride) {
  for (int64_t i = 0; i < n; ++i) {
    const double w = load_scalar<T>(reinterpret_cast<const char*>(b + i));
    const double x = load_scalar<T>(reinterpret_cast<const char*>(a + i));
    const double grad = w == 0 ? 0.0 : g * (w > 0 ? 1.0 : -1.0) * std::exp((x - value) + log_magnitude(w));
    store_scalar<T>(out + i * out_stride, (T)grad);
  }
}

// d value / d x for one slice when the vector kernels do not apply (non-finite value):
// g * w * exp(x - value), 0 where w == 0, in double. Matches torch (nan for all -inf slices).
template <class T>
void lse_gradient_fallback(const char* x, int64_t x_stride, const char* w, int64_t w_stride, int64_t n, double value,
                           double g, char* out, int64_t out_stride) {
  for (int64_t i = 0; i < n; ++i) {
    const double weight = w ? (double)load_scalar<T>(w + i * w_stride) : 1.0;
    const double grad = weight == 0 ? 0.0 : g * weight * std::exp((double)load_scalar<T>(x + i * x_stride) - value);
    store_scalar<T>(out + i * out_stride, (T)grad);
  }
}

// SciPy's softmax / log_softmax for a slice with a non-finite max or a nan: softmax is all nan;
// log_softmax is x - log(sum exp(x)) (the max replaced by 0), e.g. [inf, 1] -> [nan, -inf].
template <class T>
void softmax_fallback(const char* x, int64_t x_stride, int64_t n, char* out, int64_t out_stride, bool log) {
  double total = 0.0;
  if (log) {
    for (int64_t i = 0; i < n; ++i) total += std::exp(load_value<T>(x + i * x_stride));
  }
  const double log_sum = std::log(total);
  for (int64_t i = 0; i < n; ++i) {
    store_scalar<T>(out + i * out_stride, storage_value<T>(log ? load_value<T>(x + i * x_stride) - log_sum : kNan));
  }
}

}  // namespace drivers
}  // namespace logitloss
