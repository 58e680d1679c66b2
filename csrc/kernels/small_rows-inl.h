// Rows of at most two vectors (tiny classification heads: 10 classes, 32 classes) held in
// registers: the chunked path's arithmetic (kernels/row_statistics-inl.h,
// kernels/softmax_cross_entropy-inl.h) with one load per vector and no chunks, no scratch, no
// prefetch. A short row is all latency (its horizontal max and sum overlap nothing), so these
// paths do the least work between the load and the result.
//
// Contract (same as the chunked path, which the results follow bit for bit where noted):
//   small_row               statistics of n <= kVectors * lanes contiguous elements, n >= 1, no
//                           weights; compensated or plain x - max as the chunked path.
//   row_softmax_fused_small the fused softmax / cross-entropy pass of such a row (TargetTerms as
//                           in softmax_cross_entropy-inl.h): the target terms' sums are formed in
//                           double lanes (v_c in float is subnormal for targets near 0).
//   rows_stats_in_lanes     plain statistics of 16 float rows of n <= 16 elements, one row per
//                           lane (AVX-512 gathers, kHasGather16): bitwise small_row's.
// Precision: as the chunked path: exp of x - max <= 0 only (1 ULP), sums of the scaled terms in
// lanes then in double. Padding lanes load as -inf and get a term of 0.
// Requires simd/vector-inl.h, simd/math-inl.h and kernels/kernel_table.h (arch/target.inc
// includes them first).
#pragma once

#include "kernels/scale_factor-inl.h"
#include "kernels/lane_sums-inl.h"
#include "kernels/row_stores-inl.h"
#include "kernels/hessian_terms-inl.h"

// Whether the fused pass forms x - max error-free (TwoSum) for storage type S. bfloat16 does not
// need it: its outputs keep 8 bits. x - max of two bfloat16 values is exact in float unless their
// exponents are more than 16 apart; then |x - max| <= 131 (a term of the sum's range) forces
// |x| < 2^-9 and the one rounding of the difference changes exp's argument by at most 131 2^-24,
// the term by 2^-16 relative: within the float32 computation's error, 2^-7 below bfloat16's
// rounding (the bound of docs/accuracy.md holds, and the results rarely differ in their last bit
// from the compensated float32 results'). It saves the fused pass's TwoSum per element.
template <class S>
constexpr bool kCompensatedFor = !std::is_same_v<S, bfloat16>;

// Rows of at most two vectors take the small path.
template <class T>
inline bool is_small_row(int64_t n) {
  return n <= 2 * Vec<T>::kLanes;
}

template <class T, int kVectors>
struct SmallRow {
  typename Vec<T>::V x[kVectors];
  typename Vec<T>::V e[kVectors];  // exp(x - max) * 2^kSumScale
  SliceStats stats;
};

template <class S, int kVectors, bool kCompensated>
SmallRow<compute_t<S>, kVectors> small_row(const S* x, int64_t n) {
  using T = compute_t<S>;
  using V = typename Vec<T>::V;
  using Bits = typename Lanes<V>::Bits;
  constexpr int kLanes = Vec<T>::kLanes;
  const T neg_inf = -__builtin_inf();
  auto lanes = [&](int j) { return n - j * kLanes < kLanes ? n - j * kLanes : (int64_t)kLanes; };  // > 0 for j < kVectors
  SmallRow<T, kVectors> row;
  V max_v = splat<V>(neg_inf);
  for (int j = 0; j < kVectors; ++j) {
    row.x[j] = load_n(x + j * kLanes, lanes(j), neg_inf);
    max_v = max_ignoring_nan(max_v, row.x[j]);
  }
  const T max = horizontal_max(max_v);
  max_v = splat<V>(max);
  V others = splat<V>(0);
  int64_t equal = 0;
  for (int j = 0; j < kVectors; ++j) {
    V e;
    if (kCompensated) {
      V difference_error;
      const V difference = difference_with_error(row.x[j], max_v, difference_error);
      e = exp_nonpositive_sum_term(difference, difference_error);
    } else {
      e = exp_nonpositive_sum_term(row.x[j] - max_v);
    }
    V compared = row.x[j];
    if (lanes(j) < kLanes) {  // padding lanes: a nan (never equal to the max) with a term of 0
      const auto valid = lane_index<V>() < (Bits)lanes(j);
      e = select(valid, e, splat<V>(0));
      compared = select(valid, compared, splat<V>(__builtin_nan("")));
    }
    row.e[j] = e;
    equal += count_equal_accumulate_others(compared, max_v, e, others);
  }
  row.stats = {(double)max, (double)equal, horizontal_sum(others) * sum_unscale<T>()};
  return row;
}

// The fused pass (softmax_cross_entropy-inl.h's row_softmax_fused) of a row of kVectors vectors.
// The factor of softmax in a fused pass's output: scale_base + scale_per_mass mass, plus z-loss's
// scale_per_lse lse with lse = max + log(total) (only when set: the default stays bitwise).
template <class T>
inline double fused_output_scale(const TargetTerms<T>& terms, const FusedStats& result) {
  const double scale = terms.scale_base + terms.scale_per_mass * result.mass;
  if (terms.scale_per_lse == 0) return scale;
  const SliceStats& stats = result.stats;
  return scale + terms.scale_per_lse * (stats.max + ::log(stats.count + stats.others));
}

// S: the storage type of x and out (bfloat16: float lanes, the output rounded once).
template <class S, int kVectors>
FusedStats row_softmax_fused_small(const S* x, int64_t n, S* out, const TargetTerms<compute_t<S>>& terms) {
  using T = compute_t<S>;
  using V = typename Vec<T>::V;
  using W = typename Vec<T>::Wide;
  using Bits = typename Lanes<V>::Bits;
  constexpr int kLanes = Vec<T>::kLanes;
  auto lanes = [&](int j) { return n - j * kLanes < kLanes ? n - j * kLanes : (int64_t)kLanes; };  // > 0 for j < kVectors
  const SmallRow<T, kVectors> row = small_row<S, kVectors, kCompensatedFor<S>>(x, n);
  const V(&e)[kVectors] = row.e;
  const T max = (T)row.stats.max;
  FusedStats result{row.stats, 0.0, 0.0};
  const bool has_terms = terms.target_scale != 0 || terms.target_offset != 0;
  V target_mass[kVectors];  // v_c as the output pass uses it, in the data type
  // Gap relative to the max if it is finite (else 0, and moved to the max below).
  const T reference = max - max == 0 ? max : T(0);
  W gap_sum = splat<W>(0), mass_sum = splat<W>(0);
  for (int j = 0; j < kVectors; ++j) {
    target_mass[j] = splat<V>(0);
    if (!has_terms) continue;
    target_mass[j] = terms.target ? mul_add(splat<V>(terms.target_scale), load_n(terms.target + j * kLanes, lanes(j), T(0)),
                                            splat<V>(terms.target_offset))
                                  : splat<V>(terms.target_offset);
    if (terms.weight) target_mass[j] = target_mass[j] * load_n(terms.weight + j * kLanes, lanes(j), T(0));
    const auto valid = lane_index<V>() < (Bits)lanes(j);
    target_mass[j] = select(valid, target_mass[j], splat<V>(0));
    // The sums take v in double, formed there: in float it is subnormal for targets near 0.
    W target_mass_wide = __builtin_convertvector(splat<V>(terms.target_offset), W);
    if (terms.target) {
      target_mass_wide += __builtin_convertvector(splat<V>(terms.target_scale), W) *
                          __builtin_convertvector(load_n(terms.target + j * kLanes, lanes(j), T(0)), W);
    }
    if (terms.weight) target_mass_wide *= __builtin_convertvector(load_n(terms.weight + j * kLanes, lanes(j), T(0)), W);
    target_mass_wide = select(__builtin_convertvector(valid, typename Lanes<W>::Int) != 0, target_mass_wide, splat<W>(0));
    gap_sum += mass_times_gap(target_mass_wide, __builtin_convertvector(splat<V>(reference), W),
                              __builtin_convertvector(load_n(x + j * kLanes, lanes(j), reference), W));
    mass_sum += target_mass_wide;
  }
  if (has_terms) {
    result.gap = horizontal_sum(gap_sum);
    result.mass = horizontal_sum(mass_sum);
    if (reference != max) result.gap += result.mass * ((double)max - reference);
  }
  if (out) {
    const SliceStats& stats = result.stats;
    const SplitFactor<T> scale = split_factor<T>(fused_output_scale(terms, result) / (stats.count + stats.others),
                                                 -sum_scale_exponent<T>());
    const ComplementTerms<T> complement = terms.hessian ? complement_terms<T>(stats) : ComplementTerms<T>{};
    for (int j = 0; j < kVectors; ++j) {
      const V scaled = apply_factor(e[j], scale);
      const V output = scaled - splat<V>(terms.bias) * target_mass[j];
      if (lanes(j) == kLanes) store(out + j * kLanes, output);
      else store_partial(out + j * kLanes, output, lanes(j));
      if (terms.hessian) {  // kernels/hessian_terms-inl.h: e_c = e[j] 2^-kSumScale, exactly
        const V hessian = scaled * softmax_complement(e[j] * splat<V>((T)sum_unscale<T>()), complement.count,
                                                      complement.others, complement.inverse_total);
        if (lanes(j) == kLanes) store(terms.hessian + j * kLanes, hessian);
        else store_partial(terms.hessian + j * kLanes, hessian, lanes(j));
      }
    }
  }
  return result;
}

template <class S>
FusedStats row_softmax_fused_small_any(const S* x, int64_t n, S* out, const TargetTerms<compute_t<S>>& terms) {
  return n <= Vec<S>::kLanes ? row_softmax_fused_small<S, 1>(x, n, out, terms)
                             : row_softmax_fused_small<S, 2>(x, n, out, terms);
}

// Plain statistics of 16 float rows of n <= 16 elements, one row per lane: a vector per column,
// gathered (rows[i] = base + offset[i]). small_row's arithmetic exactly -- its max, its terms, its
// count, and its horizontal sum's order (halves folded lane by lane, in double) -- so the results
// are bitwise row_stats'. One short row alone is all latency: its horizontal max and sum cannot
// overlap anything (a (32, 10) logsumexp spent a third of its call in them).
template <class T>
void rows_stats_in_lanes(const T* base, const int32_t* offset, int64_t n, SliceStats* out) {
  static_assert(sizeof(T) == 4 && Vec<T>::kLanes == 16, "16 float lanes");
  using V = typename Vec<T>::V;
  using Int = typename Lanes<V>::Int;
  constexpr int kRows = 16;
  Int index;
  std::memcpy(&index, offset, sizeof index);
  V column[kRows], top[kRows];
  for (int c = 0; c < kRows; ++c) {
    if (c < n) column[c] = gather16(base, index + c);
    top[c] = max_ignoring_nan(splat<V>(-__builtin_inf()), c < n ? column[c] : splat<V>(-__builtin_inf()));
  }
  // horizontal_max's order (c + 8 onto c, then c + 4, ...; ties keep c): which of +0 and -0 wins.
  for (int half = kRows / 2; half >= 1; half /= 2) {
    for (int c = 0; c < half; ++c) top[c] = select(top[c + half] > top[c], top[c + half], top[c]);
  }
  const V max_v = top[0];
  // Per column: its term where x != max (nan included), 0 elsewhere; the count of x == max.
  V count = splat<V>(0);
  f64v low[kRows], high[kRows];  // the terms widened, rows 0-7 and 8-15
  for (int c = 0; c < kRows; ++c) {
    V others = splat<V>(0);
    if (c < n) {
      const V e = exp_nonpositive_sum_term(column[c] - max_v);
      const auto equal = column[c] == max_v;
      others = select(equal, splat<V>(0), e);
      count += select(equal, splat<V>(1), splat<V>(0));
    }
    low[c] = __builtin_convertvector(__builtin_shufflevector(others, others, 0, 1, 2, 3, 4, 5, 6, 7), f64v);
    high[c] = __builtin_convertvector(__builtin_shufflevector(others, others, 8, 9, 10, 11, 12, 13, 14, 15), f64v);
  }
  // horizontal_sum's order over a row's 16 lanes: lane c + 8 onto c, then c + 4, c + 2, c + 1.
  for (int half = kRows / 2; half >= 1; half /= 2) {
    for (int c = 0; c < half; ++c) {
      low[c] += low[c + half];
      high[c] += high[c + half];
    }
  }
  alignas(64) T max_lanes[kRows], count_lanes[kRows];
  alignas(64) double others_lanes[kRows];
  store(max_lanes, max_v);
  store(count_lanes, count);
  std::memcpy(others_lanes, &low[0], sizeof low[0]);
  std::memcpy(others_lanes + 8, &high[0], sizeof high[0]);
  for (int i = 0; i < kRows; ++i) out[i] = {(double)max_lanes[i], (double)count_lanes[i], others_lanes[i] * sum_unscale<T>()};
}
