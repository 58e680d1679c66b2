// Vector exp, log, log1p and tanh, written once for float and double lanes.
//
// Contract (tested by tests/test_math_helpers.py with a >= 10^6-point sweep per target, and at
// and beyond the ends of each range by tests/test_exp_range.py):
//   exp(x)    all x; max error <= 2 ULP (measured ~1). Results below the normal range are rounded
//             once into the subnormal grid, never flushed; exp(x) = +0 once the exact value rounds
//             to 0 (x < -103.97 float / -745.13 double, down to -max and -inf), +inf on overflow
//             (x > 88.73 / 709.79, up to +inf), nan -> nan.
//   exp_nonpositive(x)  x <= 0, and -inf: as exp, without the overflow path. Every x below the
//             underflow threshold, however far (x - max of two finite numbers can be -2 max, or
//             overflow to -inf), gives exactly +0. Positive x is outside the contract.
//   exp_nonpositive(hi, lo)  exp(hi + lo) for hi + lo = a - b formed error-free
//             (difference_with_error, which keeps |lo| <= 2^-10): the same bound and the same +0
//             at and below the threshold, whatever hi is.
//   exp_nonpositive_sum_term(x), (hi, lo)  exp(x) 2^kSumScale (the terms of the kernels' sums,
//             kernels/lane_sums-inl.h), for x >= kSumTermLow (-131 float / -1060 double), where
//             the term is a normal number: within 2 ULP, as exp. Below kSumTermLow (where the term
//             would leave the normal range) and at -inf the term is exactly +0: at most
//             exp(-131) = 2^-189 (float) / 2^-1529 (double) of the row's largest term, far below
//             half an ULP of any result. nan -> nan.
//             The kernels only ever call the exp family on x - max <= 0 (any such difference, -inf
//             included); on AVX-512 float the nonpositive forms take a table-driven route
//             (exp_sixteenths_*), with the same contract.
//   log(x)    x > 0 including subnormals; <= 2 ULP (measured ~1). log(0) = -inf, log(x < 0) = nan,
//             log(+inf) = +inf.
//   log1p(x)  x > -1; <= 2 ULP (measured ~1). log1p(-1) = -inf, below -1 nan, tiny x exact.
//   log1p_unit_interval(e)  e in [0, 1] (nan -> nan): log1p without the general range's
//             special cases, for softplus terms log1p(exp(-|x|)); <= 2 ULP (measured ~1).
//   tanh_and_sech_squared(u, t, s)  all u: t = tanh(u) within 4 ULP and s = sech^2(u) =
//             1 - tanh^2(u) within 6 ULP (tests/test_math_tanh.py, against mpmath), both relative
//             wherever they are normal: near 0 tanh keeps its relative accuracy (an odd series,
//             t = u + u^3 P(u^2)); near saturation s is 4 e / (1 + e)^2, e = exp(-2|u|), never
//             1 - t^2 (which cancels). Past |u| = 43.6 (float) / 354 (double), where e leaves the
//             normal range, s < 2^-124 / 2^-1020 is 4 e with e rounded into the subnormals (within
//             4 subnormal ULP), and 0 past exp's underflow. +-inf: +-1 and 0; nan: nan.
//
// The exp pieces are always inlined: a call would pass its vectors through memory, which costs
// more than the function in a short row's kernel.
//
// Polynomials are truncated Taylor series with enough terms that truncation stays below a tenth
// of an ULP on the reduced range; the error budget is rounding in the evaluation.

template <class V>
struct MathConstants;

template <>
struct MathConstants<f32v> {
  // ln 2 split so that n * ln2_hi is exact for |n| < 2^8: Cody-Waite reduction.
  static float ln2_hi() { return 0x1.62e4p-1f; }
  static float ln2_lo() { return 0x1.7f7d1cp-20f; }
  static float log2e() { return 0x1.715476p+0f; }
  static float round_magic() { return 0x1.8p23f; }  // 1.5 * 2^23: adding it rounds to an integer
  // exp underflows to 0 well above this, and exp(x) 2^kSumScale is still a normal number here
  // (2^-125): kSumTermLow. Every exp helper clamps its argument to it before range reduction, so
  // the reduction's integers stay small whatever the argument.
  static float exp_clamp_low() { return -131.0f; }
  static float exp_clamp_high() { return 100.0f; }   // and overflows to inf well below this
  static constexpr int kExpTerms = 6;                // polynomial degree for |r| <= ln2/2
  static constexpr int kLogTerms = 4;                // atanh series terms in z = s^2, s <= 0.172
  static float sqrt_half() { return 0x1.6a09e6p-1f; }
  static float smallest_normal() { return 0x1p-126f; }
  static float subnormal_scale() { return 0x1p24f; }
  static constexpr int kSubnormalShift = 24;
  // Sums of exp(x - max) are taken as sums of exp(x - max) * 2^kSumScale: terms that would be
  // subnormal (or round to 0) alone stay normal, so a sum of them rounds once, at the end.
  static constexpr int kSumScale = 64;
};

template <>
struct MathConstants<f64v> {
  static double ln2_hi() { return 0x1.62e42fee00000p-1; }
  static double ln2_lo() { return 0x1.a39ef35793c76p-33; }
  static double log2e() { return 0x1.71547652b82fep+0; }
  static double round_magic() { return 0x1.8p52; }
  static double exp_clamp_low() { return -1060.0; }  // as float's: the sum term is 2^-1017 here
  static double exp_clamp_high() { return 1000.0; }
  static constexpr int kExpTerms = 13;
  static constexpr int kLogTerms = 10;
  static double sqrt_half() { return 0x1.6a09e667f3bcdp-1; }
  static double smallest_normal() { return 0x1p-1022; }
  static double subnormal_scale() { return 0x1p54; }
  static constexpr int kSubnormalShift = 54;
  static constexpr int kSumScale = 512;
};

template <>
struct MathConstants<f64w> : MathConstants<f64v> {};

// 2^n for integer-valued n in the normal exponent range, built from the bits.
template <class V>
inline V exp2_integer(typename Lanes<V>::Int n) {
  using UInt = typename Lanes<V>::UInt;
  using Traits = Lanes<V>;
  return (V)(((UInt)n + (typename Traits::UBits)Traits::kExponentBias) << Traits::kMantissaBits);
}

// exp(r) for |r| <= ln2/2 by Horner's rule: each step's rounding is damped by |r| <= 0.35 in
// the next, so the result is within about one rounding of exact.
// Series coefficients, computed at compile time (never at run time: tiny rows would pay for it
// on every call).
template <int N>
struct InverseFactorials {
  double value[N + 1];
  constexpr InverseFactorials() : value() {
    value[0] = 1.0;
    for (int k = 1; k <= N; ++k) value[k] = value[k - 1] / k;
  }
};

template <int N>
struct AtanhSeries {  // 2 / (2i + 1), i = 0..N
  double value[N + 1];
  constexpr AtanhSeries() : value() {
    for (int i = 0; i <= N; ++i) value[i] = 2.0 / (2 * i + 1);
  }
};

// Coefficients of the polynomial for exp(r), |r| <= ln2/2, lowest degree first. float: a
// near-minimax fit of degree 6 (relative error 2.3e-9 = 0.04 ULP before rounding; one degree
// below the Taylor series it replaces); double: the Taylor series to degree 13 (truncation below
// 0.05 ULP).
template <class V>
struct ExpPolynomial {
  static constexpr int kDegree = MathConstants<V>::kExpTerms;
  static constexpr InverseFactorials<kDegree> coefficients{};
  static constexpr double at(int k) { return coefficients.value[k]; }
};

template <>
struct ExpPolynomial<f32v> {
  static constexpr int kDegree = 6;
  static constexpr double at(int k) {
    constexpr double c[] = {1.0,
                            0x1.0000009afe8fep+0,
                            0x1.fffffb9f84c92p-2,
                            0x1.5553ffd8bfab7p-3,
                            0x1.55585dca105cdp-5,
                            0x1.127528d9ceeb8p-7,
                            0x1.6ada77a042aedp-10};
    return c[k];
  }
};

// 2^k as a compile-time double (k >= 0).
constexpr double power_of_two(int k) {
  double p = 1.0;
  for (int i = 0; i < k; ++i) p *= 2.0;
  return p;
}

// exp(r) * 2^kScale. Coefficients scaled by a power of two hold exactly the scaled values of every
// Horner step, so the result is bit for bit 2^kScale times the unscaled one, at no cost.
template <class V, int kScale = 0>
LOGITLOSS_ALWAYS_INLINE V exp_reduced(V r) {
  using P = ExpPolynomial<V>;
  constexpr double scale = power_of_two(kScale);
  V p = splat<V>((lane_t<V>)(P::at(P::kDegree) * scale));
#pragma GCC unroll 16
  for (int k = P::kDegree - 1; k >= 0; --k) p = mul_add(p, r, splat<V>((lane_t<V>)(P::at(k) * scale)));
  return p;
}

// x = n ln2 + r, |r| <= ln2/2, n by the round-to-nearest magic constant. n * ln2_hi is exact
// (ln2_hi has few bits), so r is exact up to the ln2_lo term. Returns r; n through the argument.
template <class V>
LOGITLOSS_ALWAYS_INLINE V reduce_exp_argument(V x, V& n) {
  using C = MathConstants<V>;
  n = mul_add(x, splat<V>(C::log2e()), splat<V>(C::round_magic())) - C::round_magic();
  const V r = mul_add(n, splat<V>(-C::ln2_hi()), x);
  return mul_add(n, splat<V>(-C::ln2_lo()), r);
}

// 2^(j/16), j = 0..15, correctly rounded to float (exp_sixteenths_sum_term).
constexpr float kExp2Sixteenths[16] = {
    0x1p+0f,         0x1.0b5586p+0f, 0x1.172b84p+0f, 0x1.2387a6p+0f, 0x1.306fe0p+0f, 0x1.3dea64p+0f,
    0x1.4bfdaep+0f,  0x1.5ab07ep+0f, 0x1.6a09e6p+0f, 0x1.7a1148p+0f, 0x1.8ace54p+0f, 0x1.9c4918p+0f,
    0x1.ae89fap+0f,  0x1.c199bep+0f, 0x1.d5818ep+0f, 0x1.ea4afap+0f};

// `term` where x is in the sum term's range, +0 below it (exp_clamp_low, where exp(x) 2^kSumScale
// leaves the normal range) and at -inf, nan where x is nan. The clamp keeps the integer exponent
// arithmetic exact, but the term it gives there, exp(clamp) 2^S, is not the term of x: a stale
// floor that a large factor (a pos_weight, a weight) would bring back into view, so it is replaced
// by the 0 the term rounds to at the clamp's scale. A nan must be passed on explicitly: the
// integer add into the exponent field moves a nan's payload bits into its exponent and can leave
// a finite number (R's NA, float32 0x7fc00001), which would hide the nan from the row's sum.
// Both at once, one subtraction more than the zeroing alone: outside the range (the comparison is
// false for nan) the result is clamp_below(x, low) - low, which is low - low = +0 below it and nan
// for nan (clamp_below passes a nan through; the compiler shares it with the caller's clamp).
template <class V>
LOGITLOSS_ALWAYS_INLINE V below_sum_term_range(V x, V term) {
  const V low = splat<V>(MathConstants<V>::exp_clamp_low());
  return select(x >= low, term, clamp_below(x, low) - low);
}

// Float exp by a table, where a 16-entry lookup is one instruction (kHasLookup16):
//   x = (k/16) ln2 + r, k = round(16 x / ln2), |r| <= ln2/32,
//   exp(x) = 2^(k >> 4) * 2^((k & 15)/16) * exp(r),
// the middle factor a table entry. On |r| <= ln2/32 a cubic (Taylor; truncation 0.08 ULP)
// replaces the degree-6 polynomial of the reduction to |r| <= ln2/2: per vector 7 operations on
// the multiply pipes instead of 9, and those pipes bound the exp loops (of a Zen 4 core's four
// vector pipes two take multiplies; the other two take the adds, integer and permute work).
// Error: the entry's rounding (0.5 ULP) and the final fused multiply-add's (0.5 ULP); measured
// 1.05 ULP at most (tests/test_math_helpers.py, exp_nonpositive and exp_sum_term).
// kHasLow: exp(x + lo) for the low part lo of an error-free difference (difference_with_error),
// added to r rather than applied as a factor after: |lo| <= ULP(x)/2 is tiny next to |r|, so the
// add costs one rounding of r (about 0.01 ULP of the result).

// Reduces x (clamped, <= 0) as above: returns r, and in `bits` the word 0x4B400000 + k (the
// rounding constant's bits plus k, two's complement).
template <class V, bool kHasLow>
LOGITLOSS_ALWAYS_INLINE V reduce_exp_argument_sixteenths(V x, V lo, typename Lanes<V>::UInt& bits) {
  using C = MathConstants<V>;
  static_assert(sizeof(lane_t<V>) == 4, "float lanes");
  const V rounded = mul_add(x, splat<V>(0x1.715476p+4f), splat<V>(C::round_magic()));  // 16 / ln2
  const V k = rounded - C::round_magic();
  // ln2/16 = 0x1.62ep-5 (12 bits) + 0x1.0bfbe8p-19: |k| < 2^12 makes k times the first exact.
  V r = mul_add(k, splat<V>(-0x1.62ep-5f), x);
  if constexpr (kHasLow) r += lo;
  r = mul_add(k, splat<V>(-0x1.0bfbe8p-19f), r);
  bits = (typename Lanes<V>::UInt)rounded;
  return r;
}

// exp(r) - 1 for |r| <= ln2/32.
template <class V>
LOGITLOSS_ALWAYS_INLINE V expm1_sixteenth(V r) {
  return mul_add(mul_add(splat<V>(1.0f / 6), r, splat<V>(0.5f)), r, splat<V>(1.0f)) * r;
}

// The table: entry j is the bits of 2^(j/16) 2^kScale, less j << 19 if kLessIndex.
template <class V, int kScale, bool kLessIndex>
LOGITLOSS_ALWAYS_INLINE typename Lanes<V>::UInt exp2_sixteenths_table() {
  static constexpr uint32_t kTable[16] = {
#define LOGITLOSS_ENTRY(j) \
  __builtin_bit_cast(uint32_t, kExp2Sixteenths[j]) + ((uint32_t)kScale << 23) - (kLessIndex ? (uint32_t)(j) << 19 : 0u)
      LOGITLOSS_ENTRY(0),  LOGITLOSS_ENTRY(1),  LOGITLOSS_ENTRY(2),  LOGITLOSS_ENTRY(3),
      LOGITLOSS_ENTRY(4),  LOGITLOSS_ENTRY(5),  LOGITLOSS_ENTRY(6),  LOGITLOSS_ENTRY(7),
      LOGITLOSS_ENTRY(8),  LOGITLOSS_ENTRY(9),  LOGITLOSS_ENTRY(10), LOGITLOSS_ENTRY(11),
      LOGITLOSS_ENTRY(12), LOGITLOSS_ENTRY(13), LOGITLOSS_ENTRY(14), LOGITLOSS_ENTRY(15)};
#undef LOGITLOSS_ENTRY
  typename Lanes<V>::UInt table;
  std::memcpy(&table, kTable, sizeof table);
  return table;
}

// exp(x + lo) * 2^kSumScale, x <= 0: 2^(k >> 4) goes into the table entry's exponent field as an
// integer add, exact because the clamp keeps the result >= 2^-126, a normal number (|lo| <= 2^-10
// moves r by at most that). With the
// entry less j << 19, adding k << 19 (k = 16 (k >> 4) + j) adds exactly (k >> 4) << 23; the
// rounding constant's bits, shifted left 19, leave the word.
template <class V, bool kHasLow>
LOGITLOSS_ALWAYS_INLINE V exp_sixteenths_sum_term(V x, V lo) {
  using C = MathConstants<V>;
  typename Lanes<V>::UInt bits;
  const V r = reduce_exp_argument_sixteenths<V, kHasLow>(clamp_below(x, splat<V>(C::exp_clamp_low())), lo, bits);
  const V scale = (V)(lookup16(exp2_sixteenths_table<V, C::kSumScale, true>(), bits) + (bits << 19));
  return below_sum_term_range(x, mul_add(scale, expm1_sixteenth(r), scale));  // scale * exp(r), rounded once
}

// exp(x + lo), x <= 0, results below the normal range rounded once into the subnormals: the
// entry times exp(r) (in [0.98, 2.04]) scaled by 2^(k >> 4) with scale_by_power_of_two.
template <class V, bool kHasLow>
LOGITLOSS_ALWAYS_INLINE V exp_sixteenths_nonpositive(V x, V lo) {
  using C = MathConstants<V>;
  using Int = typename Lanes<V>::Int;
  typename Lanes<V>::UInt bits;
  const V r = reduce_exp_argument_sixteenths<V, kHasLow>(clamp_below(x, splat<V>(C::exp_clamp_low())), lo, bits);
  const V entry = (V)lookup16(exp2_sixteenths_table<V, 0, false>(), bits);
  // k >> 4: k's 22 low bits moved to the top (the constant's bits leave), then an arithmetic shift.
  const V n = __builtin_convertvector((Int)(bits << 10) >> 14, V);
  return scale_by_power_of_two(mul_add(entry, expm1_sixteenth(r), entry), n);
}

// exp(x) * 2^kSumScale for x <= 0 (and -inf): the terms of the reductions' sums. The result is
// always a normal number (no subnormal range to round into) and the scaling is exact, so this is
// as accurate as exp itself. nan propagates.
template <class V>
LOGITLOSS_ALWAYS_INLINE V exp_nonpositive_sum_term(V x) {
  if constexpr (kHasLookup16 && sizeof(lane_t<V>) == 4) return exp_sixteenths_sum_term<V, false>(x, V{});
  using C = MathConstants<V>;
  using Traits = Lanes<V>;
  using UInt = typename Traits::UInt;
  // reduce_exp_argument, keeping the rounding sum: its bits are the magic constant's plus n (two's
  // complement, |n| < 2^22), so shifted into the exponent field they are n's (the constant's low
  // bits are 0 and leave), which saves the conversion of n to integers that the zeroing below
  // costs back.
  const V xc = clamp_below(x, splat<V>(C::exp_clamp_low()));
  const V rounded = mul_add(xc, splat<V>(C::log2e()), splat<V>(C::round_magic()));
  const V n = rounded - C::round_magic();
  const V r = mul_add(n, splat<V>(-C::ln2_lo()), mul_add(n, splat<V>(-C::ln2_hi()), xc));
  // exp(r) * 2^kSumScale (scaled coefficients) times 2^n, by adding n to the exponent field:
  // n >= the clamp keeps the product a normal number, so the add is the exact product. Integer
  // work, off the multiply pipes the polynomial keeps busy (AVX-512's scalef has half an FMA's
  // throughput on Zen 4). A nan lane's payload bits shift into the exponent: below_sum_term_range
  // puts the nan back.
  const UInt scaled = (UInt)exp_reduced<V, C::kSumScale>(r);
  return below_sum_term_range(x, (V)(scaled + ((UInt)rounded << Traits::kMantissaBits)));
}

// exp(hi + lo) * 2^kSumScale for hi + lo = x - max formed error-free (difference_with_error):
// the sum term of x - max with no rounding of the difference in it.
// |lo| <= 2^-10 (difference_with_error) keeps exp(hi) (1 + lo) within an ULP of exp(hi + lo)
// squared-small terms aside, and 0 where exp(hi) is.
template <class V>
LOGITLOSS_ALWAYS_INLINE V exp_nonpositive_sum_term(V hi, V lo) {
  if constexpr (kHasLookup16 && sizeof(lane_t<V>) == 4) return exp_sixteenths_sum_term<V, true>(hi, lo);
  const V e = exp_nonpositive_sum_term(hi);
  return mul_add(e, lo, e);
}

// exp for x <= 0 (and -inf), the only arguments the reductions produce (x - max): no overflow
// path; nan propagates through the arithmetic (the clamp keeps it), at no extra cost.
template <class V>
LOGITLOSS_ALWAYS_INLINE V exp_nonpositive(V x) {
  if constexpr (kHasLookup16 && sizeof(lane_t<V>) == 4) return exp_sixteenths_nonpositive<V, false>(x, V{});
  using C = MathConstants<V>;
  // 1. exp(x) rounds to 0 well above the clamp; clamping keeps the scaling in range (and turns
  //    -inf into an ordinary argument). A nan compares false and passes through.
  // 2. x = n ln2 + r, |r| <= ln2/2.
  V n;
  const V r = reduce_exp_argument(clamp_below(x, splat<V>(C::exp_clamp_low())), n);
  // 3. exp(x) = exp(r) * 2^n, rounded once.
  return scale_by_power_of_two(exp_reduced(r), n);
}

// exp(hi + lo) for hi + lo = x - max formed error-free (difference_with_error).
template <class V>
LOGITLOSS_ALWAYS_INLINE V exp_nonpositive(V hi, V lo) {
  if constexpr (kHasLookup16 && sizeof(lane_t<V>) == 4) return exp_sixteenths_nonpositive<V, true>(hi, lo);
  const V e = exp_nonpositive(hi);
  return mul_add(e, lo, e);
}

// exp on all of R; nan -> nan, overflow -> inf, underflow rounded once into the subnormals.
template <class V>
inline V exp(V x) {
  using C = MathConstants<V>;
  using Int = typename Lanes<V>::Int;
  // Clamp so the integer arithmetic cannot overflow (results there are 0 / inf); nan takes the
  // path of 0 and is restored at the end.
  V xc = x < C::exp_clamp_low() ? splat<V>(C::exp_clamp_low()) : x;
  xc = xc > C::exp_clamp_high() ? splat<V>(C::exp_clamp_high()) : xc;
  xc = x != x ? splat<V>(0) : xc;
  V n;
  const V r = reduce_exp_argument(xc, n);
  // exp(r) * 2^n1 * 2^n2 with n1 = n/2, n2 = n - n1: both factors normal, the first product
  // exact, the second rounded once (into the subnormals, or to inf).
  Int n_int = __builtin_convertvector(n, Int);
  Int n1 = n_int >> 1;
  Int n2 = n_int - n1;
  V result = exp_reduced(r) * exp2_integer<V>(n1) * exp2_integer<V>(n2);
  return x != x ? x : result;
}

// log(1 + f) + k ln2 + correction, for f in [sqrt(1/2) - 1, sqrt(2) - 1]. With s = f / (2 + f),
// log(1 + f) = 2 atanh(s) = f - (f^2/2 - s (f^2/2 + R)), R = sum_{i>=1} 2 s^(2i) / (2i + 1):
// the leading f is exact and everything else is a small correction, so the result is within
// about one rounding of exact.
template <class V, int kTerms = MathConstants<V>::kLogTerms>
inline V log_reduced(V k, V f, V correction) {
  using C = MathConstants<V>;
  constexpr AtanhSeries<kTerms> c{};
  V s = f / (f + 2);
  V z = s * s;
  V series = splat<V>((lane_t<V>)c.value[kTerms]);
#pragma GCC unroll 16
  for (int i = kTerms - 1; i >= 1; --i) series = mul_add(series, z, splat<V>((lane_t<V>)c.value[i]));
  V R = series * z;
  V half_f_squared = f * f * (lane_t<V>)0.5;
  V small = half_f_squared - (mul_add(s, half_f_squared + R, k * C::ln2_lo()) + correction);
  return k * C::ln2_hi() + (f - small);
}

// Splits positive finite u into 2^k * m with m in [sqrt(1/2), sqrt(2)); returns m - 1 (exact).
template <class V>
inline V split_exponent(V u, V& k) {
  using C = MathConstants<V>;
  using Int = typename Lanes<V>::Int;
  using Traits = Lanes<V>;
  using Bits = typename Traits::Bits;
  // Subnormals: scale into the normal range first.
  auto is_subnormal = u < C::smallest_normal();
  V scaled = select(is_subnormal, u * C::subnormal_scale(), u);
  V k_adjust = select(is_subnormal, splat<V>(-(lane_t<V>)C::kSubnormalShift), splat<V>(0));
  // Offsetting the bits by (1 - sqrt(1/2)) moves the exponent boundary to sqrt(1/2).
  const Bits one_bits = (Bits)Traits::kExponentBias << Traits::kMantissaBits;
  V sqrt_half = splat<V>(C::sqrt_half());
  Bits sqrt_half_bits;
  lane_t<V> sh = sqrt_half[0];
  std::memcpy(&sqrt_half_bits, &sh, sizeof sh);
  // Unsigned: a nan, infinite or negative lane (its result replaced by the caller) may carry any
  // bits, and the offset added to them must wrap, not overflow.
  using UInt = typename Traits::UInt;
  using UBits = typename Traits::UBits;
  const UInt bits = (UInt)scaled + (UBits)(one_bits - sqrt_half_bits);
  const Int exponent = (Int)(bits >> Traits::kMantissaBits) - Traits::kExponentBias;
  const UBits mantissa_mask = ((UBits)1 << Traits::kMantissaBits) - 1;
  V m = (V)((bits & mantissa_mask) + (UBits)sqrt_half_bits);
  k = __builtin_convertvector(exponent, V) + k_adjust;
  return m - 1;
}

template <class V>
inline V log(V x) {
  V k;
  V f = split_exponent(x, k);
  V result = log_reduced(k, f, splat<V>(0));
  const lane_t<V> inf = __builtin_inf();
  result = select(x == 0, splat<V>(-inf), result);
  result = select(x == inf, x, result);
  result = select((x < 0) | (x != x), splat<V>(__builtin_nan("")), result);
  return result;
}

template <class V>
inline V log1p(V x) {
  // u = fl(1 + x); the rounding error c = x - (u - 1) is exact and enters as log(u + c) ~
  // log(u) + c / u, folded into the small correction term.
  V u = x + 1;
  V k;
  V f = split_exponent(u, k);
  V c = (x - (u - 1)) / u;
  V result = log_reduced(k, f, c);
  const lane_t<V> inf = __builtin_inf();
  result = select(u == 0, splat<V>(-inf), result);
  result = select(x == inf, x, result);
  result = select((u < 0) | (x != x), splat<V>(__builtin_nan("")), result);
  // Tiny x: u == 1 and log1p(x) = x to within rounding; return x itself (also keeps -0).
  result = select(u == 1, x, result);
  return result;
}

#if defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64
// log1p_unit_interval for float lanes on AVX-512, without a division: e is split at the nearest
// of 32 points e_j = j / 31 (two-register permutes look up per-point constants), and
//   log1p(e) = log1p(e_j) + log1p(r),  r = (e - e_j) / (1 + e_j),  |r| <= 1/62,
// an identity for any e_j. e - e_j is exact (Sterbenz: e is within e_j / 2 of e_j for j >= 1, and
// e_0 = 0), r takes one rounding of itself (~1 ULP of r, a small part of the result for j >= 1;
// all of it, relative, for j = 0, where r = e exactly), log1p(e_j) is held as two floats, and the
// series to r^5 truncates at r^6 / 6 < 2e-12.
inline f32v log1p_unit_interval_avx512(f32v e) {
  // e_j = float(j / 31); 1 / (1 + e_j) rounded to float; log1p(e_j) = high + low, each rounded
  // to float (computed with mpmath at 200 bits).
  static constexpr float kPoint[32] = {
      0x0p+0f, 0x1.08421p-5f, 0x1.08421p-4f, 0x1.8c6318p-4f,
      0x1.08421p-3f, 0x1.4a5294p-3f, 0x1.8c6318p-3f, 0x1.ce739cp-3f,
      0x1.08421p-2f, 0x1.294a52p-2f, 0x1.4a5294p-2f, 0x1.6b5ad6p-2f,
      0x1.8c6318p-2f, 0x1.ad6b5ap-2f, 0x1.ce739cp-2f, 0x1.ef7bdep-2f,
      0x1.08421p-1f, 0x1.18c632p-1f, 0x1.294a52p-1f, 0x1.39ce74p-1f,
      0x1.4a5294p-1f, 0x1.5ad6b6p-1f, 0x1.6b5ad6p-1f, 0x1.7bdef8p-1f,
      0x1.8c6318p-1f, 0x1.9ce73ap-1f, 0x1.ad6b5ap-1f, 0x1.bdef7cp-1f,
      0x1.ce739cp-1f, 0x1.def7bep-1f, 0x1.ef7bdep-1f, 0x1p+0f,
  };
  static constexpr float kInverse[32] = {
      0x1p+0f, 0x1.fp-1f, 0x1.e0f83ep-1f, 0x1.d2d2d2p-1f,
      0x1.c57c58p-1f, 0x1.b8e38ep-1f, 0x1.acf914p-1f, 0x1.a1af28p-1f,
      0x1.96f97p-1f, 0x1.8cccccp-1f, 0x1.831f38p-1f, 0x1.79e79ep-1f,
      0x1.711dc4p-1f, 0x1.68ba2ep-1f, 0x1.60b60cp-1f, 0x1.590b22p-1f,
      0x1.51b3bep-1f, 0x1.4aaaaap-1f, 0x1.43eb1ap-1f, 0x1.3d70a4p-1f,
      0x1.373738p-1f, 0x1.313b14p-1f, 0x1.2b78c2p-1f, 0x1.25ed0ap-1f,
      0x1.2094f2p-1f, 0x1.1b6db6p-1f, 0x1.1674c6p-1f, 0x1.11a7bap-1f,
      0x1.0d0458p-1f, 0x1.088888p-1f, 0x1.04325cp-1f, 0x1p-1f,
  };
  static constexpr float kLogHigh[32] = {
      0x0p+0f, 0x1.0415d8p-5f, 0x1.001558p-4f, 0x1.7a5c72p-4f,
      0x1.f11814p-4f, 0x1.323db2p-3f, 0x1.6a5aa6p-3f, 0x1.a0f87cp-3f,
      0x1.d62b2p-3f, 0x1.050278p-2f, 0x1.1e4b7ep-2f, 0x1.36f886p-2f,
      0x1.4f10e6p-2f, 0x1.669b76p-2f, 0x1.7d9e96p-2f, 0x1.94203ap-2f,
      0x1.aa25f2p-2f, 0x1.bfb4fap-2f, 0x1.d4d232p-2f, 0x1.e98238p-2f,
      0x1.fdc95ap-2f, 0x1.08d5d8p-1f, 0x1.129688p-1f, 0x1.1c288cp-1f,
      0x1.258d9ap-1f, 0x1.2ec754p-1f, 0x1.37d73ep-1f, 0x1.40bedp-1f,
      0x1.497f6ap-1f, 0x1.521a5cp-1f, 0x1.5a90e2p-1f, 0x1.62e43p-1f,
  };
  static constexpr float kLogLow[32] = {
      0x0p+0f, 0x1.e74444p-33f, 0x1.9f7cccp-33f, -0x1.93bdf6p-30f,
      0x1.38235ep-32f, -0x1.ea8876p-28f, -0x1.f8e2e6p-28f, 0x1.d5d27cp-29f,
      -0x1.b6554ap-28f, 0x1.bae04cp-27f, 0x1.dfb208p-34f, -0x1.6f1efp-27f,
      0x1.97f1p-29f, 0x1.3c9d46p-27f, 0x1.a814c2p-28f, -0x1.3b4aaep-29f,
      0x1.a32cdap-27f, 0x1.d4758ap-28f, 0x1.48298cp-30f, 0x1.0b2e4ap-31f,
      0x1.2e4414p-27f, 0x1.71351ep-26f, -0x1.0bfe96p-26f, -0x1.bb2142p-30f,
      0x1.25fc7p-27f, -0x1.ce9bep-27f, 0x1.ede5c6p-28f, 0x1.a10014p-26f,
      0x1.173044p-27f, 0x1.6d6f7cp-29f, 0x1.ce08bcp-26f, -0x1.05c61p-29f,
  };

  auto lookup = [](const float* table, __m512i index) {
    return (f32v)_mm512_permutex2var_ps(_mm512_loadu_ps(table), index, _mm512_loadu_ps(table + 16));
  };
  // j = round(e * 31) in the low bits of the magic-constant sum (only its low 5 bits are read).
  const __m512i j = (__m512i)mul_add(e, splat<f32v>(31.0f), splat<f32v>(0x1.8p23f));
  const f32v d = e - lookup(kPoint, j);
  const f32v r = d * lookup(kInverse, j);
  f32v series = splat<f32v>(0.2f);
  series = mul_add(series, r, splat<f32v>(-0.25f));
  series = mul_add(series, r, splat<f32v>(0x1.555556p-2f));
  series = mul_add(series, r, splat<f32v>(-0.5f));
  const f32v log1p_r = mul_add(series * r, r, r);
  return lookup(kLogHigh, j) + (log1p_r + lookup(kLogLow, j));
}
#endif

// log1p(e) for e in [0, 1] (and nan): the softplus term log1p(exp(-|x|)), cheaper than log1p (no
// exponent split, no special cases, no correction term). e < 1/2: log1p(e) directly; e >= 1/2:
// ln 2 + log1p(h) with h = (e - 1) / 2 in [-1/4, 0), exact (Sterbenz). Either way the argument
// h of log_reduced is exact, in [-1/4, 1/2), where its series (|s| <= 1/5) is accurate to well
// below an ULP with one more term than log's range needs.

template <class V>
inline V log1p_unit_interval(V e) {
#if defined(__AVX512F__) && LOGITLOSS_VECTOR_BYTES == 64
  if constexpr (sizeof(V) == 64 && sizeof(lane_t<V>) == 4) return log1p_unit_interval_avx512(e);
#endif
  const auto upper = e >= (lane_t<V>)0.5;  // false for nan: nan flows through h
  const V h = select(upper, (e - 1) * (lane_t<V>)0.5, e);
  const V k = select(upper, splat<V>(1), splat<V>(0));
  return log_reduced<V, MathConstants<V>::kLogTerms + 1>(k, h, splat<V>(0));
}

// Floats with as many lanes as an f64v (a half-width vector): a float division, far cheaper than
// a double one, seeds the double reciprocal below.
typedef float f32half __attribute__((vector_size(LOGITLOSS_VECTOR_BYTES / 2)));

// 1 / s for s in [1, 2]. Float lanes: a division (0.5 ULP). Double lanes: the float reciprocal
// (relative error 2^-24) refined by two Newton steps (error squared each: below 2^-96 before the
// last rounding), within an ULP of double; a double division has a quarter of the throughput.
template <class V>
LOGITLOSS_ALWAYS_INLINE V reciprocal_one_to_two(V s) {
  const V one = splat<V>(1);
  if constexpr (sizeof(lane_t<V>) == 4) {
    return one / s;
  } else {
    static_assert(sizeof(V) == sizeof(f64v), "one native double vector");
    V r = __builtin_convertvector(f32half{} + 1.0f / __builtin_convertvector(s, f32half), V);
    r = mul_add(r, mul_add(-s, r, one), r);
    return mul_add(r, mul_add(-s, r, one), r);
  }
}

// Taylor coefficients of tanh(a) / a in powers of a^2.
inline constexpr double kTanhSeries[] = {
    1.0, -0.3333333333333333, 0.13333333333333333, -0.05396825396825397, 0.021869488536155203,
    -0.008863235529902197, 0.003592128036572481, -0.0014558343870513183, 0.000590027440945586,
    -0.00023912911424355248, 9.691537956929451e-05, -3.927832388331683e-05, 1.5918905069328964e-05,
    -6.451689215655431e-06, 2.6147711512907546e-06, -1.0597268320104654e-06, 4.294911078273806e-07,
    -1.7406618963571648e-07, 7.054636946400968e-08};

// Float lanes: P(s) ~ (tanh(a) - a) / a^3 for s = a^2 in [0, 1/4], a degree-4 least-squares fit
// weighted by s on Chebyshev nodes (with its float coefficients: tanh within 0.07 ULP before the
// evaluation's roundings; Taylor needs degree 6).
inline constexpr float kTanhFloatFit[] = {-0x1.55555p-2f, 0x1.110f1ep-3f, -0x1.b98a2ep-5f, 0x1.5ced46p-6f,
                                          -0x1.b389bcp-8f};

// tanh and sech^2 (contract above). |u| < 1/2: t = a + a^3 P(a^2), P the fit above (float) or the
// series to a^37 (double: truncation below 2^-62), the leading a exact and the rest a correction
// of at most a twelfth of it; s = 1 - t^2 (t^2 < 0.22: no cancellation).
// |u| >= 1/2: e = exp(-2|u|) <= 0.37, t = (1 - e) / (1 + e) (1 - e >= 0.63: no cancellation),
// s = 4 e / (1 + e)^2. Most arguments of a logit cap sit well inside it (|u| < 1/2 is |z| < 15
// for a cap of 30): a vector of them takes the series alone, less than half the work of the exp
// path.
template <class V>
LOGITLOSS_ALWAYS_INLINE void tanh_and_sech_squared(V u, V& tanh_u, V& sech_squared) {
  using T = lane_t<V>;
  constexpr bool kFloat = sizeof(T) == 4;
  constexpr int kTerms = kFloat ? (int)(sizeof(kTanhFloatFit) / sizeof(kTanhFloatFit[0])) : 18;
  const T* coefficients = kFloat ? (const T*)kTanhFloatFit : (const T*)(kTanhSeries + 1);
  const V one = splat<V>(1), u2 = u * u;
  const auto small = u2 < splat<V>((T)0.25);  // |u| < 1/2 (false for nan)
  V tanh_small = u;
  if (any_lane(small)) {
    // The series is odd: taken of u itself (its sign comes with it).
    V series = splat<V>(coefficients[kTerms - 1]);
    for (int k = kTerms - 2; k >= 0; --k) series = mul_add(series, u2, splat<V>(coefficients[k]));
    tanh_small = mul_add(u * u2, series, u);
    // (-0 + +0 is +0: u's sign bit put back, a no-op for every other u, whose tanh has its sign.)
    using Int = typename Lanes<V>::Int;
    tanh_small = (V)((Int)tanh_small | ((Int)u & (Int)splat<V>((T)-0.0)));
  }
  if (!any_lane(small == 0)) {  // every lane small: the common case under a cap
    tanh_u = tanh_small;
    sech_squared = mul_add(-tanh_small, tanh_small, one);
    return;
  }
  const V e = exp_nonpositive(splat<V>((T)-2) * abs(u));  // 0 for |u| = inf; nan stays nan
  const V inverse_sum = reciprocal_one_to_two(one + e);     // nan stays nan
  const V tanh_a = (one - e) * inverse_sum;
  sech_squared = splat<V>((T)4) * e * inverse_sum * inverse_sum;
  // tanh is odd: u's sign bit onto tanh |u|.
  using Int = typename Lanes<V>::Int;
  const Int sign = (Int)splat<V>((T)-0.0);
  tanh_u = (V)(((Int)u & sign) | (Int)tanh_a);
  if (any_lane(small)) {
    tanh_u = select(small, tanh_small, tanh_u);
    sech_squared = select(small, mul_add(-tanh_small, tanh_small, one), sech_squared);
  }
}
