// Backward passes of softmax and log_softmax over contiguous rows, given the forward output y
// and the upstream gradient g:
//   softmax:      out = y * (g - sum(g * y))
//   log_softmax:  out = g - exp(y) * sum(g)
//
// Storage: g, y and out float, double or bfloat16 (S: read into float lanes, each output rounded
// once); the sums and scalars in the compute type.
// Contract: g, y, out contiguous, n >= 1, any values; each output vector depends only on the same
// positions of g and y (and the row's sum). row_dot(a, b, n) = sum(a * b) (sum(a) when b is
// null) as value * 2^exponent: g over the whole range of its type sums beyond it (float lanes)
// and beyond double (double data), while g - exp(y) sum_g stays finite; such a sum is taken again
// with every term scaled by 2^-kDotScaleExponent (a second pass, only for those rows).
// Precision: the dot product and sum in lanes of the data type over at most kBlock iterations,
// then in double (kernels/lane_sums-inl.h); the elementwise step rounds twice (also where
// g - dot or g - exp(y) sum_g overflows and is formed from halves), exp(y) within
// its <= 2 ULP (three times where sum_g is beyond T's range: exp(y) times its mantissa, then
// two exact power-of-two factors).
// Memory: the driver reads g and y twice (sum, then output) and writes out once.
// Requires simd/vector-inl.h and simd/math-inl.h (arch/target.inc includes them first).
#pragma once

#include "kernels/lane_sums-inl.h"
#include "kernels/row_stores-inl.h"

constexpr int kDotScaleExponent = 64;

// The lane sums of row_dot; kScaled: each term times 2^-kDotScaleExponent (exact for every term
// above the data type's smallest normal times 2^64, and those are far below a sum that needed
// the scaling).
template <class S, bool kScaled>
double row_dot_lanes(const S* a, const S* b, int64_t n) {
  using T = compute_t<S>;
  using V = typename Vec<T>::V;
  using W = typename Vec<T>::Wide;
  constexpr int kLanes = Vec<T>::kLanes;
  const V down = splat<V>(kScaled ? (T)0x1p-64 : (T)1);
  auto term_a = [&](int64_t j) { return kScaled ? load(a + j) * down : load(a + j); };
  W total = splat<W>(0);
  int64_t j = 0;
  while (j + 2 * kLanes <= n) {
    V sum0 = splat<V>(0), sum1 = sum0;
    for (int64_t block = 0; block < kBlock && j + 2 * kLanes <= n; ++block, j += 2 * kLanes) {
      sum0 = b ? mul_add(term_a(j), load(b + j), sum0) : sum0 + term_a(j);
      sum1 = b ? mul_add(term_a(j + kLanes), load(b + j + kLanes), sum1) : sum1 + term_a(j + kLanes);
    }
    total += __builtin_convertvector(sum0 + sum1, W);
  }
  for (; j < n; j += kLanes) {
    const int64_t lanes = n - j < kLanes ? n - j : kLanes;
    V a_lanes = load_n(a + j, lanes, T(0));
    if (kScaled) a_lanes = a_lanes * down;
    total += __builtin_convertvector(b ? a_lanes * load_n(b + j, lanes, T(0)) : a_lanes, W);
  }
  return horizontal_sum(total);
}

template <class S>
ScaledSum row_dot(const S* a, const S* b, int64_t n) {
  static_assert(kDotScaleExponent == 64, "the factor in row_dot_lanes");
  const double plain = row_dot_lanes<S, false>(a, b, n);
  if (plain - plain == 0) return {plain, 0};
  // inf or nan: a lane sum overflowed, or an input is inf or nan (then the scaled sum is too).
  return {row_dot_lanes<S, true>(a, b, n), kDotScaleExponent};
}

template <class S>
void row_softmax_backward(const S* g, const S* y, int64_t n, compute_t<S> dot, S* out) {
  using T = compute_t<S>;
  using V = typename Vec<T>::V;
  const V dot_v = splat<V>(dot);
  const V half_dot = splat<V>(dot * T(0.5));
  map_row<S>(n, out, [&](int64_t i, int64_t count) {
    const V yv = load_n(y + i, count, T(0)), gv = load_n(g + i, count, T(0));
    const V difference = gv - dot_v;
    // g - dot of g and dot near the range's opposite ends overflows while y (g - dot) may not:
    // there (2 y) (g/2 - dot/2), each factor exact (halving is inexact only for a subnormal g,
    // by half its last bit, nothing next to the dot that overflowed), the product one rounding.
    const V halves = (yv + yv) * mul_add(gv, splat<V>(T(0.5)), -half_dot);
    return select(abs(difference) < splat<V>((T)__builtin_inf()), yv * difference, halves);
  });
}

// g + t, given also t/2: where g + t overflows although the exact sum may not (g and t near the
// range's opposite ends, t itself possibly beyond it), 2 (g/2 + t/2), each half exact (g/2 is
// inexact only for a subnormal g, nothing next to a t that overflowed).
template <class V>
inline V sum_without_overflow(V g, V t, V half_t) {
  const V sum = g + t;
  return select(abs(sum) < splat<V>((lane_t<V>)__builtin_inf()), sum, mul_add(g, splat<V>((lane_t<V>)0.5), half_t) * (lane_t<V>)2);
}

template <class S>
void row_log_softmax_backward(const S* g, const S* y, int64_t n, ScaledSum sum_g, S* out) {
  using T = compute_t<S>;
  using V = typename Vec<T>::V;
  int exponent = 0;
  const double fraction = ::frexp(sum_g.value, &exponent);  // sum_g = fraction 2^(exponent + e)
  exponent += sum_g.exponent;
  const int max_exponent = sizeof(T) == 4 ? 128 : 1024;
  if (exponent < max_exponent || !(fraction - fraction == 0)) {
    // Within T's range (or inf / nan, which propagate): the sum as one T. (At exponent ==
    // max_exponent the fraction can round up to 1 in T and the sum to inf: the scaled path.)
    const T sum = (T)::ldexp(fraction, exponent);
    const V neg_sum = splat<V>(-sum), neg_half_sum = splat<V>(-sum * T(0.5));
    map_row<S>(n, out, [&](int64_t i, int64_t count) {
      const V p = exp(load_n(y + i, count, T(0)));
      return sum_without_overflow(load_n(g + i, count, T(0)), p * neg_sum, p * neg_half_sum);
    });
    return;
  }
  // Beyond T's range: exp(y) times the fraction (in [1/2, 1)), then times 2^exponent as two
  // powers of two that T holds (exponent <= 2 max_exponent); exp(y) sum_g overflows to inf
  // exactly where it should.
  const int first = exponent / 2;
  const V fraction_v = splat<V>((T)-fraction);
  const V first_power = splat<V>((T)::ldexp(1.0, first)), second_power = splat<V>((T)::ldexp(1.0, exponent - first));
  const V half_second_power = second_power * T(0.5);  // >= 2^63: exact
  map_row<S>(n, out, [&](int64_t i, int64_t count) {
    const V scaled = exp(load_n(y + i, count, T(0))) * fraction_v * first_power;
    return sum_without_overflow(load_n(g + i, count, T(0)), scaled * second_power, scaled * half_second_power);
  });
}
