#include "ops/softmax_statistics.h"

#include "ops/row_access.h"
#include "runtime/dispatch.h"

namespace logitloss {
namespace {

using namespace row_access;

template <class T>
void statistics_rows(const SoftmaxStatisticsRows& rows) {
  const TypedKernels<T>& k = kernels_for<T>(active_kernels());
  const T* x = static_cast<const T*>(rows.x);
  const T* target = static_cast<const T*>(rows.target);
  const int64_t C = rows.classes;
  // The same target terms cross_entropy's driver builds (rounded to T as there); every |v_c| at
  // most 1 / C when there are no probability targets and the offset times the largest |weight|
  // is at most 1 / C (see gap_fusable), else the kernel's separate, overflow-safe gap pass.
  const T* weight = static_cast<const T*>(rows.weight);
  double largest_weight = 1.0;
  if (weight) {
    largest_weight = 0.0;
    for (int64_t c = 0; c < C; ++c) {
      const double w = std::fabs((double)weight[c]);
      if (!(w <= largest_weight)) largest_weight = w;
    }
  }
  const bool bounded_mass = std::fabs(rows.target_offset) * largest_weight * (double)C <= 1.0;
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const TargetTerms<T> terms{weight,        target ? target + r * C : nullptr,
                                 (T)rows.target_scale, (T)rows.target_offset,
                                 0.0,           0.0,
                                 T(0),          bounded_mass};
      const FusedStats s = k.row_softmax_fused(x + r * C, C, nullptr, chunk_scratch(C), nullptr, terms);
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
