// Elementwise outputs written from statistics already taken: softmax and logsumexp's gradient
// (scale * exp(x - shift)) and log_softmax ((x - max) - log_total), for contiguous rows and for
// tiles of contiguous columns (the reduced axis strided: one parameter per column).
//
// Contract:
//   row_scaled_exp(x, weight, n, shift, scale, out)  out = scale * weight * exp(x - shift), 0 where
//       weight == 0; any shift (exp on all of R).
//   row_log_softmax(x, n, max, log_total, out, stream)  out = (x - max) - log_total.
//   column_scaled_exp / column_log_softmax: the same per column, shift >= every x of its column.
// Precision: x - shift is formed error-free (TwoSum) and folded back, so exp's own error (<= 2
// ULP, ~1 measured) and one rounding for the scale are all; any difference (down to -2 max, or
// -inf) below exp's range gives exactly 0 (the low part is clamped, difference_with_error); (x - max) - log_total subtracts two
// terms <= 0, which cannot cancel: two roundings, within one ULP of the result.
// Memory: one pass reading x, writing out (streamed on request: row_log_softmax's `stream`).
// Requires simd/vector-inl.h and simd/math-inl.h (arch/target.inc includes them first).
#pragma once

#include "kernels/row_stores-inl.h"

// exp(x - shift) with the difference formed error-free. kShiftIsMax: the caller guarantees
// x <= shift (or x = -inf), so the cheaper exp_nonpositive applies.
template <bool kShiftIsMax = false, class V>
inline V exp_of_difference(V x, V shift) {
  V difference_error;
  V difference = difference_with_error(x, shift, difference_error);
  if constexpr (kShiftIsMax) return exp_nonpositive(difference, difference_error);
  V e = exp(difference);
  return mul_add(e, difference_error, e);
}

template <class T>
void row_scaled_exp(const T* x, const T* weight, int64_t n, T shift, T scale, T* out) {
  using V = typename Vec<T>::V;
  const V shift_v = splat<V>(shift), scale_v = splat<V>(scale);
  map_row<T>(n, out, [&](int64_t i, int64_t count) {
    V e = exp_of_difference(load_n(x + i, count, T(0)), shift_v) * scale_v;
    if (weight) {
      V w = load_n(weight + i, count, T(0));
      e = select(w == 0, splat<V>(0), e * w);
    }
    return e;
  });
}

// (x - max) - log_total: both terms are <= 0, so the second subtraction cannot cancel and the
// two roundings stay within one ULP of the result; no error-free difference is needed.
template <class T>
void row_log_softmax(const T* x, int64_t n, compute_t<T> max, compute_t<T> log_total, T* out, bool stream) {
  // T: the storage type of x and out (bfloat16: float lanes, each result rounded once).
  using V = typename Vec<T>::V;
  const V max_v = splat<V>(max), log_total_v = splat<V>(log_total);
  with_stream_mode(stream, [&](auto mode) {
    map_row<T, mode>(n, out, [&](int64_t i, int64_t count) {
      return (load_n(x + i, count, compute_t<T>(0)) - max_v) - log_total_v;
    });
  });
  if (stream) streaming_fence();
}

// out[r, c] = f(x[r, c], c-th parameters) for a tile, row by row.
template <class T, class F>
inline void column_map(const T* x, int64_t rows, int64_t x_stride, int64_t ncols, T* out, int64_t out_stride, F f) {
  for (int64_t r = 0; r < rows; ++r) {
    map_row<T>(ncols, out + r * out_stride, [&](int64_t c, int64_t count) {
      return f(load_n(x + r * x_stride + c, count, T(0)), c, count);
    });
  }
}

template <class T>
void column_scaled_exp(const T* x, int64_t rows, int64_t x_stride, int64_t ncols, const T* shift, const T* scale,
                       T* out, int64_t out_stride) {
  using V = typename Vec<T>::V;
  column_map(x, rows, x_stride, ncols, out, out_stride, [&](V xv, int64_t column, int64_t lanes) {
    return exp_of_difference<true>(xv, load_n(shift + column, lanes, T(0))) * load_n(scale + column, lanes, T(0));
  });
}

template <class T>
void column_log_softmax(const T* x, int64_t rows, int64_t x_stride, int64_t ncols, const T* max, const T* log_total,
                        T* out, int64_t out_stride) {
  using V = typename Vec<T>::V;
  column_map(x, rows, x_stride, ncols, out, out_stride, [&](V xv, int64_t column, int64_t lanes) {
    return (xv - load_n(max + column, lanes, T(0))) - load_n(log_total + column, lanes, T(0));  // as row_log_softmax
  });
}
