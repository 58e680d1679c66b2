// entropy_with_logits (drivers/entropy.h): per row, the softmax moments at scale 1, then
// H = log(total) + G from them in double, and the gradient pass where asked for. Rows are packed
// when strided (row_buffers.h); each row's results depend only on the row, so any thread count
// gives the same bits.
#include "drivers/entropy.h"

#include <cmath>
#include <limits>

#include "drivers/row_buffers.h"
#include "drivers/row_loops.h"
#include "drivers/scalar_access.h"
#include "drivers/streaming.h"
#include "runtime/dispatch.h"

namespace logitloss {
namespace {

using namespace drivers;

struct RowEntropy {
  bool regular;      // finite max, no nan: the kernels' formulas apply
  double max;        // the row's largest element
  double entropy;    // log(total) + G
  double mean_gap;   // G = sum p_c (max - x_c) >= 0
  double inverse_total;
};

RowEntropy entropy_of(const SoftmaxMoments& m) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (!std::isfinite(m.max) || std::isnan(m.others)) return {false, m.max, nan, nan, nan};
  const double total = m.count + m.others;
  const double mean_gap = -m.first / total;  // first = -sum e_c d_c <= 0
  // log(total) = log(count) + log1p(others / count): a dominating max keeps a tiny log(total).
  const double log_total = m.count == 1.0 ? std::log1p(m.others) : std::log(m.count) + std::log1p(m.others / m.count);
  return {true, m.max, log_total + mean_gap, mean_gap, 1.0 / total};
}

template <class T>
void entropy_typed(const ArrayCall& call, const EntropyOperands& ops) {
  const TypedKernels<T>& kernels = kernels_for<T>(active_kernels());
  const ReductionLayout& layout = call.layout;
  const int64_t n = layout.length;
  const bool stream = ops.grad != kNoOperand && stream_output<T>(call, ops.grad, ops.x);
  for_each_row(layout, [&](int64_t, const RowCursor& cursor) {
    const T* x = row_input<T>(call.base[ops.x] + cursor.offset(ops.x), layout.row_stride[ops.x], n, 0);
    const RowEntropy row = entropy_of(kernels.row_entropy_moments(x, n));
    store_scalar<T>(call.base[ops.out] + cursor.offset(ops.out), (T)row.entropy);
    if (ops.grad == kNoOperand) return;
    char* grad_bytes = call.base[ops.grad] + cursor.offset(ops.grad);
    const int64_t grad_stride = layout.row_stride[ops.grad];
    if (!row.regular) {  // softmax's rule: the whole row's gradient is nan
      for (int64_t i = 0; i < n; ++i) store_scalar<T>(grad_bytes + i * grad_stride, std::numeric_limits<T>::quiet_NaN());
      return;
    }
    T* grad = row_output<T>(grad_bytes, grad_stride, n, 1);
    // max is an element of x, so (T)max is exact.
    kernels.row_entropy_gradient(x, n, (T)row.max, (T)row.mean_gap, (T)row.inverse_total, grad, stream);
    finish_row_output(grad_bytes, grad_stride, n, grad);
  });
}

}  // namespace

void run_entropy(const ArrayCall& call, const EntropyOperands& ops) {
  if (call.dtype == DType::kFloat32) entropy_typed<float>(call, ops);
  else entropy_typed<double>(call, ops);
}

}  // namespace logitloss
