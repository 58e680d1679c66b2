// Arithmetic on SliceStats (kernels/kernel_table.h), in double: combining the statistics of two
// parts of a slice, and the log total of finished slices.
//
// Contract:
//   fold_stats(a, b)  the statistics of the union of two parts of a slice. max is exact; count
//                     adds the parts' counts at the max, others rescales each part below the
//                     max, (others + count) exp(part max - max), and adds: a few roundings of
//                     double, far below the data type's. Any max (all -inf parts fold to -inf).
//                     Order matters for rounding only; callers fold in a fixed order, so results
//                     never depend on threads.
//   log_totals        log(count) + log1p(others / count) per slice, in double lanes: exact for
//                     count 1 and others 0; otherwise log's and log1p's <= 2 ULP each (of double).
//                     Valid for a finite max, count >= 1, finite others >= 0 (the caller checks;
//                     other entries give unspecified values).
// Requires simd/vector-inl.h and simd/math-inl.h (arch/target.inc includes them first).
#pragma once

inline SliceStats fold_stats(SliceStats a, SliceStats b) {
  const double max = b.max > a.max ? b.max : a.max;
  if (max == -__builtin_inf()) return {max, a.count + b.count, a.others + b.others};
  auto rescaled_others = [max](const SliceStats& part) {
    return part.max < max ? (part.others + part.count) * ::exp(part.max - max) : part.others;
  };
  return {max, (a.max < max ? 0.0 : a.count) + (b.max < max ? 0.0 : b.count), rescaled_others(a) + rescaled_others(b)};
}

// Rows' logs in double lanes: for short rows the scalar libm calls would cost more than the row.
inline void log_totals(const SliceStats* stats, int64_t n, double* out) {
  constexpr int kLanes = Vec<double>::kLanes;
  for (int64_t i = 0; i < n; i += kLanes) {
    const int64_t lanes = n - i < kLanes ? n - i : kLanes;
    f64v count = splat<f64v>(1.0), others = splat<f64v>(0.0);  // padding lanes: log 1 = 0
    for (int64_t j = 0; j < lanes; ++j) {
      count[j] = stats[i + j].count;
      others[j] = stats[i + j].others;
    }
    // log(1) and log1p(0) are exactly 0; a single maximum per row (count 1) is the common case.
    bool single_maxima = true;
    for (int j = 0; j < kLanes; ++j) single_maxima &= count[j] == 1.0;
    const f64v total = single_maxima ? log1p(others) : log(count) + log1p(others / count);
    for (int64_t j = 0; j < lanes; ++j) out[i + j] = total[j];
  }
}
