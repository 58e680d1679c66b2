"""Assertions shared by the test files: same bits, arguments left alone, SciPy's result kinds, and a result
against an exact reference (``logitloss.testing``) within the tolerance table."""

from __future__ import annotations

import warnings

import numpy as np

from logitloss.testing.tolerances import (
    COMPUTE_DTYPE,
    EPS,
    FORWARD,
    SOFTMAX_FAMILY,
    library_compute_dtype,
    rounded_range,
    to_float64,
    tolerance,
)


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


def snapshot(*arrays):
    """Copies of the arguments (None stays None), to prove later that a call left them alone."""
    return [None if a is None else np.array(a, copy=True) for a in arrays]


def assert_unchanged(before, after, what):
    for k, (b, a) in enumerate(zip(before, after)):
        if b is not None:
            assert same_bits(b, a), f"{what}: argument {k} was modified"


def check_special_values(actual64, exact64, what):
    """nan exactly where the exact value is nan; +-inf exactly where it is +-inf."""
    exact_nan = np.isnan(exact64)
    actual_nan = np.isnan(actual64)
    if not np.array_equal(exact_nan, actual_nan):
        where = np.argwhere(exact_nan != actual_nan)[:5]
        raise AssertionError(
            f"{what}: nan pattern differs at {where.tolist()}: "
            f"actual {[actual64[tuple(i)] for i in where]} exact {[exact64[tuple(i)] for i in where]}"
        )
    exact_inf = np.isinf(exact64)
    mismatch = (exact_inf | np.isinf(actual64)) & ~(actual64 == exact64) & ~exact_nan
    if mismatch.any():
        where = np.argwhere(mismatch)[:5]
        raise AssertionError(
            f"{what}: infinities differ at {where.tolist()}: "
            f"actual {[actual64[tuple(i)] for i in where]} exact {[exact64[tuple(i)] for i in where]}"
        )


def assert_close_to_exact(
    actual,
    exact,
    dtype,
    scale=None,
    *,
    lo=None,
    direction=FORWARD,
    family=SOFTMAX_FAMILY,
    what="result",
    check_dtype=True,
    compute_dtype=None,
    extra_units=0.0,
):
    """Assert ``actual`` (result dtype ``dtype``) is within the table's tolerance (of ``family``) of
    ``exact + lo``.

    ``scale`` defaults to ``|exact|`` (plain relative).  Returns the worst error in units of the
    tolerance (<= 1 on success), for reporting.
    """
    dtype = np.dtype(dtype)
    actual_array = np.asarray(actual)
    if check_dtype:
        assert actual_array.dtype == dtype, f"{what}: dtype {actual_array.dtype}, expected {dtype}"
    exact64 = rounded_range(np.asarray(exact, dtype=np.float64), dtype)
    assert actual_array.shape == exact64.shape, f"{what}: shape {actual_array.shape}, expected {exact64.shape}"
    actual64 = to_float64(actual_array)
    check_special_values(actual64, exact64, what)
    finite = np.isfinite(exact64)
    if not finite.any():
        return 0.0
    lo64 = np.zeros_like(exact64) if lo is None else np.asarray(lo, dtype=np.float64)
    scale64 = np.abs(exact64) if scale is None else np.asarray(scale, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs((actual64 - exact64) - lo64)
        tol = tolerance(
            dtype, exact64 + lo64, scale64, direction, family=family, compute_dtype=compute_dtype,
            extra_units=extra_units,
        )
        ratio = np.where(finite, err / np.where(tol > 0, tol, np.finfo(np.float64).tiny), 0.0)
    worst = float(ratio.max())
    if not worst <= 1.0:
        index = np.unravel_index(int(np.argmax(np.where(np.isnan(ratio), np.inf, ratio))), ratio.shape)
        bad = int((ratio > 1.0).sum())
        eps = EPS[COMPUTE_DTYPE[dtype]]
        raise AssertionError(
            f"{what} ({dtype}, {direction}): {bad} of {ratio.size} elements outside tolerance; worst at "
            f"{tuple(int(i) for i in index)}: actual {actual64[index]!r}, exact {exact64[index]!r} "
            f"(+{lo64[index]!r}), error {err[index]:.3e} = {err[index] / eps:.3g} eps, "
            f"tolerance {tol[index]:.3e} (scale {scale64[index]:.3e}), {worst:.3g}x the tolerance"
        )
    return worst


def assert_close_to_library(
    actual, library_value, exact, scale, dtype, *, library, direction=FORWARD, extra_scale=1.0, what="result"
):
    """``|ours - library| <= tolerance(ours) + tolerance(library)``.

    The library's tolerance uses the same table entry with the library's compute dtype and a scale
    enlarged by ``extra_scale`` (absolute, or relative to ``|exact|`` for softmax: pass it
    already multiplied).
    """
    dtype = np.dtype(dtype)
    actual64 = to_float64(np.asarray(actual))
    theirs64 = to_float64(np.asarray(library_value))
    exact64 = np.asarray(exact, dtype=np.float64)
    check_special_values(actual64, theirs64, f"{what} vs {library}")
    finite = np.isfinite(theirs64)
    ours_tol = tolerance(dtype, exact64, scale, direction)
    lib_compute = library_compute_dtype(dtype, library)
    lib_scale = np.asarray(scale, dtype=np.float64) + extra_scale
    theirs_tol = tolerance(dtype, exact64, lib_scale, direction, compute_dtype=lib_compute)
    if lib_compute != COMPUTE_DTYPE[dtype]:
        # the library's float16 budget replaces the float32 one (already larger)
        theirs_tol = theirs_tol + EPS[dtype] * np.abs(exact64)
    with np.errstate(invalid="ignore"):
        err = np.where(finite, np.abs(actual64 - theirs64), 0.0)
        bad = err > ours_tol + theirs_tol
    if bad.any():
        i = np.unravel_index(int(np.argmax(np.where(bad, err / (ours_tol + theirs_tol), 0))), err.shape)
        raise AssertionError(
            f"{what} vs {library} ({dtype}): {int(bad.sum())} of {err.size} elements differ by more than "
            f"both budgets; worst at {i}: ours {actual64[i]!r}, {library} {theirs64[i]!r}, exact {exact64[i]!r}, "
            f"allowed {ours_tol[i] + theirs_tol[i]:.3e}"
        )
