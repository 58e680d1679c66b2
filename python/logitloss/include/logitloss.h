/* logitloss C API: the dispatched (best-ISA) kernels on one contiguous row, for compiled code
 * that writes its own loops (Cython, C, C++, Rust). Shipped in the wheel; its folder is
 * logitloss.get_include().
 *
 * The functions are not linked against: the extension module logitloss._core exports a table of
 * function pointers as the capsule "logitloss._core.kernels_api" (PyCapsule_Import). Cython users
 * `from logitloss.kernels cimport ...` and call import_kernels() once at module level
 * (logitloss/kernels.pxd); C and C++ users that include Python.h before this header call
 * logitloss_import_kernels() and then logitloss_kernels->...; others (Rust, ctypes) read the
 * capsule's pointer as a `const logitloss_kernels_api *` themselves.
 *
 * Every function:
 *   - works on contiguous rows of n elements (ptrdiff_t is Py_ssize_t on every platform CPython
 *     supports), on the calling thread: no thread pool, no Python, no GIL needed, no exception,
 *     never blocks; safe to call from any number of threads at once;
 *   - gives the bits the Python function gives on the same row (logsumexp, softmax,
 *     log_softmax along the last axis of a C-contiguous array; cross_entropy with
 *     reduction="none"; binary_cross_entropy_with_logits with reduction="sum"), with the same
 *     error bounds (docs/accuracy.md) and the same rules for -inf, +inf and nan;
 *   - allocates nothing for rows up to 16384 elements (longer rows: a buffer per thread, kept);
 *   - may write `out` / `grad` over `x` itself (in place); no other overlap.
 * Where the Python API raises, these functions cannot: they return nan (and write nan to every
 * element of `grad`, if given):
 *   - n < 0: nan, nothing written;
 *   - cross_entropy_row with target outside [0, n) (including n == 0; there is no ignore_index):
 *     nan loss, nan gradient;
 *   - softmax_row / log_softmax_row with n == 0 write nothing (the Python API raises);
 *   - logsumexp_row of n == 0 is -inf and binary_cross_entropy_with_logits of n == 0 is 0, as
 *     in Python.
 *
 * ABI rule: abi_version changes when an existing entry changes (signature, meaning, order); a new
 * function is appended to the table without changing it, and `size` grows. A consumer accepts a
 * table with abi_version equal to the LOGITLOSS_KERNELS_ABI_VERSION it was compiled with and
 * size >= the sizeof(logitloss_kernels_api) it was compiled with (logitloss_import_kernels
 * checks both).
 */
#ifndef LOGITLOSS_H
#define LOGITLOSS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LOGITLOSS_KERNELS_ABI_VERSION 1
#define LOGITLOSS_KERNELS_CAPSULE "logitloss._core.kernels_api"

typedef struct logitloss_kernels_api {
  uint32_t abi_version; /* LOGITLOSS_KERNELS_ABI_VERSION of the extension */
  uint32_t size;        /* sizeof(logitloss_kernels_api) of the extension, in bytes */
  /* log(sum(exp(x[0..n)))) */
  float (*logsumexp_row_f32)(const float *x, ptrdiff_t n);
  double (*logsumexp_row_f64)(const double *x, ptrdiff_t n);
  /* Loss logsumexp(x) - x[target]; when grad is not NULL, writes softmax(x) - onehot(target)
   * to grad[0..n). */
  float (*cross_entropy_row_f32)(const float *x, ptrdiff_t n, ptrdiff_t target, float *grad);
  double (*cross_entropy_row_f64)(const double *x, ptrdiff_t n, ptrdiff_t target, double *grad);
  /* out[0..n) = softmax(x) / log_softmax(x) */
  void (*softmax_row_f32)(const float *x, ptrdiff_t n, float *out);
  void (*softmax_row_f64)(const double *x, ptrdiff_t n, double *out);
  void (*log_softmax_row_f32)(const float *x, ptrdiff_t n, float *out);
  void (*log_softmax_row_f64)(const double *x, ptrdiff_t n, double *out);
  /* Sum over i < n of max(x, 0) - x y + log1p(exp(-|x|)); when grad is not NULL, writes
   * sigmoid(x) - y to grad[0..n). */
  float (*binary_cross_entropy_with_logits_f32)(const float *x, const float *y, ptrdiff_t n, float *grad);
  double (*binary_cross_entropy_with_logits_f64)(const double *x, const double *y, ptrdiff_t n, double *grad);
  /* Appended (the table's size grows; abi_version 1 still). As cross_entropy_row and
   * binary_cross_entropy_with_logits, and when hessian is not NULL, the diagonal of the loss's
   * Hessian to hessian[0..n): softmax(x) (1 - softmax(x)) / sigmoid(x) sigmoid(-x), as
   * return_hessian=True gives. hessian needs grad (not NULL; grad may be x) and overlaps neither
   * x nor grad; hessian without grad: nan loss and nan Hessian. */
  float (*cross_entropy_hessian_row_f32)(const float *x, ptrdiff_t n, ptrdiff_t target, float *grad, float *hessian);
  double (*cross_entropy_hessian_row_f64)(const double *x, ptrdiff_t n, ptrdiff_t target, double *grad,
                                          double *hessian);
  float (*binary_cross_entropy_with_logits_hessian_f32)(const float *x, const float *y, ptrdiff_t n, float *grad,
                                                        float *hessian);
  double (*binary_cross_entropy_with_logits_hessian_f64)(const double *x, const double *y, ptrdiff_t n,
                                                         double *grad, double *hessian);
} logitloss_kernels_api;

#ifdef __cplusplus
} /* extern "C" */
#endif

/* With Python.h included first: the import function, and a table to call through that is safe
 * (nan, see logitloss_not_imported) before the import. One copy per translation unit. */
#if defined(Py_PYTHON_H) && !defined(LOGITLOSS_NO_IMPORT)

#include <math.h>

/* Before logitloss_import_kernels() succeeds, every function returns nan and writes nan to its
 * outputs: a forgotten import gives nan, not a crash. */
static float logitloss_nan_f32_(ptrdiff_t n, float *out) {
  for (ptrdiff_t i = 0; out && i < n; ++i) out[i] = (float)NAN;
  return (float)NAN;
}
static double logitloss_nan_f64_(ptrdiff_t n, double *out) {
  for (ptrdiff_t i = 0; out && i < n; ++i) out[i] = (double)NAN;
  return (double)NAN;
}
static float logitloss_not_imported_lse_f32_(const float *x, ptrdiff_t n) { (void)x; (void)n; return (float)NAN; }
static double logitloss_not_imported_lse_f64_(const double *x, ptrdiff_t n) { (void)x; (void)n; return (double)NAN; }
static float logitloss_not_imported_ce_f32_(const float *x, ptrdiff_t n, ptrdiff_t t, float *grad) {
  (void)x; (void)t; return logitloss_nan_f32_(n, grad);
}
static double logitloss_not_imported_ce_f64_(const double *x, ptrdiff_t n, ptrdiff_t t, double *grad) {
  (void)x; (void)t; return logitloss_nan_f64_(n, grad);
}
static void logitloss_not_imported_softmax_f32_(const float *x, ptrdiff_t n, float *out) { (void)x; logitloss_nan_f32_(n, out); }
static void logitloss_not_imported_softmax_f64_(const double *x, ptrdiff_t n, double *out) { (void)x; logitloss_nan_f64_(n, out); }
static float logitloss_not_imported_bce_f32_(const float *x, const float *y, ptrdiff_t n, float *grad) {
  (void)x; (void)y; return logitloss_nan_f32_(n, grad);
}
static double logitloss_not_imported_bce_f64_(const double *x, const double *y, ptrdiff_t n, double *grad) {
  (void)x; (void)y; return logitloss_nan_f64_(n, grad);
}
static float logitloss_not_imported_ce_hessian_f32_(const float *x, ptrdiff_t n, ptrdiff_t t, float *grad,
                                                     float *hessian) {
  (void)x; (void)t; logitloss_nan_f32_(n, hessian); return logitloss_nan_f32_(n, grad);
}
static double logitloss_not_imported_ce_hessian_f64_(const double *x, ptrdiff_t n, ptrdiff_t t, double *grad,
                                                      double *hessian) {
  (void)x; (void)t; logitloss_nan_f64_(n, hessian); return logitloss_nan_f64_(n, grad);
}
static float logitloss_not_imported_bce_hessian_f32_(const float *x, const float *y, ptrdiff_t n, float *grad,
                                                      float *hessian) {
  (void)x; (void)y; logitloss_nan_f32_(n, hessian); return logitloss_nan_f32_(n, grad);
}
static double logitloss_not_imported_bce_hessian_f64_(const double *x, const double *y, ptrdiff_t n, double *grad,
                                                       double *hessian) {
  (void)x; (void)y; logitloss_nan_f64_(n, hessian); return logitloss_nan_f64_(n, grad);
}

static const logitloss_kernels_api logitloss_not_imported = {
    0, (uint32_t)sizeof(logitloss_kernels_api),
    logitloss_not_imported_lse_f32_, logitloss_not_imported_lse_f64_,
    logitloss_not_imported_ce_f32_, logitloss_not_imported_ce_f64_,
    logitloss_not_imported_softmax_f32_, logitloss_not_imported_softmax_f64_,
    logitloss_not_imported_softmax_f32_, logitloss_not_imported_softmax_f64_,
    logitloss_not_imported_bce_f32_, logitloss_not_imported_bce_f64_,
    logitloss_not_imported_ce_hessian_f32_, logitloss_not_imported_ce_hessian_f64_,
    logitloss_not_imported_bce_hessian_f32_, logitloss_not_imported_bce_hessian_f64_,
};

static const logitloss_kernels_api *logitloss_kernels = &logitloss_not_imported;

/* Imports logitloss (choosing the ISA target) and its table; 0 on success, -1 with ImportError
 * set when the table's ABI does not match this header. Call with the GIL held; idempotent. */
static inline int logitloss_import_kernels(void) {
  const logitloss_kernels_api *table = (const logitloss_kernels_api *)PyCapsule_Import(LOGITLOSS_KERNELS_CAPSULE, 0);
  if (!table) return -1;
  if (table->abi_version != LOGITLOSS_KERNELS_ABI_VERSION || table->size < sizeof(logitloss_kernels_api)) {
    PyErr_Format(PyExc_ImportError,
                 "logitloss C API: the installed logitloss has ABI version %u (table of %u bytes); this module "
                 "was compiled against version %d (%u bytes): rebuild it against the installed logitloss",
                 (unsigned)table->abi_version, (unsigned)table->size, LOGITLOSS_KERNELS_ABI_VERSION,
                 (unsigned)sizeof(logitloss_kernels_api));
    return -1;
  }
  logitloss_kernels = table;
  return 0;
}

#endif /* Py_PYTHON_H */

#endif /* LOGITLOSS_H */
