// Softmax moments of a row: for p = softmax(scale * x), scale > 0, the sums from which the mean
// and variance of x under p follow (SoftmaxMoments, kernels/kernel_table.h). Temperature
// scaling's Newton steps need, per row, NLL(s), NLL'(s) = E_p[x] - x_y and NLL''(s) = Var_p[x]
// (python/logitloss/calibration/_objective.py): one read of the logits gives all three.
//
// Contract: row_softmax_moments(x, n, scale) for x[0..n) contiguous, n >= 1, scale > 0 finite.
// With max the row's largest element (nan ignored), u_c = x_c - max <= 0 and e_c = exp(scale u_c):
//   count = number of x_c == max        (their e_c is exactly 1)
//   others = sum of e_c over x_c < max   (so log(count) + log1p(others / count) keeps a tiny NLL)
//   first = sum e_c u_c <= 0,  second = sum e_c u_c^2 >= 0
// Then E_p[x] = max + first / total and Var_p[x] = second / total - (first / total)^2, total =
// count + others. Valid range: -inf entries (masked classes) have e_c = 0 and add nothing; nan
// anywhere makes others, first and second nan; a max of +-inf is the caller's to reject (the sums
// are then meaningless).
//
// Precision policy: computed in double lanes whatever the data type (float elements are widened
// exactly), so that the NLL keeps double's precision for float logits: t_c = scale u_c rounded
// once in double, terms e_c 2^kSumScale (exp_nonpositive_sum_term: 1-2 ULP of double, never
// subnormal, exactly 0 below its range), sums of e_c, e_c t_c and e_c t_c^2 (no product overflows
// whatever the scale: e^t t^2 <= 0.55), unscaled at the end. Every term is non-negative (others,
// second) or non-positive (first), so the lane sums lose nothing to cancellation. The variance's
// own cancellation, second / total - (first / total)^2, is bounded: the max carries the largest
// single weight (e = 1), so E_p[u^2] / Var_p[u] stays below about the number of classes, a few
// digits of double at 128k classes, far below what a Newton step needs.
//
// Memory passes: two reads of the row (the max, then the sums); rows of a few thousand classes
// are in L1 for the second. Compute: double exp, about twice the float exp of a cross-entropy
// pass per element.
//
// Requires simd/vector-inl.h, simd/math-inl.h, kernels/kernel_table.h and
// kernels/row_statistics-inl.h (chunk_max).
#pragma once

// sum + v = sum' + error exactly (TwoSum), the errors accumulated apart: a sum of many
// non-negative (or non-positive) terms within about 2 ULP whatever its length, where a plain lane
// sum of n / lanes terms can drift by sqrt(n / lanes) ULP and more (10 eps at 32000 double terms).
inline void add_compensated(f64v& sum, f64v& error, f64v v) {
  const f64v rounded = sum + v;
  const f64v v_virtual = rounded - sum;
  error += (sum - (rounded - v_virtual)) + (v - v_virtual);
  sum = rounded;
}

// kCompensated (entropy_with_logits; scale must be 1 for float data): u_c = x_c - max formed
// error-free (difference_with_error) and its low part folded into exp, so e_c is within exp's 2 ULP
// of exact whatever |u_c| (a plainly rounded u_c costs |u_c| eps relative in e_c). Double data: in
// double lanes, t_c = hi scale, `others` and `first` summed with add_compensated (entropy takes
// G = -first / total directly, not through a log that would damp a sum's relative error). Float
// data: e_c from the float exp (2 ULP of float: far inside a float result's 8 eps, at half the cost
// of the double exp), widened, sums in double. In both, `second` is not taken (0): entropy needs no
// variance.
// S: the storage type of x (bfloat16 read into float lanes: as float data).
template <class S, bool kCompensated = false>
LOGITLOSS_FLATTEN SoftmaxMoments row_softmax_moments(const S* x, int64_t n, double scale) {
  using T = compute_t<S>;
  using V = typename Vec<T>::V;
  constexpr int kLanes = Vec<T>::kLanes;
  const T max = chunk_max<S, false>(x, nullptr, n);
  const f64v max_v = splat<f64v>((double)max), scale_v = splat<f64v>(scale), zero = splat<f64v>(0.0);
  // Below -2048, exp's sum term is exactly 0 (its range ends at -1060): clamping there first turns
  // a masked class's t = -inf into 0 * -2048 = 0 in the products, not 0 * inf = nan.
  const f64v t_floor = splat<f64v>(-2048.0);
  f64v others = zero, first = zero, second = zero;
  int64_t count = 0;
  f64v others_error = zero, first_error = zero;  // kCompensated: the sums' rounding errors
  auto add = [&](f64v xv) {
    if constexpr (kCompensated) {
      f64v low, not_max = zero;
      const f64v high = difference_with_error(xv, max_v, low);
      const f64v t = clamp_below(high * scale_v, t_floor);
      const f64v e = exp_nonpositive_sum_term(high * scale_v, low * scale_v);
      count += count_equal_accumulate_others(xv, max_v, e, not_max);
      add_compensated(others, others_error, not_max);
      const f64v et = e * t;
      add_compensated(first, first_error, et);
    } else {
      const f64v t = clamp_below((xv - max_v) * scale_v, t_floor);
      const f64v e = exp_nonpositive_sum_term(t);
      count += count_equal_accumulate_others(xv, max_v, e, others);
      const f64v et = e * t;
      first += et;
      second += et * t;
    }
  };
  // kFloatTerms: e_c in float lanes, from an error-free float difference (exp's 2 ULP of float,
  // twice the lanes of a double exp), widened exactly; t_c and the sums in double as above.
  constexpr bool kFloatTerms = kCompensated && sizeof(T) == 4;
  auto add_float_terms = [&](f64v xv, f64v e) {
    const f64v t = clamp_below(xv - max_v, t_floor);
    count += count_equal_accumulate_others(xv, max_v, e, others);
    first += e * t;
  };
  const V max_lanes = splat<V>(max);
  auto add_vector = [&](V v) {
    if constexpr (sizeof(T) == 8) {
      add(v);
    } else if constexpr (kFloatTerms) {
      V low_part;
      const V high_part = difference_with_error(v, max_lanes, low_part);
      const V e = exp_nonpositive_sum_term(high_part, low_part);
      f64v x_low, x_high, e_low, e_high;
      widen(v, x_low, x_high);
      widen(e, e_low, e_high);
      add_float_terms(x_low, e_low);
      add_float_terms(x_high, e_high);
    } else {
      f64v low, high;
      widen(v, low, high);
      add(low);
      add(high);
    }
  };
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) add_vector(load(x + i));
  if (i < n) add_vector(load_partial(x + i, n - i, T(-__builtin_inf())));
  const double unscale = kFloatTerms ? sum_unscale<float>() : sum_unscale<double>();
  if constexpr (kCompensated) {
    others += others_error;  // each lane's sum rounded once more; the lanes then added in double
    first += first_error;
  }
  return {(double)max, (double)count, horizontal_add(others) * unscale,
          horizontal_add(first) * unscale / scale, horizontal_add(second) * unscale / (scale * scale)};
}
