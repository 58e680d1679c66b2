// Row statistics: max, count of the max and sum of exp(x - max) of a contiguous row
// (SliceStats, kernels/kernel_table.h), in chunks, written once for every ISA.
//
// Contract:
//   row_stats(x, weight, n, flags)  x[0..n) contiguous, n >= 1; weight null (all ones) or
//                                   n weights (entries with weight 0 do not take part; the
//                                   kernels' range of weights is the driver's to keep, see
//                                   drivers/softmax_family.cpp). flags: kStatsCompensated forms
//                                   x - max error-free before exp.
//   rows_stats                      row_stats(row, nullptr, n, kStatsPlain) of many rows of one
//                                   length, bitwise (short float rows in lanes: small_rows).
//   chunk_sum                       pass 2 of one chunk, the machinery row_softmax_fused
//                                   (softmax_cross_entropy-inl.h) shares.
// Storage: x is float, double or bfloat16 (S, read into float lanes: simd/bfloat16-inl.h);
// weights, the stored terms and every scalar are the compute type compute_t<S>.
// Valid range: any values: nan anywhere makes `others` nan (nan is ignored by the max, then
// poisons the sum), +inf gives max = inf, an all -inf row max = -inf, count = n. Differences
// x - max of any size (down to -2 max, or -inf where they overflow) give a term of exactly 0
// once below the sum term's range (simd/math-inl.h); the compensated difference's low part is
// clamped (difference_with_error), so it never turns such a term into a stale value or nan.
//
// Precision policy
//   * Lanes hold the data type (float or double). Rows are processed in chunks of kChunk
//     elements; each chunk's lane accumulators are flushed into double, and horizontal sums are
//     taken in double, so a row of any length sums with about the accuracy of a double sum.
//   * exp only ever sees x - max <= 0, max a chunk's reference (chunk_reference); chunks are then
//     combined in double (fold_stats), in order, so results never depend on threads.
//   * Compensated (kStatsCompensated, and always in the fused pass): x - max is formed
//     error-free (TwoSum) and the low part folded back into exp's reduced argument, so exp's
//     own error (~1 ULP) is all that remains, independent of |x - max|.
//   * Maximal terms are counted apart from the others (see SliceStats).
//   * Terms are summed as exp(x - max) 2^kSumScale (kernels/lane_sums-inl.h): no subnormal
//     terms, one rounding where the sum is unscaled.
//   Error: each term within exp's 1 ULP (compensated: independent of |x - max|), summed in lanes
//   of the data type over at most kBlock iterations, then in double.
//
// Memory passes (contiguous row): each chunk is read from memory once, by pass 1 (chunk_max),
// and pass 1 runs inside the previous chunk's pass 2 (NextChunk): pass 2 re-reads its chunk from
// L1 for the sum of exp while it takes the next chunk's max and prefetches, into L2, the chunk
// three ahead (past the end of the row too: for a matrix that is the next rows). Into L2, not L1:
// lines prefetched that far into L1 evict the chunks in use. Chunks are 8 KiB of float (against
// 4 KiB, fewer runs of differently scaled chunks: cross_entropy's gradient 16% faster). Chunks
// share the row's running max as their reference where they can (chunk_reference), so short
// chunks add no exp calls. Measurements behind these choices: docs/performance-notes.md.
//
// Requires simd/vector-inl.h, simd/math-inl.h and kernels/kernel_table.h (arch/target.inc
// includes them first).
#pragma once

#include "kernels/slice_statistics-inl.h"
#include "kernels/small_rows-inl.h"
#include "kernels/lane_sums-inl.h"

constexpr int64_t kChunk = kRowChunk;  // 8 KiB of float, 16 KiB of double

// Pass 1 of a chunk: its max over entries with nonzero weight (nan ignored: a nan shows up in
// pass 2, where exp(nan - max) poisons `others`).
template <class S, bool kWeighted>
LOGITLOSS_FLATTEN compute_t<S> chunk_max(const S* x, const compute_t<S>* weight, int64_t n) {
  using T = compute_t<S>;
  using V = typename Vec<T>::V;
  constexpr int kLanes = Vec<T>::kLanes;
  const T neg_inf = -__builtin_inf();
  auto effective = [&](V xv, V wv) { return kWeighted ? select(wv == 0, splat<V>(neg_inf), xv) : xv; };
  auto load_weight = [&](int64_t i) { return kWeighted ? load(weight + i) : splat<V>(1); };
  // Four independent maxima: one chain of dependent max operations would be latency-bound.
  V max0 = splat<V>(neg_inf), max1 = max0, max2 = max0, max3 = max0;
  int64_t i = 0;
  if constexpr (!kWeighted) {  // in any order (load_pair_any_order): a max does not depend on it
    for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
      V x0, x1, x2, x3;
      load_pair_any_order(x + i, x0, x1);
      load_pair_any_order(x + i + 2 * kLanes, x2, x3);
      max0 = max_ignoring_nan(max0, x0);
      max1 = max_ignoring_nan(max1, x1);
      max2 = max_ignoring_nan(max2, x2);
      max3 = max_ignoring_nan(max3, x3);
    }
  }
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    max0 = max_ignoring_nan(max0, effective(load(x + i), load_weight(i)));
    max1 = max_ignoring_nan(max1, effective(load(x + i + kLanes), load_weight(i + kLanes)));
    max2 = max_ignoring_nan(max2, effective(load(x + i + 2 * kLanes), load_weight(i + 2 * kLanes)));
    max3 = max_ignoring_nan(max3, effective(load(x + i + 3 * kLanes), load_weight(i + 3 * kLanes)));
  }
  for (; i + kLanes <= n; i += kLanes) max1 = max_ignoring_nan(max1, effective(load(x + i), load_weight(i)));
  if (i < n) {
    V wv = kWeighted ? load_partial(weight + i, n - i, T(0)) : splat<V>(1);
    max2 = max_ignoring_nan(max2, effective(load_partial(x + i, n - i, neg_inf), wv));
  }
  return horizontal_max(max_ignoring_nan(max_ignoring_nan(max0, max1), max_ignoring_nan(max2, max3)));
}

// Cross-entropy's target terms taken in pass 2 (chunk_sum's kGap) for class-index targets:
// gap += sum v_c (max - x_c), mass += sum v_c, v_c = offset * w_c (w_c = 1 without weights), the
// sums chunk_target_gap (softmax_cross_entropy-inl.h) takes in a pass of its own otherwise.
// max - x_c is -(x_c - max), the difference pass 2 forms anyway. The caller makes sure it cannot
// overflow (gap_fusable).
template <class T>
struct ChunkGap {
  const T* weight;  // at the chunk's first class; null: 1
  T offset;
  double gap = 0.0, mass = 0.0;
};

// The chunk after the one pass 2 is summing, whose pass 1 (chunk_max) that pass 2 carries out:
// its loads and maxima interleave with the exps. As a loop of its own between two exp loops,
// pass 1 stalled the exp pipes at every chunk boundary (nothing of pass 2 can start before the
// chunk's max is known, and the processor's window does not reach from one exp loop into the
// next): logsumexp in cache 5% slower.
template <class S>
struct NextChunk {
  const S* x;                   // its first element (n == 0: no next chunk)
  const compute_t<S>* weight;   // kWeighted: its weights
  int64_t n;
  compute_t<S> max;             // chunk_max of it: set by chunk_sum, or by first_chunk for a row's first
};

// A row's chunks start at multiples of kChunk; the one at `start` (n = 0 past the row's end).
template <class S>
inline NextChunk<S> chunk_at(const S* x, const compute_t<S>* weight, int64_t n, int64_t start) {
  const int64_t length = n - start < kChunk ? n - start : kChunk;
  return {x + start, weight ? weight + start : nullptr, length > 0 ? length : 0, compute_t<S>(-__builtin_inf())};
}

template <class S, bool kWeighted>
inline NextChunk<S> first_chunk(const S* x, const compute_t<S>* weight, int64_t n) {
  NextChunk<S> chunk = chunk_at<S>(x, weight, n, 0);
  chunk.max = chunk_max<S, kWeighted>(chunk.x, chunk.weight, chunk.n);
  return chunk;
}

// What pass 2 of a chunk prefetches, as far as the chunk is long (chunk_sum).
template <class T>
struct Prefetch {
  const T* at;
  bool into_l1;
};

// For the chunk at `start` of a row of n: in a row of several chunks, three chunks on, into L2
// (see the header); a row of one chunk has no next chunk to take the max of inside pass 2, so it
// prefetches what follows it (for a matrix, the next row, whose pass 1 then reads L1) into L1.
template <class T>
inline Prefetch<T> prefetch_plan(const T* x, int64_t n, int64_t start) {
  if (n <= kChunk) return {x + n, true};
  return {x + start + 3 * kChunk, false};
}

// The two cache lines of the pair of vectors at `i` in the prefetch plan's stream.
template <class T>
inline void prefetch_pair(const Prefetch<T>& ahead, int64_t i) {
  if (ahead.into_l1) {
    prefetch_to_l1(ahead.at + i);
    prefetch_to_l1(ahead.at + i + (64 / sizeof(T)));
  } else {
    prefetch_to_l2(ahead.at + i);
    prefetch_to_l2(ahead.at + i + (64 / sizeof(T)));
  }
}

// exp(x - max) * 2^kSumScale, and x - max rounded in `difference`. kCompensated: the difference
// formed error-free, its low part folded into exp's argument.
template <bool kCompensated, class V>
inline V sum_term_of_difference(V x, V max, V& difference) {
  if (!kCompensated) {
    difference = x - max;
    return exp_nonpositive_sum_term(difference);
  }
  V difference_error;
  difference = difference_with_error(x, max, difference_error);
  return exp_nonpositive_sum_term(difference, difference_error);
}

// One vector's pass-2 term, w exp(x - max) 2^kSumScale, added to `others` where x != max, and the
// weight (times 2^kSumScale) to `count` where x == max; returns the term. kWeighted: entries of
// weight 0 count as -inf (a term of 0, never the max).
template <class T, bool kWeighted, bool kCompensated>
inline typename Vec<T>::V split_sum_term(typename Vec<T>::V x, typename Vec<T>::V weight, typename Vec<T>::V max,
                                         typename Vec<T>::V& count, typename Vec<T>::V& others) {
  using V = typename Vec<T>::V;
  if (kWeighted) x = select(weight == 0, splat<V>(-__builtin_inf()), x);
  V difference;
  V e = sum_term_of_difference<kCompensated>(x, max, difference);
  if (kWeighted) e = e * weight;
  accumulate_split(x, max, weight * sum_scale<T>(), e, count, others);
  return e;
}

// The last vectors of a chunk in pass 2, fewer than two: a whole vector, then a masked tail
// whose padding lanes are computed, then discarded by select (never multiplied by 0: nan * 0 is
// nan). Stores the terms to `out` (may be null); adds the lane sums into count and others.
template <class S, bool kWeighted, bool kCompensated>
inline void chunk_sum_tail(const S* x, const compute_t<S>* weight, int64_t n, typename Vec<S>::V max, compute_t<S>* out,
                           WideSum& count_wide, WideSum& others_wide) {
  using T = compute_t<S>;
  using V = typename Vec<T>::V;
  constexpr int kLanes = Vec<T>::kLanes;
  V count = splat<V>(0), others = count;
  int64_t i = 0;
  if (i + kLanes <= n) {
    V e = split_sum_term<T, kWeighted, kCompensated>(load(x + i), kWeighted ? load(weight + i) : splat<V>(1), max, count,
                                                    others);
    if (out) store(out + i, e);
    i += kLanes;
  }
  if (i < n) {
    const int64_t lanes = n - i;
    V wv = kWeighted ? load_partial(weight + i, lanes, T(0)) : splat<V>(1);
    V tail_count = splat<V>(0), tail_others = splat<V>(0);
    V e = split_sum_term<T, kWeighted, kCompensated>(load_partial(x + i, lanes, T(0)), wv, max, tail_count, tail_others);
    auto is_valid = lane_index<V>() < (typename Lanes<V>::Bits)lanes;
    count += select(is_valid, tail_count, splat<V>(0));
    others += select(is_valid, tail_others, splat<V>(0));
    if (out) store_partial(out + i, e, lanes);
  }
  count_wide.add(count);
  others_wide.add(others);
}

// The target terms (ChunkGap) of the last vectors of a chunk, which the pairs loop of chunk_sum
// left: gap += sum v (max - x), mass += sum v over x[0..n), v = offset * weight (kGap 2) or offset
// (kGap 1); padding lanes add v (max - max) = 0.
template <class S, int kGap>
inline void chunk_gap_tail(const S* x, int64_t n, compute_t<S> max, const compute_t<S>* weight, compute_t<S> offset,
                           WideSum& gap_wide, WideSum& mass_wide) {
  using T = compute_t<S>;
  using V = typename Vec<T>::V;
  constexpr int kLanes = Vec<T>::kLanes;
  const V max_v = splat<V>(max), offset_v = splat<V>(offset);
  V gap = splat<V>(0), mass = gap;
  for (int64_t j = 0; j < n; j += kLanes) {
    const int64_t lanes = n - j < kLanes ? n - j : kLanes;
    const auto valid = lane_index<V>() < (typename Lanes<V>::Bits)lanes;
    const V v = kGap == 2 ? offset_v * load_n(weight + j, lanes, T(0)) : select(valid, offset_v, splat<V>(0));
    gap = mul_add(v, max_v - load_n(x + j, lanes, max), gap);
    mass += v;
  }
  gap_wide.add(gap);
  mass_wide.add(mass);
}

// Pass 2 of a chunk against reference `max`: count of x == max (sum of their weights) and sum of
// weight * exp(x - max) over the others, added to count_total and others_total; optionally stores
// exp(x - max) * 2^kSumScale (compensated) to `out`. Meanwhile: pass 1 of the next chunk
// (next.max), the prefetch plan, and with kGap (0 none, 1 uniform, 2 weighted) the target terms
// (ChunkGap). Lanes hold count and others in units of 2^-kSumScale; the flush to double removes
// the scale exactly. The unweighted count is an integer, counted off the vector pipes.
// S: the storage type of x (float, double, or bfloat16 read into float lanes); the terms stored
// to `out` are in the compute type (bfloat16: a float32 staging row).
// kAnyOrder: the pairs of vectors are read in load_pair_any_order's order (only without weights,
// target terms or stored terms, where the order of the terms is the order of a sum).
template <class S, bool kWeighted, bool kCompensated, int kGap = 0, bool kAnyOrder = false>
LOGITLOSS_FLATTEN void chunk_sum(const S* x, const compute_t<S>* weight, int64_t n, compute_t<S> max, compute_t<S>* out,
                                 Prefetch<S> ahead, double& count_total, double& others_total, NextChunk<S>& next,
                                 ChunkGap<compute_t<S>>* gap = nullptr) {
  using T = compute_t<S>;
  using V = typename Vec<T>::V;
  constexpr int kLanes = Vec<T>::kLanes;
  static_assert(kGap == 0 || !kWeighted, "target terms are cross-entropy's, which has no slice weights");
  const T neg_inf = -__builtin_inf();
  const V max_v = splat<V>(max);
  // Target terms: v (max - x) and v, v = offset * w, accumulated like the sums.
  const V gap_offset = splat<V>(kGap ? gap->offset : T(0));
  auto target_mass = [&](int64_t at) { return kGap == 2 ? gap_offset * load(gap->weight + at) : gap_offset; };
  WideSum count_wide, others_wide, gap_wide, mass_wide;
  int64_t equal_lanes = 0;  // unweighted: the count, as an integer
  // The next chunk's max: its first next_fused elements beside this chunk's pairs of vectors
  // (chunk_max's arithmetic; a max does not depend on the order), the rest after the loop.
  const int64_t next_fused = (next.n < n ? next.n : n) / (2 * kLanes) * (2 * kLanes);
  auto next_effective = [&](int64_t at) {
    const V xv = load(next.x + at);
    return kWeighted ? select(load(next.weight + at) == 0, splat<V>(neg_inf), xv) : xv;
  };
  static_assert(!kAnyOrder || (!kWeighted && kGap == 0), "any order only for plain sums");
  V next_max0 = splat<V>(neg_inf), next_max1 = next_max0;
  int64_t i = 0;
  while (i + 2 * kLanes <= n) {
    // Blocks of at most kBlock iterations: lane sums of that many terms, then widened to double.
    V count0 = splat<V>(0), count1 = count0, others0 = count0, others1 = count0;
    V gap0 = count0, gap1 = count0, mass = count0;
    for (int64_t b = 0; b < kBlock && i + 2 * kLanes <= n; ++b, i += 2 * kLanes) {
      prefetch_pair(ahead, i);
      if (i < next_fused) {
        if constexpr (!kWeighted) {  // a max: in any order
          V next0, next1;
          load_pair_any_order(next.x + i, next0, next1);
          next_max0 = max_ignoring_nan(next_max0, next0);
          next_max1 = max_ignoring_nan(next_max1, next1);
        } else {
          next_max0 = max_ignoring_nan(next_max0, next_effective(i));
          next_max1 = max_ignoring_nan(next_max1, next_effective(i + kLanes));
        }
      }
      V e0, e1;
      if (kWeighted) {
        e0 = split_sum_term<T, true, kCompensated>(load(x + i), load(weight + i), max_v, count0, others0);
        e1 = split_sum_term<T, true, kCompensated>(load(x + i + kLanes), load(weight + i + kLanes), max_v, count1, others1);
      } else {
        V x0, x1;
        if constexpr (kAnyOrder) {
          load_pair_any_order(x + i, x0, x1);
        } else {
          x0 = load(x + i);
          x1 = load(x + i + kLanes);
        }
        V difference0, difference1;
        e0 = sum_term_of_difference<kCompensated>(x0, max_v, difference0);
        e1 = sum_term_of_difference<kCompensated>(x1, max_v, difference1);
        equal_lanes += count_equal_accumulate_others(x0, max_v, e0, others0);
        equal_lanes += count_equal_accumulate_others(x1, max_v, e1, others1);
        if (kGap) {
          const V v0 = target_mass(i), v1 = target_mass(i + kLanes);
          gap0 = mul_add(-v0, difference0, gap0);
          gap1 = mul_add(-v1, difference1, gap1);
          mass += v0 + v1;
        }
      }
      if (out) {
        store(out + i, e0);
        store(out + i + kLanes, e1);
      }
    }
    if (kWeighted) count_wide.add(count0 + count1);
    others_wide.add(others0 + others1);
    if (kGap) {
      gap_wide.add(gap0 + gap1);
      mass_wide.add(mass);
    }
  }
  if constexpr (kGap != 0) {  // before the tail below, which may overwrite x (out == x)
    chunk_gap_tail<S, kGap>(x + i, n - i, max, kGap == 2 ? gap->weight + i : nullptr, gap->offset, gap_wide, mass_wide);
    gap->gap += gap_wide.total();
    gap->mass += mass_wide.total();
  }
  chunk_sum_tail<S, kWeighted, kCompensated>(x + i, kWeighted ? weight + i : nullptr, n - i, max_v, out ? out + i : nullptr,
                                             count_wide, others_wide);
  if (next.n > 0) {
    const T fused = horizontal_max(max_ignoring_nan(next_max0, next_max1));
    const T rest = chunk_max<S, kWeighted>(next.x + next_fused, kWeighted ? next.weight + next_fused : nullptr,
                                           next.n - next_fused);
    next.max = rest > fused ? rest : fused;
  }
  count_total += count_wide.total() * sum_unscale<T>() + (double)equal_lanes;
  others_total += others_wide.total() * sum_unscale<T>();
}

// The reference a chunk's terms are taken against: the row's running max where it already covers
// the chunk's top, so that folding the chunk in needs no rescaling (fold_stats calls exp only
// when a chunk raises the max: O(log chunks) times in a row of random logits, once in a sorted
// one); else the chunk's own top. Short chunks then cost no more than long ones, and short
// chunks let the processor overlap one chunk's loads with the previous chunk's arithmetic.
template <class T>
inline T chunk_reference(T chunk_top, const SliceStats& row, int64_t start) {
  return start == 0 || chunk_top > (T)row.max ? chunk_top : (T)row.max;
}

template <class S, bool kWeighted, bool kCompensated>
SliceStats row_stats_impl(const S* x, const compute_t<S>* weight, int64_t n) {
  using T = compute_t<S>;
  SliceStats row{-__builtin_inf(), 0.0, 0.0};
  NextChunk<S> next = first_chunk<S, kWeighted>(x, weight, n);
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t length = next.n;
    const T max = chunk_reference<T>(next.max, row, start);
    SliceStats chunk{(double)max, 0.0, 0.0};
    next = chunk_at<S>(x, weight, n, start + length);
    chunk_sum<S, kWeighted, kCompensated, 0, !kWeighted>(x + start, kWeighted ? weight + start : nullptr, length, max,
                                                         nullptr, prefetch_plan(x, n, start), chunk.count, chunk.others,
                                                         next);
    row = start == 0 ? chunk : fold_stats(row, chunk);
  }
  return row;
}

template <class S>
SliceStats row_stats(const S* x, const compute_t<S>* weight, int64_t n, int flags) {
  const bool compensated = flags & kStatsCompensated;
  if (!weight && is_small_row<S>(n)) {  // a row in two vectors or fewer: no chunk machinery
    if (n <= Vec<S>::kLanes) return compensated ? small_row<S, 1, true>(x, n).stats : small_row<S, 1, false>(x, n).stats;
    return compensated ? small_row<S, 2, true>(x, n).stats : small_row<S, 2, false>(x, n).stats;
  }
  if (weight) {
    return compensated ? row_stats_impl<S, true, true>(x, weight, n) : row_stats_impl<S, true, false>(x, weight, n);
  }
  return compensated ? row_stats_impl<S, false, true>(x, nullptr, n) : row_stats_impl<S, false, false>(x, nullptr, n);
}

// Plain statistics of `count` rows of n elements, rows[i] the i-th (contiguous rows): rows of one
// float vector 16 at a time in lanes where the target gathers (rows_stats_in_lanes), else row by
// row.
template <class T>
void rows_stats(const T* const* rows, int64_t count, int64_t n, SliceStats* out) {
  int64_t r = 0;
  if constexpr (kHasGather16 && std::is_same_v<T, float>) {
    if (n >= 1 && n <= Vec<T>::kLanes) {
      for (; r + Vec<T>::kLanes <= count; r += Vec<T>::kLanes) {
        int32_t offset[Vec<T>::kLanes];
        bool in_range = true;
        for (int i = 0; i < Vec<T>::kLanes; ++i) {
          // In elements from the first row (an unaligned array may space rows by a byte count
          // that is no multiple of the element: those go row by row).
          const int64_t bytes = reinterpret_cast<const char*>(rows[r + i]) - reinterpret_cast<const char*>(rows[r]);
          const int64_t elements = bytes / (int64_t)sizeof(T);
          in_range = in_range && bytes % (int64_t)sizeof(T) == 0 && elements >= -0x7fff0000 && elements <= 0x7fff0000;
          offset[i] = (int32_t)elements;
        }
        if (!in_range) break;
        rows_stats_in_lanes<T>(rows[r], offset, n, out + r);
      }
    }
  }
  for (; r < count; ++r) out[r] = row_stats<T>(rows[r], nullptr, n, kStatsPlain);
}
