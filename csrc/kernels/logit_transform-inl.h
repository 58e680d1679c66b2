// Cross-entropy's logit options as a per-row transform (drivers/cross_entropy.cpp): the logits
// z'' = softcap tanh(z / softcap) / temperature that the fused pass (softmax_cross_entropy-inl.h)
// then reads as its row, and the chain factor d z'' / d z = sech^2(z / softcap) / temperature
// that its gradient is multiplied by.
//
// Contract: logit_transform_range(transform, begin, end) (LogitTransform, kernels/kernel_table.h)
// for source[begin, end) contiguous, softcap > 0 finite or 0 (no cap: out = source / temperature,
// chain untouched and may be null), temperature > 0 finite. -inf becomes -softcap / temperature
// (chain factor 0), nan stays nan.
//
// Precision policy: under softcap, in lanes of the data type: u = z (1 / softcap), tanh(u) and
// sech^2(u) by simd/math-inl.h's tanh_and_sech_squared (4 and 6 ULP, relative near 0 and, for
// sech^2, near saturation without 1 - tanh^2's cancellation), times softcap / temperature and
// 1 / temperature: z'' within 6 ULP and the chain factor within 8 ULP of exact (float data: a
// double-lane evaluation, rounded once, cost twice the time of the whole fused pass). Without a
// cap, z / temperature rounded once (float: through z (1 / temperature) in double, so but for
// double-rounding ties; double: a division).
//
// Memory passes: the fused pass (softmax_cross_entropy-inl.h) calls it one chunk ahead of its
// own reading: one read of the row from memory (which the pass prefetches three chunks on, so
// its arithmetic overlaps the memory reads), one write of out and chain (per-thread rows, in
// cache when the pass reads them).
//
// Requires simd/vector-inl.h and simd/math-inl.h (arch/target.inc includes them first).
#pragma once

// One vector of logit_transform_range: x[i, i + count) in lanes of T (simd/math-inl.h's
// tanh_and_sech_squared), z'' = (softcap / T) tanh(x (1 / softcap)) and the chain factor
// (1 / T) sech^2(x (1 / softcap)); the constants splat once by the caller.
template <class T, bool kPartial>
LOGITLOSS_ALWAYS_INLINE void transform_vector(const T* x, int64_t i, int64_t count, typename Vec<T>::V inverse_cap,
                                              typename Vec<T>::V cap_over_temperature,
                                              typename Vec<T>::V inverse_temperature, T* out, T* factor) {
  using V = typename Vec<T>::V;
  V tanh_u, sech_squared;
  tanh_and_sech_squared((kPartial ? load_n(x + i, count, T(0)) : load(x + i)) * inverse_cap, tanh_u, sech_squared);
  const V capped = tanh_u * cap_over_temperature, chain_factor = sech_squared * inverse_temperature;
  if constexpr (kPartial) {
    store_partial(out + i, capped, count);
    store_partial(factor + i, chain_factor, count);
  } else {
    store(out + i, capped);
    store(factor + i, chain_factor);
  }
}

// out[begin, end) and, under softcap, chain[begin, end) from source[begin, end) (begin a multiple of
// the vector width: the fused pass calls it chunk by chunk).
template <class T>
LOGITLOSS_FLATTEN void logit_transform_range(const LogitTransform<T>& transform, int64_t begin, int64_t end) {
  using V = typename Vec<T>::V;
  using W = typename Vec<T>::Wide;
  constexpr int kLanes = Vec<T>::kLanes;
  const T* x = transform.source;
  const double temperature = transform.temperature, inverse_temperature = 1.0 / temperature;
  if (transform.softcap == 0) {
    // x / T rounded once: for float as x (1 / T) in double lanes, within double's rounding of the
    // exact quotient (so the correctly rounded float but for the rarest double-rounding ties); for
    // double a division (the product would round twice: 1 ULP of z'' costs |z''| ULP of a tiny loss).
    const W scale = splat<W>(inverse_temperature), divisor = splat<W>(temperature);
    map_row<T>(end - begin, transform.out + begin, [&](int64_t i, int64_t count) {
      const W wide = __builtin_convertvector(load_n(x + begin + i, count, T(0)), W);
      return __builtin_convertvector(sizeof(T) == 4 ? wide * scale : wide / divisor, V);
    });
    return;
  }
  // z / softcap as z (1 / softcap) and softcap tanh / T as (softcap / T) tanh: a rounding each
  // (and one of each constant), next to the tanh's own few ULP.
  const V inverse_cap = splat<V>((T)(1.0 / transform.softcap)),
          cap_over_temperature = splat<V>((T)(transform.softcap / temperature)),
          inverse_temperature_v = splat<V>((T)inverse_temperature);
  int64_t i = begin;
  for (; i + kLanes <= end; i += kLanes) {
    transform_vector<T, false>(x, i, kLanes, inverse_cap, cap_over_temperature, inverse_temperature_v, transform.out,
                               transform.chain);
  }
  if (i < end) {
    transform_vector<T, true>(x, i, end - i, inverse_cap, cap_over_temperature, inverse_temperature_v, transform.out,
                              transform.chain);
  }
}

// The Hessian's diagonal with respect to z from the fused pass's, which is with respect to z''
// (kernels/hessian_terms-inl.h: h''_c = S p_c (1 - p_c), S including z-loss's 2 z_loss w g lse),
// by the chain rule for z'' = g(z) elementwise:
//   d2 loss / d z_c2 = (d2 loss / d z''_c2) g'(z_c)^2 + (d loss / d z''_c) g''(z_c)
// with z-loss's remaining curvature 2 z_loss w g p_c^2 (d2 lse^2 / d z''_c2 = 2 p_c^2 + 2 lse
// p_c (1 - p_c)) added to h''. Under a cap g' = chain_c = sech^2(u) / T and g'' = -(2 / softcap)
// tanh(u) chain_c = -(2 T / softcap^2) z''_c chain_c, so with grad_c = (d loss / d z''_c) chain_c
// (the final gradient, target lane included):
//   h_c = (h''_c + square_scale p_c^2) chain_c^2 - curvature z''_c grad_c,  curvature = 2 T / softcap^2;
// without a cap g' = 1 / T is a constant (`factor`, chain null) and g'' = 0 (curvature 0).
// p_c = exp(z''_c - max) / total in lanes of T (normwise: the p^2 term is at most square_scale).
// Error: a few roundings per element on top of h''_c and grad_c's, and the cap's term cancels
// against the first only as the exact values do (normwise bound, docs/accuracy.md).
template <class T>
LOGITLOSS_FLATTEN void row_transformed_hessian(T* hessian, const T* grad, const T* transformed, const T* chain,
                                               int64_t n, double max, double total, double square_scale, double factor,
                                               double curvature) {
  using V = typename Vec<T>::V;
  const V max_v = splat<V>((T)max), inverse_total = splat<V>((T)(1.0 / total)),
          square_scale_v = splat<V>((T)square_scale), factor_v = splat<V>((T)factor),
          curvature_v = splat<V>((T)curvature);
  map_row<T>(n, hessian, [&](int64_t i, int64_t count) {
    const V z = load_n(transformed + i, count, T(0));
    const V p = exp_nonpositive(z - max_v) * inverse_total;
    V h = mul_add(square_scale_v * p, p, load_n(hessian + i, count, T(0)));
    if (chain) {
      const V c = load_n(chain + i, count, T(0));
      // Under a cap z'' is finite (-inf becomes -softcap / T): no 0 * inf.
      return mul_add(-curvature_v * z, load_n(grad + i, count, T(0)), h * (c * c));
    }
    return h * factor_v;
  });
}
