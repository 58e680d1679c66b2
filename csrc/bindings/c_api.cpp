// The C API's table (python/logitloss/include/logitloss.h) as the capsule
// logitloss._core.kernels_api: C-linkage functions over drivers/single_row.h. The functions never
// throw into C: a failure to get a long row's per-thread buffer (the only allocation) gives nan.
#include <cstddef>
#include <limits>
#include <new>

#include <pybind11/pybind11.h>

#include "drivers/single_row.h"

#define LOGITLOSS_NO_IMPORT  // the consumer's import helpers are not for the extension itself
#include "logitloss.h"

namespace logitloss {
namespace {

template <class T>
T failed(std::ptrdiff_t n, T* out) {
  const T nan = std::numeric_limits<T>::quiet_NaN();
  for (std::ptrdiff_t i = 0; out && i < n; ++i) out[i] = nan;
  return nan;
}

template <class T, bool kLog>
void softmax_entry(const T* x, std::ptrdiff_t n, T* out) {
  try {
    softmax_row<T>(x, n, out, kLog);
  } catch (const std::bad_alloc&) {
    failed(n, out);
  }
}

extern "C" {

float logsumexp_row_f32(const float* x, std::ptrdiff_t n) { return logsumexp_row<float>(x, n); }
double logsumexp_row_f64(const double* x, std::ptrdiff_t n) { return logsumexp_row<double>(x, n); }

float cross_entropy_row_f32(const float* x, std::ptrdiff_t n, std::ptrdiff_t target, float* grad) {
  try {
    return cross_entropy_row<float>(x, n, target, grad);
  } catch (const std::bad_alloc&) {
    return failed(n, grad);
  }
}
double cross_entropy_row_f64(const double* x, std::ptrdiff_t n, std::ptrdiff_t target, double* grad) {
  try {
    return cross_entropy_row<double>(x, n, target, grad);
  } catch (const std::bad_alloc&) {
    return failed(n, grad);
  }
}

void softmax_row_f32(const float* x, std::ptrdiff_t n, float* out) { softmax_entry<float, false>(x, n, out); }
void softmax_row_f64(const double* x, std::ptrdiff_t n, double* out) { softmax_entry<double, false>(x, n, out); }
void log_softmax_row_f32(const float* x, std::ptrdiff_t n, float* out) { softmax_entry<float, true>(x, n, out); }
void log_softmax_row_f64(const double* x, std::ptrdiff_t n, double* out) { softmax_entry<double, true>(x, n, out); }

float binary_cross_entropy_with_logits_f32(const float* x, const float* y, std::ptrdiff_t n, float* grad) {
  return binary_cross_entropy_row<float>(x, y, n, grad);
}
double binary_cross_entropy_with_logits_f64(const double* x, const double* y, std::ptrdiff_t n, double* grad) {
  return binary_cross_entropy_row<double>(x, y, n, grad);
}

float cross_entropy_hessian_row_f32(const float* x, std::ptrdiff_t n, std::ptrdiff_t target, float* grad,
                                    float* hessian) {
  try {
    return cross_entropy_row<float>(x, n, target, grad, hessian);
  } catch (const std::bad_alloc&) {
    failed(n, hessian);
    return failed(n, grad);
  }
}
double cross_entropy_hessian_row_f64(const double* x, std::ptrdiff_t n, std::ptrdiff_t target, double* grad,
                                     double* hessian) {
  try {
    return cross_entropy_row<double>(x, n, target, grad, hessian);
  } catch (const std::bad_alloc&) {
    failed(n, hessian);
    return failed(n, grad);
  }
}

float binary_cross_entropy_with_logits_hessian_f32(const float* x, const float* y, std::ptrdiff_t n, float* grad,
                                                   float* hessian) {
  return binary_cross_entropy_row<float>(x, y, n, grad, hessian);
}
double binary_cross_entropy_with_logits_hessian_f64(const double* x, const double* y, std::ptrdiff_t n, double* grad,
                                                    double* hessian) {
  return binary_cross_entropy_row<double>(x, y, n, grad, hessian);
}

}  // extern "C"

static_assert(sizeof(std::ptrdiff_t) == sizeof(Py_ssize_t), "logitloss.h spells Py_ssize_t as ptrdiff_t");

const logitloss_kernels_api kTable = {
    LOGITLOSS_KERNELS_ABI_VERSION,
    (uint32_t)sizeof(logitloss_kernels_api),
    logsumexp_row_f32,
    logsumexp_row_f64,
    cross_entropy_row_f32,
    cross_entropy_row_f64,
    softmax_row_f32,
    softmax_row_f64,
    log_softmax_row_f32,
    log_softmax_row_f64,
    binary_cross_entropy_with_logits_f32,
    binary_cross_entropy_with_logits_f64,
    cross_entropy_hessian_row_f32,
    cross_entropy_hessian_row_f64,
    binary_cross_entropy_with_logits_hessian_f32,
    binary_cross_entropy_with_logits_hessian_f64,
};

}  // namespace

void bind_c_api(pybind11::module_& m) {
  // The table is static and const: the capsule owns nothing and needs no destructor.
  m.attr("kernels_api") = pybind11::reinterpret_steal<pybind11::object>(
      PyCapsule_New(const_cast<logitloss_kernels_api*>(&kTable), LOGITLOSS_KERNELS_CAPSULE, nullptr));
}

}  // namespace logitloss
