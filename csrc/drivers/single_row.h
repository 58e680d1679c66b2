// One contiguous row through the active target's kernels, on the calling thread: the C API's
// functions (bindings/c_api.cpp, python/logitloss/include/logitloss.h). No thread pool, no Python;
// each gives the bits the array driver gives for the same row (the same kernels, the same
// edge-case rules, the same choice between vector and scalar logs). No exceptions: bad
// arguments give nan (the contract is in logitloss.h). Rows of up to kSingleRowStackElements
// elements allocate nothing; longer ones use the drivers' per-thread buffers.
#pragma once

#include <cstdint>

namespace logitloss {

constexpr int64_t kSingleRowStackElements = 16 * 1024;

template <class T>
T logsumexp_row(const T* x, int64_t n);
template <class T>
void softmax_row(const T* x, int64_t n, T* out, bool log);
// lse(x) - x[target]; grad (may be null, may be x) = softmax(x) - onehot(target); hessian
// (optional, only with grad, overlapping neither x nor grad) = softmax(x) (1 - softmax(x)).
template <class T>
T cross_entropy_row(const T* x, int64_t n, int64_t target, T* grad, T* hessian = nullptr);
// The sum of the n losses; grad (may be null, may be x) = sigmoid(x) - y; hessian (as above) =
// sigmoid(x) sigmoid(-x).
template <class T>
T binary_cross_entropy_row(const T* x, const T* y, int64_t n, T* grad, T* hessian = nullptr);

}  // namespace logitloss
