// KL divergence between two softmax distributions given by their logits, loss and gradient in one
// call per row, written once for every ISA.
//
// Contract: row_kl_div(input, target, n, inverse_temperature, grad_scale, grad) for input[0..n)
// (the student's logits s) and target[0..n) (the teacher's logits t), contiguous, n >= 1,
// inverse_temperature = 1 / T > 0 finite. With P = softmax(t / T), Q = softmax(s / T):
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
// Where even that exponent overflows (KL > ~700) the KL is mu - (lse_t - lse_s), relatively exact
// there. The gradient is Q_c - P_c from the two exponentials rounded in double: within a few eps
// of the size of its terms in the data type, the bound asked of it.
//
// Precision policy: every lane is double (float elements widened exactly), since u_c must carry
// the differences d_c exactly; the sums are in double; the loss leaves in double.
//
// Memory passes: three reads of both rows (maxima; teacher and student totals and mu; the terms
// and the gradient, written once). Rows of a vocabulary (32k float) stay in L2 between passes.
// Compute: two double exps per element in each of the last two passes.
//
// Requires simd/vector-inl.h, simd/math-inl.h, kernels/kernel_table.h and
// kernels/row_statistics-inl.h (chunk_max).
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

// log1p(x) - x without cancellation for small |x|.
inline double log1p_minus_identity(double x) {
  if (::fabs(x) > 0x1p-7) return ::log1p(x) - x;
  // Alternating series, x^10 / 10 below 2^-70 x^2 / 2 at |x| <= 2^-7.
  double sum = 0.0;
  for (int k = 9; k >= 2; --k) sum = sum * x + ((k % 2) ? 1.0 : -1.0) / k;
  return sum * x * x;
}

template <class T>
LOGITLOSS_FLATTEN double row_kl_div(const T* input, const T* target, int64_t n, double inverse_temperature,
                                    double grad_scale, T* grad) {
  using V = typename Vec<T>::V;
  using W = typename Vec<T>::Wide;
  constexpr int kLanes = Vec<T>::kLanes;
  const double nan = __builtin_nan("");
  const T max_t = chunk_max<T, false>(target, nullptr, n);
  const T max_s = chunk_max<T, false>(input, nullptr, n);
  if (!(max_t - max_t == 0 && max_s - max_s == 0)) {
    if (grad) for (int64_t i = 0; i < n; ++i) grad[i] = T(nan);
    return nan;
  }
  const W scale = splat<W>(inverse_temperature), zero = splat<W>(0.0);
  const W max_t_w = splat<W>((double)max_t), max_s_w = splat<W>((double)max_s);
  auto widen_load = [&](const T* p, int64_t i, int64_t count) {
    return __builtin_convertvector(load_n(p + i, count, T(-__builtin_inf())), W);
  };
  // Pass 2: totals of both rows and the P-weighted sum of d (tail lanes are -inf in both: no mass).
  W total_t = zero, total_s = zero, weighted_d = zero;
  auto totals = [&](int64_t i, int64_t count) {
    const W t = widen_load(target, i, count), s = widen_load(input, i, count);
    const W e_t = exp_nonpositive((t - max_t_w) * scale);
    total_t += e_t;
    total_s += exp_nonpositive((s - max_s_w) * scale);
    weighted_d += select(e_t > 0, e_t * ((t - s) * scale), zero);
  };
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) totals(i, kLanes);
  if (i < n) totals(i, n - i);
  const double sum_t = horizontal_add(total_t), sum_s = horizontal_add(total_s);
  const double mu = horizontal_add(weighted_d) / sum_t;
  // Pass 3: the residual, the non-negative phi terms, the student's mass outside P's support, and
  // the gradient.
  const W mu_w = splat<W>(mu), one = splat<W>(1.0), half = splat<W>(0.5), short_range = splat<W>(0x1p-10);
  const W q_factor = splat<W>(grad_scale / sum_s), p_factor = splat<W>(grad_scale / sum_t);
  const bool mu_finite = mu - mu == 0;
  W residual = zero, excess = zero, outside = zero;
  auto terms = [&](int64_t i, int64_t count) {
    const W t = widen_load(target, i, count), s = widen_load(input, i, count);
    const W a = (t - max_t_w) * scale;
    const W e_t = exp_nonpositive(a);
    const auto inside = e_t > 0;
    const bool any_outside = any_lane(~inside);
    W e_s = zero;
    if (grad || any_outside) e_s = exp_nonpositive((s - max_s_w) * scale);
    if (any_outside) outside += select(inside, zero, e_s);
    if (grad) {
      const W g = e_s * q_factor - e_t * p_factor;
      const V narrow = __builtin_convertvector(g, V);
      if (count == kLanes) store(grad + i, narrow); else store_partial(grad + i, narrow, count);
    }
    if (!mu_finite) return;
    const W u = mu_w - (t - s) * scale;
    const W size = select(inside, abs(u), zero);
    residual += select(inside, e_t * u, zero);
    W phi_term;
    if (!any_lane(size > short_range)) {
      phi_term = e_t * exp_minus_linear_series<PhiSeries<T>::kShort>(u);
    } else {
      phi_term = e_t * exp_minus_linear_series<PhiSeries<T>::kLong>(u);
      const auto far = size > half;
      if (any_lane(far)) {
        // One exponent for P_c e^u_c (a + u may exceed exp_nonpositive's range: the full exp).
        const W direct = exp(a + u) - e_t * (one + u);
        phi_term = select(far, direct, phi_term);
      }
    }
    excess += select(inside, phi_term, zero);
  };
  for (i = 0; i + kLanes <= n; i += kLanes) terms(i, kLanes);
  if (i < n) terms(i, n - i);
  if (!mu_finite) return mu;  // +inf: the teacher has mass where the student has none (or nan)
  const double m = horizontal_add(residual) / sum_t, excess_mean = horizontal_add(excess) / sum_t;
  const double outside_mass = horizontal_add(outside) / sum_s;
  // exp(a + u) overflowed: the KL is large (> ~700) and the textbook form mu - lse_t + lse_s,
  // which needs no outside term, is relatively exact.
  if (!(excess_mean - excess_mean == 0)) {
    return mu - ((double)max_t - (double)max_s) * inverse_temperature - ::log(sum_t) + ::log(sum_s);
  }
  const double inside_kl = excess_mean + log1p_minus_identity(m + excess_mean);
  const double kl = inside_kl - ::log1p(-outside_mass);
  return kl > 0 ? kl : 0.0;
}
