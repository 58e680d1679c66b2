"""The softmax family's checks: one call of ``logitloss.logsumexp`` / ``softmax`` / ``log_softmax`` against the
exact reference (``logitloss.testing.softmax_family``): value, sign, gradient, dtype, return type."""

from __future__ import annotations

import numpy as np

import logitloss
from logitloss.testing import softmax_family
from logitloss.testing.rows import broadcast_axes, rows_of
from logitloss.testing.tolerances import GRADIENT

from .assertions import assert_close_to_exact


def check_logsumexp(a, axis=None, b=None, keepdims=False, *, return_sign=False, grad=True, what="logsumexp"):
    """Call ``logitloss.logsumexp`` and check value (+ sign, + gradient) against the exact reference.

    Without ``return_sign`` a negative total must give nan (SciPy), and the gradient is only
    checked where the total is positive.
    """
    exact = softmax_family.logsumexp(a, axis=axis, b=b, keepdims=keepdims)
    result = logitloss.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign, return_grad=grad)
    if not isinstance(result, tuple):
        result = (result,)
    expected_len = 1 + bool(return_sign) + bool(grad)
    assert len(result) == expected_len, f"{what}: returned {len(result)} items, expected {expected_len}"
    out = result[0]
    value = exact.value
    if not return_sign:
        value = np.where(exact.sign < 0, np.nan, value)
    if np.ndim(value) == 0 and not keepdims:
        assert isinstance(out, np.generic), f"{what}: full reduction returned {type(out).__name__}, not a NumPy scalar"
    assert_close_to_exact(out, value, exact.dtype, exact.scale, lo=exact.lo, what=what)
    if return_sign:
        sign = result[1]
        assert np.asarray(sign).dtype == exact.dtype, f"{what}: sign dtype {np.asarray(sign).dtype}"
        assert type(sign) is type(out), f"{what}: sign is {type(sign).__name__}, value is {type(out).__name__}"
        np.testing.assert_array_equal(np.asarray(sign, dtype=np.float64), exact.sign, err_msg=f"{what}: sign")
    if grad:
        g = np.asarray(result[-1])
        # d result / d a has a's shape; the masks below are per term (the broadcast shape), and an
        # element of a is unspecified when any term it fed is.
        shape = np.broadcast_shapes(np.shape(a), np.shape(b)) if b is not None else np.shape(a)
        assert g.shape == np.shape(a), f"{what}: gradient shape {g.shape}, expected a's shape {np.shape(a)}"
        expected = exact.grad
        unspecified = np.zeros(shape, dtype=bool)
        if not return_sign:  # out is nan there: its gradient is not specified
            unspecified |= _negative_rows(exact.sign, shape, axis)
        if b is not None:  # nothing left because of b == 0 / exact cancellation: not specified either
            unspecified |= _negative_rows(np.abs(exact.sign) - 0.5, shape, axis)
        unspecified = np.any(unspecified, axis=broadcast_axes(shape, np.shape(a))).reshape(np.shape(a))
        if unspecified.any():
            g = np.where(unspecified, 0.0, g).astype(g.dtype)
            expected = np.where(unspecified, 0.0, expected)
        assert_close_to_exact(
            g, expected, exact.dtype, exact.grad_scale, lo=exact.grad_lo, direction=GRADIENT, what=f"{what} gradient"
        )
    return result, exact


def per_row_to_elements(values, shape, axis):
    """Broadcast a per-row quantity (the reduced shape, any keepdims) back to the element shape."""
    return rows_of(shape, axis).per_row_to_elements(values)


def _negative_rows(sign, shape, axis):
    """Broadcast a per-row "total < 0" mask (reduced shape, any keepdims) back to the element shape."""
    return per_row_to_elements(np.asarray(sign) < 0, shape, axis)


def check_softmax(x, axis=None, *, log=False, what=None):
    """Call ``softmax`` / ``log_softmax`` and check it against the exact reference."""
    name = "log_softmax" if log else "softmax"
    what = what or name
    exact = softmax_family.softmax(x, axis=axis)
    out = getattr(logitloss, name)(x, axis=axis)
    if log:
        assert_close_to_exact(
            out, exact.log_softmax, exact.dtype, exact.log_softmax_scale, lo=exact.log_softmax_lo, what=what
        )
    else:
        assert_close_to_exact(out, exact.softmax, exact.dtype, exact.softmax_scale, lo=exact.softmax_lo, what=what)
    return out, exact


EXACT_BACKWARD = {"softmax": softmax_family.softmax_backward, "log_softmax": softmax_family.log_softmax_backward}


def check_lse_backward(g, a, axis=None, b=None, keepdims=False, *, result=None, what="logsumexp_backward"):
    """With ``result=`` the gradient is ``g * b * exp(a - result)`` for the result *given* (rounded to
    its dtype): the exact gradient times ``exp(lse - result)``, per row."""
    kwargs = {} if result is None else {"result": result}
    got = logitloss.logsumexp_backward(g, a, axis=axis, b=b, keepdims=keepdims, **kwargs)
    assert isinstance(got, np.ndarray) and got.shape == np.shape(a), f"{what}: {type(got).__name__} {np.shape(got)}"
    # The per-term gradient (a broadcast with b), scaled per row for result=, then summed to a's shape.
    shape = np.broadcast_shapes(np.shape(a), np.shape(b)) if b is not None else np.shape(a)
    exact = softmax_family.logsumexp(np.broadcast_to(a, shape), axis=axis, b=b, keepdims=keepdims, grad_output=g)
    expected, expected_lo, scale = exact.grad, exact.grad_lo, exact.grad_scale
    if result is not None:
        factor = np.exp((exact.value - np.asarray(result, dtype=np.float64)) + exact.lo)
        factor = per_row_to_elements(factor, shape, axis)
        expected, expected_lo, scale = expected * factor, expected_lo * factor, scale * factor
    if shape != np.shape(a):
        expected, expected_lo, scale = softmax_family.gradient_summed_to_shape(expected, expected_lo, scale, np.shape(a))
    assert_close_to_exact(got, expected, exact.dtype, scale, lo=expected_lo, direction=GRADIENT, what=what)
    return got


def check_backward(kind, g, output, axis=None, what=None):
    what = what or f"{kind}_backward"
    exact = EXACT_BACKWARD[kind](g, output, axis=axis)
    got = getattr(logitloss, f"{kind}_backward")(g, output, axis=axis)
    assert isinstance(got, np.ndarray) and got.shape == np.shape(output), f"{what}: shape {np.shape(got)}"
    assert_close_to_exact(got, exact.value, exact.dtype, exact.scale, lo=exact.lo, direction=GRADIENT, what=what)
    return got


def exact_forward_output(kind, x, axis):
    """The exact forward output rounded to the dtype: the same ``output`` argument on every ISA
    (so the backward reference is computed once), and independent of our forward's accuracy."""
    exact = softmax_family.softmax(x, axis=axis)
    return np.asarray(exact.softmax if kind == "softmax" else exact.log_softmax).astype(exact.dtype)
