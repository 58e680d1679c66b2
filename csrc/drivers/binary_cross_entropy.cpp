// Driver for binary cross-entropy with logits (drivers/binary_cross_entropy.h): the elements cut
// into fixed segments, one kernel call each, partial sums added in segment order.
#include "drivers/binary_cross_entropy.h"

#include <cmath>
#include <vector>

#include "drivers/row_buffers.h"
#include "drivers/row_loops.h"
#include "drivers/scalar_access.h"
#include "kernels/kernel_table.h"
#include "runtime/dispatch.h"
#include "runtime/thread_pool.h"

namespace logitloss {
namespace {

using namespace drivers;

constexpr int64_t kSegment = kBinaryCrossEntropySegment;

template <class T>
double binary_cross_entropy_typed(const ArrayCall& call, const BinaryCrossEntropyOperands& ops) {
  const TypedKernels<T>& kernels = kernels_for<T>(active_kernels());
  const ReductionLayout& layout = call.layout;
  const int64_t numel = layout.rows * layout.length;
  const bool reduced = ops.reduction != LossReduction::kNone && !ops.gradient_only;
  if (numel == 0) return ops.reduction == LossReduction::kMean && reduced ? kNan : 0.0;
  const double grad_scale = ops.reduction == LossReduction::kMean ? ops.upstream_scalar / (double)numel
                            : ops.reduction == LossReduction::kSum ? ops.upstream_scalar
                                                                   : 1.0;
  const int64_t segments_per_row = (layout.length + kSegment - 1) / kSegment;
  const int64_t items = layout.rows * segments_per_row;
  std::vector<LossSum> partial(reduced ? (size_t)items : 0);

  auto body = [&](int64_t begin, int64_t end) {
    RowCursor cursor(layout, begin / segments_per_row);
    int64_t row = begin / segments_per_row;
    for (int64_t item = begin; item < end; ++item) {
      for (; row < item / segments_per_row; ++row) cursor.next();
      const int64_t first = (item % segments_per_row) * kSegment;
      const int64_t n = layout.length - first < kSegment ? layout.length - first : kSegment;
      auto address = [&](int op) { return call.base[op] + cursor.offset(op) + first * layout.row_stride[op]; };
      auto input = [&](int op, int slot) {
        return op == kNoOperand ? nullptr : row_input<T>(address(op), layout.row_stride[op], n, slot);
      };
      auto output = [&](int op, int slot) {
        return op == kNoOperand ? nullptr : row_output<T>(address(op), layout.row_stride[op], n, slot);
      };
      BinaryCrossEntropySpan<T> span{input(ops.input, 0), input(ops.target, 1),   input(ops.weight, 2),
                                     input(ops.pos_weight, 3), input(ops.upstream, 4), (T)grad_scale,
                                     output(ops.loss, 5),   output(ops.grad, 6),      output(ops.hessian, 7)};
      const LossSum sum = kernels.binary_cross_entropy_with_logits(span, n, reduced || span.loss);
      if (reduced) partial[(size_t)item] = sum;
      if (span.loss) finish_row_output(address(ops.loss), layout.row_stride[ops.loss], n, span.loss);
      if (span.grad) finish_row_output(address(ops.grad), layout.row_stride[ops.grad], n, span.grad);
      if (span.hessian) finish_row_output(address(ops.hessian), layout.row_stride[ops.hessian], n, span.hessian);
    }
  };
  const int64_t segment_length = layout.length < kSegment ? layout.length : kSegment;
  parallel_for(items, grain_rows(segment_length), threads_for_work((double)numel), body);

  double sum = 0.0, scaled = 0.0;
  for (const LossSum& v : partial) {
    sum += v.plain;
    scaled += v.scaled;
  }
  if (ops.reduction != LossReduction::kMean) return sum;
  // Double losses can overflow their sum where their mean is finite: then take the scaled sum.
  if (std::isinf(sum) && std::isfinite(scaled)) return std::ldexp(scaled / (double)numel, kLossSumScaleExponent);
  return sum / (double)numel;
}

}  // namespace

double run_binary_cross_entropy(const ArrayCall& call, const BinaryCrossEntropyOperands& ops) {
  return call.dtype == DType::kFloat32 ? binary_cross_entropy_typed<float>(call, ops)
                                       : binary_cross_entropy_typed<double>(call, ops);
}

}  // namespace logitloss
