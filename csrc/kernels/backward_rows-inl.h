// Backward passes of softmax and log_softmax over contiguous rows, given the forward output y
// and the upstream gradient g:
//   softmax:      out = y * (g - sum(g * y))
//   log_softmax:  out = g - exp(y) * sum(g)
//
// Contract: g, y, out contiguous, n >= 1; each output vector depends only on the same positions
// of g and y (and the row's sum). row_dot(a, b, n) = sum(a * b) (sum(a) when b is null).
// Precision: the dot product and sum in lanes of the data type over at most kBlock iterations,
// then in double (kernels/lane_sums-inl.h); the elementwise step rounds twice, exp(y) within
// its <= 2 ULP.
// Memory: the driver reads g and y twice (sum, then output) and writes out once.
// Requires simd/vector-inl.h and simd/math-inl.h (arch/target.inc includes them first).
#pragma once

#include "kernels/lane_sums-inl.h"
#include "kernels/row_stores-inl.h"

template <class T>
double row_dot(const T* a, const T* b, int64_t n) {
  using V = typename Vec<T>::V;
  using W = typename Vec<T>::Wide;
  constexpr int kLanes = Vec<T>::kLanes;
  W total = splat<W>(0);
  int64_t j = 0;
  while (j + 2 * kLanes <= n) {
    V sum0 = splat<V>(0), sum1 = sum0;
    for (int64_t block = 0; block < kBlock && j + 2 * kLanes <= n; ++block, j += 2 * kLanes) {
      sum0 = b ? mul_add(load(a + j), load(b + j), sum0) : sum0 + load(a + j);
      sum1 = b ? mul_add(load(a + j + kLanes), load(b + j + kLanes), sum1) : sum1 + load(a + j + kLanes);
    }
    total += __builtin_convertvector(sum0 + sum1, W);
  }
  for (; j < n; j += kLanes) {
    const int64_t lanes = n - j < kLanes ? n - j : kLanes;
    V a_lanes = load_n(a + j, lanes, T(0));
    total += __builtin_convertvector(b ? a_lanes * load_n(b + j, lanes, T(0)) : a_lanes, W);
  }
  return horizontal_sum(total);
}

template <class T>
void row_softmax_backward(const T* g, const T* y, int64_t n, T dot, T* out) {
  using V = typename Vec<T>::V;
  const V dot_v = splat<V>(dot);
  map_row<T>(n, out, [&](int64_t i, int64_t count) {
    return load_n(y + i, count, T(0)) * (load_n(g + i, count, T(0)) - dot_v);
  });
}

template <class T>
void row_log_softmax_backward(const T* g, const T* y, int64_t n, T sum_g, T* out) {
  using V = typename Vec<T>::V;
  const V sum_v = splat<V>(sum_g);
  map_row<T>(n, out, [&](int64_t i, int64_t count) {
    V neg_sum_times_p = exp(load_n(y + i, count, T(0))) * -sum_v;
    return load_n(g + i, count, T(0)) + neg_sum_times_p;
  });
}
