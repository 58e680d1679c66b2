// Divergences between two softmax distributions given by their logits (KL, JSD), row by row across
// threads: strided rows packed for the kernel, rows excluded by `where` given a zero loss and a
// zero gradient without being read. No Python here.
#pragma once

#include <cstdint>

#include "drivers/array_call.h"

namespace logitloss {

// One operand of rows x classes, strides in bytes.
struct RowOperand {
  char* base;
  int64_t row_stride, class_stride;
};

struct DivergenceRows {
  DType dtype;
  RowOperand input, target, grad;  // grad.base null: no gradient
  int64_t rows, classes;           // classes >= 1
  double inverse_temperature;      // 1 / T, > 0
  double grad_scale;               // multiplies every included row's gradient
  double beta;                     // run_jsd: 0 <= beta <= 1
  const bool* included;            // null: every row
  double* loss;                    // one per row (0 for excluded rows)
};

void run_kl_div(const DivergenceRows& rows);
// Liger's generalized Jensen-Shannon divergence at rows.beta (kernels/jensen_shannon-inl.h).
void run_jsd(const DivergenceRows& rows);

}  // namespace logitloss
