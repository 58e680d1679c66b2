#include "drivers/softmax_statistics.h"

#include "drivers/cross_entropy.h"
#include "drivers/row_buffers.h"
#include "drivers/row_loops.h"
#include "runtime/dispatch.h"

namespace logitloss {
namespace {

using namespace drivers;

template <class T>
void statistics_rows(const SoftmaxStatisticsRows& rows) {
  const TypedKernels<T>& kernels = kernels_for<T>(active_kernels());
  const T* x = static_cast<const T*>(rows.x);
  const T* target = static_cast<const T*>(rows.target);
  const int64_t C = rows.classes;  // classes
  // The same target terms cross_entropy's driver builds (rounded to T as there), with the same
  // bound for the kernel's fused gap (smoothing e = target_offset * C).
  const T* weight = static_cast<const T*>(rows.weight);
  const bool bounded_mass = smoothing_mass_bounded(weight, C, std::fabs(rows.target_offset) * (double)C);
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const TargetTerms<T> terms{weight,        target ? target + r * C : nullptr,
                                 (T)rows.target_scale, (T)rows.target_offset,
                                 0.0,           0.0,
                                 T(0),          bounded_mass,
                                 nullptr,       false,
                                 0.0,           nullptr};
      const FusedStats s = kernels.row_softmax_fused(x + r * C, C, nullptr, chunk_scratch(C), nullptr, terms);
      double* out = rows.out + r * kStatisticCount;
      out[kStatMax] = s.stats.max;
      out[kStatCount] = s.stats.count;
      out[kStatOthers] = s.stats.others;
      out[kStatGap] = s.gap;
      out[kStatMass] = s.mass;
    }
  };
  parallel_for(rows.rows, grain_rows(C), threads_for_work((double)rows.rows * (double)C), body);
}

}  // namespace

void run_softmax_statistics(const SoftmaxStatisticsRows& rows) {
  if (rows.dtype == DType::kFloat32) statistics_rows<float>(rows);
  else statistics_rows<double>(rows);
}

}  // namespace logitloss
