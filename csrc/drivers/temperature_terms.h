// Temperature scaling's per-row terms from the softmax moments (kernels/softmax_moments-inl.h):
// for logits z (rows x classes), labels y and s = 1 / T, with p = softmax(s z) per row,
//   nll    = lse(s z) - s z_y = s (max - z_y) + log(count) + log1p(others / count)
//   first  = E_p[z] - z_y     = (max - z_y) + sum e u / total
//   second = Var_p[z]         = sum e u^2 / total - (sum e u / total)^2   (clamped at 0)
// NLL(s), NLL'(s) and NLL''(s) are their means. Written this way a confident correct row keeps its
// tiny NLL (max - z_y = 0) and no term cancels against z_y. A row whose max is not finite, or with
// a nan, gives nan in all three (the caller rejects it). No Python here.
#pragma once

#include <cstdint>

#include "drivers/array_call.h"

namespace logitloss {

enum TemperatureTerm : int { kTermNll, kTermFirst, kTermSecond, kTemperatureTermCount };

struct TemperatureTermRows {
  DType dtype;
  const void* x;         // rows x classes, C-contiguous, classes >= 1
  const int64_t* label;  // rows, each in [0, classes)
  int64_t rows, classes;
  double scale;  // s = 1 / T > 0
  double* out;   // rows x kTemperatureTermCount
};

// One read of each row (two passes over it in cache), across threads.
void run_temperature_terms(const TemperatureTermRows& rows);

}  // namespace logitloss
