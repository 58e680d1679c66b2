// The fused softmax pass, which cross-entropy's loss and gradient ride on: the statistics of a
// row, its target terms, and the output (a softmax, or a cross-entropy gradient) in one read of
// the logits. A plain softmax is the case with no target terms.
//
// Derivation. Per position (a row of C logits z: the class axis at one (n, d1..dk)), with
// p = softmax(z), L = log sum_c exp(z_c - max) = log(count) + log1p(others / count) and
// -log p_c = (max - z_c) + L, torch's cross-entropy loss is sum_c v_c (-log p_c) for the weighted
// target distribution v (w the class weights, 1 without; e the label smoothing; y the target):
//   index target y:        v_c = (1 - e) w_y [c == y] + w_c e / C
//   probability target y:  v_c = w_c ((1 - e) y_c + e / C)
// With
//   gap = sum_c v_c (max - z_c),   mass = sum_c v_c,
// loss = gap + mass L: every term of gap is >= 0 for v >= 0 (no cancellation), and L keeps full
// relative precision when the max dominates. The gradient is g (mass p_c - v_c), g the upstream
// gradient (divided by the mean's denominator).
// The kernel sees the part of v that is the same affine form in every class (TargetTerms,
// kernels/kernel_table.h):
//   v_c = weight_c (target_scale target_c + target_offset)
//   (index targets: target_scale 0, target_offset e / C; probability targets: 1 - e and e / C)
// and writes out_c = (scale_base + scale_per_mass mass) p_c - bias v_c. For an index target the
// driver (drivers/cross_entropy.cpp) adds the single lane (1 - e) w_y [c == y] itself: its loss
// (1 - e) w_y (max - z_y + L) and, through scale_base = g (1 - e) w_y, its share of the gradient;
// it then rewrites the target lane, where p_y - 1 cancels, as -(count - 1 + others) / total when
// z_y is the max. So scale_per_mass = bias = g, and scale_base = g (1 - e) w_y (index targets)
// or 0 (probability targets).
//
// Storage: x and out are float, double or bfloat16 (S; BFloat16Kernels): bfloat16 is read into
// float lanes, its terms held in a float32 staging row, its output rounded once in pass 3, and its
// x - max formed plainly (kCompensatedFor, small_rows-inl.h).
// Contract: row_softmax_fused (see TypedKernels) for x[0..n) contiguous, n >= 1, any values;
// `out` meaningful only when the max is finite and others not nan (the caller checks). The
// statistics are row_stats(x, nullptr, n, kStatsCompensated)'s (row_statistics-inl.h).
// Precision policy: exp(x - max) with x - max formed error-free (compensated); the target terms
// v (max - x) and v summed in lanes of the data type per block (a block whose lane sum overflows
// is redone in double), float probability targets in double lanes (v_c is subnormal in float
// for targets near 0). Error budget per output element: exp 1 ULP + the TwoSum fold + one
// rounding for the scale (kernels/scale_factor-inl.h) + one for the subtraction of bias v.
//
// Memory passes: pass 1 and 2 per chunk as row_stats (row_statistics-inl.h), storing
// exp(x - chunk reference) 2^kSumScale to the output (or the staging buffer when the output is
// streamed); the target terms are taken in pass 2 where they cannot overflow (gap_fusable), else
// in a pass of their own over the chunk (from L1) before pass 2; pass 3 rescales the stored
// terms into the output once the row's total is known; with TargetTerms::hessian, pass 3 writes
// the Hessian's diagonal from the same stored terms first (kernels/hessian_terms-inl.h: one more
// output stream, no other read of x); with TargetTerms::chain (the logit options' d z'' / d z),
// pass 3 multiplies each output element by its factor as it stores it (one more read, from cache:
// the output still streams out once).
//
// Requires simd/vector-inl.h, simd/math-inl.h and kernels/kernel_table.h (arch/target.inc
// includes them first).
#pragma once

#include "kernels/row_statistics-inl.h"
#include "kernels/row_stores-inl.h"
#include "kernels/scale_factor-inl.h"
#include "kernels/small_rows-inl.h"
#include "kernels/lane_sums-inl.h"
#include "kernels/hessian_terms-inl.h"
#include "kernels/logit_transform-inl.h"

// Whether pass 2 may take the target terms against reference `max`: class-index targets whose
// v_c are at most 1/C (terms.bounded_mass: smoothing times the largest |weight| at most 1), and
// max - x finite for every finite x (max far below the dtype's largest value; max - (-largest)
// then rounds to at most the largest). Then no lane sum can overflow: a lane holds at most
// C/16 + 1 terms of at most (1/C) * largest per block, two lanes are added, and the blocks are
// summed in double. Otherwise the separate pass (chunk_target_gap), which redoes an overflowing
// block in double.
template <class T>
inline bool gap_fusable(const TargetTerms<T>& terms, T max) {
  const T bound = sizeof(T) == 4 ? T(0x1p100) : T(0x1p900);
  return !terms.target && terms.bounded_mass && max - max == 0 && max < bound;
}

// The target terms of one chunk (before pass 2, which may overwrite x when out == x):
// gap += sum v_c (max - x_c), mass += sum v_c, v_c = w_c (target_scale y_c + target_offset).
template <class S, bool kHasTarget, bool kHasWeight>
LOGITLOSS_FLATTEN void chunk_target_gap_impl(const S* x, int64_t n, compute_t<S> max, const TargetTerms<compute_t<S>>& terms,
                                             int64_t offset, double& gap, double& mass) {
  using T = compute_t<S>;
  using V = typename Vec<T>::V;
  using W = typename Vec<T>::Wide;
  constexpr int kLanes = Vec<T>::kLanes;
  const V max_v = splat<V>(max), target_scale = splat<V>(terms.target_scale),
          target_offset = splat<V>(terms.target_offset);
  const T* target = kHasTarget ? terms.target + offset : nullptr;
  const T* weight = kHasWeight ? terms.weight + offset : nullptr;
  auto target_mass = [&](int64_t i, int64_t lanes) {
    V v = kHasTarget ? mul_add(target_scale, load_n(target + i, lanes, T(0)), target_offset) : target_offset;
    return kHasWeight ? v * load_n(weight + i, lanes, T(0)) : v;
  };
  // v * (max - x) in double lanes: mass_times_gap (kernels/lane_sums-inl.h).
  W gap_double = splat<W>(0), mass_double = splat<W>(0);  // rare paths: tails, overflow, probabilities
  WideSum gap_blocks, mass_blocks;
  int64_t i = 0;
  if constexpr (kHasTarget && sizeof(T) == 4) {
    // Probability targets: v_c = w_c (target_scale y_c + target_offset) is subnormal in float for
    // targets near 0, where it would lose its relative precision (and v_c (max - x_c) far more of
    // the loss's). Form v_c and its products in double lanes instead.
    auto wide = [](V v) { return __builtin_convertvector(v, W); };
    auto wide_mass = [&](int64_t at, int64_t lanes) {
      W v = wide(target_scale) * wide(load_n(target + at, lanes, T(0))) + wide(target_offset);
      return kHasWeight ? v * wide(load_n(weight + at, lanes, T(0))) : v;
    };
    const W lane = __builtin_convertvector(lane_index<V>(), W);
    for (; i < n; i += kLanes) {
      const int64_t lanes = n - i < kLanes ? n - i : kLanes;
      const W v = lanes == kLanes ? wide_mass(i, kLanes) : select(lane < (double)lanes, wide_mass(i, lanes), splat<W>(0));
      gap_double += v * (wide(max_v) - wide(load_n(x + i, lanes, max)));
      mass_double += v;
    }
  }
  while (i + kLanes <= n) {
    const int64_t block_start = i;
    // Four independent accumulators: one chain of dependent fma would be latency-bound.
    V gap0 = splat<V>(0), gap1 = gap0, gap2 = gap0, gap3 = gap0, mass0 = gap0, mass1 = gap0;
    for (int64_t b = 0; b < kBlock / 2 && i + 4 * kLanes <= n; ++b, i += 4 * kLanes) {
      const V v0 = target_mass(i, kLanes), v1 = target_mass(i + kLanes, kLanes), v2 = target_mass(i + 2 * kLanes, kLanes),
              v3 = target_mass(i + 3 * kLanes, kLanes);
      gap0 = mul_add(v0, max_v - load(x + i), gap0);
      gap1 = mul_add(v1, max_v - load(x + i + kLanes), gap1);
      gap2 = mul_add(v2, max_v - load(x + i + 2 * kLanes), gap2);
      gap3 = mul_add(v3, max_v - load(x + i + 3 * kLanes), gap3);
      mass0 += v0 + v1;
      mass1 += v2 + v3;
    }
    if (i == block_start) {  // fewer than four vectors left
      for (; i + kLanes <= n; i += kLanes) {
        const V v = target_mass(i, kLanes);
        gap0 = mul_add(v, max_v - load(x + i), gap0);
        mass0 += v;
      }
    }
    gap0 = (gap0 + gap1) + (gap2 + gap3);
    mass0 += mass1;
    const auto finite = abs(gap0) < splat<V>((T)__builtin_inf());  // false for nan (horizontal_max may drop one)
    if (any_lane(finite == 0)) {
      // An infinite (or nan) partial sum: max - x may have overflowed the dtype (logits of opposite
      // signs near its limits) although the loss is finite. Redo the block in double.
      gap0 = splat<V>(0);
      for (int64_t j = block_start; j < i; j += kLanes) {
        gap_double += mass_times_gap(__builtin_convertvector(target_mass(j, kLanes), W), __builtin_convertvector(max_v, W),
                                __builtin_convertvector(load(x + j), W));
      }
    }
    gap_blocks.add(gap0);
    mass_blocks.add(mass0);
  }
  if (i < n) {
    const int64_t lanes = n - i;
    const V v = select(lane_index<V>() < (typename Lanes<V>::Bits)lanes, target_mass(i, lanes), splat<V>(0));
    gap_double += mass_times_gap(__builtin_convertvector(v, W), __builtin_convertvector(max_v, W),
                            __builtin_convertvector(load_partial(x + i, lanes, max), W));
    mass_double += __builtin_convertvector(v, W);
  }
  gap += horizontal_sum(gap_double) + gap_blocks.total();
  mass += horizontal_sum(mass_double) + mass_blocks.total();
}

template <class S>
inline void chunk_target_gap(const S* x, int64_t n, compute_t<S> max, const TargetTerms<compute_t<S>>& terms, int64_t offset,
                             double& gap, double& mass) {
  if (terms.target) {
    if (terms.weight) chunk_target_gap_impl<S, true, true>(x, n, max, terms, offset, gap, mass);
    else chunk_target_gap_impl<S, true, false>(x, n, max, terms, offset, gap, mass);
  } else {
    if (terms.weight) chunk_target_gap_impl<S, false, true>(x, n, max, terms, offset, gap, mass);
    else chunk_target_gap_impl<S, false, false>(x, n, max, terms, offset, gap, mass);
  }
}

// Calls body(chain), chain(value, i, count) = value times factor[i, i + count) (the logit
// options' chain factor, TargetTerms::chain), or value itself without a factor: the choice made
// once, outside the loops.
template <class T, class Body>
inline void with_chain(const T* factor, Body body) {
  using V = typename Vec<T>::V;
  if (factor) {
    body([factor](V value, int64_t i, int64_t count) { return value * load_n(factor + i, count, T(0)); });
  } else {
    body([](V value, int64_t, int64_t) { return value; });
  }
}

// Pass 3 of row_softmax_fused for one chunk: out = (p * scale - bias * v) chain, p read from `stored`
// (out itself, or the staging buffer when out is streamed).
template <class S, bool kHasTarget, bool kHasWeight, bool kStream, class Chain>
inline void chunk_apply_terms(const compute_t<S>* stored, S* out, int64_t n, const SplitFactor<compute_t<S>>& scale,
                              const TargetTerms<compute_t<S>>& terms, int64_t offset, Chain chain) {
  using T = compute_t<S>;
  using V = typename Vec<T>::V;
  const V target_scale = splat<V>(terms.target_scale), target_offset = splat<V>(terms.target_offset),
          bias = splat<V>(terms.bias);
  const T* target = kHasTarget ? terms.target + offset : nullptr;
  const T* weight = kHasWeight ? terms.weight + offset : nullptr;
  if constexpr (!kHasTarget) {
    // v_c = target_offset w_c: bias * v_c as (bias target_offset) w_c, one fused multiply-add per
    // vector.
    const V bias_offset = splat<V>(terms.bias * terms.target_offset);
    with_factor(scale, [&](auto apply) {
      map_row<S, kStream>(n, out, [&](int64_t i, int64_t count) {
        const V p = apply(load_n(stored + i, count, T(0)));
        return chain(kHasWeight ? mul_add(-bias_offset, load_n(weight + i, count, T(0)), p) : p - bias_offset, i, count);
      });
    });
    return;
  }
  with_factor(scale, [&](auto apply) {
    map_row<S, kStream>(n, out, [&](int64_t i, int64_t count) {
      V v = mul_add(target_scale, load_n(target + i, count, T(0)), target_offset);
      if (kHasWeight) v = v * load_n(weight + i, count, T(0));
      return chain(apply(load_n(stored + i, count, T(0))) - bias * v, i, count);
    });
  });
}

// Pass 3 of row_softmax_fused: the stored terms exp(x - reference) 2^kSumScale of each chunk
// (scratch[2k]: the chunk's reference) rescaled to the output. Runs of chunks with the same
// reference (most of a row shares its max) are written by one call: each call stores its
// unaligned head and tail plainly, and those partial lines amid streamed ones, one per chunk,
// cost 12% of a (4096, 32000) softmax.
// S: the storage type of out (bfloat16: rounded once here, from the float32 terms in `stored`).
template <class S>
void write_fused_output(compute_t<S>* stored, S* out, int64_t n, int64_t chunks, const double* scratch,
                        const FusedStats& result, bool stream, const TargetTerms<compute_t<S>>& terms) {
  using T = compute_t<S>;
  using V = typename Vec<T>::V;
  const SliceStats& row = result.stats;
  const bool has_terms = terms.target_scale != 0 || terms.target_offset != 0;
  const double inverse_total = 1.0 / (row.count + row.others);
  const double out_scale = fused_output_scale(terms, result);
  const ComplementTerms<T> complement = complement_terms<T>(row);
  with_stream_mode(stream, [&](auto mode) {
    constexpr bool kStream = mode;
    for (int64_t k = 0, next = 0; k < chunks; k = next) {
      const double reference = scratch[2 * k];
      for (next = k + 1; next < chunks && scratch[2 * next] == reference;) ++next;
      const int64_t offset = k * kChunk;
      S* chunk_out = out + offset;
      T* chunk_stored = stored + offset;
      const int64_t length = (next * kChunk < n ? next * kChunk : n) - offset;
      // A chunk of nothing but -inf (a masked block) holds exp(-inf - -inf) = nan: its softmax is 0.
      const bool all_masked = reference == -__builtin_inf();
      const SplitFactor<T> scale = split_factor<T>(
          all_masked ? 0.0 : ::exp(reference - row.max) * inverse_total * out_scale, -sum_scale_exponent<T>());
      if (terms.hessian) {  // before the gradient, which may overwrite the stored terms
        write_hessian_run<T>(chunk_stored, terms.hessian + offset, length, all_masked, scale,
                             ::exp(reference - row.max) * sum_unscale<T>(), complement, terms.stream_hessian);
      }
      with_chain(terms.transform && terms.transform->chain ? terms.transform->chain + offset : nullptr, [&](auto chain) {
        if (!has_terms) {
          if (all_masked) {
            map_row<S, kStream>(length, chunk_out, [&](int64_t, int64_t) { return splat<V>(0); });
          } else {
            with_factor(scale, [&](auto apply) {
              map_row<S, kStream>(length, chunk_out, [&](int64_t i, int64_t count) {
                return chain(apply(load_n(chunk_stored + i, count, T(0))), i, count);
              });
            });
          }
          return;
        }
        // A masked chunk's terms are first zeroed (scale 0 on nan would give nan).
        if (all_masked) map_row<T>(length, chunk_stored, [&](int64_t, int64_t) { return splat<V>(0); });
        if (terms.target) {
          if (terms.weight) {
            chunk_apply_terms<S, true, true, kStream>(chunk_stored, chunk_out, length, scale, terms, offset, chain);
          } else {
            chunk_apply_terms<S, true, false, kStream>(chunk_stored, chunk_out, length, scale, terms, offset, chain);
          }
        } else if (terms.weight) {
          chunk_apply_terms<S, false, true, kStream>(chunk_stored, chunk_out, length, scale, terms, offset, chain);
        } else {
          chunk_apply_terms<S, false, false, kStream>(chunk_stored, chunk_out, length, scale, terms, offset, chain);
        }
      });
    }
  });
  if (stream) streaming_fence();
}

// S: the storage type of x and out; the terms are held in the compute type (out itself, or
// staging: always staging when the types differ, bfloat16), and `out` is streamed when `stream`.
// The logit options' transform (terms.transform) comes with float or double data only (bfloat16
// logits with options are widened to float32 by the binding first).
template <class S>
FusedStats row_softmax_fused_impl(const S* x, int64_t n, S* out, double* scratch, compute_t<S>* staging, bool stream,
                                  const TargetTerms<compute_t<S>>& terms) {
  using T = compute_t<S>;
  constexpr bool kSameType = std::is_same_v<S, T>;
  constexpr bool kCompensated = kCompensatedFor<S>;
  const LogitTransform<T>* transform = kSameType ? terms.transform : nullptr;
  if (is_small_row<S>(n)) {
    if constexpr (kSameType) {
      const T* chain = transform ? transform->chain : nullptr;
      if (transform) logit_transform_range(*transform, 0, n);
      const FusedStats small = row_softmax_fused_small_any<S>(x, n, out, terms);
      if (out && chain) {  // a short row: the chain factor in a second pass over it, in L1
        map_row<T>(n, out, [&](int64_t i, int64_t count) { return load_n(out + i, count, T(0)) * load_n(chain + i, count, T(0)); });
      }
      return small;
    } else {
      return row_softmax_fused_small_any<S>(x, n, out, terms);
    }
  }
  // The logit options' transform, one chunk ahead of the pass (chunk_sum reads the next chunk's max);
  // pass 2 then prefetches the transform's source, the row that comes from memory.
  const S* from_memory = x;
  if constexpr (kSameType) {
    if (transform) from_memory = transform->source;
  }
  auto transform_chunk_at = [&](int64_t start) {
    if constexpr (kSameType) {
      if (transform && start < n) logit_transform_range(*transform, start, n - start < kChunk ? n : start + kChunk);
    }
  };
  const bool has_terms = terms.target_scale != 0 || terms.target_offset != 0;
  FusedStats result{{-__builtin_inf(), 0.0, 0.0}, 0.0, 0.0};
  SliceStats& row = result.stats;
  // Passes 1 and 2, chunk by chunk: statistics, target terms, and the terms exp(x - reference)
  // 2^kSumScale stored for pass 3. scratch[2k] = chunk k's reference, scratch[2k + 1] its mass.
  int64_t chunks = 0;
  transform_chunk_at(0);
  NextChunk<S> next = first_chunk<S, false>(x, nullptr, n);
  for (int64_t start = 0; start < n; start += kChunk, ++chunks) {
    const int64_t length = next.n;
    const T max = chunk_reference<T>(next.max, row, start);
    next = chunk_at<S>(x, nullptr, n, start + length);
    transform_chunk_at(start + length);
    scratch[2 * chunks] = (double)max;
    SliceStats chunk{(double)max, 0.0, 0.0};
    T* stored = staging ? staging + start : nullptr;  // scaled in pass 3
    if constexpr (std::is_same_v<S, T>) {
      if (!staging && out) stored = out + start;
    }
    T* const stored_out = out ? stored : nullptr;
    if (has_terms && gap_fusable(terms, max)) {  // the target terms taken in pass 2
      ChunkGap<T> gap{terms.weight ? terms.weight + start : nullptr, terms.target_offset};
      const Prefetch<S> ahead = prefetch_plan(from_memory, n, start);
      if (terms.weight) {
        chunk_sum<S, false, kCompensated, 2>(x + start, nullptr, length, max, stored_out, ahead, chunk.count, chunk.others, next, &gap);
      } else {
        chunk_sum<S, false, kCompensated, 1>(x + start, nullptr, length, max, stored_out, ahead, chunk.count, chunk.others, next, &gap);
      }
      result.gap += gap.gap;
      result.mass += gap.mass;
      scratch[2 * chunks + 1] = gap.mass;
    } else {
      if (has_terms) {
        // Before pass 2 (which may overwrite x). Gaps are taken from a finite reference (the chunk
        // max, or 0 for a chunk of -inf) and moved to the row max below.
        const T reference = max - max == 0 ? max : T(0);
        double mass = 0.0;
        chunk_target_gap(x + start, length, reference, terms, start, result.gap, mass);
        scratch[2 * chunks + 1] = mass;
        result.mass += mass;
      }
      chunk_sum<S, false, kCompensated>(x + start, nullptr, length, max, stored_out, prefetch_plan(from_memory, n, start), chunk.count,
                                chunk.others, next);
    }
    row = start == 0 ? chunk : fold_stats(row, chunk);
  }
  // Each chunk's gap was taken against its reference: moved to the row max,
  // sum v (max - x) = sum v (reference - x) + mass (max - reference).
  if (has_terms) {
    for (int64_t k = 0; k < chunks; ++k) {
      const double reference = scratch[2 * k] - scratch[2 * k] == 0 ? scratch[2 * k] : 0.0;
      if (reference != row.max) result.gap += scratch[2 * k + 1] * (row.max - reference);
    }
  }
  if (out) {
    T* stored = staging;
    if constexpr (std::is_same_v<S, T>) stored = staging ? staging : out;
    write_fused_output<S>(stored, out, n, chunks, scratch, result, stream, terms);
  }
  return result;
}

template <class T>
FusedStats row_softmax_fused(const T* x, int64_t n, T* out, double* scratch, T* staging, const TargetTerms<T>& terms) {
  return row_softmax_fused_impl<T>(x, n, out, scratch, staging, staging != nullptr, terms);
}
