// What a driver receives from the bindings: the compute dtype, how to walk the operands (a
// ReductionLayout over one common shape) and each operand's base address. Shared by every
// kernel family's driver; no Python here.
#pragma once

#include "drivers/row_layout.h"

namespace logitloss {

// kBFloat16: bfloat16 operands read by the kernels in registers (only where the bindings say so:
// the drivers that take it, run_logsumexp's values and run_cross_entropy's rows, check it).
enum class DType { kFloat32, kFloat64, kBFloat16 };

struct ArrayCall {
  DType dtype;
  ReductionLayout layout;
  PerOperand<char*> base;  // per operand, in the order the layout was built
  // Per operand: an output the bindings just allocated, whose pages the OS maps (and zeroes, through
  // the cache) at the kernels' first store to them. Empty where the bindings do not say
  // (elementwise calls): then no output counts as the caller's, and none is streamed.
  PerOperand<bool> fresh;
};

constexpr int kNoOperand = -1;

// torch's `reduction` argument of the loss functions.
enum class LossReduction { kNone, kMean, kSum };

}  // namespace logitloss
