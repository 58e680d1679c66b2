// What every driver needs to walk an array: the active kernels for a dtype, unaligned scalar
// access, packing of strided rows into thread-local buffers (and unpacking outputs), the threaded
// row loop, and column mode (the reduced axis strided, the last kept axis contiguous). Baseline
// code only (included by csrc/ops/*.cpp, never by an ISA target).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <vector>

#include "kernels/kernel_table.h"
#include "ops/row_layout.h"
#include "ops/softmax_family.h"
#include "runtime/thread_pool.h"

namespace logitloss {
namespace row_access {

// Elements of work per claimed chunk of rows: large enough to amortize the claim, small enough
// that a descheduled thread holds up little (~50 us).
constexpr double kGrainElements = 256.0 * 1024;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

template <class T>
const TypedKernels<T>& kernels_for(const KernelTable& table);
template <>
inline const TypedKernels<float>& kernels_for<float>(const KernelTable& table) { return table.f32; }
template <>
inline const TypedKernels<double>& kernels_for<double>(const KernelTable& table) { return table.f64; }

// Arrays may be unaligned: scalar access goes through memcpy.
template <class T>
T load_scalar(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class T>
void store_scalar(char* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

// Thread-local buffers for rows whose elements are not contiguous (packed before the kernel runs,
// unpacked after).
constexpr int kScratchSlots = 8;
template <class T>
T* scratch(int slot, int64_t n) {
  thread_local std::vector<T> buffers[kScratchSlots];
  if ((int64_t)buffers[slot].size() < n) buffers[slot].resize(n);
  return buffers[slot].data();
}

template <class T>
const T* row_input(const char* p, int64_t stride, int64_t n, int slot) {
  if (stride == (int64_t)sizeof(T)) return reinterpret_cast<const T*>(p);
  T* buffer = scratch<T>(slot, n);
  for (int64_t i = 0; i < n; ++i) buffer[i] = load_scalar<T>(p + i * stride);
  return buffer;
}

template <class T>
T* row_output(char* p, int64_t stride, int64_t n, int slot) {
  return stride == (int64_t)sizeof(T) ? reinterpret_cast<T*>(p) : scratch<T>(slot, n);
}

template <class T>
void finish_row_output(char* p, int64_t stride, int64_t n, const T* written) {
  if (reinterpret_cast<const char*>(written) == p) return;
  for (int64_t i = 0; i < n; ++i) store_scalar<T>(p + i * stride, written[i]);
}

// Streamed outputs (TypedKernels' `stream` and `staging`): an output at least this large cannot
// stay in cache anyway, so its lines are written with non-temporal stores, which saves reading
// each line before writing it (a third of the traffic of a read-x-write-out pass). Rows shorter
// than kStreamingRowBytes would be mostly partial lines at their ends.
constexpr double kStreamingOutputBytes = 32.0 * 1024 * 1024;
constexpr int64_t kStreamingRowBytes = 2048;
constexpr int kStagingSlot = 4;  // scratch slot of row_softmax_fused's staging buffer

// Whether operand out_op is streamed: its rows contiguous (written in place, not through a packed
// scratch row), the whole output large, not the input x_op itself (in place, the row's lines are
// in cache already; a streamed store would evict them), and not fresh: the OS zeroes a fresh
// page through the cache at the first store, so a streamed store then writes each line twice
// (measured: softmax (4096, 32000) into a fresh output 151 ms with plain stores, 207 streamed;
// into the caller's buffer 96 plain, 89 streamed).
template <class T>
bool stream_output(const ArrayCall& call, int out_op, int x_op) {
  const ReductionLayout& L = call.layout;
  if (out_op == kNoOperand || L.row_stride[out_op] != (int64_t)sizeof(T)) return false;
  if (call.base[out_op] == call.base[x_op] || (size_t)out_op >= call.fresh.size() || call.fresh[out_op]) return false;
  return (double)L.rows * (double)L.length * sizeof(T) >= kStreamingOutputBytes &&
         L.length * (int64_t)sizeof(T) >= kStreamingRowBytes;
}

// row_softmax_fused's staging buffer for this thread: n elements when streaming, else null.
template <class T>
T* staging_for(bool stream, int64_t n) {
  return stream ? scratch<T>(kStagingSlot, n) : nullptr;
}

// Two doubles per chunk of a row, for row_softmax_fused.
inline double* chunk_scratch(int64_t n) {
  thread_local std::vector<double> buffer;
  const size_t size = 2 * (size_t)((n + kRowChunk - 1) / kRowChunk);
  if (buffer.size() < size) buffer.resize(size);
  return buffer.data();
}

inline int64_t grain_rows(int64_t length) {
  const double rows = kGrainElements / (double)(length > 0 ? length : 1);
  return rows < 1 ? 1 : (int64_t)rows;
}

// Calls per_row(cursor) for every row, across threads; each row's result depends only on the row.
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
  const TypedKernels<T>& k = kernels_for<T>(table);
  const ReductionLayout& L = call.layout;
  const size_t operands = call.base.size();
  const bool contiguous = L.row_stride[x_op] == (int64_t)sizeof(T);  // rows' statistics in one call
  for_each_row_range(L, [&](int64_t begin, int64_t end, RowCursor& cursor) {
    SliceStats stats[kRowBatch];
    double log_totals[kRowBatch];
    std::vector<int64_t> offsets((size_t)kRowBatch * operands);
    for (int64_t r = begin; r < end;) {
      const int64_t batch = end - r < kRowBatch ? end - r : kRowBatch;
      const T* rows[kRowBatch];
      for (int64_t i = 0; i < batch; ++i, cursor.next()) {
        int64_t* at = &offsets[(size_t)i * operands];
        for (size_t op = 0; op < operands; ++op) at[op] = cursor.offset(op);
        const T* x = row_input<T>(call.base[x_op] + at[x_op], L.row_stride[x_op], L.length, 0);
        if (contiguous) rows[i] = x;
        else stats[i] = k.row_stats(x, nullptr, L.length, kStatsPlain);
      }
      if (contiguous) k.rows_stats(rows, batch, L.length, stats);
      table.log_totals(stats, batch, log_totals);
      for (int64_t i = 0; i < batch; ++i) per_row(&offsets[(size_t)i * operands], stats[i], log_totals[i]);
      r += batch;
    }
  });
}

// A row's statistics allow the vector kernels (finite max, no nan); otherwise edge-case rules.
inline bool regular_row(const SliceStats& s) { return s.max - s.max == 0 && s.others == s.others; }

// log(sum exp(x - max)) of a regular row, keeping precision when the maxima dominate.
inline double log_total(const SliceStats& s) {
  return (s.count == 1 ? 0.0 : std::log(s.count)) + (s.others == 0 ? 0.0 : std::log1p(s.others / s.count));
}

// Column mode: the reduced axis is strided and the last kept axis is contiguous for every listed
// operand, so lanes can run across columns.
template <class T>
bool use_columns(const ReductionLayout& layout, std::initializer_list<int> operands) {
  if (layout.outer_shape.empty() || layout.outer_shape.back() < 8) return false;
  for (int op : operands) {
    if (op == kNoOperand) continue;
    const int64_t rs = layout.row_stride[op];
    if (rs == (int64_t)sizeof(T) || rs % (int64_t)sizeof(T) != 0) return false;
    if (layout.outer_strides[op].back() != (int64_t)sizeof(T)) return false;
  }
  return true;
}

// Column mode runs in two phases. Phase 1: per-column statistics, tile by tile of columns (the
// kernel walks down the rows of its tile). Phase 2: outputs row by row over whole contiguous
// rows, which streams through memory far better than writing tile-wide pieces of every row.
// "Blocks" enumerate the kept dims other than the last (the columns).
struct ColumnBlocks {
  ReductionLayout blocks;
  int64_t columns;
};

inline ColumnBlocks column_blocks(const ReductionLayout& layout) {
  ColumnBlocks cb{layout, layout.outer_shape.back()};
  cb.blocks.outer_shape.pop_back();
  for (auto& s : cb.blocks.outer_strides) s.pop_back();
  cb.blocks.rows = layout.rows / cb.columns;
  return cb;
}

// stats[block * columns + column] for operand x_op.
template <class T>
std::vector<SliceStats> column_statistics(const TypedKernels<T>& k, const ArrayCall& call, int x_op,
                                          const ColumnBlocks& cb, int flags) {
  const ReductionLayout& L = call.layout;
  std::vector<SliceStats> stats((size_t)(cb.blocks.rows * cb.columns));
  const int64_t tiles = (cb.columns + kColumnTile - 1) / kColumnTile;
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t block = item / tiles, first = (item % tiles) * kColumnTile;
      RowCursor cursor(cb.blocks, block);
      const T* x = reinterpret_cast<const T*>(call.base[x_op] + cursor.offset(x_op)) + first;
      k.column_stats(x, L.length, L.row_stride[x_op] / (int64_t)sizeof(T),
                     cb.columns - first < kColumnTile ? cb.columns - first : kColumnTile,
                     stats.data() + block * cb.columns + first, flags);
    }
  };
  parallel_for(cb.blocks.rows * tiles, 1, threads_for_work((double)L.rows * L.length), body);
  return stats;
}

// Calls per_row(block, r, x row, out row) for every reduced-axis row r of every block, in parallel.
template <class T, class F>
void for_each_column_row(const ArrayCall& call, const ColumnBlocks& cb, int x_op, int out_op, F per_row) {
  const ReductionLayout& L = call.layout;
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t block = item / L.length, r = item % L.length;
      RowCursor cursor(cb.blocks, block);
      per_row(block, r, reinterpret_cast<const T*>(call.base[x_op] + cursor.offset(x_op) + r * L.row_stride[x_op]),
              reinterpret_cast<T*>(call.base[out_op] + cursor.offset(out_op) + r * L.row_stride[out_op]));
    }
  };
  parallel_for(cb.blocks.rows * L.length, grain_rows(cb.columns), threads_for_work((double)L.rows * L.length), body);
}

// Byte address of column c of block `block` in operand op.
inline const char* column_address(const ArrayCall& call, const ColumnBlocks& cb, int op, int64_t block, int64_t c) {
  RowCursor cursor(cb.blocks, block);
  return call.base[op] + cursor.offset(op) + c * call.layout.outer_strides[op].back();
}

}  // namespace row_access
}  // namespace logitloss
