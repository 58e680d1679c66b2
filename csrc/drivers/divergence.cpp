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

// Every row through `kernel(input, target, grad, scratch)` (KL or JSD: both read two rows and write
// one gradient, with kl_div_scratch_size doubles of scratch).
template <class T, class Kernel>
void divergence_rows(const DivergenceRows& rows, Kernel kernel) {
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
      rows.loss[r] = kernel(input, target, grad, exponentials);
      if (grad) finish_row_output<T>(grad_row, rows.grad.class_stride, C, grad);
    }
  };
  parallel_for(rows.rows, grain_rows(2 * C), threads_for_work(2.0 * (double)rows.rows * (double)C), body);
}

template <class T>
void kl_div_rows(const DivergenceRows& rows) {
  const TypedKernels<T>& kernels = kernels_for<T>(active_kernels());
  divergence_rows<T>(rows, [&](const T* input, const T* target, T* grad, double* scratch) {
    return kernels.row_kl_div(input, target, rows.classes, rows.inverse_temperature, rows.grad_scale, grad, scratch);
  });
}

template <class T>
void jsd_rows(const DivergenceRows& rows) {
  const TypedKernels<T>& kernels = kernels_for<T>(active_kernels());
  divergence_rows<T>(rows, [&](const T* input, const T* target, T* grad, double* scratch) {
    return kernels.row_jsd(input, target, rows.classes, rows.beta, rows.inverse_temperature, rows.grad_scale, grad,
                           scratch);
  });
}

}  // namespace

void run_kl_div(const DivergenceRows& rows) {
  if (rows.dtype == DType::kFloat32) kl_div_rows<float>(rows);
  else kl_div_rows<double>(rows);
}

void run_jsd(const DivergenceRows& rows) {
  if (rows.dtype == DType::kFloat32) jsd_rows<float>(rows);
  else jsd_rows<double>(rows);
}

}  // namespace logitloss
