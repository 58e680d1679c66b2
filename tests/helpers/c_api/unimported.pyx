# cython: language_level=3, boundscheck=False, wraparound=False
# An extension that cimports logitloss.kernels but never calls import_kernels(): its calls must
# give nan (and nan outputs), not a crash. Built by tests/helpers/c_api_build.py.
from logitloss.kernels cimport (
    binary_cross_entropy_with_logits_f32,
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
