// Column mode: the reduced axis is strided and the last kept axis is contiguous for every listed
// operand (e.g. axis 0 of a C-ordered matrix, the class axis of (N, C, H, W) logits), so lanes
// run across columns and no transposed copy is made. Baseline code only (included by
// csrc/drivers/*.cpp).
//
// Column mode runs in two phases. Phase 1: per-column statistics, tile by tile of columns (the
// kernel walks down the rows of its tile). Phase 2: outputs row by row over whole contiguous
// rows, which streams through memory far better than writing tile-wide pieces of every row.
// "Blocks" enumerate the kept dims other than the last (the columns).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "drivers/array_call.h"
#include "drivers/row_layout.h"
#include "drivers/row_loops.h"
#include "kernels/kernel_table.h"
#include "runtime/thread_pool.h"

namespace logitloss {
namespace drivers {

template <class T>
bool use_columns(const ReductionLayout& layout, std::initializer_list<int> operands) {
  if (layout.outer_shape.empty() || layout.outer_shape.back() < 8) return false;
  for (int op : operands) {
    if (op == kNoOperand) continue;
    const int64_t row_stride = layout.row_stride[op];
    if (row_stride == (int64_t)sizeof(T) || row_stride % (int64_t)sizeof(T) != 0) return false;
    if (layout.outer_strides[op].back() != (int64_t)sizeof(T)) return false;
  }
  return true;
}

struct ColumnBlocks {
  ReductionLayout layout;  // walks the blocks: layout.rows is the number of blocks
  int64_t columns;         // per block
};

inline ColumnBlocks column_blocks(const ReductionLayout& layout) {
  ColumnBlocks blocks{layout, layout.outer_shape.back()};
  blocks.layout.outer_shape.pop_back();
  for (auto& strides : blocks.layout.outer_strides) strides.pop_back();
  blocks.layout.rows = layout.rows / blocks.columns;
  return blocks;
}

// stats[block * columns + column] for operand x_op.
template <class T>
std::vector<SliceStats> column_statistics(const TypedKernels<T>& kernels, const ArrayCall& call, int x_op,
                                          const ColumnBlocks& blocks, int flags) {
  const ReductionLayout& layout = call.layout;
  std::vector<SliceStats> stats((size_t)(blocks.layout.rows * blocks.columns));
  const int64_t tiles = (blocks.columns + kColumnTile - 1) / kColumnTile;
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t block = item / tiles, first = (item % tiles) * kColumnTile;
      RowCursor cursor(blocks.layout, block);
      const T* x = reinterpret_cast<const T*>(call.base[x_op] + cursor.offset(x_op)) + first;
      kernels.column_stats(x, layout.length, layout.row_stride[x_op] / (int64_t)sizeof(T),
                           blocks.columns - first < kColumnTile ? blocks.columns - first : kColumnTile,
                           stats.data() + block * blocks.columns + first, flags);
    }
  };
  parallel_for(blocks.layout.rows * tiles, 1, threads_for_work((double)layout.rows * layout.length), body);
  return stats;
}

// Calls per_row(block, r, x row, out row) for every reduced-axis row r of every block, in parallel.
template <class T, class F>
void for_each_column_row(const ArrayCall& call, const ColumnBlocks& blocks, int x_op, int out_op, F per_row) {
  const ReductionLayout& layout = call.layout;
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t block = item / layout.length, r = item % layout.length;
      RowCursor cursor(blocks.layout, block);
      per_row(block, r,
              reinterpret_cast<const T*>(call.base[x_op] + cursor.offset(x_op) + r * layout.row_stride[x_op]),
              reinterpret_cast<T*>(call.base[out_op] + cursor.offset(out_op) + r * layout.row_stride[out_op]));
    }
  };
  parallel_for(blocks.layout.rows * layout.length, grain_rows(blocks.columns),
               threads_for_work((double)layout.rows * layout.length), body);
}

// Byte address of column c of block `block` in operand op.
inline const char* column_address(const ArrayCall& call, const ColumnBlocks& blocks, int op, int64_t block, int64_t c) {
  RowCursor cursor(blocks.layout, block);
  return call.base[op] + cursor.offset(op) + c * call.layout.outer_strides[op].back();
}

}  // namespace drivers
}  // namespace logitloss
