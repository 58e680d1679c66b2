// Drivers for logsumexp / softmax / log_softmax, forward and backward: walk an N-d array as rows
// (or column tiles), run the active target's kernels on them across threads, and apply SciPy's
// and torch's rules for the edge cases. No Python here: the bindings describe arrays with a
// ReductionLayout whose operands share one shape; per-row operands (a logsumexp result, an
// upstream gradient) take part with stride 0 along the reduced axes.
#pragma once

#include <cstdint>
#include <vector>

#include "drivers/array_call.h"

namespace logitloss {

struct LogsumexpOperands {
  int a = kNoOperand, b = kNoOperand;                            // inputs (b optional)
  int out = kNoOperand, sign = kNoOperand, grad = kNoOperand;    // outputs (sign, grad optional)
  bool return_sign = false;
};
void run_logsumexp(const ArrayCall& call, const LogsumexpOperands& ops);

// log_softmax rows up to this length go in batches (for_each_row_batch): a batch of them stays in
// cache for the pass that writes the outputs. Their log totals come from the vector log_totals,
// longer rows' from the scalar log_total (drivers/row_loops.h); the single-row C API follows suit.
constexpr int64_t kLogSoftmaxBatchedRow = 256;

// softmax (log = false) or log_softmax (log = true) of x into out.
void run_softmax(const ArrayCall& call, int x, int out, bool log);

// d logsumexp / d a times the upstream gradient g (per-row operand); `result` (per-row, optional)
// is the forward value, which skips recomputing it.
struct LogsumexpBackwardOperands {
  int g = kNoOperand, a = kNoOperand, b = kNoOperand, result = kNoOperand, out = kNoOperand;
};
void run_logsumexp_backward(const ArrayCall& call, const LogsumexpBackwardOperands& ops);

// softmax_backward: out = y * (g - sum(g * y)); log_softmax_backward: out = g - exp(y) * sum(g).
void run_softmax_backward(const ArrayCall& call, int g, int y, int out, bool log);

}  // namespace logitloss
