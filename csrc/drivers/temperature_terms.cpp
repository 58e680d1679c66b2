#include "drivers/temperature_terms.h"

#include <cmath>
#include <limits>

#include "drivers/row_loops.h"
#include "runtime/dispatch.h"

namespace logitloss {
namespace {

using namespace drivers;

void terms_of_row(const SoftmaxMoments& m, double label_logit, double scale, double* out) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (!std::isfinite(m.max) || std::isnan(m.others)) {
    out[kTermNll] = out[kTermFirst] = out[kTermSecond] = nan;
    return;
  }
  // max - z_y >= 0, exact for float data; inf for a -inf label logit (the caller rejects it).
  const double gap = m.max - label_logit;
  const double total = m.count + m.others;
  const double mean = m.first / total;  // E_p[u] <= 0
  const double log_total = m.count == 1.0 ? std::log1p(m.others) : std::log(m.count) + std::log1p(m.others / m.count);
  out[kTermNll] = scale * gap + log_total;
  out[kTermFirst] = gap + mean;
  const double variance = m.second / total - mean * mean;
  out[kTermSecond] = variance > 0.0 ? variance : 0.0;
}

template <class T>
void terms_rows(const TemperatureTermRows& rows) {
  const TypedKernels<T>& kernels = kernels_for<T>(active_kernels());
  const T* x = static_cast<const T*>(rows.x);
  const int64_t C = rows.classes;
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* row = x + r * C;
      const SoftmaxMoments m = kernels.row_softmax_moments(row, C, rows.scale);
      terms_of_row(m, (double)row[rows.label[r]], rows.scale, rows.out + r * kTemperatureTermCount);
    }
  };
  parallel_for(rows.rows, grain_rows(C), threads_for_work((double)rows.rows * (double)C), body);
}

}  // namespace

void run_temperature_terms(const TemperatureTermRows& rows) {
  if (rows.dtype == DType::kFloat32) terms_rows<float>(rows);
  else terms_rows<double>(rows);
}

}  // namespace logitloss
