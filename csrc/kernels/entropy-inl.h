// The entropy of softmax(x) and its gradient, for entropy_with_logits (drivers/entropy.cpp).
//
// With max the row's largest element, d_c = max - x_c >= 0, e_c = exp(-d_c), total = sum e_c,
// p_c = e_c / total and G = sum_c p_c d_c >= 0 (the mean gap to the max under p):
//   H = sum_c p_c (lse - x_c) = log(total) + G                        (two non-negative terms)
//   dH/dx_c = p_c ((lse - x_c) - H) = p_c (d_c - G)                   (log(total) cancels exactly)
// so H keeps its relative precision however close to deterministic the row is (H = 1e-17: both
// terms are tiny and non-negative, nothing cancels), and the gradient is formed from d_c and G,
// never from lse - x_c and H, whose difference would cancel.
//
// Contract:
//   row_entropy_moments(x, n)  x[0..n) contiguous, n >= 1: the softmax moments at scale 1
//       (SoftmaxMoments, kernels/softmax_moments-inl.h): max, count, others, first = -sum e_c d_c;
//       G = -first / total. d_c is formed error-free for exp (kCompensated): double data in double
//       lanes with compensated sums; float data takes e_c from the float exp (2 ULP of float) and
//       widens it and x to double, where d_c is exact or within 2^-53 relative. -inf entries add
//       nothing (e_c = 0, and e_c d_c = 0, not 0 * inf); nan anywhere makes others nan; a max of
//       +-inf is the caller's to reject.
//   row_entropy_gradient(x, n, max, mean_gap, scale, out, stream)  out_c = scale e_c (d_c - mean_gap)
//       with scale = 1 / total and mean_gap = G, for a row whose max is finite and has no nan.
//       e_c is taken as exp(x_c - max) 2^kSumScale (error-free difference, never subnormal, exactly
//       0 below the sum term's range and at -inf) and unscaled in the final product, so a gradient
//       element rounds once where it is subnormal, never through a subnormal e_c. d_c is clamped
//       at 2048 (beyond the sum term's range: e_c = 0 there) so a -inf entry gives 0, not 0 * inf.
//       `out` may be `x`; stream as row_log_softmax's.
//
// Precision: H within 8 eps relative (docs/accuracy.md): each term e_c d_c within 3 ULP of the
// data type (exp's 2 ULP and the product; float data's products in double), non-negative, summed
// in double lanes (compensated for double data), so the sums lose nothing to cancellation; then
// one log1p, one division and one addition of non-negative numbers, in double. The gradient
// element within 8 eps of p_c (d_c + G): the roundings of d_c, of G to the data type and of
// d_c - G (at most eps of d_c + G), plus exp's 2 ULP and two products on p_c |d_c - G|.
//
// Memory passes: row_entropy_moments reads the row twice (max, then the sums; rows of a few
// thousand classes are in L1 or L2 for the second); row_entropy_gradient once more, writing out.
//
// Requires simd/vector-inl.h, simd/math-inl.h, kernels/kernel_table.h, kernels/lane_sums-inl.h,
// kernels/row_stores-inl.h and kernels/softmax_moments-inl.h (softmax_family-inl.h includes them).
#pragma once

// S: the storage type of x and out (bfloat16: float lanes, the gradient rounded once).
template <class S>
SoftmaxMoments row_entropy_moments(const S* x, int64_t n) {
  return row_softmax_moments<S, true>(x, n, 1.0);
}

template <class S>
void row_entropy_gradient(const S* x, int64_t n, compute_t<S> max, compute_t<S> mean_gap, compute_t<S> scale, S* out,
                          bool stream) {
  using T = compute_t<S>;
  using V = typename Vec<T>::V;
  const V max_v = splat<V>(max), mean_gap_v = splat<V>(mean_gap);
  // scale / 2^kSumScale: a normal number for any total below 2^60 (the sum of at most n terms <= 1).
  const V factor = splat<V>((T)((double)scale * sum_unscale<T>()));
  const V floor = splat<V>(T(-2048));
  with_stream_mode(stream, [&](auto mode) {
    map_row<S, mode>(n, out, [&](int64_t i, int64_t count) {
      V low;
      const V high = difference_with_error(load_n(x + i, count, T(0)), max_v, low);
      const V term = exp_nonpositive_sum_term(high, low);
      const V gap_minus_mean = -clamp_below(high, floor) - mean_gap_v;
      return (term * gap_minus_mean) * factor;
    });
  });
  if (stream) streaming_fence();
}
