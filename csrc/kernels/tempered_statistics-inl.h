// Statistics of softmax(x / T) with the quotient compensated: the loss of cross-entropy under a
// temperature (drivers/cross_entropy.cpp) without the |x - max| / T eps that a plainly rounded
// z'' = x / T costs a tiny loss (exp(z''_c - max'') has the relative error of z''_c - max'', which
// is |z''_c - max''| eps when each z'' is rounded once).
//
// Contract: row_tempered_stats(x, n, temperature, terms) for x[0..n) contiguous, n >= 1,
// temperature > 0 finite, terms the fused pass's target terms (their weight and target rows, the
// form of v_c; kernel_table.h): {stats, gap, mass} as row_softmax_fused's of z'' = x / T, with
// stats = {max, count, others}, max the row's largest x (not divided: the caller divides), count
// the number of x_c equal to it, others = sum over the rest of exp((x_c - max) / T) (-inf entries
// add 0), gap = sum_c v_c (max - x_c) / T and mass = sum_c v_c (both 0 for targets without terms
// in v: an index target without smoothing, whose one term the caller forms with tempered_gap).
// Where the max is not finite the result is meaningless (the caller takes the fused pass's then).
//
// Precision policy (double data; float data below, at add_vector): u_c = x_c - max error-free as hi +
// lo (difference_with_error), q_c = u_c / T as q_hi + q_lo with q_hi = hi (1 / T) (a faithful
// quotient: two roundings, no division, whose throughput bound this pass) and q_lo =
// (fma(-q_hi, T, hi) + lo) (1 / T) (the remainder of a faithful quotient is exact, so q_hi + q_lo
// is within about 2^-104 relative of the exact quotient), e_c = exp(q_hi + q_lo) 2^kSumScale within exp's 2 ULP of the
// exact term whatever |q_c|, summed with add_compensated (softmax_moments-inl.h): others within
// about 3 ULP of double, far inside a float result's and within a double result's 8 eps.
//
// gap: sum_c v_c (max - x_c) over the untransformed x (chunk_target_gap, softmax_cross_entropy-inl.h:
// every term >= 0, float data's in double lanes), divided by T once: each term of max'' - z''_c
// formed from rounded quotients would be off by up to |z''| eps, which is large next to it far
// from 0 (|x| >> |max - x|), and the whole of a confident row's tiny loss.
//
// Memory passes: two reads of the row (the max, then the sums), a third for the gap when v has
// terms, from cache (the fused pass reads the row next).
// Compute: a float exp (float data) or a double exp (double data) per element, and the widening
// and narrowing around it.
//
// Requires simd/vector-inl.h, simd/math-inl.h and kernels/kernel_table.h (arch/target.inc includes
// them first).
#pragma once

#include "kernels/row_statistics-inl.h"         // chunk_max
#include "kernels/softmax_cross_entropy-inl.h"  // chunk_target_gap
#include "kernels/softmax_moments-inl.h"        // add_compensated

// high - quotient divisor exactly: the remainder of a faithfully rounded quotient, a representable
// number.
// With FMA one fused multiply-add; without it (the baseline target, where mul_add rounds twice)
// quotient divisor as the exact p + p_error by Dekker's product (Veltkamp halves), then
// (high - p) - p_error (high - p exact by Sterbenz; the last subtraction rounds to the
// representable remainder). Arguments below 2^20 in magnitude (the halves then cannot overflow).
inline f64v division_remainder(f64v high, f64v quotient, f64v divisor) {
#if defined(__FMA__) || defined(__AVX512F__) || (defined(__ARM_NEON) && defined(LOGITLOSS_TARGET_NEON))
  return mul_add(-quotient, divisor, high);
#else
  const f64v split = splat<f64v>(134217729.0);  // 2^27 + 1
  auto halves = [&](f64v a, f64v& upper, f64v& lower) {
    const f64v t = split * a;
    upper = t - (t - a);
    lower = a - upper;
  };
  f64v quotient_upper, quotient_lower, divisor_upper, divisor_lower;
  halves(quotient, quotient_upper, quotient_lower);
  halves(divisor, divisor_upper, divisor_lower);
  const f64v p = quotient * divisor;
  const f64v p_error = ((quotient_upper * divisor_upper - p) + quotient_upper * divisor_lower +
                        quotient_lower * divisor_upper) + quotient_lower * divisor_lower;
  return (high - p) - p_error;
#endif
}

template <class T>
LOGITLOSS_FLATTEN SliceStats row_tempered_slice_stats(const T* x, int64_t n, T max, double temperature) {
  using V = typename Vec<T>::V;
  constexpr int kLanes = Vec<T>::kLanes;
  const f64v max_v = splat<f64v>((double)max), divisor = splat<f64v>(temperature), zero = splat<f64v>(0.0),
             reciprocal = splat<f64v>(1.0 / temperature);
  // Past |q| = 2^20 exp's term is 0 (or the row's max) whatever the low part: none is formed there
  // (nor for a masked class's q = -inf, where the remainder is nan).
  const f64v low_range = splat<f64v>(0x1p20);
  f64v others = zero, others_error = zero;
  int64_t count = 0;
  auto add = [&](f64v xv) {
    f64v low, not_max = zero;
    const f64v high = difference_with_error(xv, max_v, low);
    const f64v quotient = high * reciprocal;  // a faithful quotient: its remainder is still exact
    const auto in_range = abs(quotient) < low_range;
    const f64v bounded = select(in_range, quotient, zero);
    const f64v remainder = division_remainder(select(in_range, high, zero), bounded, divisor);
    const f64v quotient_low = select(in_range, (remainder + low) * reciprocal, zero);
    const f64v e = exp_nonpositive_sum_term(quotient, quotient_low);
    count += count_equal_accumulate_others(xv, max_v, e, not_max);
    add_compensated(others, others_error, not_max);
  };
  // Float data: u = x - max and q = u (1 / T) in double lanes (u exact but for a part in 2^-53 when
  // the exponents are far apart; q within 2^-52 relative: |q| 2^-52 far below float's eps for
  // every q whose term is not 0), then q split into floats hi + lo and the float exp of (hi, lo):
  // within exp's 2 ULP of float, at half the lanes' cost of the double exp.
  using W = typename Vec<T>::Wide;
  const W max_wide = splat<W>((double)max), reciprocal_wide = splat<W>(1.0 / temperature);
  const V low_bound = splat<V>((T)-0x1p-10), high_bound = splat<V>((T)0x1p-10);
  // Float data's sums: plain double lane sums in two accumulators (no compensation needed: n / lanes
  // additions of non-negative terms drift by at most n / lanes 2^-53, 2^-41 at 32000 classes, far
  // below float's eps; the compensated sum's dependent chain was this pass's bottleneck).
  f64v float_others_low = zero, float_others_high = zero;
  auto add_vector = [&](V v) {
    if constexpr (sizeof(T) == 8) {
      add(v);
    } else {
      const W x_wide = __builtin_convertvector(v, W);
      const W quotient = (x_wide - max_wide) * reciprocal_wide;
      const V high_part = __builtin_convertvector(quotient, V);
      // |lo| <= ULP(hi) / 2 <= 2^-10 wherever the term is not 0 (|hi| < 2^14); clamped (a nan from
      // a masked class's -inf - -inf replaced) as difference_with_error's.
      V low_part = __builtin_convertvector(quotient - __builtin_convertvector(high_part, W), V);
      low_part = min_or_second(max_replacing_nan(low_part, low_bound), high_bound);
      const V e = exp_nonpositive_sum_term(high_part, low_part);
      // Halves of the widened vectors (converted whole: widen()'s halves through memory stalled
      // on store forwarding here).
      const W e_wide = __builtin_convertvector(e, W);
      f64v x_half[2], e_half[2];
      static_assert(sizeof(W) == 2 * sizeof(f64v), "a widened float vector is two double vectors");
      __builtin_memcpy(x_half, &x_wide, sizeof(W));
      __builtin_memcpy(e_half, &e_wide, sizeof(W));
      count += count_equal_accumulate_others(x_half[0], max_v, e_half[0], float_others_low);
      count += count_equal_accumulate_others(x_half[1], max_v, e_half[1], float_others_high);
    }
  };
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) add_vector(load(x + i));
  if (i < n) add_vector(load_partial(x + i, n - i, T(-__builtin_inf())));
  others += others_error + (float_others_low + float_others_high);
  return {(double)max, (double)count, horizontal_add(others) * sum_unscale<T>()};
}

template <class T>
FusedStats row_tempered_stats(const T* x, int64_t n, double temperature, const TargetTerms<T>& terms) {
  const T max = chunk_max<T, false>(x, nullptr, n);
  FusedStats result{row_tempered_slice_stats(x, n, max, temperature), 0.0, 0.0};
  if (terms.target || terms.target_offset != 0) {
    chunk_target_gap(x, n, max, terms, 0, result.gap, result.mass);
    result.gap /= temperature;
  }
  return result;
}
