// How an N-d reduction is walked: the reduced axes become one "row" dimension, the kept axes
// the "outer" dimensions that enumerate rows. Several operands of the same shape (input, weights,
// output, gradient) are walked together, each with its own strides, so any strided view (negative
// or zero strides included) is read in place.
#pragma once

#include <cstddef>
#include <cstdint>

#include "drivers/small_vector.h"

namespace logitloss {

// Per-axis and per-operand lists of one call, held in place up to these sizes (more spill to the
// heap): tiny calls pay no allocations for them.
constexpr size_t kInlineAxes = 8;
constexpr size_t kInlineOperands = 8;
using AxisSizes = SmallVector<int64_t, kInlineAxes>;  // a shape, or one operand's strides in bytes
using AxisFlags = SmallVector<bool, kInlineAxes>;
using OperandStrides = SmallVector<AxisSizes, kInlineOperands>;
template <class T>
using PerOperand = SmallVector<T, kInlineOperands>;

struct ReductionLayout {
  int64_t rows = 1;                               // product of outer_shape
  int64_t length = 1;                             // elements per row (product of reduced dims)
  AxisSizes outer_shape;                          // kept dims, coalesced, size-1 dims dropped
  OperandStrides outer_strides;                   // [operand][outer dim], bytes
  PerOperand<int64_t> row_stride;                 // [operand], bytes between row elements
};

// shape: the common shape; strides[operand]: bytes per step along each axis; reduced[axis]: whether
// the axis is reduced. Returns false if some operand's reduced axes cannot be walked as a single
// stride (the caller then makes contiguous copies).
bool make_reduction_layout(const AxisSizes& shape, const OperandStrides& strides, const AxisFlags& reduced,
                           ReductionLayout& layout);

// An elementwise walk of operands that share one shape: the longest run of trailing axes that
// chain for every operand becomes the row (the whole array when all are contiguous alike), the
// rest the outer dims. Zero strides (broadcast operands) are fine.
ReductionLayout make_elementwise_layout(const AxisSizes& shape, const OperandStrides& strides);

// Byte offsets of consecutive rows for every operand, starting at any row: an odometer over the
// outer dims, so stepping costs O(1) amortized.
class RowCursor {
 public:
  RowCursor(const ReductionLayout& layout, int64_t first_row);
  int64_t offset(size_t operand) const { return offsets_[operand]; }
  void next() {
    // One outer dim (any matrix): a stride per operand; the odometer never wraps before the end.
    if (layout_.outer_shape.size() == 1) {
      for (size_t op = 0; op < offsets_.size(); ++op) offsets_[op] += layout_.outer_strides[op][0];
      return;
    }
    next_odometer();
  }

 private:
  void next_odometer();

  const ReductionLayout& layout_;
  AxisSizes index_;
  PerOperand<int64_t> offsets_;
};

}  // namespace logitloss
