# cython: language_level=3
# logitloss's kernels for Cython: the dispatched (best-ISA) kernels on one contiguous row, callable
# without the GIL from any number of threads (e.g. inside ``prange``)::
#
#     from logitloss.kernels cimport import_kernels, cross_entropy_row_f32
#     import_kernels()   # once, at module level: imports logitloss and checks the ABI version
#
# The functions come from the capsule ``logitloss._core.kernels_api`` (the table in
# logitloss.h, in the folder ``logitloss.get_include()``, which the extension's ``include_dirs``
# must list): the module links against nothing. The contract (exactness, edge cases, bad
# arguments, the ABI version rule) is in logitloss.h; before ``import_kernels()`` every function
# returns nan.

cdef extern from "logitloss.h" nogil:
    const unsigned int LOGITLOSS_KERNELS_ABI_VERSION

    ctypedef struct logitloss_kernels_api:
        unsigned int abi_version
        unsigned int size
        float (*logsumexp_row_f32)(const float* x, Py_ssize_t n) noexcept nogil
        double (*logsumexp_row_f64)(const double* x, Py_ssize_t n) noexcept nogil
        float (*cross_entropy_row_f32)(const float* x, Py_ssize_t n, Py_ssize_t target, float* grad) noexcept nogil
        double (*cross_entropy_row_f64)(const double* x, Py_ssize_t n, Py_ssize_t target, double* grad) noexcept nogil
        void (*softmax_row_f32)(const float* x, Py_ssize_t n, float* out) noexcept nogil
        void (*softmax_row_f64)(const double* x, Py_ssize_t n, double* out) noexcept nogil
        void (*log_softmax_row_f32)(const float* x, Py_ssize_t n, float* out) noexcept nogil
        void (*log_softmax_row_f64)(const double* x, Py_ssize_t n, double* out) noexcept nogil
        float (*binary_cross_entropy_with_logits_f32)(const float* x, const float* y, Py_ssize_t n,
                                                      float* grad) noexcept nogil
        double (*binary_cross_entropy_with_logits_f64)(const double* x, const double* y, Py_ssize_t n,
                                                       double* grad) noexcept nogil
        float (*cross_entropy_hessian_row_f32)(const float* x, Py_ssize_t n, Py_ssize_t target, float* grad,
                                               float* hessian) noexcept nogil
        double (*cross_entropy_hessian_row_f64)(const double* x, Py_ssize_t n, Py_ssize_t target, double* grad,
                                                double* hessian) noexcept nogil
        float (*binary_cross_entropy_with_logits_hessian_f32)(const float* x, const float* y, Py_ssize_t n,
                                                              float* grad, float* hessian) noexcept nogil
        double (*binary_cross_entropy_with_logits_hessian_f64)(const double* x, const double* y, Py_ssize_t n,
                                                               double* grad, double* hessian) noexcept nogil

    const logitloss_kernels_api* logitloss_kernels

cdef extern from "logitloss.h":
    int logitloss_import_kernels() except -1


# Imports logitloss's table (choosing its ISA target); ImportError if its ABI version differs from
# the one this module was compiled against. With the GIL; idempotent.
cdef inline int import_kernels() except -1:
    return logitloss_import_kernels()


# log(sum(exp(x[0..n)))); n == 0: -inf.
cdef inline float logsumexp_row_f32(const float* x, Py_ssize_t n) noexcept nogil:
    return logitloss_kernels.logsumexp_row_f32(x, n)

cdef inline double logsumexp_row_f64(const double* x, Py_ssize_t n) noexcept nogil:
    return logitloss_kernels.logsumexp_row_f64(x, n)


# logsumexp(x) - x[target]; grad (NULL: none; may be x) = softmax(x) - onehot(target). target outside
# [0, n): nan loss and gradient.
cdef inline float cross_entropy_row_f32(const float* x, Py_ssize_t n, Py_ssize_t target, float* grad) noexcept nogil:
    return logitloss_kernels.cross_entropy_row_f32(x, n, target, grad)

cdef inline double cross_entropy_row_f64(const double* x, Py_ssize_t n, Py_ssize_t target,
                                         double* grad) noexcept nogil:
    return logitloss_kernels.cross_entropy_row_f64(x, n, target, grad)


# out[0..n) = softmax(x) / log_softmax(x) (out may be x).
cdef inline void softmax_row_f32(const float* x, Py_ssize_t n, float* out) noexcept nogil:
    logitloss_kernels.softmax_row_f32(x, n, out)

cdef inline void softmax_row_f64(const double* x, Py_ssize_t n, double* out) noexcept nogil:
    logitloss_kernels.softmax_row_f64(x, n, out)

cdef inline void log_softmax_row_f32(const float* x, Py_ssize_t n, float* out) noexcept nogil:
    logitloss_kernels.log_softmax_row_f32(x, n, out)

cdef inline void log_softmax_row_f64(const double* x, Py_ssize_t n, double* out) noexcept nogil:
    logitloss_kernels.log_softmax_row_f64(x, n, out)


# The summed loss over n elements; grad (NULL: none; may be x) = sigmoid(x) - y.
cdef inline float binary_cross_entropy_with_logits_f32(const float* x, const float* y, Py_ssize_t n,
                                                       float* grad) noexcept nogil:
    return logitloss_kernels.binary_cross_entropy_with_logits_f32(x, y, n, grad)

cdef inline double binary_cross_entropy_with_logits_f64(const double* x, const double* y, Py_ssize_t n,
                                                        double* grad) noexcept nogil:
    return logitloss_kernels.binary_cross_entropy_with_logits_f64(x, y, n, grad)


# As cross_entropy_row / binary_cross_entropy_with_logits, plus the diagonal of the loss's Hessian in
# hessian[0..n) (softmax (1 - softmax) / sigmoid(x) sigmoid(-x)); hessian needs grad (not NULL) and
# overlaps neither x nor grad (without grad: nan loss and Hessian).
cdef inline float cross_entropy_hessian_row_f32(const float* x, Py_ssize_t n, Py_ssize_t target, float* grad,
                                                float* hessian) noexcept nogil:
    return logitloss_kernels.cross_entropy_hessian_row_f32(x, n, target, grad, hessian)

cdef inline double cross_entropy_hessian_row_f64(const double* x, Py_ssize_t n, Py_ssize_t target, double* grad,
                                                 double* hessian) noexcept nogil:
    return logitloss_kernels.cross_entropy_hessian_row_f64(x, n, target, grad, hessian)

cdef inline float binary_cross_entropy_with_logits_hessian_f32(const float* x, const float* y, Py_ssize_t n,
                                                               float* grad, float* hessian) noexcept nogil:
    return logitloss_kernels.binary_cross_entropy_with_logits_hessian_f32(x, y, n, grad, hessian)

cdef inline double binary_cross_entropy_with_logits_hessian_f64(const double* x, const double* y, Py_ssize_t n,
                                                                double* grad, double* hessian) noexcept nogil:
    return logitloss_kernels.binary_cross_entropy_with_logits_hessian_f64(x, y, n, grad, hessian)
