#include "drivers/divergence.h"

#include "drivers/row_buffers.h"
#include "drivers/row_loops.h"
#include "runtime/dispatch.h"
#include "runtime/thread_pool.h"

namespace logitloss {
namespace {

using namespace drivers;

// Scratch slots of this driver (drivers/row_buffers.h).
constexpr int kInputSlot = 0, kTargetSlot = 1, kGradSlot = 2, kExponentialsSlot = 3;

template <class T>
void kl_div_rows(const DivergenceRows& rows) {
  const TypedKernels<T>& kernels = kernels_for<T>(active_kernels());
  const int64_t C = rows.classes;
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      char* grad_row = rows.grad.base ? rows.grad.base + r * rows.grad.row_stride : nullptr;
      if (rows.included && !rows.included[r]) {
        rows.loss[r] = 0.0;
        if (!grad_row) continue;
        for (int64_t c = 0; c < C; ++c) store_scalar<T>(grad_row + c * rows.grad.class_stride, T(0));
        continue;
      }
      const RowOperand& student = rows.input;
      const RowOperand& teacher = rows.target;
      const T* input = row_input<T>(student.base + r * student.row_stride, student.class_stride, C, kInputSlot);
      const T* target = row_input<T>(teacher.base + r * teacher.row_stride, teacher.class_stride, C, kTargetSlot);
      T* grad = grad_row ? row_output<T>(grad_row, rows.grad.class_stride, C, kGradSlot) : nullptr;
      double* exponentials = scratch<double>(kExponentialsSlot, kl_div_scratch_size(C));
      rows.loss[r] =
          kernels.row_kl_div(input, target, C, rows.inverse_temperature, rows.grad_scale, grad, exponentials);
      if (grad) finish_row_output<T>(grad_row, rows.grad.class_stride, C, grad);
    }
  };
  parallel_for(rows.rows, grain_rows(2 * C), threads_for_work(2.0 * (double)rows.rows * (double)C), body);
}

}  // namespace

void run_kl_div(const DivergenceRows& rows) {
  if (rows.dtype == DType::kFloat32) kl_div_rows<float>(rows);
  else kl_div_rows<double>(rows);
}

}  // namespace logitloss
