// Per-row softmax statistics in double, for callers that merge the statistics of several column
// blocks of one row themselves (logitloss.dask: a vocabulary split into chunks held by different
// workers). The merge is the one the row kernels apply to their own 2048-element chunks
// (fold_stats, and the target-term gap moved to the merged max), so a row split into blocks gives
// the in-memory result up to the order of the double additions. No Python here.
#pragma once

#include <cstdint>

#include "drivers/array_call.h"

namespace logitloss {

// Columns of one row of `out`: the row's SliceStats, then the target terms of TargetTerms with
// v_c = weight_c * (target_scale * target_c + target_offset):
//   gap  = sum_c v_c (reference - x_c), reference = the row max when finite, else 0,
//   mass = sum_c v_c.
enum SoftmaxStatistic : int { kStatMax, kStatCount, kStatOthers, kStatGap, kStatMass, kStatisticCount };

struct SoftmaxStatisticsRows {
  DType dtype;
  const void* x;       // rows x classes, C-contiguous, classes >= 1
  const void* target;  // null, or rows x classes, C-contiguous (probability targets)
  const void* weight;  // null, or classes
  int64_t rows, classes;
  double target_scale, target_offset;
  double* out;  // rows x kStatisticCount
};

// Runs the fused softmax pass (statistics only, no output) on every row, across threads.
void run_softmax_statistics(const SoftmaxStatisticsRows& rows);

}  // namespace logitloss
