"""Exact references for logsumexp, softmax, log_softmax and their gradients.

What "exact" means here
-----------------------
The inputs are taken as exact real numbers (every float16 / float32 / float64 / small integer is
exactly a float64 or an mpmath number).  Each function returns, per output element,

* ``value`` (float64) and ``lo`` (float64): the exact result is ``value + lo`` to far more precision
  than the tested dtype has (``lo`` is 0 on the float64 path, where it is not needed);
* ``scale`` (float64): the absolute *condition scale* of that output, i.e. how far the exact result
  moves when every input, and every rounding an implementation in the result dtype cannot avoid
  (``a - max``, one ``exp`` / ``log`` / ``log1p``, one product per term), is perturbed by one unit of
  relative error.  :mod:`~logitloss.testing.tolerances` turns it into a tolerance
  (``units * eps * scale``).  Where the problem is well conditioned ``scale`` is ``|value|``, so the
  tolerance is plain "k eps relative".

Two computation paths, chosen by the result dtype (``method`` forces one):

* result float16 / float32 ("float64 with care"): vectorized float64 with the maximum pulled out and
  ``log1p`` for the rest, SciPy's formula ``max + log(m) + log1p(s / m)``.  Its own error is a few
  float64 eps times ``scale``, i.e. about 1e-9 of the float32 tolerance: exact for our purposes.
* result float64: mpmath with ``MP_DPS`` (50) significant digits, row by row, one mp ``exp`` per
  element.  The result is rounded back as the pair ``value + lo``.

Reference values are cached by input content (:mod:`~logitloss.testing.cache`), so a reference is
computed once per input even though a test suite checks it on every ISA.

Conventions (SciPy's and torch's, ``docs/semantics.md``): entries with ``b == 0`` or ``a == -inf``
contribute nothing; a row with nothing left (empty or all masked) has value ``-inf`` and nan softmax /
log_softmax / gradient (torch's convention).  ``+inf`` and ``nan`` inputs are not handled here: callers
state those expectations explicitly.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .arithmetic import MP_DPS, load_mpmath, split, two_prod, two_sum, uses_mpmath
from .cache import cached, content_key
from .rows import broadcast_axes, rows_of
from .tolerances import GRADIENT, SOFTMAX_FAMILY, bound

__all__ = [
    "BackwardExact",
    "LogsumexpExact",
    "RowStatistics",
    "SoftmaxExact",
    "condition_terms",
    "log_softmax_backward",
    "logsumexp",
    "result_dtype",
    "row_statistics",
    "softmax",
    "softmax_backward",
    "gradient_summed_to_shape",
]

# exp(y) for y below this is < 1e-347: it cannot change any float64 result of a row whose maximum
# term is exp(0) = 1, so the mp path does not evaluate it (its float64 softmax value is exactly 0).
_NEGLIGIBLE_Y = -800.0


def result_dtype(a, b=None):
    """SciPy's result dtype: ``result_type(a, b)`` forced to floating (integers and bool -> float64)."""
    dt = np.result_type(np.asarray(a)) if b is None else np.result_type(np.asarray(a), np.asarray(b))
    if not np.issubdtype(dt, np.floating):
        dt = np.dtype(np.float64)
    return np.dtype(dt).newbyteorder("=")  # results are native-endian whatever the inputs


# ----------------------------------------------------------------------------------------------
# The row core: log|sum_i b_i exp(a_i)|, its sign, its gradient, a - lse, and condition terms
# ----------------------------------------------------------------------------------------------


class RowStatistics(NamedTuple):
    """What every output of the family is made of, per row of ``(R, n)`` logits (float64; see the fields)."""

    lse: np.ndarray  # (R,) hi
    lse_lo: np.ndarray  # (R,)
    sign: np.ndarray  # (R,)  +1 / -1, 0 for an exact zero or an all-masked row
    lse_rel: np.ndarray  # (R,) lse - max: the "log part" (log m + log1p(s/m))
    grad: np.ndarray  # (R, n) hi of sign * b * exp(a - lse); nan for rows with nothing left
    grad_lo: np.ndarray
    weight: np.ndarray  # (R, n) pi_i = |b_i| exp(a_i - lse) (float64, for condition scales)
    shift: np.ndarray  # (R, n) |a_i - max| where pi_i > 0, else 0
    log_b: np.ndarray  # (R, n) |log|b_i|| where b given and pi_i > 0, else 0
    at_max: np.ndarray  # (R, n) bool
    log_softmax: np.ndarray  # (R, n) hi of a - lse (only when b is None)
    log_softmax_lo: np.ndarray


def _check_supported(A, valid):
    bad = valid & ~np.isfinite(A) & ~np.isneginf(A)
    if np.any(bad):
        raise ValueError("the softmax-family reference takes finite and -inf inputs only (state inf / nan cases)")


def _statistics_float64(A, B):
    """float64-with-care path, exact enough for float16 / float32 results."""
    with np.errstate(all="ignore"):
        valid = A > -np.inf if B is None else (B != 0) & (A > -np.inf)
        _check_supported(A, (B != 0) if B is not None else np.ones_like(valid))
        masked = np.where(valid, A, -np.inf)
        amax = masked.max(axis=1, initial=-np.inf)
        has = np.isfinite(amax)
        shift_by = np.where(has, amax, 0.0)
        Y = masked - shift_by[:, None]  # -inf where masked
        E = np.exp(Y)
        T = E if B is None else np.where(valid, B * E, 0.0)
        at_max = valid & (Y == 0)
        m = np.where(at_max, T, 0.0).sum(axis=1)
        s = np.where(at_max, 0.0, T).sum(axis=1)
        total = m + s
        sign = np.sign(total)
        ratio = np.where(m != 0, s / np.where(m != 0, m, 1.0), 0.0)
        use_log1p = (m != 0) & (ratio > -1.0)
        lse_rel = np.where(
            use_log1p,
            np.log(np.abs(m)) + np.log1p(ratio),
            np.log(np.abs(total)),
        )
        alive = has & (total != 0)
        lse = np.where(alive, amax + lse_rel, -np.inf)
        abs_total = np.where(alive, np.abs(total), np.nan)
        grad = np.where(alive[:, None], sign[:, None] * T / abs_total[:, None], np.nan)
        grad = np.where(valid | ~alive[:, None], grad, 0.0)
        weight = np.where(valid & alive[:, None], np.abs(T) / abs_total[:, None], 0.0)
        shift = np.where(weight > 0, np.abs(Y), 0.0)
        log_b = (
            np.zeros_like(weight)
            if B is None
            else np.where(weight > 0, np.abs(np.log(np.abs(np.where(valid, B, 1.0)))), 0.0)
        )
        if B is None:
            log_softmax = np.where(alive[:, None], Y - lse_rel[:, None], np.nan)
        else:
            log_softmax = np.full_like(A, np.nan)
    zeros_rows = np.zeros_like(lse)
    return RowStatistics(
        lse=lse,
        lse_lo=zeros_rows,
        sign=np.where(alive, sign, 0.0),
        lse_rel=np.where(alive, lse_rel, np.nan),
        grad=grad,
        grad_lo=np.zeros_like(grad),
        weight=weight,
        shift=shift,
        log_b=log_b,
        at_max=at_max,
        log_softmax=log_softmax,
        log_softmax_lo=np.zeros_like(log_softmax),
    )


def _statistics_mpmath(A, B):
    """mpmath path (MP_DPS digits), used for float64 results."""
    mp = load_mpmath()
    R, n = A.shape
    lse = np.full(R, -np.inf)
    lse_lo = np.zeros(R)
    sign = np.zeros(R)
    lse_rel = np.full(R, np.nan)
    grad = np.full((R, n), np.nan)
    grad_lo = np.zeros((R, n))
    log_b = np.zeros((R, n))
    at_max = np.zeros((R, n), dtype=bool)
    log_softmax = np.full((R, n), np.nan)
    log_softmax_lo = np.zeros((R, n))
    with np.errstate(all="ignore"):
        valid_all = A > -np.inf if B is None else (B != 0) & (A > -np.inf)
        _check_supported(A, (B != 0) if B is not None else np.ones_like(valid_all))
    with mp.workdps(MP_DPS):
        mpf = mp.mpf
        for r in range(R):
            valid = valid_all[r]
            if not valid.any():
                continue
            row = A[r]
            row_list = row.tolist()
            b_list = None if B is None else B[r].tolist()
            idx = np.nonzero(valid)[0].tolist()
            amax = float(row[valid].max())
            amax_mp = mpf(amax)
            with np.errstate(over="ignore", invalid="ignore"):
                y = row - amax
            at_max[r] = valid & (y == 0)
            # (a_i - max) in mp: exact to MP_DPS digits (a_i - lse directly would lose everything
            # below MP_DPS digits of |lse|, e.g. lse = -1e308 + log n)
            shifted = {i: mpf(row_list[i]) - amax_mp for i in idx}
            terms = {}
            for i in idx:
                if y[i] < _NEGLIGIBLE_Y:
                    continue
                t = mp.exp(shifted[i])
                terms[i] = t if b_list is None else t * b_list[i]
            top = mp.fsum(t for i, t in terms.items() if at_max[r, i])
            rest = mp.fsum(t for i, t in terms.items() if not at_max[r, i])
            total = top + rest
            if total == 0:
                continue
            sign[r] = 1.0 if total > 0 else -1.0
            # log|total| as log|m| + log1p(s / m) (SciPy's form): log(1 + 1e-300) is 0 at MP_DPS digits, while
            # lse = max + 1e-300 is a normal float64 when max = 0
            if top != 0 and rest / top > -1:
                log_total = mp.log(abs(top)) + mp.log1p(rest / top)
            else:
                log_total = mp.log(abs(total))
            lse[r], lse_lo[r] = split(mp, amax_mp + log_total)
            lse_rel[r] = float(log_total)
            grad[r] = 0.0
            inverse = 1 / total  # grad_i = sign * b_i exp(a_i - lse) = t_i / total
            for i, t in terms.items():
                grad[r, i], grad_lo[r, i] = split(mp, t * inverse)
            if B is None:
                log_softmax[r] = -np.inf
                for i in idx:
                    log_softmax[r, i], log_softmax_lo[r, i] = split(mp, shifted[i] - log_total)
    with np.errstate(all="ignore"):
        weight = np.where(np.isfinite(grad), np.abs(grad), 0.0)
        row_max = np.where(valid_all, A, -np.inf).max(axis=1, initial=-np.inf)
        shift = np.where(weight > 0, np.abs(A - np.where(np.isfinite(row_max), row_max, 0.0)[:, None]), 0.0)
        if B is not None:
            log_b = np.where(weight > 0, np.abs(np.log(np.abs(np.where(weight > 0, B, 1.0)))), 0.0)
    return RowStatistics(lse, lse_lo, sign, lse_rel, grad, grad_lo, weight, shift, log_b, at_max, log_softmax, log_softmax_lo)


def row_statistics(A, B, dtype, method=None):
    """The :class:`RowStatistics` of the rows ``A`` (float64, (R, n); ``B`` their weights or None) for a
    ``dtype`` result: float64 with care or mpmath (``arithmetic.uses_mpmath``); cached by content."""
    exact = uses_mpmath(dtype, method)
    key = content_key("core", A, B, np.dtype(dtype).str, exact)
    return cached(key, lambda: _statistics_mpmath(A, B) if exact else _statistics_float64(A, B))


def condition_terms(core, b_given):
    """Per-row condition terms shared by every output of the family (float64, rough is fine).

    S_y   = sum_i pi_i (|a_i - max| + |log|b_i||): rounding of ``a - max`` (and of ``b`` or ``log b``)
            weighted by each term's share of the sum;
    kappa = sum_i pi_i >= 1: the cancellation factor of a signed sum (1 without b);
    rho   = share of the terms that are rounded at all: the non-maximal ones without b (the maximal
            term is exp(0) = 1 exactly), every term with b.
    """
    weight = core.weight
    s_y = (weight * (core.shift + core.log_b)).sum(axis=1)
    kappa = weight.sum(axis=1)
    if b_given:
        rho = kappa
    else:
        rho = np.where(core.at_max, 0.0, weight).sum(axis=1)
    return s_y, kappa, rho


# ----------------------------------------------------------------------------------------------
# Public reference functions
# ----------------------------------------------------------------------------------------------


class LogsumexpExact(NamedTuple):
    value: np.ndarray  # float64, reduced shape (keepdims as requested)
    lo: np.ndarray
    sign: np.ndarray
    scale: np.ndarray
    grad: np.ndarray  # float64, shape of a: d value / d a (times grad_output if given), summed where b broadcast a
    grad_lo: np.ndarray
    grad_scale: np.ndarray
    dtype: np.dtype  # the result dtype SciPy gives


def logsumexp(a, axis=None, b=None, keepdims=False, grad_output=None, *, method=None):
    """Exact ``log|sum b * exp(a)|`` over ``axis``, its sign, and its gradient with respect to ``a``.

    ``grad_output`` (shape of the reduced result, with this ``keepdims``) multiplies the gradient:
    the reference for ``logsumexp_backward``.  ``method``: see ``arithmetic.uses_mpmath``.
    """
    a = np.asarray(a)
    dtype = result_dtype(a, b)
    if b is not None:
        b = np.asarray(b)
        a_full, b_full = np.broadcast_arrays(a, b)
    else:
        a_full, b_full = a, None
    if a_full.ndim == 0:  # SciPy promotes 0-d to 1-d: keepdims=True gives shape (1,), axis=0 is valid
        a_full = a_full.reshape(1)
        b_full = None if b_full is None else b_full.reshape(1)
    layout = rows_of(a_full.shape, axis)
    A = layout.to_rows(a_full.astype(np.float64))
    B = None if b_full is None else layout.to_rows(b_full.astype(np.float64))
    core = row_statistics(A, B, dtype, method)
    s_y, kappa, rho = condition_terms(core, b_full is not None)

    with np.errstate(all="ignore"):
        # logsumexp value:  |L| (final addition of the max) + |L - max| (log / log1p rounding)
        #                   + S_y (rounding of a - max, b) + rho (exp and product rounding per term)
        scale = np.abs(core.lse) + np.abs(core.lse_rel) + s_y + rho

        grad, grad_lo = core.grad, core.grad_lo
        if grad_output is not None:
            g = np.asarray(grad_output, dtype=np.float64)
            if keepdims and layout.axes:
                g = np.squeeze(np.broadcast_to(g, layout.to_reduced(core.lse, True).shape), axis=layout.axes)
            g_rows = np.broadcast_to(g, layout.kept_shape).reshape(-1)[:, None]
            p, e = two_prod(grad, np.broadcast_to(g_rows, grad.shape))
            grad, grad_lo = p, e + grad_lo * g_rows
        # gradient, normwise per row: (kappa + |L - max| + S_y) * max_i |g_i|, plus each element's own
        # input-rounding term |g_i| (|a_i - max| + |log|b_i||)
        row_norm = np.max(np.abs(np.where(np.isfinite(grad), grad, 0.0)), axis=1, initial=0.0)
        grad_scale = ((kappa + np.abs(core.lse_rel) + s_y) * row_norm)[:, None] + np.abs(grad) * (
            core.shift + core.log_b
        )

    grad, grad_lo, grad_scale = (layout.to_elements(x) for x in (grad, grad_lo, grad_scale))
    if a_full.shape != a.shape:
        grad, grad_lo, grad_scale = gradient_summed_to_shape(grad, grad_lo, grad_scale, a.shape)
    return LogsumexpExact(
        value=np.asarray(layout.to_reduced(core.lse, keepdims)),
        lo=np.asarray(layout.to_reduced(core.lse_lo, keepdims)),
        sign=np.asarray(layout.to_reduced(core.sign, keepdims)),
        scale=np.asarray(layout.to_reduced(scale, keepdims)),
        grad=grad,
        grad_lo=grad_lo,
        grad_scale=grad_scale,
        dtype=dtype,
    )


def gradient_summed_to_shape(grad, grad_lo, grad_scale, shape):
    """A gradient of the broadcast shape summed back to ``a``'s ``shape`` (each element of ``a`` fed
    every term it was broadcast to).

    The pair ``grad + grad_lo`` is summed with error-free additions, so it stays exact to ~106 bits.
    The scale is the sum of the terms' scales plus ``(k - 1) * sum |terms|`` in units of the gradient
    bound: a k-term sum in the compute dtype, in any order, adds at most ``(k - 1) eps sum |terms|``.
    """
    axes = broadcast_axes(grad.shape, shape)
    kept = tuple(i for i in range(grad.ndim) if i not in axes)
    k = math.prod(grad.shape[i] for i in axes)

    m = math.prod(grad.shape[i] for i in kept)

    def columns(x):  # (..kept.., ..summed..) -> (kept elements, k)
        return np.transpose(x, kept + axes).reshape(m, k)

    hi_terms, lo_terms = columns(grad), columns(grad_lo)
    hi, lo = np.zeros(m), np.zeros(m)
    with np.errstate(invalid="ignore", over="ignore"):
        for j in range(k):
            hi, e = two_sum(hi, hi_terms[:, j])
            lo = lo + e + lo_terms[:, j]
        hi, lo = two_sum(hi, lo)
        magnitude = np.sum(np.abs(hi_terms), axis=1)
        scale = np.sum(columns(grad_scale), axis=1) + max(k - 1, 0) / bound(SOFTMAX_FAMILY, GRADIENT).units * magnitude
    kept_shape = tuple(grad.shape[i] for i in kept)
    # The kept axes are exactly a's axes of length > 1 or unchanged: reshape restores a's shape.
    return tuple(np.asarray(x.reshape(kept_shape)).reshape(shape) for x in (hi, lo, scale))


class SoftmaxExact(NamedTuple):
    softmax: np.ndarray
    softmax_lo: np.ndarray
    softmax_scale: np.ndarray
    log_softmax: np.ndarray
    log_softmax_lo: np.ndarray
    log_softmax_scale: np.ndarray
    dtype: np.dtype


def softmax(x, axis=None, *, method=None):
    """Exact softmax and log_softmax of ``x`` over ``axis`` (None: all elements), with scales.
    ``method``: see ``arithmetic.uses_mpmath``."""
    x = np.asarray(x)
    dtype = result_dtype(x)
    layout = rows_of(x.shape, axis)
    A = layout.to_rows(x.astype(np.float64))
    core = row_statistics(A, None, dtype, method)
    s_y, _kappa, rho = condition_terms(core, False)
    with np.errstate(all="ignore"):
        lse_rel = np.abs(core.lse_rel)[:, None]
        # softmax p_i = exp(a_i - L), relative: 1 (exp, division) + |a_i - max| + |L - max| + S_y
        softmax_scale = core.weight * (1.0 + core.shift + lse_rel + s_y[:, None])
        # log_softmax a_i - L, absolute: |out_i| + |a_i - max| + |L - max| + S_y + rho
        row_max = A.max(axis=1, initial=-np.inf, keepdims=True)
        shift_all = np.where(np.isfinite(core.log_softmax), np.abs(A - row_max), 0.0)
        log_softmax_scale = (
            np.abs(core.log_softmax) + shift_all + lse_rel + s_y[:, None] + rho[:, None]
        )
    return SoftmaxExact(
        softmax=layout.to_elements(core.grad),
        softmax_lo=layout.to_elements(core.grad_lo),
        softmax_scale=layout.to_elements(softmax_scale),
        log_softmax=layout.to_elements(core.log_softmax),
        log_softmax_lo=layout.to_elements(core.log_softmax_lo),
        log_softmax_scale=layout.to_elements(log_softmax_scale),
        dtype=dtype,
    )


class BackwardExact(NamedTuple):
    value: np.ndarray
    lo: np.ndarray
    scale: np.ndarray  # normwise per row: the same number for every element of a row
    dtype: np.dtype


def _backward_rows(grad_output, output, axis):
    g = np.asarray(grad_output)
    o = np.asarray(output)
    g, o = np.broadcast_arrays(g, o)
    layout = rows_of(o.shape, axis)
    return layout, layout.to_rows(g.astype(np.float64)), layout.to_rows(o.astype(np.float64))


def softmax_backward(grad_output, output, axis=None, *, method=None):
    """Exact ``o * (g - sum(g * o))`` per row; scale = max_i |o_i| (|g_i| + sum_j |g_j o_j|).
    ``method`` "mpmath" (the default for float64 results) means error-free transformations here."""
    dtype = result_dtype(grad_output, output)
    layout, G, O = _backward_rows(grad_output, output, axis)
    exact = uses_mpmath(dtype, method)

    def compute():
        if exact:
            # A polynomial needs no mpmath: error-free transformations give it to ~2**-104.
            # g * o = p + e exactly (Dekker); d = sum(g * o) correctly rounded, and its residual,
            # by math.fsum; g - d = s + e2 exactly (Knuth two-sum), o * s = value + e3 exactly.
            products, product_errors = two_prod(G, O)
            d_hi = np.array([math.fsum(np.concatenate([p, e]).tolist()) for p, e in zip(products, product_errors)])
            d_lo = np.array(
                [math.fsum(np.concatenate([p, e, [-h]]).tolist()) for p, e, h in zip(products, product_errors, d_hi)]
            )
            difference, difference_error = two_sum(G, np.broadcast_to(-d_hi[:, None], G.shape))
            difference_lo = difference_error - d_lo[:, None]
            value, product_error = two_prod(O, difference)
            lo = product_error + O * difference_lo
            # Dekker's split overflows for |g| above ~2^996, and g - d of g and d near float64's
            # opposite ends overflows while o (g - d) may not: such rows in mpmath
            with np.errstate(invalid="ignore"):
                huge = (np.abs(G) > 2.0**990).any(axis=1) & (np.isfinite(G) & np.isfinite(O)).all(axis=1)
            if huge.any():
                value, lo = np.array(value, copy=True), np.array(lo, copy=True)
                mp = load_mpmath()
                with mp.workdps(MP_DPS):
                    for r in np.flatnonzero(huge):
                        g_row = [mp.mpf(float(v)) for v in G[r]]
                        o_row = [mp.mpf(float(v)) for v in O[r]]
                        d = mp.fsum(gi * oi for gi, oi in zip(g_row, o_row))
                        for i in range(G.shape[1]):
                            value[r, i], lo[r, i] = split(mp, o_row[i] * (g_row[i] - d))
        else:
            # float16/float32 products are exact in float64; the pairwise sum errs by ~1e-16 relative
            dot = (G * O).sum(axis=1, keepdims=True)
            value = O * (G - dot)
            lo = np.zeros_like(value)
        abs_dot = np.abs(G * 2.0**-64 * O).sum(axis=1, keepdims=True)  # scaled: sums beyond float64
        with np.errstate(over="ignore"):
            scale = np.max((np.abs(O) * (np.abs(G) * 2.0**-64 + abs_dot)) * 2.0**64, axis=1, keepdims=True, initial=0.0)
        return value, lo, np.broadcast_to(scale, value.shape).copy()

    value, lo, scale = cached(content_key("softmax_backward", G, O, dtype.str, exact), compute)
    return BackwardExact(layout.to_elements(value), layout.to_elements(lo), layout.to_elements(scale), dtype)


def log_softmax_backward(grad_output, output, axis=None, *, method=None):
    """Exact ``g - exp(o) * sum(g)`` per row; scale = max_i (|g_i| + exp(o_i) sum_j |g_j|).
    ``method``: see ``arithmetic.uses_mpmath``."""
    dtype = result_dtype(grad_output, output)
    layout, G, O = _backward_rows(grad_output, output, axis)
    exact = uses_mpmath(dtype, method)

    def compute():
        if exact:
            mp = load_mpmath()
            value = np.zeros_like(G)
            lo = np.zeros_like(G)
            with mp.workdps(MP_DPS):
                for r in range(G.shape[0]):
                    gs = [mp.mpf(float(v)) for v in G[r]]
                    total = mp.fsum(gs)
                    for i in range(G.shape[1]):
                        value[r, i], lo[r, i] = split(mp, gs[i] - mp.exp(mp.mpf(float(O[r, i]))) * total)
        else:
            total = G.sum(axis=1, keepdims=True)
            value = G - np.exp(O) * total
            lo = np.zeros_like(value)
        # sum |g| scaled by 2^-64: a grad_output over the whole float64 range sums beyond it (and
        # exp(o) * inf would be nan where exp(o) is 0)
        abs_total = np.abs(G * 2.0**-64).sum(axis=1, keepdims=True)
        with np.errstate(over="ignore"):
            scale = np.max(np.abs(G) + (np.exp(O) * abs_total) * 2.0**64, axis=1, keepdims=True, initial=0.0)
        return value, lo, np.broadcast_to(scale, value.shape).copy()

    value, lo, scale = cached(content_key("log_softmax_backward", G, O, dtype.str, exact), compute)
    return BackwardExact(layout.to_elements(value), layout.to_elements(lo), layout.to_elements(scale), dtype)
