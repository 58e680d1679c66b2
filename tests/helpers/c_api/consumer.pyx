# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# An extension using logitloss's C API as an extension author would: each function called per row
# inside prange, without the GIL, on as many threads as asked. Built at test time against the
# installed package by tests/helpers/c_api_build.py; tests/test_c_api.py compares it with the
# Python API.
from cython.parallel cimport prange, threadid

from logitloss.kernels cimport (
    binary_cross_entropy_with_logits_f32,
    binary_cross_entropy_with_logits_f64,
    binary_cross_entropy_with_logits_hessian_f32,
    binary_cross_entropy_with_logits_hessian_f64,
    cross_entropy_hessian_row_f32,
    cross_entropy_hessian_row_f64,
    cross_entropy_row_f32,
    cross_entropy_row_f64,
    import_kernels,
    log_softmax_row_f32,
    log_softmax_row_f64,
    logsumexp_row_f32,
    logsumexp_row_f64,
    softmax_row_f32,
    softmax_row_f64,
)

import_kernels()

ctypedef fused real:
    float
    double


def logsumexp_rows(real[:, ::1] x, real[::1] out, int threads):
    cdef Py_ssize_t i, n = x.shape[1]
    for i in prange(x.shape[0], nogil=True, num_threads=threads, schedule="static", chunksize=1):
        if real is float:
            out[i] = logsumexp_row_f32(&x[i, 0], n)
        else:
            out[i] = logsumexp_row_f64(&x[i, 0], n)


def softmax_rows(real[:, ::1] x, real[:, ::1] out, bint log, int threads):
    """out may be x itself (in place)."""
    cdef Py_ssize_t i, n = x.shape[1]
    for i in prange(x.shape[0], nogil=True, num_threads=threads, schedule="static", chunksize=1):
        if real is float:
            if log:
                log_softmax_row_f32(&x[i, 0], n, &out[i, 0])
            else:
                softmax_row_f32(&x[i, 0], n, &out[i, 0])
        else:
            if log:
                log_softmax_row_f64(&x[i, 0], n, &out[i, 0])
            else:
                softmax_row_f64(&x[i, 0], n, &out[i, 0])


def cross_entropy_rows(real[:, ::1] x, Py_ssize_t[::1] target, real[::1] loss, real[:, ::1] grad, int threads):
    """grad: None (loss only), or where the gradient goes (may be x itself)."""
    cdef Py_ssize_t i, n = x.shape[1]
    cdef bint want_grad = grad is not None
    for i in prange(x.shape[0], nogil=True, num_threads=threads, schedule="static", chunksize=1):
        if real is float:
            loss[i] = cross_entropy_row_f32(&x[i, 0], n, target[i], &grad[i, 0] if want_grad else NULL)
        else:
            loss[i] = cross_entropy_row_f64(&x[i, 0], n, target[i], &grad[i, 0] if want_grad else NULL)


def binary_cross_entropy_rows(real[:, ::1] x, real[:, ::1] y, real[::1] loss, real[:, ::1] grad, int threads):
    """Per row, the summed loss over its elements; grad: None, or where the gradient goes."""
    cdef Py_ssize_t i, n = x.shape[1]
    cdef bint want_grad = grad is not None
    for i in prange(x.shape[0], nogil=True, num_threads=threads, schedule="static", chunksize=1):
        if real is float:
            loss[i] = binary_cross_entropy_with_logits_f32(&x[i, 0], &y[i, 0], n, &grad[i, 0] if want_grad else NULL)
        else:
            loss[i] = binary_cross_entropy_with_logits_f64(&x[i, 0], &y[i, 0], n, &grad[i, 0] if want_grad else NULL)


def hessian_rows(real[:, ::1] x, Py_ssize_t[::1] target, real[:, ::1] y, real[::1] loss, real[:, ::1] grad,
                 real[:, ::1] hessian, int threads):
    """Per row the cross-entropy (y None) or the summed binary cross-entropy (targets y), its gradient and
    the Hessian's diagonal."""
    cdef Py_ssize_t i, n = x.shape[1]
    cdef bint binary = y is not None
    for i in prange(x.shape[0], nogil=True, num_threads=threads, schedule="static", chunksize=1):
        if real is float:
            if binary:
                loss[i] = binary_cross_entropy_with_logits_hessian_f32(&x[i, 0], &y[i, 0], n, &grad[i, 0],
                                                                       &hessian[i, 0])
            else:
                loss[i] = cross_entropy_hessian_row_f32(&x[i, 0], n, target[i], &grad[i, 0], &hessian[i, 0])
        else:
            if binary:
                loss[i] = binary_cross_entropy_with_logits_hessian_f64(&x[i, 0], &y[i, 0], n, &grad[i, 0],
                                                                       &hessian[i, 0])
            else:
                loss[i] = cross_entropy_hessian_row_f64(&x[i, 0], n, target[i], &grad[i, 0], &hessian[i, 0])


def negative_length(double[::1] x, double[::1] out):
    """Every float64 function with n = -1: (logsumexp, cross_entropy, binary cross-entropy); the
    softmax calls must leave `out` alone."""
    cdef double lse, ce, bce
    with nogil:
        lse = logsumexp_row_f64(&x[0], -1)
        ce = cross_entropy_row_f64(&x[0], -1, 0, &out[0])
        bce = binary_cross_entropy_with_logits_f64(&x[0], &x[0], -1, &out[0])
        softmax_row_f64(&x[0], -1, &out[0])
        log_softmax_row_f64(&x[0], -1, &out[0])
    return lse, ce, bce


def thread_ids(Py_ssize_t rows, int threads, Py_ssize_t[::1] out):
    """The prange thread that ran each row (all 0 without OpenMP)."""
    cdef Py_ssize_t i
    for i in prange(rows, nogil=True, num_threads=threads, schedule="static", chunksize=1):
        out[i] = threadid()
