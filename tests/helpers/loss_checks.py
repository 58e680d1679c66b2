"""Assertions shared by the loss tests (cross-entropy and binary cross-entropy): the kind of a returned loss,
no flush to zero, plain relative error, parity with torch."""

from __future__ import annotations

import math

import numpy as np

from logitloss.testing.tolerances import (
    COMPUTE_DTYPE,
    EPS,
    FORWARD,
    LOSS_PARITY,
    SMALLEST_NORMAL,
    SMALLEST_SUBNORMAL,
    library_compute_dtype,
    rounded_range,
    to_float64,
    tolerance,
)

from .assertions import check_special_values


def check_loss_and_gradient(result, input, exact, reduction, assert_loss_close, assert_grad_close, what):
    """The ``(loss, grad)`` of a ``return_grad=True`` call: its kind, shape and dtype against the exact
    reference ``exact``, then the family's loss and gradient checks.  Returns (loss, grad)."""
    assert isinstance(result, tuple) and len(result) == 2, f"{what}: return_grad=True gave {type(result).__name__}"
    loss, grad = result
    check_return_kind(loss, exact.dtype, reduction, exact.loss.shape, what)
    assert isinstance(grad, np.ndarray) and grad.shape == np.shape(input), f"{what}: gradient shape {np.shape(grad)}"
    assert grad.dtype == exact.dtype, f"{what}: gradient dtype {grad.dtype}, expected {exact.dtype}"
    assert_loss_close(loss, exact, what=f"{what} loss")
    assert_grad_close(grad, exact, what=f"{what} gradient")
    return loss, grad


def check_return_kind(loss, dtype, reduction, loss_shape, what="loss"):
    """mean / sum: a NumPy scalar of the input's dtype; none: an array of the loss shape (0-d for a
    1-D input: a NumPy scalar or a 0-d array)."""
    dtype = np.dtype(dtype)
    assert np.asarray(loss).dtype == dtype, f"{what}: dtype {np.asarray(loss).dtype}, expected {dtype}"
    if reduction == "none" and loss_shape != ():
        assert isinstance(loss, np.ndarray), f"{what}: {type(loss).__name__}, expected an ndarray"
        assert loss.shape == loss_shape, f"{what}: shape {loss.shape}, expected {loss_shape}"
    elif reduction == "none":
        assert isinstance(loss, (np.ndarray, np.generic)) and np.ndim(loss) == 0, f"{what}: {type(loss).__name__}"
    else:
        assert isinstance(loss, np.generic) and not isinstance(loss, np.ndarray), (
            f"{what}: {type(loss).__name__} {loss!r}, expected a NumPy scalar"
        )


def assert_no_flush_to_zero(actual, exact64, dtype, what):
    """Where the exact value rounds to a nonzero number of ``dtype``, the result is not 0."""
    actual64 = to_float64(np.asarray(actual))
    exact64 = np.asarray(exact64, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        nonzero = np.abs(exact64) > SMALLEST_SUBNORMAL[np.dtype(dtype)] / 2
        flushed = nonzero & (actual64 == 0)
    if flushed.any():
        where = np.argwhere(np.atleast_1d(flushed))[:5].tolist()
        raise AssertionError(
            f"{what}: 0 where the exact value {np.atleast_1d(exact64)[np.atleast_1d(flushed)][:5]} rounds to nonzero "
            f"({dtype}), at {where}"
        )


def assert_relative(actual, exact64, dtype, units, what):
    """Plain relative error <= units * eps(compute dtype) (+ a subnormal ulp below the normal range,
    + one float16 eps for the float16 rounding): for rows whose exp arguments are exact."""
    dtype = np.dtype(dtype)
    actual64 = to_float64(np.asarray(actual))
    exact64 = rounded_range(np.asarray(exact64, dtype=np.float64), dtype)
    check_special_values(actual64, exact64, what)
    finite = np.isfinite(exact64)
    with np.errstate(invalid="ignore"):
        tol = units * EPS[COMPUTE_DTYPE[dtype]] * np.abs(exact64)
        if dtype != COMPUTE_DTYPE[dtype]:
            tol = tol + EPS[dtype] * np.abs(exact64)
        tol = np.where(np.abs(exact64) < SMALLEST_NORMAL[dtype], tol + SMALLEST_SUBNORMAL[dtype], tol)
        err = np.where(finite, np.abs(actual64 - exact64), 0.0)
    bad = err > tol
    if bad.any():
        i = np.unravel_index(int(np.argmax(np.where(bad, err / np.where(tol > 0, tol, 1e-300), 0))), err.shape)
        raise AssertionError(
            f"{what} ({dtype}): {int(bad.sum())} of {err.size} values off by more than {units} eps relative; "
            f"worst at {i}: actual {actual64[i]!r}, exact {exact64[i]!r}, relative error "
            f"{err[i] / abs(exact64[i]) / EPS[COMPUTE_DTYPE[dtype]] if exact64[i] else math.inf:.3g} eps"
        )


def assert_close_to_torch(ours, theirs, exact, direction=FORWARD, what="result"):
    """``|ours - torch| <= our budget + torch's budget`` (the table's LOSS_PARITY units, torch's on its
    larger scale and in its compute dtype), and the same nan / inf pattern.  ``exact``: a
    ``CrossEntropyExact`` or ``BCEExact`` (their torch scales)."""
    dtype = exact.dtype
    if direction == FORWARD:
        value, scale, torch_scale = exact.loss + exact.loss_lo, exact.loss_scale, exact.torch_loss_scale
    else:
        value, scale, torch_scale = exact.grad + exact.grad_lo, exact.grad_scale, exact.torch_grad_scale
    ours64 = to_float64(np.asarray(ours))
    theirs64 = to_float64(np.asarray(theirs))
    assert ours64.shape == theirs64.shape, f"{what}: shape {ours64.shape}, torch gives {theirs64.shape}"
    check_special_values(ours64, theirs64, f"{what} vs torch")
    ours_tol = tolerance(dtype, value, scale, direction, family=LOSS_PARITY)
    torch_compute = library_compute_dtype(dtype, "torch")
    torch_tol = tolerance(dtype, value, torch_scale, direction, family=LOSS_PARITY, compute_dtype=torch_compute)
    if torch_compute != COMPUTE_DTYPE[dtype]:
        torch_tol = torch_tol + EPS[dtype] * np.abs(value)
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(theirs64)
        err = np.where(finite, np.abs(ours64 - theirs64), 0.0)
        allowed = ours_tol + torch_tol
        bad = err > allowed
    if bad.any():
        i = np.unravel_index(int(np.argmax(np.where(bad, err / np.where(allowed > 0, allowed, 1e-300), 0))), err.shape)
        raise AssertionError(
            f"{what} vs torch ({dtype}): {int(bad.sum())} of {err.size} elements differ by more than both budgets; "
            f"worst at {i}: ours {ours64[i]!r}, torch {theirs64[i]!r}, exact {np.asarray(value)[i]!r}, "
            f"allowed {allowed[i]:.3e}"
        )


def check_hessian_out_forms(loss, x):
    """``hessian_out=`` of a loss ``loss(input, **options)`` on float32 ``x``: it implies return_hessian and
    returns the buffer itself, a strided buffer gets the same values, and a gradient written in place over
    the input leaves the Hessian unchanged (the kernel reads each element before writing it)."""
    _, _, expected = loss(x, return_hessian=True)
    out = np.empty_like(x)
    result = loss(x, hessian_out=out)
    assert len(result) == 3 and result[2] is out
    np.testing.assert_array_equal(out, expected)
    strided = np.empty((x.shape[0], 2 * x.shape[1]), x.dtype)[:, ::2]
    loss(x, hessian_out=strided)
    np.testing.assert_array_equal(strided, expected)
    work = x.copy()
    _, grad, hessian = loss(work, grad_out=work, return_hessian=True)
    assert grad is work
    np.testing.assert_array_equal(hessian, expected)
