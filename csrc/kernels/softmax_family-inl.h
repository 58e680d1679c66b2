// The softmax family's kernels for one target: logsumexp / softmax / log_softmax forward and
// backward, and the fused pass cross-entropy rides on, gathered into the TypedKernels table
// (kernels/kernel_table.h). Each kernel lives in the file named for its job:
//   lane_sums-inl.h              how sums are held in lanes (2^kSumScale units, kBlock)
//   row_stores-inl.h             map_row: a row's results stored, masked tail, optionally streamed
//   scale_factor-inl.h           a double factor applied to lanes without underflow (SplitFactor)
//   slice_statistics-inl.h       SliceStats arithmetic: fold_stats, log_totals
//   small_rows-inl.h             rows of at most two vectors, in registers
//   row_statistics-inl.h         row statistics in chunks (row_stats, rows_stats, chunk_sum)
//   softmax_cross_entropy-inl.h  the fused softmax pass with cross-entropy's target terms
//   softmax_moments-inl.h        sums for the mean and variance of x under softmax(scale x)
//   tempered_statistics-inl.h    softmax(x / T)'s statistics with the quotient compensated
//   entropy-inl.h                the entropy of softmax(x) (from the moments) and its gradient
//   softmax_outputs-inl.h        softmax / log_softmax / logsumexp gradient from statistics
//   backward_rows-inl.h          softmax and log_softmax backward
//   column_statistics-inl.h      statistics down columns (reduced axis strided)
//   logit_transform-inl.h        cross-entropy's softcap and temperature, chunk by chunk
// Requires simd/vector-inl.h, simd/math-inl.h and kernels/kernel_table.h (arch/target.inc
// includes them first, then this file, inside the target's anonymous namespace).
#pragma once

#include "kernels/backward_rows-inl.h"
#include "kernels/column_statistics-inl.h"
#include "kernels/row_statistics-inl.h"
#include "kernels/slice_statistics-inl.h"
#include "kernels/softmax_cross_entropy-inl.h"
#include "kernels/softmax_moments-inl.h"
#include "kernels/tempered_statistics-inl.h"
#include "kernels/entropy-inl.h"
#include "kernels/softmax_outputs-inl.h"

template <class T>
TypedKernels<T> softmax_family_kernels() {
  TypedKernels<T> k;
  k.row_stats = row_stats<T>;
  k.rows_stats = rows_stats<T>;
  k.row_softmax_fused = row_softmax_fused<T>;
  k.row_softmax_moments = row_softmax_moments<T>;
  k.row_tempered_stats = row_tempered_stats<T>;
  k.row_transformed_hessian = row_transformed_hessian<T>;
  k.row_entropy_moments = row_entropy_moments<T>;
  k.row_entropy_gradient = row_entropy_gradient<T>;
  k.row_scaled_exp = row_scaled_exp<T>;
  k.row_log_softmax = row_log_softmax<T>;
  k.row_dot = row_dot<T>;
  k.row_softmax_backward = row_softmax_backward<T>;
  k.row_log_softmax_backward = row_log_softmax_backward<T>;
  k.column_stats = column_stats<T>;
  k.column_scaled_exp = column_scaled_exp<T>;
  k.column_log_softmax = column_log_softmax<T>;
  return k;
}

// bfloat16 logits read in registers (kernel_table.h, BFloat16Kernels).
inline BFloat16Kernels bfloat16_kernels() {
  BFloat16Kernels k;
  k.row_stats = row_stats<bfloat16>;
  k.rows_stats = rows_stats<bfloat16>;
  k.row_softmax_fused = row_softmax_fused_impl<bfloat16>;
  k.row_log_softmax = row_log_softmax<bfloat16>;
  k.row_dot = row_dot<bfloat16>;
  k.row_softmax_backward = row_softmax_backward<bfloat16>;
  k.row_log_softmax_backward = row_log_softmax_backward<bfloat16>;
  k.row_entropy_moments = row_entropy_moments<bfloat16>;
  k.row_entropy_gradient = row_entropy_gradient<bfloat16>;
  return k;
}
