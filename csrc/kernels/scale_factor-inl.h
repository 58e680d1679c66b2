// A factor held in double (a softmax's 1 / total, a cross-entropy weight times it), applied to
// lanes without underflow or overflow on the way.
//
// Contract: split_factor<T>(s, e) represents s * 2^e for any finite s >= 0 and any e with
// s * 2^e within T's range or below it; apply_factor(x, f) is x * s * 2^e rounded once where
// s * 2^e (its mantissa rounded to T) is a normal number of T, and otherwise rounded at most
// twice, the last rounding into the subnormal grid (never flushed to 0). Requires
// simd/vector-inl.h (arch/target.inc includes it first).
//
// Forms: where the factor is a normal number of T, one multiplication by it: one rounding.
// Otherwise s = m * 2^k (m in [0.5, 1)) multiplies as (x * m) * 2^k (a tiny class weight times
// 2^-kSumScale would flush to 0 as one float); without AVX-512's scalef the power of two is
// applied as two normal factors 2^k1 * 2^k2. With scalef (kHasScalef) the split form is taken
// always: scalef produces subnormal results at full speed, where a plain multiplication into the
// subnormals takes a microcode assist (tiny softmax outputs, padding lanes of short rows).
#pragma once

template <class T>
struct SplitFactor {
  bool is_whole;
  typename Vec<T>::V whole, mantissa, exponent, first_power, second_power;
};

constexpr bool kAlwaysSplitFactor = kHasScalef;

// 2^k for k in double's normal exponent range, from the bits (no libm call).
inline double power_of_two_double(int k) {
  const uint64_t bits = (uint64_t)(k + 1023) << 52;
  double p;
  std::memcpy(&p, &bits, sizeof p);
  return p;
}

// s * 2^extra_exponent, without forming the product in double where it may be out of range there.
// (Called per row: short rows feel a libm call.)
template <class T>
inline SplitFactor<T> split_factor(double s, int extra_exponent) {
  using V = typename Vec<T>::V;
  const double smallest_normal = sizeof(T) == 4 ? 0x1p-126 : 0x1p-1022;
  const double largest = sizeof(T) == 4 ? 0x1.fffffep127 : 0x1.fffffffffffffp1023;
  // Rounding s 2^e to T rounds its mantissa, as the split form below does, wherever it is normal.
  const double scaled = s * power_of_two_double(extra_exponent);
  if (!kAlwaysSplitFactor && scaled >= smallest_normal && scaled <= largest) {
    const V zero = splat<V>(0);
    return {true, splat<V>((T)scaled), zero, zero, zero, zero};
  }
  int k = 0;
  const T mantissa = (T)::frexp(s, &k);
  k += extra_exponent;
  const int first_exponent = k / 2, second_exponent = k - first_exponent;
  return {false, splat<V>(0), splat<V>(mantissa), splat<V>((T)k), splat<V>((T)::ldexp(1.0, first_exponent)),
          splat<V>((T)::ldexp(1.0, second_exponent))};
}

template <class T>
inline typename Vec<T>::V apply_split_factor(typename Vec<T>::V x, const SplitFactor<T>& f) {
  if constexpr (kHasScalef) {
    return scale_by_power_of_two(x * f.mantissa, f.exponent);
  } else {
    return x * f.mantissa * f.first_power * f.second_power;
  }
}

template <class T>
inline typename Vec<T>::V apply_factor(typename Vec<T>::V x, const SplitFactor<T>& f) {
  return f.is_whole ? x * f.whole : apply_split_factor(x, f);
}

// Calls body(apply), apply(x) = x times the factor, with the choice of form made once, outside
// the loop that body runs.
template <class T, class Body>
inline void with_factor(const SplitFactor<T>& f, Body body) {
  using V = typename Vec<T>::V;
  if (f.is_whole) {
    const V whole = f.whole;
    body([whole](V x) { return x * whole; });
  } else {
    body([&f](V x) { return apply_split_factor(x, f); });
  }
}
