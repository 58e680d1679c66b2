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
// e = exp(-2|u|) as (1 - e) / (1 + e) and 4 e / (1 + e)^2 for |u| >= 1/2 (1 - e >= 0.63: no
// cancellation; sech^2 never formed as 1 - tanh^2 near saturation), and from the Taylor series
// (truncated below double's ULP for double data, below 2^-30 for float) for |u| < 1/2; then times softcap and divided by
// temperature in double and rounded once to the data type (float: the correctly rounded value of
// a double within a few ULP of double; double: a few ULP). Without a cap, x / temperature rounded
// once (float: through x (1 / temperature) in double, so but for double-rounding ties).
//
// Memory passes: one read of the row, one write of out and of factor (per-thread rows of the
// driver, in cache for the fused pass that follows).
//
// Requires simd/vector-inl.h and simd/math-inl.h (arch/target.inc includes them first).
#pragma once

// Floats with as many lanes as an f64v (a half-width vector): a float division, far cheaper than
// a double one, seeds the reciprocal below.
typedef float f32half __attribute__((vector_size(LOGITLOSS_VECTOR_BYTES / 2)));

// 1 / s for s in [1, 2] in double lanes: the float reciprocal (relative error 2^-24) refined by
// two Newton steps (error squared each: below 2^-96 before the last rounding), within an ULP of
// double. A double division has a quarter of the throughput and was this pass's bottleneck.
LOGITLOSS_ALWAYS_INLINE f64v reciprocal_one_to_two(f64v s) {
  const f64v one = splat<f64v>(1.0);
  f64v r = __builtin_convertvector(f32half{} + 1.0f / __builtin_convertvector(s, f32half), f64v);
  r = mul_add(r, mul_add(-s, r, one), r);
  return mul_add(r, mul_add(-s, r, one), r);
}

// tanh(u) and sech^2(u) of double lanes, kTerms terms of the series for |u| < 1/2 (truncation
// below 2^-30 relative with 10, for float results; below 2^-62 with 19, for double), else from one
// exp and one reciprocal. Most logits sit well inside a cap (|u| < 1/2 is |z| < 15 for a cap of
// 30): a vector of them takes the series alone, less than half the work of the exp path.
template <int kTerms>
LOGITLOSS_ALWAYS_INLINE void tanh_and_sech_squared(f64v u, f64v& tanh_u, f64v& sech_squared) {
  static constexpr double kTaylor[] = {
      1.0, -0.3333333333333333, 0.13333333333333333, -0.05396825396825397, 0.021869488536155203,
      -0.008863235529902197, 0.003592128036572481, -0.0014558343870513183, 0.000590027440945586,
      -0.00023912911424355248, 9.691537956929451e-05, -3.927832388331683e-05, 1.5918905069328964e-05,
      -6.451689215655431e-06, 2.6147711512907546e-06, -1.0597268320104654e-06, 4.294911078273806e-07,
      -1.7406618963571648e-07, 7.054636946400968e-08};
  static_assert(kTerms <= (int)(sizeof(kTaylor) / sizeof(kTaylor[0])), "tanh series: too few coefficients");
  const f64v one = splat<f64v>(1.0), a = abs(u);
  const auto small = a < splat<f64v>(0.5);
  f64v tanh_a, tanh_small = a;
  if (any_lane(small)) {
    const f64v a2 = a * a;
    f64v series = splat<f64v>(kTaylor[kTerms - 1]);
    for (int k = kTerms - 2; k >= 0; --k) series = mul_add(series, a2, splat<f64v>(kTaylor[k]));
    tanh_small = a * series;
  }
  if (!any_lane(small == 0)) {  // every lane small
    tanh_a = tanh_small;
    sech_squared = one - tanh_small * tanh_small;  // tanh^2 < 0.22: no cancellation
  } else {
    const f64v e = exp_nonpositive(splat<f64v>(-2.0) * a);  // 0 for |u| = inf; nan stays nan
    const f64v inverse_sum = reciprocal_one_to_two(one + e);  // nan stays nan
    tanh_a = (one - e) * inverse_sum;                         // 1 - e >= 0.63: no cancellation
    sech_squared = splat<f64v>(4.0) * e * inverse_sum * inverse_sum;
    if (any_lane(small)) {
      tanh_a = select(small, tanh_small, tanh_a);
      sech_squared = select(small, one - tanh_small * tanh_small, sech_squared);
    }
  }
  tanh_u = select(u < splat<f64v>(0.0), -tanh_a, tanh_a);
}

// One vector of row_logit_transform: x[i, i + count) in double lanes (Vec<T>::Wide, one or two
// native double vectors), rounded once to T on the way out.
template <class T>
LOGITLOSS_ALWAYS_INLINE void transform_vector(const T* x, int64_t i, int64_t count, double inverse_cap,
                                              double cap_over_temperature, double inverse_temperature, T* out,
                                              T* factor) {
  using V = typename Vec<T>::V;
  using W = typename Vec<T>::Wide;
  constexpr int kParts = sizeof(W) / sizeof(f64v);
  W wide = __builtin_convertvector(load_n(x + i, count, T(0)), W), chain;
  f64v parts[kParts], chains[kParts];
  __builtin_memcpy(parts, &wide, sizeof(W));
  for (int k = 0; k < kParts; ++k) {
    f64v tanh_u;
    tanh_and_sech_squared<sizeof(T) == 4 ? 10 : 19>(parts[k] * splat<f64v>(inverse_cap), tanh_u, chains[k]);
    parts[k] = tanh_u * splat<f64v>(cap_over_temperature);
    chains[k] *= splat<f64v>(inverse_temperature);
  }
  __builtin_memcpy(&wide, parts, sizeof(W));
  __builtin_memcpy(&chain, chains, sizeof(W));
  const V capped = __builtin_convertvector(wide, V), chain_factor = __builtin_convertvector(chain, V);
  if (count == Vec<T>::kLanes) {
    store(out + i, capped);
    store(factor + i, chain_factor);
  } else {
    store_partial(out + i, capped, count);
    store_partial(factor + i, chain_factor, count);
  }
}

// This pass is the one that reads the logits from memory (the fused pass then reads its output
// from cache): prefetched three chunks on, as the fused pass prefetches its own input (past the
// row's end into the next row, which the driver transforms next).
template <class T>
LOGITLOSS_ALWAYS_INLINE void prefetch_ahead(const T* x, int64_t i) {
  constexpr int64_t kLineElements = 64 / sizeof(T);
  if (i % kLineElements == 0) prefetch_to_l2(x + i + 3 * kRowChunk);
  if (Vec<T>::kLanes > kLineElements) prefetch_to_l2(x + i + 3 * kRowChunk + kLineElements);
}

template <class T>
LOGITLOSS_FLATTEN void row_logit_transform(const T* x, int64_t n, double softcap, double temperature, T* out,
                                           T* factor) {
  using V = typename Vec<T>::V;
  using W = typename Vec<T>::Wide;
  constexpr int kLanes = Vec<T>::kLanes;
  const double inverse_temperature = 1.0 / temperature;
  if (softcap == 0) {
    // x / T rounded once: for float as x (1 / T) in double lanes, within double's rounding of the
    // exact quotient (so the correctly rounded float but for the rarest double-rounding ties); for
    // double a division (the product would round twice: 1 ULP of z'' costs |z''| ULP of a tiny loss).
    const W scale = splat<W>(inverse_temperature), divisor = splat<W>(temperature);
    map_row<T>(n, out, [&](int64_t i, int64_t count) {
      prefetch_ahead(x, i);
      const W wide = __builtin_convertvector(load_n(x + i, count, T(0)), W);
      return __builtin_convertvector(sizeof(T) == 4 ? wide * scale : wide / divisor, V);
    });
    return;
  }
  // z / softcap as z (1 / softcap) and softcap tanh / T as (softcap / T) tanh: within double's
  // roundings, far below T's (float) or the tanh's own few ULP (double).
  for (int64_t i = 0; i < n; i += kLanes) {
    prefetch_ahead(x, i);
    transform_vector(x, i, n - i < kLanes ? n - i : kLanes, 1.0 / softcap, softcap / temperature,
                     inverse_temperature, out, factor);
  }
}
template <class T>
LOGITLOSS_FLATTEN void row_multiply(T* out, const T* factor, int64_t n) {
  map_row<T>(n, out, [&](int64_t i, int64_t count) { return load_n(out + i, count, T(0)) * load_n(factor + i, count, T(0)); });
}
