// The threaded loops over an array's rows (the reduced axis contiguous, or packed through
// drivers/row_buffers.h): every row, ranges of rows, and batches of rows with their statistics;
// and what a row's statistics say. Results never depend on the thread count: each row's result
// depends only on the row. Baseline code only (included by csrc/drivers/*.cpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "drivers/array_call.h"
#include "drivers/row_buffers.h"
#include "drivers/row_layout.h"
#include "kernels/kernel_table.h"
#include "runtime/dispatch.h"
#include "runtime/thread_pool.h"

namespace logitloss {
namespace drivers {

// Elements of work per claimed chunk of rows: large enough to amortize the claim, small enough
// that a descheduled thread holds up little (~50 us).
constexpr double kGrainElements = 256.0 * 1024;

inline int64_t grain_rows(int64_t length) {
  const double rows = kGrainElements / (double)(length > 0 ? length : 1);
  return rows < 1 ? 1 : (int64_t)rows;
}

// Calls per_row(row, cursor) for every row, across threads.
template <class F>
void for_each_row(const ReductionLayout& layout, F per_row) {
  auto body = [&](int64_t begin, int64_t end) {
    RowCursor cursor(layout, begin);
    for (int64_t r = begin; r < end; ++r, cursor.next()) per_row(r, cursor);
  };
  parallel_for(layout.rows, grain_rows(layout.length), threads_for_work((double)layout.rows * layout.length), body);
}

// Calls per_range(begin, end, cursor) for ranges of consecutive rows, across threads, the cursor
// at row `begin` (per_range steps it): for drivers that batch work over a few rows.
template <class F>
void for_each_row_range(const ReductionLayout& layout, F per_range) {
  auto body = [&](int64_t begin, int64_t end) {
    RowCursor cursor(layout, begin);
    per_range(begin, end, cursor);
  };
  parallel_for(layout.rows, grain_rows(layout.length), threads_for_work((double)layout.rows * layout.length), body);
}

// Rows in batches, for drivers that need log(sum exp(x - max)) of each row: per batch of up to
// kRowBatch rows, the rows' statistics (operand x_op, kStatsPlain), their log totals in one vector
// call (for short rows, scalar log / log1p would cost more than the row's statistics), then
// per_row(offsets, stats, log_total) in row order, offsets[op] being the row's byte offset in
// operand op. Per batch the rows are read twice when per_row reads them: keep rows short.
constexpr int64_t kRowBatch = 64;

template <class T, class F>
void for_each_row_batch(const KernelTable& table, const ArrayCall& call, int x_op, F per_row) {
  const KernelsOf<T>& kernels = kernels_for<T>(table);
  const ReductionLayout& layout = call.layout;
  const size_t operands = call.base.size();
  const bool contiguous = layout.row_stride[x_op] == (int64_t)sizeof(T);  // rows' statistics in one call
  for_each_row_range(layout, [&](int64_t begin, int64_t end, RowCursor& cursor) {
    SliceStats stats[kRowBatch];
    double log_totals[kRowBatch];
    std::vector<int64_t> offsets((size_t)kRowBatch * operands);
    for (int64_t r = begin; r < end;) {
      const int64_t batch = end - r < kRowBatch ? end - r : kRowBatch;
      const T* rows[kRowBatch];
      for (int64_t i = 0; i < batch; ++i, cursor.next()) {
        int64_t* at = &offsets[(size_t)i * operands];
        for (size_t op = 0; op < operands; ++op) at[op] = cursor.offset(op);
        const T* x = row_input<T>(call.base[x_op] + at[x_op], layout.row_stride[x_op], layout.length, 0);
        if (contiguous) rows[i] = x;
        else stats[i] = kernels.row_stats(x, nullptr, layout.length, kStatsPlain);
      }
      if (contiguous) kernels.rows_stats(rows, batch, layout.length, stats);
      table.log_totals(stats, batch, log_totals);
      for (int64_t i = 0; i < batch; ++i) per_row(&offsets[(size_t)i * operands], stats[i], log_totals[i]);
      r += batch;
    }
  });
}

// A row's statistics allow the vector kernels (finite max, no nan); otherwise edge-case rules.
inline bool regular_row(const SliceStats& stats) { return stats.max - stats.max == 0 && stats.others == stats.others; }

// log(sum exp(x - max)) of a regular row, keeping precision when the maxima dominate.
inline double log_total(const SliceStats& stats) {
  return (stats.count == 1 ? 0.0 : std::log(stats.count)) + (stats.others == 0 ? 0.0 : std::log1p(stats.others / stats.count));
}

}  // namespace drivers
}  // namespace logitloss
