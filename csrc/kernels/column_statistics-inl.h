// Column statistics: the reduced axis is not the contiguous one (e.g. axis 0 of a C-ordered
// matrix). Lanes run across a tile of up to kColumnTile contiguous columns; no transposed copy.
//
// Contract: column_stats(x, rows, stride, ncols, out, flags): for each of ncols <= kColumnTile
// contiguous columns, down `rows` rows `stride` elements apart, out[c] = the SliceStats of column
// c, as row_stats defines them (any values; kStatsCompensated: x - max formed error-free), though
// not bitwise row_stats': terms are taken against a running max and rescaled when it rises.
// Precision: one exp per element, on x - M <= 0 (M the column's running max at the time); lane
// sums of the data type over at most kColumnBlockRows rows, widened into double; each rise of
// the max multiplies the column's sums by exp(M - M') evaluated in the data type.
//
// Memory: the tile is walked row after row, whole tile rows, which is one sequential sweep
// through memory that the hardware prefetcher streams (walking down a few columns at a time
// instead, rows a large stride apart, leaves the loads waiting on memory one line each). Per
// column the state is held in L1: a running max M, and the sums of the current block of
// kColumnBlockRows rows in lanes of the data type: the count of x == M and the sum of exp(x - M)
// over the others (scaled by 2^kSumScale, as in chunk_sum), widened into running double sums at
// the end of each block. Terms are taken against the running max, as chunk_reference does for
// rows. When an element exceeds its column's M (a few times per column in random data) that
// column vector's sums are first moved into double and rescaled:
//   others <- (others + count) exp(M - M'), count <- 0, M <- M'.
// Measurements behind the constants: docs/performance-notes.md.
//
// Requires simd/vector-inl.h, simd/math-inl.h and kernels/kernel_table.h (arch/target.inc
// includes them first).
#pragma once

#include "kernels/lane_sums-inl.h"

constexpr int64_t kColumnBlockRows = 32;
constexpr int64_t kColumnGroupRows = 8;  // rows walked side by side: 8 sequential streams
constexpr int64_t kColumnSeedRows = 128;
// Each load prefetches (into L2) its column vector kColumnPrefetchRows rows on: the hardware
// prefetcher alone does not keep eight short streams ahead (axis 0 of (32000, 4096) float 13%
// faster with it).
constexpr int64_t kColumnPrefetchRows = 16;
template <class T>
constexpr int64_t kColumnVectorsMax = kColumnTile / Vec<T>::kLanes;

template <class T, bool kCompensated>
void column_stats_impl(const T* x, int64_t rows, int64_t stride, int64_t ncols, SliceStats* out) {
  using V = typename Vec<T>::V;
  using W = typename Vec<T>::Wide;
  using WideMask = typename Lanes<W>::Int;
  constexpr int kLanes = Vec<T>::kLanes;
  const T neg_inf = -__builtin_inf();
  const int64_t vectors = (ncols + kLanes - 1) / kLanes;
  const int64_t tail_lanes = ncols - (vectors - 1) * kLanes;  // lanes in the last vector (1..kLanes)
  V max[kColumnVectorsMax<T>], count[kColumnVectorsMax<T>], others[kColumnVectorsMax<T>];
  W run_count[kColumnVectorsMax<T>], run_others[kColumnVectorsMax<T>];
  for (int64_t j = 0; j < vectors; ++j) {
    max[j] = splat<V>(neg_inf);
    count[j] = others[j] = splat<V>(0);
    run_count[j] = run_others[j] = splat<W>(0);
  }
  auto flush = [&](int64_t j) {
    run_count[j] += __builtin_convertvector(count[j], W) * sum_unscale<T>();
    run_others[j] += __builtin_convertvector(others[j], W) * sum_unscale<T>();
    count[j] = others[j] = splat<V>(0);
  };
  // Element xv exceeds the running max in some lane (nan never does: it is ignored here, and
  // poisons `others` below, as in chunk_sum).
  auto raise_max = [&](int64_t j, V xv) {
    flush(j);
    const V new_max = max_ignoring_nan(max[j], xv);
    const WideMask raised = __builtin_convertvector(max[j] < new_max, WideMask);
    const W scale = __builtin_convertvector(exp_nonpositive(max[j] - new_max), W);
    run_others[j] = select(raised, (run_others[j] + run_count[j]) * scale, run_others[j]);
    run_count[j] = select(raised, splat<W>(0), run_count[j]);
    max[j] = new_max;
  };
  // Column vector j over rows [first_row, end_row): the state in registers for the group.
  // kTiesRare: one comparison per vector in the common case, no lane at or above its column's max
  // (no raise, nothing to count; a nan compares false and goes to `others`, as in
  // accumulate_split), and a branch to the full path otherwise (10% faster). Not in the seeded
  // rows, where each column meets its seed (a tie in every vector: the branch would mispredict);
  // after them only a raise meets the branch.
  auto add_terms = [&](auto ties_rare, int64_t j, int64_t first_row, int64_t end_row, int64_t lanes) {
    constexpr bool kTiesRare = decltype(ties_rare)::value;
    V running_max = max[j], running_count = count[j], running_others = others[j];
    for (int64_t r = first_row; r < end_row; ++r) {
      // Padding lanes hold -inf: a term of 0 (or a count, in an all -inf column), never read.
      if (r + kColumnPrefetchRows < rows) prefetch_to_l2(x + (r + kColumnPrefetchRows) * stride + j * kLanes);
      const V xv = load_n(x + r * stride + j * kLanes, lanes, neg_inf);
      const bool at_or_above = !kTiesRare || any_lane(xv >= running_max);
      if (at_or_above && any_lane(xv > running_max)) {
        count[j] = running_count;
        others[j] = running_others;
        raise_max(j, xv);
        running_max = max[j];
        running_count = count[j];
        running_others = others[j];
      }
      V e;
      if (kCompensated) {
        V difference_error;
        const V difference = difference_with_error(xv, running_max, difference_error);
        e = exp_nonpositive_sum_term(difference, difference_error);
      } else {
        e = exp_nonpositive_sum_term(xv - running_max);
      }
      if (at_or_above) accumulate_split(xv, running_max, splat<V>(sum_scale<T>()), e, running_count, running_others);
      else running_others += e;
    }
    count[j] = running_count;
    others[j] = running_others;
  };
  // Seed the running max with the first rows' max: each raise costs a flush and an exp, and with
  // a raise pending in any of a vector's lanes a fresh max would otherwise move in most of the
  // first few hundred rows.
  const int64_t seed_rows = rows < kColumnSeedRows ? rows : kColumnSeedRows;
  for (int64_t r = 0; r < seed_rows; ++r) {
    for (int64_t j = 0; j < vectors; ++j) {
      max[j] = max_ignoring_nan(max[j], load_n(x + r * stride + j * kLanes, j + 1 < vectors ? kLanes : tail_lanes, neg_inf));
    }
  }
  for (int64_t block_start = 0; block_start < rows; block_start += kColumnBlockRows) {
    const int64_t block_end = block_start + kColumnBlockRows < rows ? block_start + kColumnBlockRows : rows;
    for (int64_t first_row = block_start; first_row < block_end; first_row += kColumnGroupRows) {
      const int64_t end_row = first_row + kColumnGroupRows < block_end ? first_row + kColumnGroupRows : block_end;
      auto group = [&](auto ties_rare) {
        for (int64_t j = 0; j + 1 < vectors; ++j) add_terms(ties_rare, j, first_row, end_row, kLanes);
        add_terms(ties_rare, vectors - 1, first_row, end_row, tail_lanes);
      };
      if (first_row < seed_rows) group(std::false_type{}); else group(std::true_type{});
    }
    for (int64_t j = 0; j < vectors; ++j) flush(j);
  }
  for (int64_t c = 0; c < ncols; ++c) {
    out[c] = SliceStats{max[c / kLanes][c % kLanes], run_count[c / kLanes][c % kLanes], run_others[c / kLanes][c % kLanes]};
  }
}

template <class T>
void column_stats(const T* x, int64_t rows, int64_t stride, int64_t ncols, SliceStats* out, int flags) {
  if (flags & kStatsCompensated) column_stats_impl<T, true>(x, rows, stride, ncols, out);
  else column_stats_impl<T, false>(x, rows, stride, ncols, out);
}
