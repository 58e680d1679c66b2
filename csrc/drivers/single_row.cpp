// The single-row functions of the C API (drivers/single_row.h): each is the array driver's path
// for one contiguous row, without the row loop (so without the thread pool). Which path:
//   logsumexp:      softmax_family.cpp's values-only batches (row statistics, vector log totals);
//   softmax:        its row-by-row fused pass (never streamed: the row is the caller's);
//   log_softmax:    batched (vector log totals) up to kLogSoftmaxBatchedRow, else row by row;
//   cross_entropy:  cross_entropy.cpp's cross_entropy_position for an index target, weight 1,
//                   no smoothing, upstream gradient 1 (reduction "none"), the Hessian's diagonal
//                   on request;
//   binary cross-entropy: binary_cross_entropy.cpp's segments, partial sums added in order
//                   (reduction "sum").
#include "drivers/single_row.h"

#include <cmath>

#include "drivers/binary_cross_entropy.h"
#include "drivers/cross_entropy_rules.h"
#include "drivers/logsumexp_rules.h"
#include "drivers/row_buffers.h"
#include "drivers/row_loops.h"
#include "drivers/softmax_family.h"
#include "kernels/kernel_table.h"
#include "runtime/dispatch.h"

namespace logitloss {
namespace {

using namespace drivers;

// row_softmax_fused's 2 doubles per chunk: on the stack for rows up to kSingleRowStackElements,
// else the per-thread buffer.
class ChunkScratch {
 public:
  explicit ChunkScratch(int64_t n) : data_(n <= kSingleRowStackElements ? local_ : chunk_scratch(n)) {}
  double* get() { return data_; }

 private:
  static constexpr int64_t kLocal = 2 * ((kSingleRowStackElements + kRowChunk - 1) / kRowChunk);
  double local_[kLocal];
  double* data_;
};

// A plain softmax: no target terms (as softmax_family.cpp's plain_softmax).
template <class T>
TargetTerms<T> plain_softmax() {
  return TargetTerms<T>{nullptr, nullptr, T(0), T(0), 1.0, 0.0, T(0), true, nullptr, false, 0.0, nullptr};
}

// The batched paths' log total (the vector log_totals), for one row.
double vector_log_total(const KernelTable& table, const SliceStats& stats) {
  double value;
  table.log_totals(&stats, 1, &value);
  return value;
}

template <class T>
void fill(T* out, int64_t n, double value) {
  for (int64_t i = 0; out && i < n; ++i) out[i] = (T)value;
}

}  // namespace

template <class T>
T logsumexp_row(const T* x, int64_t n) {
  if (n < 0) return (T)kNan;
  if (n == 0) return (T)-kInf;  // SciPy: the log of an empty sum
  const KernelTable& table = active_kernels();  // once per call: use_isa may switch it meanwhile
  const SliceStats stats = kernels_for<T>(table).row_stats(x, nullptr, n, kStatsPlain);
  if (regular_row(stats) && stats.count >= 1 && stats.others >= 0) return (T)(stats.max + vector_log_total(table, stats));
  return (T)finalize_logsumexp(stats, false).value;
}

template <class T>
void softmax_row(const T* x, int64_t n, T* out, bool log) {
  if (n <= 0) return;
  const KernelTable& table = active_kernels();
  const TypedKernels<T>& kernels = kernels_for<T>(table);
  SliceStats stats;
  if (log) {
    stats = kernels.row_stats(x, nullptr, n, kStatsPlain);
  } else {
    ChunkScratch scratch(n);
    stats = kernels.row_softmax_fused(x, n, out, scratch.get(), nullptr, plain_softmax<T>()).stats;
  }
  if (!regular_row(stats)) {
    softmax_fallback<T>(reinterpret_cast<const char*>(x), sizeof(T), n, reinterpret_cast<char*>(out), sizeof(T), log);
    return;
  }
  if (log) {
    const double total = n <= kLogSoftmaxBatchedRow ? vector_log_total(table, stats) : log_total(stats);
    kernels.row_log_softmax(x, n, (T)stats.max, (T)total, out, false);
  }
}

template <class T>
T cross_entropy_row(const T* x, int64_t n, int64_t target, T* grad, T* hessian) {
  if (n < 0) return (T)kNan;
  // no ignore_index here: every target outside [0, n) is bad; the Hessian comes with the gradient
  if (target < 0 || target >= n || (hessian && !grad)) {
    fill(grad, n, kNan);
    fill(hessian, n, kNan);
    return (T)kNan;
  }
  const double z_y = (double)x[target];  // before an in-place gradient overwrites it
  // Index target, weight 1, no smoothing, g = 1: scale_base = g (1 - e) w_y = 1, scale_per_mass =
  // bias = g = 1, target_offset = e / C = 0.
  const TargetTerms<T> terms{nullptr, nullptr, T(0), T(0), 1.0, 1.0, T(1), true, hessian, false, 0.0, nullptr};
  ChunkScratch scratch(n);
  const KernelTable& table = active_kernels();
  const FusedStats fused = kernels_for<T>(table).row_softmax_fused(x, n, grad, scratch.get(), nullptr, terms);
  if (!regular_row(fused.stats)) {  // a nan, an all -inf row, or +inf: nan, as torch
    fill(grad, n, kNan);
    fill(hessian, n, kNan);
    return (T)kNan;
  }
  if (grad) grad[target] = (T)target_lane_gradient(fused.stats, 1.0, 0.0, 1.0, z_y, fused.mass, 0.0);
  return (T)position_loss(vector_log_total(table, fused.stats), fused.gap, fused.mass, true, 0.0, 1.0, fused.stats.max - z_y);
}

template <class T>
T binary_cross_entropy_row(const T* x, const T* y, int64_t n, T* grad, T* hessian) {
  if (n < 0) return (T)kNan;
  if (hessian && !grad) {  // the Hessian comes with the gradient
    fill(hessian, n, kNan);
    return (T)kNan;
  }
  const TypedKernels<T>& kernels = kernels_for<T>(active_kernels());
  double sum = 0.0;
  for (int64_t first = 0; first < n; first += kBinaryCrossEntropySegment) {
    const int64_t length = n - first < kBinaryCrossEntropySegment ? n - first : kBinaryCrossEntropySegment;
    const BinaryCrossEntropySpan<T> span{x + first, y + first, nullptr, nullptr, nullptr, T(1), nullptr,
                                         grad ? grad + first : nullptr, hessian ? hessian + first : nullptr};
    sum += kernels.binary_cross_entropy_with_logits(span, length, true).plain;
  }
  return (T)sum;
}

template float logsumexp_row<float>(const float*, int64_t);
template double logsumexp_row<double>(const double*, int64_t);
template void softmax_row<float>(const float*, int64_t, float*, bool);
template void softmax_row<double>(const double*, int64_t, double*, bool);
template float cross_entropy_row<float>(const float*, int64_t, int64_t, float*, float*);
template double cross_entropy_row<double>(const double*, int64_t, int64_t, double*, double*);
template float binary_cross_entropy_row<float>(const float*, const float*, int64_t, float*, float*);
template double binary_cross_entropy_row<double>(const double*, const double*, int64_t, double*, double*);

}  // namespace logitloss
