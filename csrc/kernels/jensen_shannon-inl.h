// The generalized Jensen-Shannon divergence (Liger-Kernel's) between two softmax distributions given
// by their logits, loss and gradient in one call per row, written once for every ISA on top of the
// KL's passes (kernels/divergence-inl.h).
//
// Contract: row_jsd(input, target, n, beta, inverse_temperature, grad_scale, grad, scratch) for
// input[0..n) (the student's logits s) and target[0..n) (the teacher's logits t), contiguous, n >= 1,
// 0 <= beta <= 1, inverse_temperature = 1 / T > 0 finite, scratch: kl_div_scratch_size(n) doubles.
// With P = softmax(t / T), Q = softmax(s / T), b = 1 - beta, M = beta P + b Q:
//   beta = 0:      KL(P || Q), grad_c = grad_scale (Q_c - P_c)           (row_kl_div itself)
//   0 < beta < 1:  beta KL(P || M) + b KL(Q || M),
//                  grad_c = grad_scale b Q_c (log(Q_c / M_c) - KL(Q || M))
//   beta = 1:      KL(Q || P), grad_c = grad_scale Q_c (log(Q_c / P_c) - KL(Q || P))
// (grad when not null; it may not alias a row). The gradient is d loss / d s_c times T: by the
// softmax Jacobian, Q_c (g_c - E_Q[g]) with g = d loss / d Q = b log(Q / M) (the P / M and Q / M
// terms of the two KLs cancel) for 0 < beta < 1, log(Q / P) + 1 for beta = 1.
// Classes outside P's support (t_c = -inf, or P_c below double's exp) add b Q_c log(1 / b) for
// 0 < beta < 1; for beta = 1 a teacher class of -inf with student mass makes the loss +inf (the
// gradient is then nan, as torch's autograd), one whose P_c underflows adds Q_c log(Q_c / P_c)
// from the logits; classes -inf in both rows add exactly 0. A row with no finite max in either
// operand gives nan (loss and gradient), nan propagates, as for the KL.
//
// Error bound (tests/test_jsd.py): the loss within 16 eps of the data type (float16: of float32,
// then its own rounding) relative of exact wherever it is normal, including near-identical rows
// (1e-12 and below in float32; 1e-30 in float64 where d_c = (t_c - s_c) / T is exact, as for the
// KL; otherwise the rounding of d_c bounds the absolute error, eps |d_c| per class). Gradient:
// within 32 eps of grad_scale times the size of its terms, b Q_c (|log(Q_c / M_c)| + E_Q|log(Q / M)|),
// but for entries in double's subnormal range (their absolute rounding). As for the KL, a T that is
// not a power of two costs the rounding of 1 / T, a relative change of the temperature.
//
// Derivation. On P's support let r_c = Q_c / P_c = K e^(u_c), u_c = mu - d_c the KL's centred
// difference and K = Q(supp P) / E_P[e^u] = Q(supp P) / (1 + m + A) from the KL's sums (pass 3 of
// row_kl_div, no gradient); v_c = log r_c = u_c + log K is then formed with an error of a few eps
// |u_c| plus a uniform delta of a few eps |m + A| (m absorbs mu's rounding). With w = r - 1,
// x = b w, y = beta w / (1 + x) (so 1 + x = M / P and 1 + y = Q / M), h(x) = x - log1p(x) >= 0 and
// g(y) = (1 + y) log1p(y) - y >= 0:
//   beta KL(P || M) = beta sum_P P h(x) - beta b sum_P P w,
//   b KL(Q || M)    = b sum_P M g(y) + b beta sum_P P w + b log(1 / b) Q_out,
// the linear terms cancel identically, and the loss is a sum of non-negative terms
//   sum_P P [beta h(x) + b (1 + x) g(y)] + b log(1 / b) Q_out,
// each within a few eps of itself, so their sum is too (no cancellation). For beta = 1 the same
// holds with KL(Q || P) = sum_P P g(w) - Q_out. A uniform delta in v scales every r by 1 + delta
// and moves the loss by delta b E_Q[log(Q / M)] to first order (a relative delta) and by delta^2
// b beta / 2 to second: the centring keeps delta far below w (a plain v = gap - d + log(sum_t /
// sum_s) has delta ~ eps, which the second order shows at w ~ 1e-15). Rows the centring does not
// reach (the student -inf where the teacher has mass: r = 0 there; no student mass on P's support;
// a KL beyond ~700) take that plain v: the JSD is far from 0 there, the same formulas hold.
// h has no cancellation as s (x - R), s = x / (2 + x), R = sum_i>=1 2 s^2i / (2i + 1) (log1p(x) =
// 2 atanh(s) and x - 2s = s x) for x in [-1/2, 1] (float data: Taylor's series on [-1/8, 1/8]);
// outside, x - log(1 + x) cancels by at most 3.6x (float data: 16x, in double).
// g = y^2 - (1 + y) h(y) cancels by at most 2x for y in [-1/2, 1], by at most 3.6x outside. w is
// v + phi(v) (the KL's series) for |v| <= 1/2; above, r = (e^b / e^a) (sum_t / sum_s) from the KL's
// exponentials (a few eps relative, no exp) and w = r - 1 (cancelling at most 2.6x). Where r > 2 and
// x is outside its series range (b not small) the terms are taken from the masses, P h(x) = b (Q - P) - P log(M / P), M = beta P + b Q, without
// cancellation there (r may also overflow, or P_c be subnormal). The student's -inf where the
// teacher has mass is r = 0 (M = beta P), no special row.
//
// Precision policy: double lanes, double sums (compensated for the loss and the gradient's mean),
// as the KL.
//
// Memory passes: the KL's three (maxima; totals, both exponentials left in the scratch; centred
// sums, no gradient), a fourth reading both rows and the exponentials to form the terms, leaving
// e^b log(Q / M) in the scratch, and a fifth writing the gradient from the scratch alone (row_jsd
// stays at the scratch's two arrays). Compute in the fourth, per element: at
// most one division for r, one for 1 / (1 + x) and one log(M / P) shared by h(x), the masses' terms
// and (float data) log(Q / M) = v - log(M / P) (double data: its own log, v - log(M / P) cancelling
// where r is large), the series only where some lane needs them.
//
// Requires kernels/divergence-inl.h.
#pragma once

// h(x) = x - log1p(x) = s (x - R) for x in [-1/2, 1] (|s| <= 1/3, z = s^2 <= 1/9); kTerms terms of
// R bring the truncation below 2^-30 (float data) or 2^-55 (double) of h.
template <int kTerms, class W>
LOGITLOSS_ALWAYS_INLINE W linear_minus_log1p_series(W x) {
  const W s = x / (x + splat<W>(2.0)), z = s * s;
  W sum = splat<W>(2.0 / (2 * kTerms + 1));
  for (int i = kTerms - 1; i >= 1; --i) sum = mul_add(sum, z, splat<W>(2.0 / (2 * i + 1)));
  return s * (x - z * sum);
}

// h(x) = x^2/2 - x^3/3 + ... by its Taylor series, kTerms terms (no division).
template <int kTerms, class W>
LOGITLOSS_ALWAYS_INLINE W linear_minus_log1p_taylor(W x) {
  W sum = splat<W>((kTerms % 2 ? 1.0 : -1.0) / (kTerms + 1));
  for (int k = kTerms; k >= 2; --k) sum = mul_add(sum, x, splat<W>((k % 2 ? -1.0 : 1.0) / k));
  return (x * x) * sum;
}

// The series range of h and its terms: double data [-1/2, 1] by the atanh form (17 terms, below
// 2^-55); float data |x| <= 1/8 by Taylor's (10 terms, below 2^-32; a division saved, and outside
// the range x - log1p(x) cancels at most 16x, far below float's eps in double).
template <class T>
struct JsdSeries {
  static constexpr int kAtanhTerms = 17;
  static constexpr int kTaylorTerms = 10;
};

template <class T, class W>
LOGITLOSS_ALWAYS_INLINE W linear_minus_log1p_series_of(W x) {
  if constexpr (sizeof(T) == 4) return linear_minus_log1p_taylor<JsdSeries<T>::kTaylorTerms>(x);
  else return linear_minus_log1p_series<JsdSeries<T>::kAtanhTerms>(x);
}

// Whether every lane of a comparison mask is set.
template <class M>
LOGITLOSS_ALWAYS_INLINE bool every_lane(M mask) {
  return !any_lane(~mask);
}

template <class T, class W>
LOGITLOSS_ALWAYS_INLINE auto in_series_range(W x) {
  if constexpr (sizeof(T) == 4) return abs(x) <= splat<W>(0.125);
  else return (x >= splat<W>(-0.5)) & (x <= splat<W>(1.0));
}

// h(y) by its series on the lanes in range (0 elsewhere), skipped where no lane is.
template <class T, class W, class M>
LOGITLOSS_ALWAYS_INLINE W linear_minus_log1p_in_range(W y, M range) {
  if (!any_lane(range)) return splat<W>(0.0);
  return linear_minus_log1p_series_of<T>(select(range, y, splat<W>(0.0)));
}

// Per-row constants of the terms' pass.
struct JsdConstants {
  double beta, complement;     // b = 1 - beta
  double log_complement;       // log1p(-beta): log(b) rounded once (not log of b's rounding: beta ~ 1e-12)
  double teacher_per_student;  // sum_t / sum_s: Q_c in units of the teacher's exponentials
};

// r_c and w_c = r_c - 1: from v_c = log r_c by phi's series where |v| <= 1/2 (no cancellation),
// elsewhere r = (e^b / e^a) (sum_t / sum_s), within a few eps relative (no exp; w = r - 1 then
// cancels at most 2.6x), inf where e^a is far below e^b.
template <class T, class W>
LOGITLOSS_ALWAYS_INLINE W ratio_minus_one(W v, W e_t, W e_s, const JsdConstants& k, W& r) {
  const auto near = abs(v) <= splat<W>(0.5);
  const W w_near = v + exp_minus_linear_series<PhiSeries<T>::kLong>(select(near, v, splat<W>(0.0)));
  if (every_lane(near)) {
    r = w_near + splat<W>(1.0);
    return w_near;
  }
  const W ratio = e_s * splat<W>(k.teacher_per_student) / e_t;
  r = select(near, w_near + splat<W>(1.0), ratio);
  return select(near, w_near, ratio - splat<W>(1.0));
}

// 0 < beta < 1: P_c h(x) (returned) and M_c g(y) (`mixture`) in units of e^a (e_t), and log(Q_c / M_c).
template <class T, class W>
LOGITLOSS_ALWAYS_INLINE W mixture_terms(W v, W e_t, W e_s, const JsdConstants& k, W& mixture, W& log_q_over_m) {
  const W beta = splat<W>(k.beta), b = splat<W>(k.complement), one = splat<W>(1.0), zero = splat<W>(0.0);
  W r;
  const W w = ratio_minus_one<T>(v, e_t, e_s, k, r);
  const auto huge = r == splat<W>(__builtin_inf());
  const W x = b * w;
  const auto x_range = in_series_range<T>(x);
  // M / P: 1 + x where x is small, beta + b r where r is far from 1 (r -> 0: no 1 - b rounding).
  const W m_over_p = select(x_range, one + x, mul_add(b, r, beta));
  const W p_over_m = one / m_over_p;
  const W y = select(huge, splat<W>(k.beta / k.complement), (beta * w) * p_over_m);
  const auto y_range = in_series_range<T>(y);
  // Q_c > 2 P_c with x outside the series range: the terms from the masses below (x in the range
  // with r > 2 means a small b, where b (Q - P) - P log(M / P) would cancel).
  const auto from_masses = huge | ((r > splat<W>(2.0)) & ~x_range);
  // log(M / P), shared by h(x) outside its series range, the masses' terms and (float data) log(Q / M).
  const bool far = !every_lane(x_range & y_range & ~from_masses);
  const W log_m_over_p = far ? log(m_over_p) : zero;
  const W h_y = linear_minus_log1p_in_range<T>(y, y_range);
  W log_ratio, g;
  if (!far) {
    log_ratio = y - h_y;
    g = y * y - (one + y) * h_y;
  } else {
    const W q_over_m = select(y_range, one + y, select(huge, splat<W>(1.0 / k.complement), r * p_over_m));
    // log(Q / M) = v - log(M / P) for float data (within eps(double) |v|, far below float's eps); for
    // double data its own log (the difference would cancel where r is large).
    W log_far;
    if constexpr (sizeof(T) == 4) {
      log_far = select(huge, splat<W>(-k.log_complement), v - log_m_over_p);
    } else {
      log_far = log(q_over_m);
    }
    log_ratio = select(y_range, y - h_y, log_far);
    g = select(y_range, y * y - (one + y) * h_y, select(q_over_m > zero, q_over_m * log_far, zero) - y);
  }
  log_q_over_m = log_ratio;
  const W h_x = select(x_range, linear_minus_log1p_in_range<T>(x, x_range), x - log_m_over_p);
  W term = e_t * h_x;
  mixture = (e_t * m_over_p) * g;
  if (any_lane(from_masses)) {
    // The terms from the masses, P h(x) = b (Q - P) - P log(M / P), M = beta P + b Q,
    // without cancellation, and with Q_c from e^b itself rather than P_c r_c (r overflows where
    // e^a is far below e^b, and a subnormal e^a has lost bits that e^a r would carry).
    const W q = e_s * splat<W>(k.teacher_per_student);
    const W log_ratio_mp = select(huge, splat<W>(k.log_complement) + v, log_m_over_p);
    term = select(from_masses, b * (q - e_t) - e_t * log_ratio_mp, term);
    mixture = select(from_masses, mul_add(beta, e_t, b * q) * g, mixture);
  }
  return term;
}

// beta = 1: P_c g(w) in units of e_t (log(Q_c / P_c) = v_c).
template <class T, class W>
LOGITLOSS_ALWAYS_INLINE W reverse_kl_terms(W v, W e_t, W e_s, const JsdConstants& k) {
  W r;
  const W w = ratio_minus_one<T>(v, e_t, e_s, k, r);
  const auto range = in_series_range<T>(w);
  const W h_w = linear_minus_log1p_in_range<T>(w, range);
  // g(w) = w^2 - r h(w) (r = 1 + w); outside the series range r v - w (log r = v), r = 0 giving 1.
  W g = select(range, w * w - r * h_w, select(r > splat<W>(0.0), r * v, splat<W>(0.0)) - w);
  W term = e_t * g;
  const auto from_masses = r > splat<W>(2.0);
  if (any_lane(from_masses)) {
    // P g(w) = Q log r - Q + P from the masses (as mixture_terms; log r = v within eps |v|).
    const W q = e_s * splat<W>(k.teacher_per_student);
    term = select(from_masses, mul_add(q, v - splat<W>(1.0), e_t), term);
  }
  return term;
}

// The terms' pass's results: the loss, the gradient's mean E_Q[log(Q / M)].
struct JsdSums {
  double loss, mean_log_ratio;
};

// The terms' pass (after the KL's three): the non-negative terms around r = 1, and
// e^b log(Q / M) (log(Q / P) for beta = 1) left in scratch[0, n).
template <class T>
LOGITLOSS_ALWAYS_INLINE JsdSums jsd_terms(const T* input, const T* target, int64_t n, double beta,
                                          double inverse_temperature, const KlDivRowSummary& row, double* scratch,
                                          int64_t padded) {
  using W = f64v;
  constexpr int kLanes = kDoubleLanes;
  const double inf = __builtin_inf(), complement = 1.0 - beta;
  const bool reverse = beta == 1.0;
  const double q_out = row.sum_outside_s / row.sum_s;
  JsdConstants k{beta, complement, ::log1p(-beta), row.sum_t / row.sum_s};
  // v = ((centre - d) + (centre_low - d_low)) + offset: on a centred row the KL's u = mu - d plus log K,
  // K = Q(supp P) / (1 + m + A) (m absorbs mu's rounding: the uniform error is a few eps |u|, far below
  // w even at w ~ 1e-15, where a second-order delta^2 would show); otherwise (the student -inf where
  // the teacher has mass, no student mass on P's support, a KL beyond ~700: the JSD is far from 0)
  // the gap of the maxima minus d, plus log(sum_t / sum_s).
  double centre_low = 0.0, centre = row.mu, offset;
  if (row.centred) {
    offset = row.log_inside - ::log1p(row.residual_mean + row.excess_mean);
  } else {
    centre = scaled_gap(row.max_t, row.max_s, inverse_temperature, centre_low);
    offset = ::log(k.teacher_per_student);
  }
  const W scale = splat<W>(inverse_temperature), centre_w = splat<W>(centre), centre_low_w = splat<W>(centre_low);
  const W offset_w = splat<W>(offset);
  const W zero = splat<W>(0.0), minus_inf = splat<W>(-inf);
  const W outside_log_ratio = splat<W>(reverse ? inf : -k.log_complement);
  // The gradient's mean E_Q[log(Q / M)] is summed from the same log(Q_c / M_c) it is subtracted
  // from (a uniform error in log K, the rounding of m, then cancels in the difference), compensated
  // (its terms cancel to O(w^2) where the rows nearly agree).
  W total = zero, total_error = zero, mixture_total = zero, mixture_error = zero;
  W log_ratios = zero, log_ratios_error = zero, off_support = zero;
  auto terms = [&](int64_t i, int64_t count) {
    const W t = load_doubles(target + i, count), s = load_doubles(input + i, count);
    const W e_t = load(scratch + i), e_s = load(scratch + padded + i);
    const auto inside = e_t > zero;
    W d_low;
    const W d = scaled_difference<T>(t, s, scale, d_low);
    const W v_all = ((centre_w - d) + (centre_low_w - d_low)) + offset_w;
    const W v = select(inside, v_all, zero);
    W log_ratio;
    if (reverse) {
      // Classes where e^a underflowed but t is finite: Q log(Q / P) = Q v, in the form Q (v - 1) of
      // the masses (the -Q_out of the sum over P's support); -inf in the teacher: infinite.
      const auto underflowed = ~inside & (t > minus_inf) & (e_s > zero);
      W term = reverse_kl_terms<T>(v, e_t, e_s, k);
      log_ratio = select(inside, v, outside_log_ratio);
      if (any_lane(underflowed)) {
        term = select(underflowed, e_s * splat<W>(k.teacher_per_student) * (v_all - splat<W>(1.0)), term);
        log_ratio = select(underflowed, v_all, log_ratio);
      }
      add_compensated(select(inside | underflowed, term, zero), total, total_error);
      off_support += select(t == minus_inf, e_s, zero);
    } else {
      W mixture;
      const W term = mixture_terms<T>(v, e_t, e_s, k, mixture, log_ratio);
      add_compensated(select(inside, term, zero), total, total_error);
      add_compensated(select(inside, mixture, zero), mixture_total, mixture_error);
      log_ratio = select(inside, log_ratio, outside_log_ratio);
    }
    const W weighted = select((e_s > zero) & (log_ratio > minus_inf), e_s * log_ratio, zero);
    add_compensated(weighted, log_ratios, log_ratios_error);
    store(scratch + i, weighted);
  };
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) terms(i, kLanes);
  if (i < n) terms(i, n - i);
  const double teacher_part = (horizontal_add(total) + horizontal_add(total_error)) / row.sum_t;
  const double mixture_part = (horizontal_add(mixture_total) + horizontal_add(mixture_error)) / row.sum_t;
  JsdSums sums;
  // Q's mass off P's support: b log(1 / b) Q_out (0 < beta < 1), an infinite reverse KL where the
  // teacher's logit is -inf.
  if (reverse) sums.loss = horizontal_add(off_support) > 0 ? inf : teacher_part;
  else sums.loss = beta * teacher_part + complement * mixture_part - complement * k.log_complement * q_out;
  sums.mean_log_ratio = (horizontal_add(log_ratios) + horizontal_add(log_ratios_error)) / row.sum_s;
  return sums;
}

template <class T>
LOGITLOSS_FLATTEN double row_jsd(const T* input, const T* target, int64_t n, double beta, double inverse_temperature,
                                 double grad_scale, T* grad, double* scratch) {
  if (beta == 0.0) return row_kl_div(input, target, n, inverse_temperature, grad_scale, grad, scratch);
  using W = f64v;
  constexpr int kLanes = kDoubleLanes;
  const double nan = __builtin_nan("");
  KlDivRowSummary row;
  row_kl_div_double_lanes(input, target, n, inverse_temperature, 0.0, static_cast<T*>(nullptr), scratch, &row);
  // No finite max, or nan in a row (the totals nan): nan, loss and gradient.
  if (!row.finite_maxima || !(row.sum_t - row.sum_t == 0 && row.sum_s - row.sum_s == 0)) {
    if (grad) for (int64_t i = 0; i < n; ++i) grad[i] = T(nan);
    return nan;
  }
  const int64_t padded = (n + kLanes - 1) / kLanes * kLanes;
  const JsdSums sums = jsd_terms(input, target, n, beta, inverse_temperature, row, scratch, padded);
  if (!grad) return sums.loss;
  if (beta == 1.0 && sums.loss == __builtin_inf()) {
    for (int64_t c = 0; c < n; ++c) grad[c] = T(nan);  // d KL(Q || P) where P = 0 < Q: undefined
    return sums.loss;
  }
  // The gradient's pass: grad_c = grad_scale b Q_c (log(Q_c / M_c) - E_Q[log(Q / M)]) from the scratch alone.
  const W mean = splat<W>(sums.mean_log_ratio);
  const W factor = splat<W>(grad_scale * (beta == 1.0 ? 1.0 : 1.0 - beta) / row.sum_s);
  auto gradient = [&](int64_t i, int64_t count) {
    const W weighted = load(scratch + i), e_s = load(scratch + padded + i);
    store_doubles(grad + i, factor * (weighted - e_s * mean), count);
  };
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) gradient(i, kLanes);
  if (i < n) gradient(i, n - i);
  return sums.loss;
}
