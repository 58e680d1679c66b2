"""Assertions shared by the family's test files: one call of ours checked against the exact
reference (value, sign, gradient, dtype, return type), SciPy calls without warnings, bitwise
comparison."""

from __future__ import annotations

import math
import warnings

import numpy as np
import reference
from tolerances import FORWARD, GRADIENT, assert_close_to_exact

import logitloss


def scipy_call(func, *args, **kwargs):
    """Call a SciPy reference with its RuntimeWarnings (inf - inf, log(0)) silenced."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return func(*args, **kwargs)


def assert_same_kind(ours, theirs, what):
    """Same Python/NumPy type, shape and dtype: NumPy scalar vs ndarray matters (drop-in)."""
    if isinstance(theirs, np.ndarray):
        assert isinstance(ours, np.ndarray), f"{what}: got {type(ours).__name__}, SciPy gives an ndarray"
    else:
        assert isinstance(theirs, np.generic)
        assert isinstance(ours, np.generic) and not isinstance(ours, np.ndarray), (
            f"{what}: got {type(ours).__name__} {ours!r}, SciPy gives the NumPy scalar {theirs!r}"
        )
    assert ours.dtype == theirs.dtype, f"{what}: dtype {ours.dtype}, SciPy gives {theirs.dtype}"
    assert np.shape(ours) == np.shape(theirs), f"{what}: shape {np.shape(ours)}, SciPy gives {np.shape(theirs)}"


def same_bits(x, y):
    x = np.asarray(x)
    y = np.asarray(y)
    return x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()


def check_logsumexp(a, axis=None, b=None, keepdims=False, *, return_sign=False, grad=True, what="logsumexp"):
    """Call ``logitloss.logsumexp`` and check value (+ sign, + gradient) against the exact reference.

    Without ``return_sign`` a negative total must give nan (SciPy), and the gradient is only
    checked where the total is positive.
    """
    exact = reference.logsumexp(a, axis=axis, b=b, keepdims=keepdims)
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
        shape = np.broadcast_shapes(np.shape(a), np.shape(b)) if b is not None else np.shape(a)
        assert g.shape == shape, f"{what}: gradient shape {g.shape}, expected {shape}"
        expected = exact.grad
        unspecified = np.zeros(shape, dtype=bool)
        if not return_sign:  # out is nan there: its gradient is not specified
            unspecified |= _negative_rows(exact.sign, shape, axis)
        if b is not None:  # nothing left because of b == 0 / exact cancellation: not specified either
            unspecified |= _negative_rows(np.abs(exact.sign) - 0.5, shape, axis)
        if unspecified.any():
            g = np.where(unspecified, 0.0, g).astype(g.dtype)
            expected = np.where(unspecified, 0.0, expected)
        assert_close_to_exact(
            g, expected, exact.dtype, exact.grad_scale, lo=exact.grad_lo, direction=GRADIENT, what=f"{what} gradient"
        )
    return result, exact


def per_row_to_elements(values, shape, axis):
    """Broadcast a per-row quantity (the reduced shape, any keepdims) back to the element shape."""
    layout = reference._layout(shape, axis)
    per_row = np.asarray(values).reshape(-1)
    return layout.to_elements(np.repeat(per_row[:, None], math.prod(layout.reduced_shape), axis=1))


def _negative_rows(sign, shape, axis):
    """Broadcast a per-row "total < 0" mask (reduced shape, any keepdims) back to the element shape."""
    return per_row_to_elements(np.asarray(sign) < 0, shape, axis)


def check_softmax(x, axis=None, *, log=False, what=None):
    """Call ``softmax`` / ``log_softmax`` and check it against the exact reference."""
    name = "log_softmax" if log else "softmax"
    what = what or name
    exact = reference.softmax(x, axis=axis)
    out = getattr(logitloss, name)(x, axis=axis)
    if log:
        assert_close_to_exact(
            out, exact.log_softmax, exact.dtype, exact.log_softmax_scale, lo=exact.log_softmax_lo, what=what
        )
    else:
        assert_close_to_exact(out, exact.softmax, exact.dtype, exact.softmax_scale, lo=exact.softmax_lo, what=what)
    return out, exact


def per_isa(call):
    """{target: call()} for every SIMD target this CPU supports."""
    from conftest import SUPPORTED_ISAS

    results = {}
    for name in SUPPORTED_ISAS:
        with logitloss.use_isa(name):
            results[name] = call()
    return results


def snapshot(*arrays):
    """Copies of the arguments (None stays None), to prove later that a call left them alone."""
    return [None if a is None else np.array(a, copy=True) for a in arrays]


def assert_unchanged(before, after, what):
    for k, (b, a) in enumerate(zip(before, after)):
        if b is not None:
            assert same_bits(b, a), f"{what}: argument {k} was modified"


__all__ = ["FORWARD", "GRADIENT", "assert_same_kind", "assert_unchanged", "check_logsumexp", "check_softmax", "per_isa", "same_bits",
           "scipy_call", "snapshot"]
