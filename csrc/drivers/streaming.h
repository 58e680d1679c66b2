// When an output is written with streaming (non-temporal) stores (TypedKernels' `stream` and
// `staging`): an output at least kStreamingOutputBytes large cannot stay in cache anyway, so its
// lines are written without first being read (no read-for-ownership), a third of the traffic of
// a read-x-write-out pass. Baseline code only (included by csrc/drivers/*.cpp).
#pragma once

#include <cstdint>

#include "drivers/array_call.h"

namespace logitloss {
namespace drivers {

constexpr double kStreamingOutputBytes = 32.0 * 1024 * 1024;
// Rows shorter than this would be mostly partial lines at their ends, which are stored plainly.
constexpr int64_t kStreamingRowBytes = 2048;

// Whether operand out_op is streamed: its rows contiguous (written in place, not through a packed
// scratch row), the whole output large, not the input x_op itself (in place, the row's lines are
// in cache already; a streamed store would evict them), and not fresh: the OS zeroes a fresh
// page through the cache at the first store, so a streamed store then writes each line twice
// (a (4096, 32000) softmax into fresh pages a third slower streamed; into the caller's buffer 7%
// faster).
template <class T>
bool stream_output(const ArrayCall& call, int out_op, int x_op) {
  const ReductionLayout& layout = call.layout;
  if (out_op == kNoOperand || layout.row_stride[out_op] != (int64_t)sizeof(T)) return false;
  if (call.base[out_op] == call.base[x_op] || (size_t)out_op >= call.fresh.size() || call.fresh[out_op]) return false;
  return (double)layout.rows * (double)layout.length * sizeof(T) >= kStreamingOutputBytes &&
         layout.length * (int64_t)sizeof(T) >= kStreamingRowBytes;
}

}  // namespace drivers
}  // namespace logitloss
