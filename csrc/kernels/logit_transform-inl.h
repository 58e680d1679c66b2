// Cross-entropy's logit options as a per-row transform (drivers/cross_entropy.cpp): the logits
// z'' = softcap tanh(z / softcap) / temperature that the fused pass (softmax_cross_entropy-inl.h)
// then reads as its row, and the chain factor d z'' / d z = sech^2(z / softcap) / temperature
// that its gradient is multiplied by.
//
// Contract: row_logit_transform(x, n, softcap, temperature, out, factor) for x[0..n)
// contiguous, softcap > 0 finite or 0 (no cap: out = x / temperature, factor untouched and may be
// null), temperature > 0 finite. -inf becomes -softcap / temperature (factor 0), nan stays nan.
// row_multiply(out, factor, n): out *= factor.
//
// Precision policy: each element in double lanes (float widened exactly): tanh and sech^2 from
// e = exp(-2|u|) as (1 - e) / (1 + e) and 4 e / (1 + e)^2 for |u| >= 1/4 (1 - e >= 0.39: no
// cancellation; sech^2 never formed as 1 - tanh^2 near saturation), and from the Taylor series
// (13 terms, truncation below 2e-21 relative) for |u| < 1/4; then times softcap and divided by
// temperature in double and rounded once to the data type (float: the capped logit is the
// correctly rounded double result to within double's few ULP; double: a few ULP).
//
// Memory passes: one read of the row, one write of out and of factor (per-thread rows of the
// driver, in cache for the fused pass that follows).
//
// Requires simd/vector-inl.h and simd/math-inl.h (arch/target.inc includes them first).
#pragma once

// tanh(u) and sech^2(u) of double lanes.
LOGITLOSS_ALWAYS_INLINE void tanh_and_sech_squared(f64v u, f64v& tanh_u, f64v& sech_squared) {
  static constexpr double kTaylor[] = {
      1.0, -0.3333333333333333, 0.13333333333333333, -0.05396825396825397, 0.021869488536155203,
      -0.008863235529902197, 0.003592128036572481, -0.0014558343870513183, 0.000590027440945586,
      -0.00023912911424355248, 9.691537956929451e-05, -3.927832388331683e-05, 1.5918905069328964e-05};
  constexpr int kTerms = sizeof(kTaylor) / sizeof(kTaylor[0]);
  const f64v one = splat<f64v>(1.0), a = abs(u);
  const f64v e = exp_nonpositive(splat<f64v>(-2.0) * a);  // 0 for |u| = inf; nan stays nan
  const f64v sum = one + e;
  const f64v tanh_large = (one - e) / sum;
  const f64v sech_large = splat<f64v>(4.0) * e / (sum * sum);
  const f64v a2 = a * a;
  f64v series = splat<f64v>(kTaylor[kTerms - 1]);
  for (int k = kTerms - 2; k >= 0; --k) series = mul_add(series, a2, splat<f64v>(kTaylor[k]));
  const f64v tanh_small = a * series;
  const auto small = a < splat<f64v>(0.25);
  const f64v tanh_a = select(small, tanh_small, tanh_large);
  tanh_u = select(u < splat<f64v>(0.0), -tanh_a, tanh_a);
  sech_squared = select(small, one - tanh_small * tanh_small, sech_large);
}

template <class T>
LOGITLOSS_FLATTEN void row_logit_transform(const T* x, int64_t n, double softcap, double temperature, T* out,
                                           T* factor) {
  constexpr int kLanes = Vec<double>::kLanes;
  if (softcap == 0) {
    // The quotient in double, rounded once to T (exactly the correctly rounded z / T for float).
    for (int64_t i = 0; i < n; ++i) out[i] = (T)((double)x[i] / temperature);
    return;
  }
  const f64v cap = splat<f64v>(softcap), inverse_cap = splat<f64v>(1.0 / softcap),
             divisor = splat<f64v>(temperature);
  alignas(64) double u[kLanes], capped[kLanes], chain[kLanes];
  for (int64_t i = 0; i < n; i += kLanes) {
    const int64_t count = n - i < kLanes ? n - i : kLanes;
    for (int j = 0; j < kLanes; ++j) u[j] = j < count ? (double)x[i + j] : 0.0;
    // z / softcap: a division would be exact-er, but softcap's reciprocal times z is within one
    // rounding of double, far below T's (float) or the tanh's own few ULP (double).
    f64v tanh_u, sech_squared;
    tanh_and_sech_squared(load(u) * inverse_cap, tanh_u, sech_squared);
    store(capped, cap * tanh_u / divisor);
    store(chain, sech_squared / divisor);
    for (int64_t j = 0; j < count; ++j) {
      out[i + j] = (T)capped[j];
      factor[i + j] = (T)chain[j];
    }
  }
}

template <class T>
LOGITLOSS_FLATTEN void row_multiply(T* out, const T* factor, int64_t n) {
  map_row<T>(n, out, [&](int64_t i, int64_t count) { return load_n(out + i, count, T(0)) * load_n(factor + i, count, T(0)); });
}
