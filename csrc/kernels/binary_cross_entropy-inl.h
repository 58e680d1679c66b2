// Binary cross-entropy with logits, loss and gradient in one pass, written once for every ISA.
//
// Contract: binary_cross_entropy_with_logits(span, n, want_loss) over n >= 0 contiguous elements
// of each operand of the span (kernels/kernel_table.h: null pointers mean no weight, no
// pos_weight, no upstream gradient, no loss or gradient output); any logits, including +-inf
// (the limits below) and nan (propagated). Returns the sum of the losses (plain, and scaled by
// 2^-kLossSumScaleExponent for double) when they are asked for. Error bound: for y in [0, 1] and
// w, p >= 0, each loss within 4 eps of exact where the exact loss is normal, and within one
// subnormal ulp (never 0 where the exact value is not) below; see the precision policy.
//
// Per element, with x the logit, y the target, p the pos_weight (1 when absent), w the weight:
//   torch:  loss = w [(1 - y) x - (1 + (p - 1) y) log_sigmoid(x)]
// With e = exp(-|x|) <= 1, t = log1p(e) = softplus(-|x|) and a = (1 - y) + p y, this is
//   x >= 0:  loss = w [(1 - y) |x| + a t]        grad = w [(1 - y) - a q]
//   x <  0:  loss = w [p y |x|     + a t]        grad = w [a q - p y]
// where q = e / (1 + e) = sigmoid(-|x|), and at either sign the second derivative (the Hessian's
// diagonal, on request) is w a q (1 - q), within 8 eps (tiny ones rounded once, as the loss).
// For y in [0, 1] and w, p >= 0 every term of the loss is non-negative: no cancellation, so a loss of 4e-18 (x = -40, y = 0) keeps full relative
// precision where the textbook form returns 0. a is formed as (1 - y) + p y, two non-negative
// terms, rather than torch's 1 + (p - 1) y, which cancels for p < 1; without pos_weight a is
// exactly 1 (not recomputed, so targets outside [0, 1] keep torch's value). The gradient never
// forms sigmoid(x) - y for x >= 0 (1 - tiny - 1 loses the tiny), and is exact at x = 0.
//
// Infinite logits take the limit: (1 - y) |x| with y = 1 is 0, not 0 * inf = nan (likewise
// p y |x| with y = 0); torch returns nan there.
//
// Precision policy: lanes hold the data type; the sum of the losses is accumulated in double
// lanes. The linear term is w p y |x| (x < 0) or w (1 - y) |x|: the target's factor (<= 1 for y
// in [0, 1]) meets |x| first, then whichever of w and p keeps the product in range (w first when
// w <= 1, p first otherwise), so it neither overflows where the loss does not nor forms a
// subnormal product of two factors (p y) before |x| scales it back up. Where an element's loss
// (or gradient) is the softplus term alone and tiny, it is formed at scale 2^S from e * 2^S and
// rounded once, so below the normal range it is within one subnormal ulp and never 0 where the
// exact value is not.
//
// Memory: one pass reading x, y (and weights), writing the loss and/or the gradient.
//
// Requires simd/vector-inl.h, simd/math-inl.h and kernels/kernel_table.h (arch/target.inc
// includes them first).
#pragma once

#include "kernels/lane_sums-inl.h"

// One vector of elements (lanes i .. i + count - 1 of the span): the operands and the terms that
// the loss, the gradient and the Hessian share. Tail lanes hold x = -inf, y = 0: a loss of
// exactly 0 (the limit), so sums need no mask.
template <class T, bool kPosWeight, bool kWeight, bool kTinyPath>
struct BinaryCrossEntropyLanes {
  using V = typename Vec<T>::V;
  using Mask = typename Lanes<V>::Int;

  V abs_x;
  V e_scaled;  // e * 2^S, normal even where e is subnormal or 0 (|x| beyond ~87 float, ~708 double)
  V e;         // exp(-|x|), rounded once from e_scaled on the tiny path
  V y, one_minus_y, p, p_y, a, w, a_w;
  // The linear term's factors: the target's, and p where x < 0. A zero factor makes the term 0,
  // also at |x| = inf (the limit).
  V target_factor, p_factor;
  Mask nonnegative;  // false for nan: the x < 0 branch, which propagates it
  Mask no_linear;
  Mask softplus_only_and_tiny;
  bool any_tiny;  // almost never set (|x| beyond ~41 with the linear term 0): skip its blends

  BinaryCrossEntropyLanes(const BinaryCrossEntropySpan<T>& span, int64_t i, int64_t count) {
    const V one = splat<V>(T(1));
    const V x = load_n(span.input + i, count, -T(__builtin_inf()));
    y = load_n(span.target + i, count, T(0));
    abs_x = abs(x);
    e_scaled = kTinyPath ? exp_nonpositive_sum_term(-abs_x) : splat<V>(T(0));
    e = kTinyPath ? e_scaled * splat<V>(sum_unscale<T>()) : exp_nonpositive(-abs_x);
    nonnegative = x >= 0;
    one_minus_y = one - y;
    p = kPosWeight ? load_n(span.pos_weight + i, count, T(1)) : one;
    p_y = kPosWeight ? p * y : y;
    a = kPosWeight ? one_minus_y + p_y : one;
    w = kWeight ? load_n(span.weight + i, count, T(1)) : one;
    a_w = kWeight ? a * w : a;
    target_factor = select(nonnegative, one_minus_y, y);
    p_factor = kPosWeight ? select(nonnegative, one, p) : one;
    no_linear = target_factor == 0;
    if (kPosWeight) no_linear = no_linear | (p_factor == 0);
    if (kWeight) no_linear = no_linear | (w == 0);
    // e < 2^-60: log1p(e) and e / (1 + e) round to e in either precision.
    softplus_only_and_tiny = no_linear & (e_scaled < splat<V>(sum_scale<T>() * T(0x1p-60)));
    any_tiny = kTinyPath && any_lane(softplus_only_and_tiny);
  }

  // a w e times `factor` for the softplus-only tiny elements, rounded once. Double data: from
  // a w e 2^S. Float data: in double lanes, since with a large a w (a pos_weight or weight up to
  // the float range) a w e is a float for |x| beyond where e 2^S leaves float's normal range (it
  // is 0 below -131) and a w itself, or a w e 2^S, may overflow float; double's exp is exact here
  // down to |x| ~ 1060. (Double data keeps a limit there: a w e is then nonzero only for
  // a w > e^319, and comes out 0.)
  V tiny_of(V factor) const {
    if constexpr (sizeof(T) == 4) {
      using W = typename Vec<T>::Wide;
      auto wide = [](V v) { return __builtin_convertvector(v, W); };
      const W a_wide = kPosWeight ? wide(one_minus_y) + wide(p) * wide(y) : splat<W>(1);
      const W a_w_wide = kWeight ? a_wide * wide(w) : a_wide;
      return __builtin_convertvector(a_w_wide * exp_nonpositive(wide(-abs_x)) * wide(factor), V);
    } else {
      // Unscaled first where a w > 1 (exact there), so that a w e 2^S cannot overflow.
      const V one = splat<V>(T(1)), unscale = splat<V>(sum_unscale<T>());
      return select(a_w > one, ((a_w * unscale) * e_scaled) * factor, ((a_w * e_scaled) * factor) * unscale);
    }
  }

  // w [(1 - y) |x| + a t] (x >= 0) or w [p y |x| + a t] (x < 0), t = log1p(e).
  V loss() const {
    const V t = log1p_unit_interval(e);
    const V base = target_factor * abs_x;
    V linear = base;
    if constexpr (kWeight && kPosWeight) {
      linear = select(w > splat<V>(T(1)), (base * p_factor) * w, (base * w) * p_factor);
    } else if constexpr (kWeight) {
      linear = base * w;
    } else if constexpr (kPosWeight) {
      linear = base * p_factor;
    }
    linear = select(no_linear, splat<V>(T(0)), linear);
    V loss = kPosWeight || kWeight ? mul_add(a_w, t, linear) : linear + t;
    if (any_tiny) loss = select(softplus_only_and_tiny, tiny_of(splat<V>(T(1))), loss);
    return loss;
  }

  // q = e / (1 + e) = sigmoid(-|x|).
  V q() const { return e / (splat<V>(T(1)) + e); }

  // scale w [(1 - y) - a q] (x >= 0) or scale w [a q - p y] (x < 0).
  V gradient(V scale) const {
    const V aq = kPosWeight ? a * q() : q();
    const V unweighted = select(nonnegative, one_minus_y - aq, aq - p_y);
    V grad = kWeight ? unweighted * scale * w : unweighted * scale;
    // -a q w (x >= 0) or a q w (x < 0) there, rounded once.
    if (any_tiny) grad = select(softplus_only_and_tiny, tiny_of(select(nonnegative, -scale, scale)), grad);
    return grad;
  }

  // d2 loss / dx2 = w a sigmoid(x) sigmoid(-x) = w a q (1 - q): q <= 1/2, so 1 - q in [1/2, 1]
  // has no cancellation at any |x| (sigmoid(x) (1 - sigmoid(x)) would lose it all for x >> 0).
  // Where e < 2^-60, q (1 - q) rounds to e: a w e times the scale, formed at scale 2^S and
  // rounded once (tiny_of), so it stays nonzero far below the normal range.
  V hessian(V scale) const {
    const V q_value = q();
    V hessian = (kPosWeight ? a * q_value : q_value) * (splat<V>(T(1)) - q_value) * scale;
    if (kWeight) hessian = hessian * w;
    const auto tiny_curvature = e_scaled < splat<V>(sum_scale<T>() * T(0x1p-60));  // false for nan
    if (any_lane(tiny_curvature)) hessian = select(tiny_curvature, tiny_of(scale), hessian);
    return hessian;
  }
};

// Stores v into lanes i .. i + count - 1 of out.
template <class T>
inline void store_lanes(T* out, typename Vec<T>::V v, int64_t count) {
  if (count == Vec<T>::kLanes) store(out, v); else store_partial(out, v, count);
}

// The sum of step(i, count)'s losses over n elements, in double lanes (plain, and scaled by
// 2^-kLossSumScaleExponent for double data: the mean of losses whose plain sum overflows).
template <class T, bool kLoss, class Step>
LossSum sum_of_span_losses(Step step, int64_t n) {
  using V = typename Vec<T>::V;
  constexpr int kLanes = Vec<T>::kLanes;
  constexpr bool kScaledSum = kLoss && sizeof(T) == 8;
  const V down = splat<V>(T(0x1p-128));
  static_assert(kLossSumScaleExponent == 128, "the scale above");
  f64v sum_low{}, sum_high{}, scaled_sum{};
  auto accumulate = [&](V loss) {
    if (!kLoss) return;
    add_widened(loss, sum_low, sum_high);
    if (kScaledSum) add_widened(loss * down, scaled_sum, scaled_sum);
  };
  int64_t i = 0;
  // Float: four vectors of losses are added in float (two roundings, <= 1 eps for losses >= 0)
  // before one widening, which would cost a tenth of the loop; where that sum overflows (losses
  // near the float range) each is widened instead. (Double needs no widening, and its scaled sum
  // must see each loss before any addition can overflow.)
  if constexpr (sizeof(T) == 4) {
    for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
      const V loss0 = step(i, kLanes), loss1 = step(i + kLanes, kLanes), loss2 = step(i + 2 * kLanes, kLanes),
              loss3 = step(i + 3 * kLanes, kLanes);
      const V four = (loss0 + loss1) + (loss2 + loss3);
      if (!kLoss || all_finite(four)) {
        accumulate(four);
      } else {
        accumulate(loss0), accumulate(loss1), accumulate(loss2), accumulate(loss3);
      }
    }
  }
  for (; i + kLanes <= n; i += kLanes) accumulate(step(i, kLanes));
  if (i < n) accumulate(step(i, n - i));
  const double plain = kLoss ? horizontal_add(sum_low + sum_high) : 0.0;
  return {plain, kScaledSum ? horizontal_add(scaled_sum) : plain * 0x1p-128};
}

// What one call computes, over n contiguous elements of each operand.
template <class T, bool kPosWeight, bool kWeight, bool kLoss, bool kGrad, bool kHessian = false>
LossSum binary_cross_entropy_span(const BinaryCrossEntropySpan<T>& span, int64_t n) {
  using V = typename Vec<T>::V;
  // The tiny path matters only where a rounded e is multiplied further; the plain loss is e
  // itself there, rounded once already.
  constexpr bool kTinyPath = kPosWeight || kWeight || kGrad;
  using Elements = BinaryCrossEntropyLanes<T, kPosWeight, kWeight, kTinyPath>;
  auto step = [&](int64_t i, int64_t count) {
    const Elements lanes(span, i, count);
    V loss = splat<V>(T(0));
    if constexpr (kLoss) {
      loss = lanes.loss();
      if (span.loss) store_lanes(span.loss + i, loss, count);
    }
    if constexpr (kGrad) {
      V scale = splat<V>(span.grad_scale);
      if (span.upstream) scale = scale * load_n(span.upstream + i, count, T(0));
      store_lanes(span.grad + i, lanes.gradient(scale), count);
      if constexpr (kHessian) store_lanes(span.hessian + i, lanes.hessian(scale), count);
    }
    return loss;
  };
  return sum_of_span_losses<T, kLoss>(step, n);
}

// The instance for a call's options: pos_weight, weight, and which outputs (the loss is computed
// when it is stored or summed; backward-only calls skip its log1p; the Hessian comes with both).
template <class T, bool kPosWeight, bool kWeight>
LossSum binary_cross_entropy_outputs(const BinaryCrossEntropySpan<T>& span, int64_t n, bool want_loss) {
  if (!span.grad) return binary_cross_entropy_span<T, kPosWeight, kWeight, true, false>(span, n);
  if (span.hessian) return binary_cross_entropy_span<T, kPosWeight, kWeight, true, true, true>(span, n);
  if (!want_loss) return binary_cross_entropy_span<T, kPosWeight, kWeight, false, true>(span, n);
  return binary_cross_entropy_span<T, kPosWeight, kWeight, true, true>(span, n);
}

template <class T>
LossSum binary_cross_entropy_with_logits(const BinaryCrossEntropySpan<T>& span, int64_t n, bool want_loss) {
  if (span.pos_weight) {
    return span.weight ? binary_cross_entropy_outputs<T, true, true>(span, n, want_loss)
                       : binary_cross_entropy_outputs<T, true, false>(span, n, want_loss);
  }
  return span.weight ? binary_cross_entropy_outputs<T, false, true>(span, n, want_loss)
                     : binary_cross_entropy_outputs<T, false, false>(span, n, want_loss);
}
