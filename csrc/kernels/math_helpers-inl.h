// Test-only entry point: the vector exp / log / log1p applied elementwise, so the tests can sweep
// each target's helpers against a higher-precision reference (tests/test_math_helpers.py).
// Contract and error bounds: simd/math-inl.h's. Tail lanes are padded with 1 (a valid argument
// of every function), then discarded.
// Requires simd/vector-inl.h and simd/math-inl.h (arch/target.inc includes them first).
#pragma once

#include "kernels/row_stores-inl.h"

template <class T>
void apply_math_function(MathFunction f, const T* x, int64_t n, T* out) {
  using V = typename Vec<T>::V;
  map_row<T>(n, out, [&](int64_t i, int64_t count) {
    V v = load_n(x + i, count, T(1));
    switch (f) {
      case MathFunction::kExp: return exp(v);
      case MathFunction::kExpNonpositive: return exp_nonpositive(v);
      case MathFunction::kExpSumTerm: return exp_nonpositive_sum_term(v);
      case MathFunction::kLog: return log(v);
      case MathFunction::kLog1p: return log1p(v);
      case MathFunction::kLog1pUnitInterval: return log1p_unit_interval(v);
      case MathFunction::kTanh:
      case MathFunction::kSechSquared: {
        V tanh_v, sech_squared;
        tanh_and_sech_squared(v, tanh_v, sech_squared);
        return f == MathFunction::kTanh ? tanh_v : sech_squared;
      }
    }
    return v;
  });
}
