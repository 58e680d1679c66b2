// row_kl_div for float data (float32, and float16 widened to it): the exponentials, the gradient
// and the phi terms in float lanes, what must be exact in double lanes. The method and the bound
// are divergence-inl.h's; this file says only where each quantity lives and why that keeps the
// bound.
//
// Precision, term by term (P'_c = e_t,c / S_t with the float weights e_t, within 1-2 ULP of float
// of exact; u_c = mu - d_c):
//   * e_t, e_s: exp(x - max) 2^kSumScale in float lanes (exp_nonpositive_sum_term, the difference
//     error-free): never subnormal, exactly 0 below exp(-131), which then marks the class outside
//     P's support (its mass there is below 2^-189 of the row's, beyond any bound).
//   * d_c = (t_c - s_c) / T, u_c and the sums of e_t, e_s and e_t d in double lanes. The centred
//     form is an identity in the weights: computed with P' it is
//     E_P'[log P/Q] + log E_Q[P'/P] - log E_P[P'/P]; to first order in the weights' relative
//     errors eps_c that differs from the KL by sum_c eps_c k_c - (E_P eps) KL, k_c >= 0 the
//     per-class terms P_c log(P_c / Q_c) + Q_c - P_c (they add up to the KL): at most twice the
//     weights' error, relative. The weights need only be the same in every sum; d and u must be
//     exact (u is a small difference of large numbers when the rows nearly agree).
//   * phi(u_c) in float lanes from u_c rounded to float once (relative eps/2 of u, about eps of
//     phi): a degree-9 polynomial on -1 <= u <= 2 (phi_series_float: within 2.3 ULP there), e^u +
//     (-1 - u) below -1 (two non-negative terms), and in
//     double lanes above 2 as divergence-inl.h's (P_c e^u_c as one exponent, or the textbook form
//     where that overflows). Each term e_t phi within a few eps of float, all non-negative, summed
//     in double: A within a few eps relative.
//   * m = E_P'[u] in double lanes from the u of the phi terms (kl_float_excess says why), and phi
//     in double lanes where |u| <= 2^-10.
//   * The gradient, grad_scale (e_s / S_s - e_t / S_t), in float lanes: exp's 1-2 ULP and three
//     roundings, within 5 eps of grad_scale (Q_c + P_c).
// Rows the float lanes do not cover (1 / T or |grad_scale| outside [2^-60, 2^60], where the
// float scale factors would leave the normal range) take the double lanes.
//
// Memory passes: the two maxima (the rows then in L2 for rows of a vocabulary: 256 KiB for two rows
// of 32k float; pass 3 prefetches the next row pair into L2, so this pass reads from cache too);
// the exponentials, stored in `scratch` as float (8 bytes per element), and the sums; the phi
// terms and the gradient from the stored exponentials. Compute: two float exps per element; a
// third (float) where u < -1, a double one where u > 2.
//
// Included by divergence-inl.h, after its helpers.
#pragma once

// (hi + lo) (scale_high + scale_low) as a float pair, for x - max scaled by 1 / T: the low part
// holds the product's rounding and the scale's, clamped as difference_with_error's is (exp's
// contract; the pair is 0's below exp(-131), far inside the clamp's range).
LOGITLOSS_ALWAYS_INLINE f32v scaled_exponent(f32v hi, f32v lo, f32v scale_high, f32v scale_low, f32v& out_lo) {
  const f32v product = hi * scale_high;
// mul_add is fused exactly where simd/vector-inl.h gives it an FMA instruction.
#if (defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64) || (defined(__FMA__) && LOGITLOSS_VECTOR_BYTES == 32) || \
    (defined(__ARM_NEON) && defined(LOGITLOSS_TARGET_NEON))
  const f32v rounding = mul_add(hi, scale_high, -product);  // exact: a fused multiply-add
#else
  // No fused multiply-add (mul_add rounds twice): the product's rounding by Veltkamp's split into
  // 12-bit halves, whose products are exact (Dekker's two-product).
  auto split = [](f32v x, f32v& small) {
    const f32v c = x * splat<f32v>(4097.0f), big = c - (c - x);
    small = x - big;
    return big;
  };
  f32v hi_small, scale_small;
  const f32v hi_big = split(hi, hi_small), scale_big = split(scale_high, scale_small);
  const f32v rounding =
      ((hi_big * scale_big - product) + hi_big * scale_small + hi_small * scale_big) + hi_small * scale_small;
#endif
  const f32v low = rounding + mul_add(hi, scale_low, lo * scale_high);
  out_lo = min_or_second(max_replacing_nan(low, splat<f32v>(-0x1p-10f)), splat<f32v>(0x1p-10f));
  return product;
}

// d = (t - s) / T in double lanes from widened floats, to double's precision: hi, and lo the
// product's rounding when scaled (0 at T = 1); the difference itself rounded (W needs no more).
template <bool kScaled>
LOGITLOSS_ALWAYS_INLINE f64v widened_gap(f64v t, f64v s, f64v scale, f64v& lo) {
  const f64v difference = t - s;
  if constexpr (!kScaled) {
    lo = splat<f64v>(0.0);
    return difference;
  }
  const f64v hi = difference * scale;
  lo = select(abs(hi) < splat<f64v>(__builtin_inf()), mul_add(difference, scale, -hi), splat<f64v>(0.0));
  return hi;
}

// The float row's exponentials, e_t and e_s (2^kSumScale), with the scale they need.
struct FloatLaneExponents {
  f32v max_t, max_s, scale_high, scale_low;
  template <bool kScaled>
  LOGITLOSS_ALWAYS_INLINE void compute(f32v t, f32v s, f32v& e_t, f32v& e_s) const {
    f32v a_low, b_low;
    f32v a = difference_with_error(t, max_t, a_low), b = difference_with_error(s, max_s, b_low);
    if constexpr (kScaled) {
      a = scaled_exponent(a, a_low, scale_high, scale_low, a_low);
      b = scaled_exponent(b, b_low, scale_high, scale_low, b_low);
    }
    e_t = exp_nonpositive_sum_term(a, a_low);
    e_s = exp_nonpositive_sum_term(b, b_low);
  }
};

// Sums of the float row (2^kSumScale): the teacher's total, the student's inside and outside
// P's support (e_t > 0), and W = sum e_t d over the support.
struct FloatLaneTotals {
  double teacher, student_inside, student_outside, weighted_gap;
};

// d = (t - s) / T of two float vectors as double halves hi + lo (lo 0 at T = 1), to double's
// precision (W needs no more).
template <bool kScaled>
LOGITLOSS_ALWAYS_INLINE void widened_gaps(f32v t, f32v s, f64v scale, f64v (&d)[2], f64v (&d_low)[2]) {
  f64v t_w[2], s_w[2];
  widen(t, t_w[0], t_w[1]);
  widen(s, s_w[0], s_w[1]);
  for (int h = 0; h < 2; ++h) d[h] = widened_gap<kScaled>(t_w[h], s_w[h], scale, d_low[h]);
}

// d = (t - s) / T exactly as double halves hi + lo, for u: the widened floats' difference rounds in
// double where their exponents are more than 29 apart (0.5 - 5.7e-18: the rounding is then larger
// than a near-identical row's u), so it is scaled_difference's TwoSum (and the product's rounding).
// lo is 0 where hi is not finite.
template <bool kScaled>
LOGITLOSS_ALWAYS_INLINE void exact_widened_gaps(f32v t, f32v s, f64v scale, f64v (&d)[2], f64v (&d_low)[2]) {
  f64v t_w[2], s_w[2];
  widen(t, t_w[0], t_w[1]);
  widen(s, s_w[0], s_w[1]);
  for (int h = 0; h < 2; ++h) {
    if constexpr (kScaled) {
      d[h] = scaled_difference<float>(t_w[h], s_w[h], scale, d_low[h]);
    } else {
      const f64v difference = t_w[h] - s_w[h], s_part = difference - t_w[h];
      const f64v low = (t_w[h] - (difference - s_part)) + (-s_w[h] - s_part);
      d[h] = difference;
      d_low[h] = select(abs(difference) < splat<f64v>(__builtin_inf()), low, splat<f64v>(0.0));
    }
  }
}

// Pass 2: the exponentials into `exponentials` (2 `padded` floats) and the sums, in double lanes.
// A vector wholly inside P's support (the common case) takes no masks.
template <bool kScaled>
LOGITLOSS_FLATTEN FloatLaneTotals kl_float_totals(const float* input, const float* target, int64_t n, int64_t padded,
                                                  const FloatLaneExponents& exponents, double scale,
                                                  float* exponentials) {
  constexpr int kLanes = Vec<float>::kLanes;
  const f64v zero = splat<f64v>(0.0), scale_w = splat<f64v>(scale);
  f64v teacher[2] = {zero, zero}, inside[2] = {zero, zero}, outside[2] = {zero, zero};
  f64v weighted[2] = {zero, zero};
  auto step = [&](int64_t i, int64_t count) {
    const f32v t = load_n(target + i, count, -__builtin_inff()), s = load_n(input + i, count, -__builtin_inff());
    f32v e_t, e_s;
    exponents.compute<kScaled>(t, s, e_t, e_s);
    store(exponentials + i, e_t);
    store(exponentials + padded + i, e_s);
    f64v e_t_w[2], e_s_w[2], d[2], d_low[2];
    widen(e_t, e_t_w[0], e_t_w[1]);
    widen(e_s, e_s_w[0], e_s_w[1]);
    widened_gaps<kScaled>(t, s, scale_w, d, d_low);
    // W needs d only to a rounding of double (hi + lo rounded once; no add at T = 1).
    if constexpr (kScaled) for (int h = 0; h < 2; ++h) d[h] += d_low[h];
    // e_t <= 0 finds the lanes outside (a nan weight takes the unmasked sums: the row is nan).
    if (!any_lane(e_t <= splat<f32v>(0.0f))) {
      for (int h = 0; h < 2; ++h) {
        teacher[h] += e_t_w[h];
        inside[h] += e_s_w[h];
        weighted[h] = mul_add(e_t_w[h], d[h], weighted[h]);
      }
      return;
    }
    for (int h = 0; h < 2; ++h) {
      const auto in_support = e_t_w[h] > zero;
      teacher[h] += e_t_w[h];  // unmasked: a nan weight (nan data) must reach the total
      inside[h] += select(in_support, e_s_w[h], zero);
      outside[h] += select(in_support, zero, e_s_w[h]);
      // Selected, not multiplied by a zero weight: d is inf or nan where a row has -inf.
      weighted[h] += select(in_support, e_t_w[h] * d[h], zero);
    }
  };
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) step(i, kLanes);
  if (i < n) step(i, n - i);
  return {horizontal_add(teacher[0] + teacher[1]), horizontal_add(inside[0] + inside[1]),
          horizontal_add(outside[0] + outside[1]), horizontal_add(weighted[0] + weighted[1])};
}

// phi(u) in float lanes for u >= -inf (inf or nan lanes aside), exact for u <= 2: the series on
// [-1, 2], e^u + (-1 - u) below (no cancellation: both terms >= 0). Lanes above 2 are the caller's.
// phi(u) = u^2 p(u) on [-1, 2], p the degree-9 interpolant of (e^u - 1 - u) / u^2 at Chebyshev
// nodes (within 0.02 float ULP of it there; Taylor needs 15 terms), evaluated by Estrin's scheme (a
// Horner chain is latency-bound in this loop). Measured in float lanes: within 2.3 ULP of phi.
LOGITLOSS_ALWAYS_INLINE f32v phi_series_float(f32v u) {
  constexpr float kCoefficients[10] = {0x1p-1f,          0x1.555556p-3f,  0x1.55555ap-5f,  0x1.11111ap-7f,
                                       0x1.6c145ep-10f,  0x1.a01b84p-13f, 0x1.a0e98ep-16f, 0x1.6f2930p-19f,
                                       0x1.131df4p-22f,  0x1.52fe98p-25f};
  const f32v u2 = u * u, u4 = u2 * u2, u8 = u4 * u4;
  f32v pair[5];
  for (int j = 0; j < 5; ++j) {
    pair[j] = mul_add(splat<f32v>(kCoefficients[2 * j + 1]), u, splat<f32v>(kCoefficients[2 * j]));
  }
  const f32v quad0 = mul_add(pair[1], u2, pair[0]), quad1 = mul_add(pair[3], u2, pair[2]);
  return u2 * mul_add(pair[4], u8, mul_add(quad1, u4, quad0));
}

LOGITLOSS_ALWAYS_INLINE f32v phi_float(f32v u) {
  f32v phi = phi_series_float(u);
  const auto low = u < splat<f32v>(-1.0f);
  if (any_lane(low)) {
    const f32v far = exp_nonpositive(min_or_second(u, splat<f32v>(0.0f))) + (splat<f32v>(-1.0f) - u);
    phi = select(low, far, phi);
  }
  return phi;
}

// What pass 3 needs besides the rows.
struct FloatLaneCentre {
  double mu, c0;             // the centre, and c0 = mu - (max_t - max_s) / T (divergence-inl.h)
  double max_s, scale;       // the student's max and 1 / T, for the exponent of P_c e^u_c
  float q_factor, p_factor, g_factor;  // grad = g_factor (q_factor e_s - p_factor e_t)
};

// Pass 3's sums (2^kSumScale): of e_t phi(u) and of e_t u over P's support.
struct FloatLaneExcess {
  double excess, residual;
};

// Pass 3: the sums, and the gradient (grad not null). u and the residual E_P'[u] are taken in double
// lanes, from the same u as the phi terms: the KL is log1p(m + A) - m, and were m not the mean of
// exactly those u, the error would be of the size of m^2 (mu's rounding squared: 1e-30 where d is
// ~10), not relative to the KL. Lanes whose |u| <= 2^-10 take phi in double lanes too (a 5-term
// series): there A ~ m^2 / 2 may cancel against m in log1p(m + A) - m, which float phi terms would
// not survive; a vector of only such lanes (rows that nearly agree) takes no float phi at all.
template <bool kScaled>
LOGITLOSS_FLATTEN FloatLaneExcess kl_float_excess(const float* input, const float* target, int64_t n, int64_t padded,
                                                  const FloatLaneCentre& centre, const float* exponentials,
                                                  float* grad) {
  constexpr int kLanes = Vec<float>::kLanes;
  const f64v zero = splat<f64v>(0.0), mu = splat<f64v>(centre.mu), scale = splat<f64v>(centre.scale);
  const f32v q_factor = splat<f32v>(centre.q_factor), p_factor = splat<f32v>(centre.p_factor);
  const f32v g_factor = splat<f32v>(centre.g_factor), upper = splat<f32v>(2.0f), short_range = splat<f32v>(0x1p-10f);
  f64v excess[2] = {zero, zero}, residual[2] = {zero, zero};
  auto step = [&](int64_t i, int64_t count) {
    // The next row pair (rows of a matrix follow each other) into L2 while this one is computed:
    // its maxima pass then reads from cache, not memory. Prefetches past the end cannot fault.
    prefetch_to_l2(target + n + i);
    prefetch_to_l2(input + n + i);
    const f32v e_t = load(exponentials + i);
    if (grad) {
      f32v g = mul_add(load(exponentials + padded + i), q_factor, -(e_t * p_factor));
      if (centre.g_factor != 1.0f) g *= g_factor;
      if (count == kLanes) store(grad + i, g); else store_partial(grad + i, g, count);
    }
    const f32v t = load_n(target + i, count, -__builtin_inff()), s = load_n(input + i, count, -__builtin_inff());
    f64v u_w[2], d_low[2], e_t_w[2];
    exact_widened_gaps<kScaled>(t, s, scale, u_w, d_low);
    widen(e_t, e_t_w[0], e_t_w[1]);
    for (int h = 0; h < 2; ++h) {
      // Outside the support u may be inf or nan; 0 there (e_t = 0) keeps every term 0.
      u_w[h] = select(e_t_w[h] > zero, (mu - u_w[h]) - d_low[h], zero);
      residual[h] = mul_add(e_t_w[h], u_w[h], residual[h]);
    }
    const f32v u = narrow(u_w[0], u_w[1]);
    auto short_terms = [&](int h) {
      return e_t_w[h] * exp_minus_linear_series<PhiSeries<double>::kShort>(u_w[h]);
    };
    if (!any_lane(abs(u) > short_range)) {
      for (int h = 0; h < 2; ++h) excess[h] += short_terms(h);
      return;
    }
    f64v term[2];
    widen(e_t * phi_float(u), term[0], term[1]);
    if (any_lane(abs(u) <= short_range)) {
      // The lanes near the centre in double next to others far from it: they carry the u ~ m
      // (mu's rounding) whose phi ~ m^2 / 2 cancels against m, which a float phi would not survive
      // (a KL of 4e-54 came out 2e-36).
      for (int h = 0; h < 2; ++h) term[h] = select(abs(u_w[h]) <= splat<f64v>(0x1p-10), short_terms(h), term[h]);
    }
    if (any_lane(u > upper)) {
      // P_c e^u_c as one exponent, b + c0 with b = (s - max_s) / T (P_c may be tiny where e^u_c
      // overflows), as the double lanes do; 2^kSumScale as e_t's.
      f64v s_w[2];
      widen(s, s_w[0], s_w[1]);
      for (int h = 0; h < 2; ++h) {
        const auto far = u_w[h] > splat<f64v>(2.0);
        if (!any_lane(far)) continue;
        f64v b_low;
        const f64v b = scaled_difference<float>(s_w[h], splat<f64v>(centre.max_s), scale, b_low);
        const f64v direct = exp((b + splat<f64v>(centre.c0)) + b_low) * splat<f64v>(0x1p64) -
                            e_t_w[h] * (splat<f64v>(1.0) + u_w[h]);
        term[h] = select(far, direct, term[h]);
      }
    }
    excess[0] += term[0];
    excess[1] += term[1];
  };
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) step(i, kLanes);
  if (i < n) step(i, n - i);
  return {horizontal_add(excess[0] + excess[1]), horizontal_add(residual[0] + residual[1])};
}

// The gradient alone (the KL is inf or nan: no phi terms).
inline void kl_float_gradient(int64_t n, int64_t padded, const FloatLaneCentre& centre, const float* exponentials,
                              float* grad) {
  constexpr int kLanes = Vec<float>::kLanes;
  const f32v q_factor = splat<f32v>(centre.q_factor), p_factor = splat<f32v>(centre.p_factor);
  const f32v g_factor = splat<f32v>(centre.g_factor);
  for (int64_t i = 0; i < n; i += kLanes) {
    const int64_t count = n - i < kLanes ? n - i : kLanes;
    const f32v g = mul_add(load(exponentials + padded + i), q_factor, -(load(exponentials + i) * p_factor)) * g_factor;
    if (count == kLanes) store(grad + i, g); else store_partial(grad + i, g, count);
  }
}

// Whether a float row's factors stay normal floats (else the double lanes take it).
inline bool float_lanes_fit(double inverse_temperature, double grad_scale) {
  const double size = ::fabs(grad_scale);
  return inverse_temperature >= 0x1p-60 && inverse_temperature <= 0x1p60 &&
         (size == 0 || (size >= 0x1p-60 && size <= 0x1p60));
}

// The float-lane row_kl_div (same contract), for rows with float_lanes_fit.
template <bool kScaled>
inline double row_kl_div_float_lanes(const float* input, const float* target, int64_t n, double inverse_temperature,
                                     double grad_scale, float* grad, double* scratch) {
  const double nan = __builtin_nan("");
  const float max_t = chunk_max<float, false>(target, nullptr, n);
  const float max_s = chunk_max<float, false>(input, nullptr, n);
  if (!(max_t - max_t == 0 && max_s - max_s == 0)) {
    if (grad) for (int64_t i = 0; i < n; ++i) grad[i] = __builtin_nanf("");
    return nan;
  }
  constexpr int kLanes = Vec<float>::kLanes;
  const int64_t padded = (n + kLanes - 1) / kLanes * kLanes;  // 2 padded floats fit kl_div_scratch_size(n) doubles
  float* exponentials = reinterpret_cast<float*>(scratch);
  const float scale_high = (float)inverse_temperature;
  const FloatLaneExponents exponents{splat<f32v>(max_t), splat<f32v>(max_s), splat<f32v>(scale_high),
                                     splat<f32v>((float)(inverse_temperature - (double)scale_high))};
  const FloatLaneTotals totals =
      kl_float_totals<kScaled>(input, target, n, padded, exponents, inverse_temperature, exponentials);
  const double sum_t = totals.teacher, sum_s = totals.student_inside + totals.student_outside;
  const double mu = totals.weighted_gap / sum_t;
  double gap_low;
  const double gap = scaled_gap(max_t, max_s, inverse_temperature, gap_low);
  // grad_scale / S as one factor where that is a normal float (S carries 2^kSumScale), else 1 / S
  // and grad_scale apart.
  const double q = grad_scale / sum_s, p = grad_scale / sum_t;
  const bool combined = grad_scale == 0 || (::fabs(q) >= 0x1p-120 && ::fabs(p) >= 0x1p-120);
  const FloatLaneCentre centre{mu, (mu - gap) - gap_low, (double)max_s, inverse_temperature,
                               (float)(combined ? q : 1.0 / sum_s), (float)(combined ? p : 1.0 / sum_t),
                               (float)(combined ? 1.0 : grad_scale)};
  if (!(mu - mu == 0)) {  // +inf: the teacher has mass where the student has none (or nan)
    if (grad) kl_float_gradient(n, padded, centre, exponentials, grad);
    return mu;
  }
  const FloatLaneExcess sums = kl_float_excess<kScaled>(input, target, n, padded, centre, exponentials, grad);
  const double m = sums.residual / sum_t, excess_mean = sums.excess / sum_t;
  const double textbook = centre.c0 - ::log(sum_t) + ::log(sum_s);
  // As the double lanes (divergence-inl.h): the textbook form where the student's mass inside P's
  // support is below 2^-60 of its total. Here the float exponentials stop at exp(-131) of the
  // student's max, and the inside mass they dropped is comparable to what they kept (a KL of 130
  // was 0.035 off).
  if (!(excess_mean - excess_mean == 0) || !(totals.student_inside >= sum_s * 0x1p-60)) return textbook;
  const double log_inside = totals.student_outside <= totals.student_inside
                                ? ::log1p(-totals.student_outside / sum_s)
                                : ::log(totals.student_inside / sum_s);
  const double kl = log1p_excess(m, excess_mean) - log_inside;
  return kl > 0 ? kl : 0.0;
}
