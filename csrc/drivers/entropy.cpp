// entropy_with_logits (drivers/entropy.h): per row, the softmax moments at scale 1, then
// H = log(total) + G from them in double, and the gradient pass where asked for. Strided rows are
// packed kPackedRows at a time (entropy_packed_rows); each row's results depend only on the row, so
// any thread count and any layout give the same bits.
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

// One contiguous row: its entropy into *out, and (grad non-null) its gradient into grad[0..n).
// S: the storage type of x and grad (bfloat16 read in registers); the entropy in the compute type.
template <class S>
void entropy_row(const KernelsOf<S>& kernels, const S* x, int64_t n, char* out, S* grad, bool stream) {
  using T = compute_t<S>;
  const RowEntropy row = entropy_of(kernels.row_entropy_moments(x, n));
  store_scalar<T>(out, (T)row.entropy);
  if (!grad) return;
  if (!row.regular) {  // softmax's rule: the whole row's gradient is nan
    for (int64_t i = 0; i < n; ++i) grad[i] = storage_value<S>(kNan);
    return;
  }
  // max is an element of x, so (T)max is exact.
  kernels.row_entropy_gradient(x, n, (T)row.max, (T)row.mean_gap, (T)row.inverse_total, grad, stream);
}

// Rows whose elements are strided (a reduced axis that is not the contiguous one, e.g. axis 0 of a
// C-ordered matrix): kPackedRows rows at a time are packed into contiguous rows, element by element
// across the rows (neighbouring rows are usually neighbours in memory, so each cache line read
// serves all of them; packing one strided row at a time read a line per element: axis 0 of
// (32000, 4096) float32 fwd+bwd took 4.8 s, 25x the last axis; packed 16 rows at a time 0.68 s,
// 3.6x; 64 rows, whose buffers leave L2, no faster), and their gradients unpacked the same way.
constexpr int64_t kPackedRows = 16;
// Fewer rows per pack when they are long, so the packed rows stay about this many elements (2 MiB of
// float at 16 x 32000): a pack of 16 rows of 2^30 elements would need 64 GiB.
constexpr int64_t kPackedElements = int64_t(1) << 19;

template <class T>
void entropy_packed_rows(const KernelsOf<T>& kernels, const ArrayCall& call, const EntropyOperands& ops) {
  const ReductionLayout& layout = call.layout;
  const int64_t n = layout.length;
  const bool with_grad = ops.grad != kNoOperand;
  const int64_t x_stride = layout.row_stride[ops.x];
  const int64_t grad_stride = with_grad ? layout.row_stride[ops.grad] : 0;
  const int64_t fit = kPackedElements / n;
  const int64_t per_pack = fit < 1 ? 1 : fit > kPackedRows ? kPackedRows : fit;
  for_each_row_range(layout, [&](int64_t begin, int64_t end, RowCursor& cursor) {
    const int64_t most = end - begin < per_pack ? end - begin : per_pack;
    T* packed = scratch<T>(0, most * n);
    T* grads = with_grad ? scratch<T>(1, most * n) : nullptr;
    for (int64_t r = begin; r < end;) {
      const int64_t rows = end - r < most ? end - r : most;
      const char* x_at[kPackedRows];
      char* out_at[kPackedRows];
      char* grad_at[kPackedRows];
      for (int64_t k = 0; k < rows; ++k, cursor.next()) {
        x_at[k] = call.base[ops.x] + cursor.offset(ops.x);
        out_at[k] = call.base[ops.out] + cursor.offset(ops.out);
        grad_at[k] = with_grad ? call.base[ops.grad] + cursor.offset(ops.grad) : nullptr;
      }
      for (int64_t c = 0; c < n; ++c) {
        for (int64_t k = 0; k < rows; ++k) packed[k * n + c] = load_scalar<T>(x_at[k] + c * x_stride);
      }
      for (int64_t k = 0; k < rows; ++k) {
        entropy_row<T>(kernels, packed + k * n, n, out_at[k], with_grad ? grads + k * n : nullptr, false);
      }
      if (with_grad) {
        for (int64_t c = 0; c < n; ++c) {
          for (int64_t k = 0; k < rows; ++k) store_scalar<T>(grad_at[k] + c * grad_stride, grads[k * n + c]);
        }
      }
      r += rows;
    }
  });
}

template <class T>
void entropy_typed(const ArrayCall& call, const EntropyOperands& ops) {
  const KernelsOf<T>& kernels = kernels_for<T>(active_kernels());
  const ReductionLayout& layout = call.layout;
  const int64_t n = layout.length;
  if (layout.row_stride[ops.x] != (int64_t)sizeof(T)) {
    entropy_packed_rows<T>(kernels, call, ops);
    return;
  }
  const bool stream = ops.grad != kNoOperand && stream_output<T>(call, ops.grad, ops.x);
  for_each_row(layout, [&](int64_t, const RowCursor& cursor) {
    const T* x = reinterpret_cast<const T*>(call.base[ops.x] + cursor.offset(ops.x));
    char* out = call.base[ops.out] + cursor.offset(ops.out);
    if (ops.grad == kNoOperand) {
      entropy_row<T>(kernels, x, n, out, nullptr, false);
      return;
    }
    char* grad_bytes = call.base[ops.grad] + cursor.offset(ops.grad);
    const int64_t grad_stride = layout.row_stride[ops.grad];
    T* grad = row_output<T>(grad_bytes, grad_stride, n, 1);
    entropy_row<T>(kernels, x, n, out, grad, stream);
    finish_row_output(grad_bytes, grad_stride, n, grad);
  });
}

}  // namespace

void run_entropy(const ArrayCall& call, const EntropyOperands& ops) {
  if (call.dtype == DType::kBFloat16) entropy_typed<bfloat16>(call, ops);
  else if (call.dtype == DType::kFloat32) entropy_typed<float>(call, ops);
  else entropy_typed<double>(call, ops);
}

}  // namespace logitloss
