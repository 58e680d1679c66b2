// KL divergence between two softmax distributions given by their logits, loss and gradient in one
// call per row, written once for every ISA.
//
// Contract: row_kl_div(input, target, n, inverse_temperature, grad_scale, grad, scratch) for
// input[0..n) (the student's logits s) and target[0..n) (the teacher's logits t), contiguous, n >= 1,
// inverse_temperature = 1 / T > 0 finite, scratch: kl_div_scratch_size(n) doubles. With
// P = softmax(t / T), Q = softmax(s / T):
//   returns  KL(P || Q) = sum_c P_c (log P_c - log Q_c)
//   grad_c = grad_scale * (Q_c - P_c)            (when grad is not null; it may not alias a row)
// Classes with t_c = -inf (and every class where P_c underflows double's exp, t_c / T more than
// ~745 below the teacher's max) are outside P's support and add nothing but the student's mass
// there; classes -inf in both rows add exactly 0. A row whose max is not finite in either operand
// (all -inf, +inf) gives nan (loss and gradient), as torch; nan anywhere propagates.
//
// Error bound (tests/test_divergence.py): float32 data, the KL within 8 eps (float) relative of
// exact wherever it is normal, down to 1e-12 and below (near-identical rows); float64 data, within
// 8 eps relative where d_c = (t_c - s_c) / T is formed exactly (near-identical rows of exact
// inputs: t_c - s_c is then exact by Sterbenz's lemma; T a power of two), down to 1e-30; otherwise
// the rounding of d_c (eps |d_c|) bounds the absolute error. Gradient: within 4 eps of
// grad_scale * (Q_c + P_c) (each of Q_c and P_c is rounded a few times in double).
//
// Method. With d_c = (t_c - s_c) / T, KL = E_P[d] + log E_P[e^-d] - log Q(supp P), and each term is
// invariant to adding a constant to d. Centre: mu = E_P[d] (pass 2), u_c = mu - d_c, so that the
// residual m = E_P[u] is only mu's rounding; with phi(u) = e^u - 1 - u >= 0,
//   log E_P[e^u] = log(1 + m + A),  A = E_P[phi(u)] (a sum of non-negative terms),
//   KL = log1p(m + A) - m - log1p(-Q_out),  Q_out = sum of Q_c outside supp P (>= 0),
// and log1p(x) - m = A + (log1p(x) - x) is evaluated by its series for small x, so a KL of 1e-30
// is A itself to full relative precision. phi(u) has its own series for |u| <= 1/2 (expm1(u) - u
// would cancel); above, P_c phi(u_c) = exp(a_c + u_c) - P_c (1 + u_c) with the product P_c e^u_c as
// one exponent (P_c may be tiny where e^u_c overflows), whose cancellation is bounded (about 10x).
// Where even that exponent overflows (KL > ~700), or the student's mass inside P's support is below
// 2^-60 of its total (KL > 41; its exponentials may have lost bits to underflow), the KL is
// mu - (lse_t - lse_s), relatively exact there. The gradient is Q_c - P_c from the two exponentials rounded in double: within a few eps
// of the size of its terms in the data type, the bound asked of it.
//
// Precision policy: d_c, u_c, the residual m and every sum in double lanes (float elements widened
// exactly), since u_c must carry the differences d_c exactly; the loss leaves in double. Double
// data: every lane is double (below). Float data (divergence_float_lanes-inl.h): the
// exponentials, the phi terms where some |u| > 2^-10 and the gradient in float lanes, each within
// a few float ULP, which the bound above absorbs (that file says term by term why); rows whose
// 1 / T or grad_scale would leave float's range take the double lanes.
//
// Memory passes: three reads of both rows (maxima; teacher and student totals and mu; the terms
// and the gradient, written once), pass 2 leaving both exponentials in `scratch` for pass 3 (16
// bytes per element in double lanes, 8 in float lanes; in L2 for rows of a vocabulary, 32k
// float). Compute, double lanes: two double exps per element in pass 2, a third in pass 3 where
// |u| > 1/2; float lanes: two float exps, a third where u < -1.
//
// Requires simd/vector-inl.h, simd/math-inl.h, kernels/kernel_table.h and
// kernels/row_statistics-inl.h (chunk_max); includes divergence_float_lanes-inl.h.
#pragma once

// phi(u) = e^u - 1 - u by its Taylor series u^2 (1/2! + u/3! + ... ), kTerms coefficients.
template <int kTerms, class W>
LOGITLOSS_ALWAYS_INLINE W exp_minus_linear_series(W u) {
  constexpr double kInverseFactorials[] = {1.0 / 2,           1.0 / 6,           1.0 / 24,          1.0 / 120,
                                           1.0 / 720,         1.0 / 5040,        1.0 / 40320,       1.0 / 362880,
                                           1.0 / 3628800,     1.0 / 39916800,    1.0 / 479001600,   1.0 / 6227020800,
                                           1.0 / 87178291200, 1.0 / 1307674368000, 1.0 / 20922789888000};
  static_assert(kTerms <= 15, "coefficients above");
  W sum = splat<W>(kInverseFactorials[kTerms - 1]);
  for (int k = kTerms - 2; k >= 0; --k) sum = mul_add(sum, u, splat<W>(kInverseFactorials[k]));
  return (u * u) * sum;
}

// Series lengths, truncation below the data type's need (relative |u|^k 2 / (k + 2)!): for
// |u| <= 2^-10, and for |u| <= 1/2 (float data needs ~1e-9 relative, double ~1e-17).
template <class T>
struct PhiSeries {
  static constexpr int kShort = sizeof(T) == 4 ? 3 : 5;
  static constexpr int kLong = sizeof(T) == 4 ? 9 : 14;
};

// log1p(m + excess) - m, excess >= 0 (the KL inside P's support, up to the student's mass outside):
// for small arguments excess + (log1p(x) - x) with the latter by its series, so that a tiny excess
// is not lost next to m; for larger ones log1p(x) - m directly (excess + (log1p(x) - x) would
// cancel when the excess is large).
inline double log1p_excess(double m, double excess) {
  const double x = m + excess;
  if (::fabs(x) > 0x1p-7) return ::log1p(x) - m;
  // Alternating series of log1p(x) - x, x^10 / 10 below 2^-70 x^2 / 2 at |x| <= 2^-7.
  double sum = 0.0;
  for (int k = 9; k >= 2; --k) sum = sum * x + ((k % 2) ? 1.0 : -1.0) / k;
  return excess + sum * x * x;
}

// (x - y) * scale as hi + lo: x - y an error-free TwoSum first (for float data widened to double the
// difference is exact only where the two exponents are within 29 of each other: 0.5 - 5.7e-18 is
// not), then the product's rounding in lo too (fma), so (t - max) / T and (t - s) / T keep their low
// parts where logits are large, far apart in size, or T is not a power of 2.
template <class T, class W>
LOGITLOSS_ALWAYS_INLINE W scaled_difference(W x, W y, W scale, W& lo) {
  W difference = x - y, difference_low = splat<W>(0.0);
  {
    // TwoSum of x and -y.
    const W minus_y = -y, y_part = difference - x;
    difference_low = (x - (difference - y_part)) + (minus_y - y_part);
    // A non-finite difference has no low part (inf - inf would make it nan).
    difference_low = select(abs(difference) < splat<W>(__builtin_inf()), difference_low, splat<W>(0.0));
  }
  const W hi = difference * scale;
  lo = select(abs(hi) < splat<W>(__builtin_inf()), mul_add(difference, scale, -hi), splat<W>(0.0));
  lo = mul_add(difference_low, scale, lo);
  return hi;
}

// (x - y) * scale for scalars as an error-free hi + lo (TwoSum, fma); returns hi.
inline double scaled_gap(double x, double y, double scale, double& lo) {
  const double difference = x - y, y_part = difference - x;
  const double low = (x - (difference - y_part)) + (-y - y_part);
  const double hi = difference * scale;
  lo = ::fabs(hi) < __builtin_inf() ? __builtin_fma(difference, scale, -hi) + low * scale : 0.0;
  return hi;
}

// sum += x with the rounding error of each addition kept in `error` (TwoSum): the KL is
// proportional to the teacher's total and to the excess, so neither may carry the error of
// thousands of lane additions.
template <class W>
LOGITLOSS_ALWAYS_INLINE void add_compensated(W x, W& sum, W& error) {
  const W next = sum + x, x_part = next - sum;
  error += (sum - (next - x_part)) + (x - x_part);
  sum = next;
}

// A vector of doubles from `count` elements at p (at most one double vector's lanes; float data
// widened exactly), the rest -inf; and its rounding to T stored back. The kernel works in native
// double vectors (f64v): FMA, vscalef and the integer conversions of exp stay single instructions,
// where the 2x-wide f64w of float data would fall back to generic code.
constexpr int kDoubleLanes = LOGITLOSS_VECTOR_BYTES / 8;
typedef float HalfFloats __attribute__((vector_size(LOGITLOSS_VECTOR_BYTES / 2)));

template <class T>
LOGITLOSS_ALWAYS_INLINE f64v load_doubles(const T* p, int64_t count) {
  if constexpr (sizeof(T) == 8) {
    return load_n(p, count, -__builtin_inf());
  } else {
    HalfFloats half;
    if (count == kDoubleLanes) {
      std::memcpy(&half, p, sizeof half);
    } else {
      for (int k = 0; k < kDoubleLanes; ++k) half[k] = k < count ? p[k] : -__builtin_inff();
    }
    return __builtin_convertvector(half, f64v);
  }
}

template <class T>
LOGITLOSS_ALWAYS_INLINE void store_doubles(T* p, f64v v, int64_t count) {
  if constexpr (sizeof(T) == 8) {
    if (count == kDoubleLanes) store(p, v); else store_partial(p, v, count);
  } else {
    const HalfFloats half = __builtin_convertvector(v, HalfFloats);
    if (count == kDoubleLanes) {
      std::memcpy(p, &half, sizeof half);
    } else {
      for (int k = 0; k < count; ++k) p[k] = half[k];
    }
  }
}

// What row_kl_div's passes leave for a kernel built on them (the JSD, kernels/jensen_shannon-inl.h):
// the maxima, the totals, the centre mu and the centred sums m = E_P[u], A = E_P[phi(u)] over P's
// support, u_c = mu - d_c. `centred` says the centred sums are valid (the row's maxima and mu are
// finite, the excess is finite and the student has mass on P's support); `scratch` then still
// holds both exponentials, e^a at [0, padded) and e^b at [padded, 2 padded).
struct KlDivRowSummary {
  bool finite_maxima = false, centred = false;
  double max_t = 0, max_s = 0, mu = 0, sum_t = 0, sum_s = 0, sum_inside_s = 0, sum_outside_s = 0;
  double residual_mean = 0, excess_mean = 0, log_inside = 0;
};

template <class T>
LOGITLOSS_FLATTEN double row_kl_div_double_lanes(const T* input, const T* target, int64_t n, double inverse_temperature,
                                                 double grad_scale, T* grad, double* scratch,
                                                 KlDivRowSummary* summary) {
  using W = f64v;
  constexpr int kLanes = kDoubleLanes;
  const double nan = __builtin_nan("");
  const T max_t = chunk_max<T, false>(target, nullptr, n);
  const T max_s = chunk_max<T, false>(input, nullptr, n);
  KlDivRowSummary unused;
  KlDivRowSummary& out = summary ? *summary : unused;
  out.max_t = max_t;
  out.max_s = max_s;
  if (!(max_t - max_t == 0 && max_s - max_s == 0)) {
    if (grad) for (int64_t i = 0; i < n; ++i) grad[i] = T(nan);
    return nan;
  }
  const W scale = splat<W>(inverse_temperature), zero = splat<W>(0.0);
  const W max_t_w = splat<W>((double)max_t), max_s_w = splat<W>((double)max_s);
  auto widen_load = [&](const T* p, int64_t i, int64_t count) { return load_doubles(p + i, count); };
  // The teacher's and the student's exponentials, e^a and e^b with a = (t - max_t) / T, b = (s - max_s) / T.
  auto teacher_exp = [&](W t, W& a, W& a_low) {
    a = scaled_difference<T>(t, max_t_w, scale, a_low);
    return exp_nonpositive(a, a_low);
  };
  auto student_exp = [&](W s, W& b, W& b_low) {
    b = scaled_difference<T>(s, max_s_w, scale, b_low);
    return exp_nonpositive(b, b_low);
  };
  // Pass 2: totals of both rows, the student's total inside and outside P's support, and the
  // P-weighted sum of d (tail lanes are -inf in both: no mass anywhere).
  // Pass 3 reads the exponentials back from scratch (L2) rather than computing them again.
  const int64_t padded = (n + kLanes - 1) / kLanes * kLanes;
  // The student's masses compensated too: log1p(-outside / total) is the whole KL where P and Q
  // agree inside P's support, and an uncompensated sum of many lanes was 16 eps off.
  W total_t = zero, total_t_error = zero, inside_s = zero, inside_s_error = zero, outside_s = zero,
    outside_s_error = zero, weighted_d = zero;
  auto totals = [&](int64_t i, int64_t count) {
    const W t = widen_load(target, i, count), s = widen_load(input, i, count);
    W a, a_low, b, b_low, d_low;
    const W e_t = teacher_exp(t, a, a_low), e_s = student_exp(s, b, b_low);
    store(scratch + i, e_t);
    store(scratch + padded + i, e_s);
    const auto inside = e_t > 0;
    add_compensated(e_t, total_t, total_t_error);
    add_compensated(select(inside, e_s, zero), inside_s, inside_s_error);
    add_compensated(select(inside, zero, e_s), outside_s, outside_s_error);
    const W d = scaled_difference<T>(t, s, scale, d_low);
    weighted_d += select(inside, e_t * (d + d_low), zero);
  };
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) totals(i, kLanes);
  if (i < n) totals(i, n - i);
  const double sum_t = horizontal_add(total_t) + horizontal_add(total_t_error);
  const double sum_inside_s = horizontal_add(inside_s) + horizontal_add(inside_s_error);
  const double sum_outside_s = horizontal_add(outside_s) + horizontal_add(outside_s_error);
  const double sum_s = sum_inside_s + sum_outside_s;
  const double mu = horizontal_add(weighted_d) / sum_t;
  const bool mu_finite = mu - mu == 0;
  out.finite_maxima = true;
  out.mu = mu;
  out.sum_t = sum_t;
  out.sum_s = sum_s;
  out.sum_inside_s = sum_inside_s;
  out.sum_outside_s = sum_outside_s;
  // Pass 3: the residual and the non-negative phi terms around mu, and the gradient.
  const W mu_w = splat<W>(mu), one = splat<W>(1.0), half = splat<W>(0.5), short_range = splat<W>(0x1p-10);
  // a + u = b + c0: the exponent of P_c e^u_c from the student's side, no large cancelling terms.
  // Its constant is formed as carefully as u's mu - d: the maxima may be large and close.
  double gap_low;
  const double gap = scaled_gap(max_t, max_s, inverse_temperature, gap_low);
  const W c0 = splat<W>((mu - gap) - gap_low);
  const W q_factor = splat<W>(grad_scale / sum_s), p_factor = splat<W>(grad_scale / sum_t);
  W residual = zero, excess = zero, excess_error = zero;
  auto terms = [&](int64_t i, int64_t count) {
    const W t = widen_load(target, i, count), s = widen_load(input, i, count);
    W b = zero, b_low = zero, d_low;
    const W e_t = load(scratch + i);
    if (grad) {
      const W e_s = load(scratch + padded + i);
      const W g = e_s * q_factor - e_t * p_factor;
      store_doubles(grad + i, g, count);
    }
    if (!mu_finite) return;
    const auto inside = e_t > 0;
    const W u = (mu_w - scaled_difference<T>(t, s, scale, d_low)) - d_low;
    const W size = select(inside, abs(u), zero);
    residual += select(inside, e_t * u, zero);
    W phi_term;
    if (!any_lane(size > short_range)) {
      phi_term = e_t * exp_minus_linear_series<PhiSeries<T>::kShort>(u);
    } else {
      phi_term = e_t * exp_minus_linear_series<PhiSeries<T>::kLong>(u);
      const auto far = size > half;
      if (any_lane(far)) {
        b = scaled_difference<T>(s, max_s_w, scale, b_low);
        // P_c e^u_c as one exponent (P_c may be tiny where e^u_c overflows), the full-range exp.
        const W direct = exp((b + c0) + b_low) - e_t * (one + u);
        phi_term = select(far, direct, phi_term);
      }
    }
    add_compensated(select(inside, phi_term, zero), excess, excess_error);
  };
  for (i = 0; i + kLanes <= n; i += kLanes) terms(i, kLanes);
  if (i < n) terms(i, n - i);
  if (!mu_finite) return mu;  // +inf: the teacher has mass where the student has none (or nan)
  const double m = horizontal_add(residual) / sum_t;
  const double excess_mean = (horizontal_add(excess) + horizontal_add(excess_error)) / sum_t;
  // The textbook form mu - lse_t + lse_s (it needs no outside term) where the centred one cannot be
  // evaluated: exp(b + c0) overflowed, or the student's mass inside P's support is below 2^-60 of
  // its total, where its exponentials may have lost bits to the subnormal range (or underflowed
  // altogether: 0.04 of a KL of 742 went that way). The KL is then large (> -log Q(supp P) > 41),
  // and relatively exact in this form.
  const double textbook = ((mu - gap) - gap_low) - ::log(sum_t) + ::log(sum_s);
  if (!(excess_mean - excess_mean == 0) || !(sum_inside_s >= sum_s * 0x1p-60)) return textbook;
  // log Q(supp P) from the smaller of the two masses (no cancellation either way).
  const double log_inside =
      sum_outside_s <= sum_inside_s ? ::log1p(-sum_outside_s / sum_s) : ::log(sum_inside_s / sum_s);
  out.centred = true;
  out.residual_mean = m;
  out.excess_mean = excess_mean;
  out.log_inside = log_inside;
  const double kl = log1p_excess(m, excess_mean) - log_inside;
  return kl > 0 ? kl : 0.0;
}

#include "kernels/divergence_float_lanes-inl.h"

// The kernel of the table: float data in float lanes where its factors fit them
// (divergence_float_lanes-inl.h), everything else in double lanes.
template <class T>
LOGITLOSS_FLATTEN double row_kl_div(const T* input, const T* target, int64_t n, double inverse_temperature,
                                    double grad_scale, T* grad, double* scratch) {
  if constexpr (sizeof(T) == 4) {
    if (float_lanes_fit(inverse_temperature, grad_scale)) {
      return inverse_temperature == 1.0
                 ? row_kl_div_float_lanes<false>(input, target, n, inverse_temperature, grad_scale, grad, scratch)
                 : row_kl_div_float_lanes<true>(input, target, n, inverse_temperature, grad_scale, grad, scratch);
    }
  }
  return row_kl_div_double_lanes(input, target, n, inverse_temperature, grad_scale, grad, scratch, nullptr);
}
