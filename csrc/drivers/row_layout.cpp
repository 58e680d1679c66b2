#include "drivers/row_layout.h"

namespace logitloss {

bool make_reduction_layout(const AxisSizes& shape, const OperandStrides& strides, const AxisFlags& reduced,
                           ReductionLayout& layout) {
  const size_t ndim = shape.size(), nops = strides.size();
  layout = ReductionLayout{};
  layout.outer_strides.assign(nops, AxisSizes());
  layout.row_stride.assign(nops, 0);

  // Reduced axes, in order, must chain: stride[i] == stride[j] * shape[j] for consecutive ones.
  bool have_reduced = false;
  PerOperand<int64_t> last_stride(nops, 0);
  for (size_t axis = 0; axis < ndim; ++axis) {
    if (!reduced[axis]) continue;
    layout.length *= shape[axis];
    if (shape[axis] == 1) continue;
    for (size_t op = 0; op < nops; ++op) {
      if (have_reduced && last_stride[op] != strides[op][axis] * shape[axis]) return false;
      last_stride[op] = strides[op][axis];
    }
    have_reduced = true;
  }
  if (have_reduced) layout.row_stride = last_stride;

  // Kept axes, coalescing neighbours that chain for every operand.
  for (size_t axis = 0; axis < ndim; ++axis) {
    if (reduced[axis] || shape[axis] == 1) continue;
    bool merge = !layout.outer_shape.empty();
    for (size_t op = 0; merge && op < nops; ++op) {
      merge = layout.outer_strides[op].back() == strides[op][axis] * shape[axis];
    }
    if (merge) {
      layout.outer_shape.back() *= shape[axis];
      for (size_t op = 0; op < nops; ++op) layout.outer_strides[op].back() = strides[op][axis];
    } else {
      layout.outer_shape.push_back(shape[axis]);
      for (size_t op = 0; op < nops; ++op) layout.outer_strides[op].push_back(strides[op][axis]);
    }
  }
  for (int64_t s : layout.outer_shape) layout.rows *= s;
  for (size_t axis = 0; axis < ndim; ++axis) {
    if (!reduced[axis] && shape[axis] == 0) layout.rows = 0;
  }
  return true;
}

ReductionLayout make_elementwise_layout(const AxisSizes& shape, const OperandStrides& strides) {
  AxisFlags row_axes(shape.size(), false);
  int inner = -1;  // the outermost axis of the row so far
  for (int axis = (int)shape.size() - 1; axis >= 0; --axis) {
    if (shape[axis] == 1) {
      row_axes[axis] = true;  // length 1: joins anything
      continue;
    }
    bool chains = true;
    for (size_t op = 0; inner >= 0 && op < strides.size(); ++op) {
      chains = chains && strides[op][axis] == strides[op][inner] * shape[inner];
    }
    if (!chains) break;
    row_axes[axis] = true;
    inner = axis;
  }
  ReductionLayout layout;
  make_reduction_layout(shape, strides, row_axes, layout);  // the row axes chain by construction
  return layout;
}

RowCursor::RowCursor(const ReductionLayout& layout, int64_t first_row)
    : layout_(layout), index_(layout.outer_shape.size(), 0), offsets_(layout.outer_strides.size(), 0) {
  if (layout.rows == 0) return;  // nothing to walk (a kept dim of length 0)
  int64_t rest = first_row;
  for (size_t d = layout.outer_shape.size(); d-- > 0;) {
    index_[d] = rest % layout.outer_shape[d];
    rest /= layout.outer_shape[d];
    for (size_t op = 0; op < offsets_.size(); ++op) offsets_[op] += index_[d] * layout.outer_strides[op][d];
  }
}

void RowCursor::next_odometer() {
  for (size_t d = layout_.outer_shape.size(); d-- > 0;) {
    for (size_t op = 0; op < offsets_.size(); ++op) offsets_[op] += layout_.outer_strides[op][d];
    if (++index_[d] < layout_.outer_shape[d]) return;
    for (size_t op = 0; op < offsets_.size(); ++op) offsets_[op] -= index_[d] * layout_.outer_strides[op][d];
    index_[d] = 0;
  }
}

}  // namespace logitloss
