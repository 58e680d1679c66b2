// How the kernels hold sums in lanes.
//   * The unit of every sum of exponentials: terms are exp(x - max) * 2^kSumScale
//     (exp_nonpositive_sum_term, simd/math-inl.h), so that terms which would be subnormal (or
//     round to 0) alone stay normal in lanes, and a sum of them rounds once, where it is unscaled
//     in double. A term whose x - max is below -131 (float) / -1060 (double), where even the
//     scaled term would leave the normal range, is exactly 0: at most 2^-189 / 2^-1529 of the
//     row's largest term, it cannot change any result. sum_scale<T>() is 2^kSumScale as a lane value (2^64 float, 2^512 double),
//     sum_unscale<T>() its inverse as a double; both exact, and multiplying by either is exact
//     for every normal result.
//   * Lane sums run over at most kBlock iterations (of two vectors) before they are widened to
//     double: a float lane then adds at most 32 terms, a few ULP of float, and the row's sum is
//     about as accurate as a double sum.
// Requires simd/vector-inl.h and simd/math-inl.h (arch/target.inc includes them first).
#pragma once

constexpr int64_t kBlock = 16;  // iterations (2 vectors each) summed in lanes before widening

// v (reference - x) in double lanes, with reference - x taken as 2 (reference/2 - x/2): for double
// data finite logits near opposite ends of the range overflow reference - x (1.9 max), although
// the product -- 0 for v = 0 -- is finite. The halves are exact (for a subnormal x of double data
// inexact by 2^-1075, nothing next to the difference that needed it); for float data the result
// is bitwise v (reference - x). 0 * inf stays nan, as torch, where a masked (-inf) x has v = 0.
template <class W>
inline W mass_times_gap(W v, W reference, W x) {
  return (v * (reference * 0.5 - x * 0.5)) * 2.0;
}

template <class T>
constexpr compute_t<T> sum_scale() {
  if constexpr (sizeof(compute_t<T>) == 4) return 0x1p64f; else return 0x1p512;
}
template <class T>
constexpr int sum_scale_exponent() {
  return MathConstants<typename Vec<compute_t<T>>::V>::kSumScale;
}
template <class T>
constexpr double sum_unscale() {
  if constexpr (sizeof(compute_t<T>) == 4) return 0x1p-64; else return 0x1p-512;
}
