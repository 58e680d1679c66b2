# cython: language_level=3, boundscheck=False, wraparound=False
# An extension that cimports logitloss.kernels but never calls import_kernels(): its calls must
# give nan (and nan outputs), not a crash. Built by tests/helpers/c_api_build.py.
from logitloss.kernels cimport (
    binary_cross_entropy_with_logits_f32,
    binary_cross_entropy_with_logits_hessian_f64,
    cross_entropy_hessian_row_f32,
    cross_entropy_row_f64,
    log_softmax_row_f32,
    logsumexp_row_f64,
    softmax_row_f64,
)


def calls_before_import(double[::1] x, double[::1] out64, float[::1] x32, float[::1] out32):
    """(logsumexp_row_f64, cross_entropy_row_f64 into out64, binary_cross_entropy_with_logits_f32
    into out32); then softmax_row_f64 into out64 and log_softmax_row_f32 into out32 are left for
    the caller to read."""
    cdef Py_ssize_t n = x.shape[0]
    cdef double lse, ce
    cdef float bce
    with nogil:
        lse = logsumexp_row_f64(&x[0], n)
        ce = cross_entropy_row_f64(&x[0], n, 0, &out64[0])
        bce = binary_cross_entropy_with_logits_f32(&x32[0], &x32[0], n, &out32[0])
        softmax_row_f64(&x[0], n, &out64[0])
        log_softmax_row_f32(&x32[0], n, &out32[0])
    return lse, ce, bce


def hessian_calls_before_import(double[::1] x, double[::1] grad64, double[::1] hessian64, float[::1] x32,
                                float[::1] grad32, float[::1] hessian32):
    """(cross_entropy_hessian_row_f32 into grad32 and hessian32, binary_cross_entropy_with_logits_hessian_f64
    into grad64 and hessian64)."""
    cdef Py_ssize_t n = x.shape[0]
    cdef float ce
    cdef double bce
    with nogil:
        ce = cross_entropy_hessian_row_f32(&x32[0], n, 0, &grad32[0], &hessian32[0])
        bce = binary_cross_entropy_with_logits_hessian_f64(&x[0], &x[0], n, &grad64[0], &hessian64[0])
    return ce, bce
