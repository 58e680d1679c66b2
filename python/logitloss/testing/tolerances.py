"""The one tolerance table: the error bound logitloss promises, per family, direction and dtype.

The rule
--------
A result must lie within ``units`` eps (of the dtype the kernel computes in) of the exact value,
relative to the exact value's *condition scale* ``S`` (the references compute it: see
:mod:`logitloss.testing.softmax_family`, :mod:`~logitloss.testing.cross_entropy`,
:mod:`~logitloss.testing.binary_cross_entropy`), plus a small rounding and subnormal allowance::

    |actual - exact| <= units * eps(compute dtype) * S                      (the budget)
                      + output_rounding * eps(result dtype) * |exact|       (float16 only)
                      + subnormal_floor * smallest_subnormal(result dtype)  (only if |exact| < smallest normal)

``S`` is ``|exact|`` wherever the problem is well conditioned, so there the rule reads exactly
"within ``units`` eps relative of the exact value".  ``S`` is larger than ``|exact|`` only by what one
unavoidable rounding per operation in the result dtype costs: ``a - max`` rounded (so ``|a - max|``
enters, e.g. softmax of an entry 80 below the maximum can be no better than ~40 eps relative in
float32), ``log(m)`` / ``log1p`` next to a cancelling ``max + log(...)`` (``|lse - max|`` enters), and
a signed sum with ``b < 0`` (its cancellation factor ``sum|b e^a| / |sum b e^a|`` enters).  None of
these grows with the row length, and none is a blanket allowance: ``logsumexp([0, -40])`` still has
to be 4.248e-18 to ~1e-31 absolute, so the plain ``max + log(sum(exp(a - max)))`` fails it.

Gradients of the softmax family (``return_grad=True``, ``logsumexp_backward``, ``softmax_backward``,
``log_softmax_backward``) and of cross-entropy are bounded **normwise per row** in the max-norm:
every element of a row within ``units * eps * S_row``, ``S_row`` the row's largest ``|exact_i|`` times
the row's condition factor (plus each element's own input-rounding term).  Binary cross-entropy's
gradient is bounded per element.

``BOUNDS`` holds the units per (family, direction); ``ROUNDING`` the float16 rounding and the
subnormal floor per result dtype; :func:`tolerance` combines them.  ``docs/accuracy.md`` states the
same table for readers of the repository.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "BINARY_CROSS_ENTROPY",
    "BOUNDS",
    "COMPUTE_DTYPE",
    "CROSS_ENTROPY",
    "ENTROPY",
    "EPS",
    "FORWARD",
    "GRADIENT",
    "HESSIAN",
    "HESSIAN_FLOAT64_UNITS",
    "LOSS_PARITY",
    "ROUNDING",
    "SMALLEST_NORMAL",
    "SMALLEST_SUBNORMAL",
    "SOFTMAX_FAMILY",
    "Bound",
    "Rounding",
    "bound",
    "library_compute_dtype",
    "rounded_range",
    "to_float64",
    "tolerance",
    "ulp_of",
]

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
HESSIAN = "hessian"  # the diagonal of the Hessian (return_hessian=True)

SOFTMAX_FAMILY = "softmax family"  # logsumexp, softmax, log_softmax and their backward functions
CROSS_ENTROPY = "cross_entropy"
ENTROPY = "entropy_with_logits"
BINARY_CROSS_ENTROPY = "binary_cross_entropy_with_logits"
# Parity of the losses with torch (tests only): each side's own budget on its own scale.
LOSS_PARITY = "loss parity with torch"


class Bound(NamedTuple):
    units: float  # eps of the compute dtype, times the condition scale S
    reason: str


BOUNDS = {
    (SOFTMAX_FAMILY, FORWARD): Bound(
        4,
        "2 ulp exp/log helpers + the roundings of a - max, the sum (widened across lanes) and the final add "
        "stay within 4 eps of S.",
    ),
    (SOFTMAX_FAMILY, GRADIENT): Bound(
        8,
        "normwise per row: exp(a - lse) carries the error of lse (4 eps) plus its own exp and product "
        "roundings; 8 eps of the row's max-norm times its condition factor.",
    ),
    (CROSS_ENTROPY, FORWARD): Bound(
        8,
        "a non-negative combination of the row's L - z_c: the logsumexp budget and the weighted sum over "
        "classes; 8 eps of |loss| + A * S_y (the roundings of the exp arguments z_i - z_max).",
    ),
    (CROSS_ENTROPY, GRADIENT): Bound(
        8,
        "normwise per row, as the softmax family; the target element is formed without the p_y - 1 "
        "cancellation, so a confident row's gradient keeps its relative precision.",
    ),
    (BINARY_CROSS_ENTROPY, FORWARD): Bound(
        4,
        "per element a sum of non-negative terms (1 - y) sp(x) + pw y sp(-x): 4 eps relative wherever the "
        "exact loss is normal; reductions add one rounding per level of the summation tree.",
    ),
    (BINARY_CROSS_ENTROPY, GRADIENT): Bound(
        8,
        "per element, on the magnitude of the terms of (1 - y) - a q / a q - pw y (q = sigmoid(-|x|)): "
        "plain relative at y in {0, 1}.",
    ),
    (ENTROPY, FORWARD): Bound(
        8,
        "a sum of non-negative terms log(total) + G, each term exp(-d) d within 3 ulp of double, summed in "
        "double: 8 eps relative even for a near-deterministic row (H = 1e-17).",
    ),
    (ENTROPY, GRADIENT): Bound(
        8,
        "per element p_c (d_c - G): the roundings of d_c, of G to the data type and of d_c - G, exp's 2 ulp "
        "and two products: 8 eps of p_c (d_c + G).",
    ),
    (CROSS_ENTROPY, HESSIAN): Bound(
        8,
        "normwise per row in the max-norm: g A p (1 - p), the gradient's own g A p times 1 - p formed as "
        "((count - e) + others) / total (no cancellation at a confident row's max); float64: "
        "HESSIAN_FLOAT64_UNITS (testing/hessian.py).",
    ),
    (BINARY_CROSS_ENTROPY, HESSIAN): Bound(
        8,
        "per element relative: w a q (1 - q), q = sigmoid(-|x|) <= 1/2 (no cancellation), tiny values "
        "rounded once; float64: HESSIAN_FLOAT64_UNITS.",
    ),
    (LOSS_PARITY, FORWARD): Bound(8, "each side within 8 eps of its own scale (torch's is larger)."),
    (LOSS_PARITY, GRADIENT): Bound(8, "each side within 8 eps of its own scale (torch's is larger)."),
}


# The Hessian bounds' units for float64 results (the float32 ones are BOUNDS' 8).
HESSIAN_FLOAT64_UNITS = 16


class Rounding(NamedTuple):
    output_rounding: float  # eps of the result dtype, times |exact| (when computed in a wider dtype)
    subnormal_floor: float  # smallest subnormals of the result dtype, where |exact| is subnormal
    reason: str


ROUNDING = {
    np.dtype(np.float64): Rounding(0, 1, "native lanes; a subnormal result may be off by one subnormal ulp."),
    np.dtype(np.float32): Rounding(0, 1, "native lanes; subnormal results within one subnormal ulp, never flushed."),
    np.dtype(np.float16): Rounding(
        1,
        1,
        "computed in float32 and rounded once to float16: 0.5 ulp <= eps16/2 relative; one full float16 eps "
        "allows exact -> float32 -> float16 double rounding.",
    ),
}


def bound(family=SOFTMAX_FAMILY, direction=FORWARD):
    """The table's entry for a family and direction."""
    return BOUNDS[(family, direction)]


def tolerance(dtype, exact, scale, direction=FORWARD, *, family=SOFTMAX_FAMILY, compute_dtype=None, extra_units=0.0):
    """Absolute tolerance per element (float64 array), from the table.

    ``compute_dtype`` overrides the dtype the budget's eps is taken from (SciPy computes float16
    in float16); ``extra_units`` adds units to the budget (a library's own error).
    """
    dtype = np.dtype(dtype)
    units = bound(family, direction).units
    rounding = ROUNDING[dtype]
    compute = np.dtype(compute_dtype) if compute_dtype is not None else COMPUTE_DTYPE[dtype]
    exact = np.abs(np.asarray(exact, dtype=np.float64))
    scale = np.asarray(scale, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        tol = (units + extra_units) * EPS[compute] * scale + rounding.output_rounding * EPS[dtype] * exact
        tol = np.where(exact < SMALLEST_NORMAL[dtype], tol + rounding.subnormal_floor * SMALLEST_SUBNORMAL[dtype], tol)
    return tol


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


def to_float64(x):
    """``x`` as a native-endian float64 array (exact for every float16 / float32 / float64)."""
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


def ulp_of(exact, dtype):
    """The unit in the last place of ``exact`` in ``dtype``: 2**(max(e, emin) - mantissa bits),
    where 2**e <= |exact| < 2**(e+1).  ``exact`` may be float64 or longdouble (returned in kind)."""
    info = np.finfo(dtype)
    exact = np.abs(np.asarray(exact))
    _, exponent = np.frexp(exact)
    exponent = np.where(exact == 0, info.minexp, np.maximum(exponent.astype(np.int64) - 1, info.minexp))
    return np.ldexp(np.ones_like(exact), exponent - info.nmant)
