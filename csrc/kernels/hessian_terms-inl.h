// The diagonal of cross-entropy's Hessian, written by the fused pass's output pass next to the
// gradient (kernels/softmax_cross_entropy-inl.h, kernels/small_rows-inl.h): one more output
// stream, no second read of the logits.
//
// Derivation. Per position, loss = sum_c v_c (lse(z) - z_c) with the target distribution v
// independent of z (softmax_cross_entropy-inl.h), so with M = sum_c v_c and p = softmax(z):
//   d loss / d z_c = M p_c - v_c,   d2 loss / d z_c2 = M p_c (1 - p_c)
// (times the upstream gradient g). The output pass already forms g M p_c -- the gradient's
// scaled softmax, (scale_base + scale_per_mass mass) p_c in TargetTerms -- so
//   h_c = (g M p_c) (1 - p_c),
// its first factor bitwise the gradient's. 1 - p_c is formed without cancellation from the row's
// statistics: with e_c = exp(z_c - max) (exactly 1 at a max) and total = count + others,
//   1 - p_c = ((count - e_c) + others) / total.
// count - e_c is exact where it cancels (e_c in [count / 2, count], Sterbenz; 0 at a max with
// count 1), and others >= 0 adds no cancellation: a confident row's max lane (p = 1 - d, d below
// eps) keeps h = g M d (1 - d) to a few ULP, where 1 - p rounded would lose d entirely.
//
// Error per element (relative): g M p_c as the gradient's term (exp 1 ULP, the factor's one or two
// roundings); e_c rounded once more from the stored term (an absolute error of 2 ULP of e_c, and
// for a lane that is not a max, (count - e_c) + others >= count >= e_c, so at most 2 ULP of the
// sum); the subtraction, the addition, the product with the rounded 1 / total and the final
// product one rounding each: within 8 ULP, and within 2 ULP of the exact p_c (1 - p_c) for
// p_c <= 1/2. -inf lanes (masks) get 0, as their gradient's p term.
//
// Requires simd/vector-inl.h, simd/math-inl.h, kernels/scale_factor-inl.h and
// kernels/row_stores-inl.h (included before it).
#pragma once

// The lanes' 1 - p_c from their e_c = exp(x - max) (see above); count, others and inverse_total
// are the row's statistics in the data type.
template <class V>
LOGITLOSS_ALWAYS_INLINE V softmax_complement(V e, V count, V others, V inverse_total) {
  return ((count - e) + others) * inverse_total;
}

// The row's statistics as lane values for softmax_complement.
template <class T>
struct ComplementTerms {
  typename Vec<T>::V count, others, inverse_total;
};

template <class T>
inline ComplementTerms<T> complement_terms(const SliceStats& row) {
  using V = typename Vec<T>::V;
  return {splat<V>((T)row.count), splat<V>((T)row.others), splat<V>((T)(1.0 / (row.count + row.others)))};
}

// hessian[0..n) of one run of chunks that share `reference`, from their stored terms
// stored_c = exp(x_c - reference) 2^kSumScale: `scale` is the gradient's factor (stored_c times
// it is g M p_c) and term_factor = exp(reference - max) 2^-kSumScale (stored_c times it is e_c).
// Called before the gradient overwrites `stored` (in place, stored is the gradient's output).
// all_masked: the run is -inf only (its stored terms are nan): h = 0.
template <class T>
void write_hessian_run(const T* stored, T* hessian, int64_t n, bool all_masked, const SplitFactor<T>& scale,
                       double term_factor, const ComplementTerms<T>& row, bool stream) {
  using V = typename Vec<T>::V;
  // term_factor below T's normal range: e_c <= 2^-62 (float) next to count >= 1, so its rounding
  // to a subnormal (or 0) changes nothing in count - e_c.
  const V factor = splat<V>((T)term_factor);
  with_stream_mode(stream, [&](auto mode) {
    constexpr bool kStream = mode;
    if (all_masked) {
      map_row<T, kStream>(n, hessian, [&](int64_t, int64_t) { return splat<V>(0); });
      return;
    }
    with_factor(scale, [&](auto apply) {
      map_row<T, kStream>(n, hessian, [&](int64_t i, int64_t count) {
        const V term = load_n(stored + i, count, T(0));
        return apply(term) * softmax_complement(term * factor, row.count, row.others, row.inverse_total);
      });
    });
  });
  if (stream) streaming_fence();
}
