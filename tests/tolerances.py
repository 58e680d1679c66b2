"""The one tolerance table of the logsumexp / softmax family, per dtype and direction.

The rule
--------
A result must lie within ``units`` eps (of the dtype the kernel computes in) of the exact value,
relative to the exact value's *condition scale* ``S`` (``reference.py`` computes it), plus a small
rounding and subnormal allowance::

    |actual - exact| <= units * eps(compute dtype) * S                      (the budget)
                      + output_rounding * eps(result dtype) * |exact|       (float16 only)
                      + subnormal_floor * smallest_subnormal(result dtype)  (only if |exact| < smallest normal)

``S`` is ``|exact|`` wherever the problem is well conditioned, so there the rule reads exactly
"within 4 eps relative of the exact value".  ``S`` is larger than ``|exact|`` only by what one
unavoidable rounding per operation in the result dtype costs: ``a - max`` rounded (so ``|a - max|``
enters, e.g. softmax of an entry 80 below the maximum can be no better than ~40 eps relative in
float32), ``log(m)`` / ``log1p`` next to a cancelling ``max + log(...)`` (``|lse - max|`` enters), and
a signed sum with ``b < 0`` (its cancellation factor ``sum|b e^a| / |sum b e^a|`` enters).  None of
these grows with the row length, and none is a blanket allowance: ``logsumexp([0, -40])`` still has
to be 4.248e-18 to ~1e-31 absolute, so the plain ``max + log(sum(exp(a - max)))`` fails it.

Gradients (``return_grad=True``, ``logsumexp_backward``, ``softmax_backward``,
``log_softmax_backward``) are checked **normwise per row** in the max-norm: every element of a row
within ``8 eps * S_row`` where ``S_row`` is ``max_i |exact_i|`` times the row's condition factor (plus
each element's own input-rounding term); see ``reference.py`` for each formula.

Library parity (SciPy, torch) allows the library's own error on top of ours: see
``assert_close_to_library``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Entry(NamedTuple):
    units: float  # eps of the compute dtype, times the condition scale S
    output_rounding: float  # eps of the result dtype, times |exact| (when computed in a wider dtype)
    subnormal_floor: float  # smallest subnormals of the result dtype, where |exact| is subnormal
    reason: str


EPS = {
    np.dtype(np.float16): 2.0**-10,
    np.dtype(np.float32): 2.0**-23,
    np.dtype(np.float64): 2.0**-52,
}
SMALLEST_NORMAL = {dt: float(np.finfo(dt).smallest_normal) for dt in EPS}
SMALLEST_SUBNORMAL = {dt: float(np.finfo(dt).smallest_subnormal) for dt in EPS}

# The kernels compute float16 in float32 (loaded, widened, rounded once on store).
COMPUTE_DTYPE = {
    np.dtype(np.float16): np.dtype(np.float32),
    np.dtype(np.float32): np.dtype(np.float32),
    np.dtype(np.float64): np.dtype(np.float64),
}

FORWARD = "forward"
GRADIENT = "gradient"

TABLE = {
    (FORWARD, np.dtype(np.float64)): Entry(
        4,
        0,
        1,
        "float64 lanes: 2 ulp exp/log helpers + rounding of a - max, the sum and the final add "
        "stay within 4 eps of S; a subnormal result may be off by one subnormal ulp (rounded once).",
    ),
    (FORWARD, np.dtype(np.float32)): Entry(
        4,
        0,
        1,
        "float32 lanes, same budget as float64 in float32 eps (the horizontal sum is widened); "
        "subnormal results within one subnormal ulp, never flushed to zero.",
    ),
    (FORWARD, np.dtype(np.float16)): Entry(
        4,
        1,
        1,
        "computed in float32 (4 float32 eps of S) and rounded once to float16: 0.5 ulp <= eps16/2 "
        "relative; one full float16 eps allows exact -> float32 -> float16 double rounding.",
    ),
    (GRADIENT, np.dtype(np.float64)): Entry(
        8,
        0,
        1,
        "normwise per row: exp(a - lse) carries the error of lse (4 eps) plus its own exp and "
        "product roundings; 8 eps of the row's max-norm times its condition factor.",
    ),
    (GRADIENT, np.dtype(np.float32)): Entry(
        8,
        0,
        1,
        "as float64, in float32 eps.",
    ),
    (GRADIENT, np.dtype(np.float16)): Entry(
        8,
        1,
        1,
        "computed in float32 (8 float32 eps normwise) and rounded once to float16 per element.",
    ),
}


def entry(dtype, direction=FORWARD):
    return TABLE[(direction, np.dtype(dtype))]


def tolerance(dtype, exact, scale, direction=FORWARD, *, compute_dtype=None, extra_units=0.0):
    """Absolute tolerance per element (float64 array), from the table.

    ``compute_dtype`` overrides the dtype the budget's eps is taken from (SciPy computes float16
    in float16); ``extra_units`` adds units to the budget (a library's own error).
    """
    dtype = np.dtype(dtype)
    e = entry(dtype, direction)
    compute = np.dtype(compute_dtype) if compute_dtype is not None else COMPUTE_DTYPE[dtype]
    exact = np.abs(np.asarray(exact, dtype=np.float64))
    scale = np.asarray(scale, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        tol = (e.units + extra_units) * EPS[compute] * scale + e.output_rounding * EPS[dtype] * exact
        tol = np.where(exact < SMALLEST_NORMAL[dtype], tol + e.subnormal_floor * SMALLEST_SUBNORMAL[dtype], tol)
    return tol


def _float64(x):
    x = np.asarray(x)
    if x.dtype.byteorder not in ("=", "|"):
        x = x.astype(x.dtype.newbyteorder("="))
    return x.astype(np.float64)


def rounded_range(exact64, dtype):
    """An exact value beyond the dtype's overflow threshold (max + ulp(max) / 2) rounds to +-inf."""
    dtype = np.dtype(dtype)
    if dtype == np.float64:  # the float64 reference is already inf there
        return exact64
    info = np.finfo(dtype)
    limit = float(info.max) + 2.0 ** (info.maxexp - 1 - info.nmant) / 2
    return np.where(np.abs(exact64) >= limit, np.copysign(np.inf, exact64), exact64)


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
    what="result",
    check_dtype=True,
    compute_dtype=None,
    extra_units=0.0,
):
    """Assert ``actual`` (result dtype ``dtype``) is within the table's tolerance of ``exact + lo``.

    ``scale`` defaults to ``|exact|`` (plain relative).  Returns the worst error in units of the
    tolerance (<= 1 on success), for reporting.
    """
    dtype = np.dtype(dtype)
    actual_array = np.asarray(actual)
    if check_dtype:
        assert actual_array.dtype == dtype, f"{what}: dtype {actual_array.dtype}, expected {dtype}"
    exact64 = rounded_range(np.asarray(exact, dtype=np.float64), dtype)
    assert actual_array.shape == exact64.shape, f"{what}: shape {actual_array.shape}, expected {exact64.shape}"
    actual64 = _float64(actual_array)
    check_special_values(actual64, exact64, what)
    finite = np.isfinite(exact64)
    if not finite.any():
        return 0.0
    lo64 = np.zeros_like(exact64) if lo is None else np.asarray(lo, dtype=np.float64)
    scale64 = np.abs(exact64) if scale is None else np.asarray(scale, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs((actual64 - exact64) - lo64)
        tol = tolerance(dtype, exact64 + lo64, scale64, direction, compute_dtype=compute_dtype, extra_units=extra_units)
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


def library_compute_dtype(dtype, library):
    """The dtype whose eps measures a reference library's own error budget.

    SciPy and torch compute ``max + log(sum(exp(a - max)))`` (SciPy: with log1p for logsumexp
    only) with serial/pairwise sums in the input dtype, so their results carry roughly our
    budget again plus one eps of the log's argument: callers add ``1`` (lse, log_softmax) or
    ``|p|`` (softmax) to the scale.  Both round float16 intermediates to float16 (SciPy computes
    in float16; torch's CPU float16 log_softmax / logsumexp results are several float16 ulps
    off, and its backward reuses the float16-rounded forward), so their float16 budget is in
    float16 eps.
    """
    dtype = np.dtype(dtype)
    return dtype if dtype == np.float16 else COMPUTE_DTYPE[dtype]


def assert_close_to_library(
    actual, library_value, exact, scale, dtype, *, library, direction=FORWARD, extra_scale=1.0, what="result"
):
    """``|ours - library| <= tolerance(ours) + tolerance(library)``.

    The library's tolerance uses the same table entry with the library's compute dtype and a scale
    enlarged by ``extra_scale`` (absolute, or relative to ``|exact|`` for softmax: pass it
    already multiplied).
    """
    dtype = np.dtype(dtype)
    actual64 = _float64(np.asarray(actual))
    theirs64 = _float64(np.asarray(library_value))
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


def ulp_of(exact, dtype):
    """The unit in the last place of ``exact`` in ``dtype``: 2**(max(e, emin) - mantissa bits),
    where 2**e <= |exact| < 2**(e+1).  ``exact`` may be float64 or longdouble (returned in kind)."""
    info = np.finfo(dtype)
    exact = np.abs(np.asarray(exact))
    _, exponent = np.frexp(exact)
    exponent = np.where(exact == 0, info.minexp, np.maximum(exponent.astype(np.int64) - 1, info.minexp))
    return np.ldexp(np.ones_like(exact), exponent - info.nmant)
