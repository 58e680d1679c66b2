"""Exact references for the Hessian diagonals of ``cross_entropy`` and ``binary_cross_entropy_with_logits``.

Cross-entropy
-------------
Per position (the class axis moved last) the loss is ``sum_c B_c (L - z_c)`` with coefficients ``B``
that do not depend on the logits (:mod:`~logitloss.testing.cross_entropy`: ``(1 - eps) w_y [c == y] +
(eps / C) w_c`` for index targets, ``w_c ((1 - eps) y_c + eps / C)`` for probability targets, 0 for an
ignored row), so with ``A = sum_c B_c`` and ``p = softmax(z)``::

    d^2 loss / d z_c^2 = A p_c (1 - p_c)

times the reduction's factor (1 for 'sum' and 'none' -- the Hessian of ``loss.sum()`` --, one over
the mean's denominator for 'mean', 0 when that denominator is 0). ``1 - p_c`` is taken as the sum of
the other terms: ``(S - e_c) / S`` with ``e = exp(z - z_max)``, ``S = sum e``, and ``S - e_c`` formed
as ``(count - 1) + sum of the non-maximal e`` at a maximal entry, so a confident row's largest
entry (``1 - p`` far below eps) is exact.  Rows with nan or ``+inf`` logits, or all ``-inf``, are nan.

Binary cross-entropy
--------------------
Per element ``d^2 loss / d x^2 = f w (1 + (pw - 1) y) sigmoid(x) sigmoid(-x)``, ``f`` the reduction's
factor (``1 / numel`` for 'mean'), with ``sigmoid(x) sigmoid(-x) = e / (1 + e)^2``, ``e = exp(-|x|)``.

Exactness: float16 / float32 results in float64 (``exp`` of an exact difference of float32 values,
relative error ~1e-16, next to a float32 tolerance of ~1e-6); float64 results in mpmath at
``arithmetic.MP_DPS`` digits, rounded once.

Bounds (``tolerances.BOUNDS`` with the ``HESSIAN`` direction): cross-entropy normwise per row in the
max-norm (every element within ``units * eps`` of the row's largest ``|exact|``), binary cross-entropy
per element relative; ``units`` 8 for float32 (float16 is computed in float32), 16 for float64.
"""

from __future__ import annotations

import math

import numpy as np

from .arithmetic import MP_DPS, load_mpmath
from .cross_entropy import _to_input_shape, layout_of, rows_and_targets
from .tolerances import CROSS_ENTROPY, EPS, HESSIAN, HESSIAN_FLOAT64_UNITS, bound, to_float64

__all__ = ["assert_hessian_close", "binary_cross_entropy_hessian", "cross_entropy_hessian", "hessian_units"]


def _softmax_curvature_float64(X):
    """p (1 - p) per row of float64 logits (nan / +inf / all -inf rows: nan)."""
    R, C = X.shape
    out = np.full((R, C), np.nan)
    with np.errstate(all="ignore"):
        bad = ~np.all(np.isfinite(X) | np.isneginf(X), axis=1) | ~np.any(np.isfinite(X), axis=1)
        for r in np.flatnonzero(~bad):
            row = X[r]
            top = row[np.isfinite(row)].max()
            at_max = row == top
            e = np.where(np.isfinite(row), np.exp(row - top), 0.0)
            count = float(at_max.sum())
            others = math.fsum(e[~at_max].tolist())
            total = count + others
            rest = np.where(at_max, (count - 1.0) + others, total - e)
            out[r] = (e / total) * (rest / total)
    return out


def _softmax_curvature_mpmath(X):
    """As _softmax_curvature_float64 in mpmath (float64 results): each value rounded once."""
    mp = load_mpmath()
    R, C = X.shape
    out = np.full((R, C), np.nan)
    with mp.workdps(MP_DPS):
        for r in range(R):
            row = X[r]
            finite = np.isfinite(row)
            if not np.all(finite | np.isneginf(row)) or not finite.any():
                continue
            top = float(row[finite].max())
            e = [mp.exp(mp.mpf(float(v)) - mp.mpf(top)) if np.isfinite(v) else mp.mpf(0) for v in row.tolist()]
            at_max = row == top
            count = int(at_max.sum())
            others = mp.fsum(t for t, hit in zip(e, at_max.tolist()) if not hit)
            total = count + others
            for c in range(C):
                rest = (count - 1) + others if at_max[c] else total - e[c]
                out[r, c] = float(e[c] * rest / (total * total))
    return out


def _target_mass(X, T, W, prob, ignore_index, eps, exact):
    """Per row A = sum_c B_c (0 for an ignored row) and the row's validity (not ignored)."""
    R, C = X.shape
    if prob:
        if exact:
            mp = load_mpmath()
            with mp.workdps(MP_DPS):
                keep, smooth = 1 - mp.mpf(eps), mp.mpf(eps) / C
                A = np.array([float(mp.fsum(mp.mpf(float(W[c])) * (keep * mp.mpf(float(T[r, c])) + smooth)
                                            for c in range(C))) for r in range(R)])
        else:
            A = np.array([math.fsum((W * ((1.0 - eps) * T[r] + eps / C)).tolist()) for r in range(R)])
        return A, np.ones(R, dtype=bool)
    valid = T != ignore_index
    safe = np.where(valid, T, 0)
    smooth_total = math.fsum(W.tolist()) * eps / C if C else 0.0
    A = np.where(valid, (1.0 - eps) * W[safe] + smooth_total, 0.0)
    return A, valid


def cross_entropy_hessian(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """The exact diagonal of the Hessian of ``torch.nn.functional.cross_entropy`` (reduced; for 'none' of
    ``loss.sum()``) with respect to ``input``, as float64 of the input's shape."""
    x = np.asarray(input)
    dtype = np.dtype(x.dtype).newbyteorder("=")
    layout = layout_of(x.shape)
    C = layout.classes
    prob, X, T = rows_and_targets(layout, x, target)
    W = np.ones(C) if weight is None else to_float64(np.asarray(weight)).reshape(C)
    exact = dtype == np.float64
    curvature = _softmax_curvature_mpmath(X) if exact else _softmax_curvature_float64(X)
    A, valid = _target_mass(X, T, W, prob, int(ignore_index), float(label_smoothing), exact)
    factor = 1.0
    if reduction == "mean":
        denominator = float(X.shape[0]) if prob else math.fsum(np.where(valid, W[np.where(valid, T, 0)], 0.0).tolist())
        factor = 1.0 / denominator if denominator != 0 else 0.0
    with np.errstate(all="ignore"):
        rows = np.where(valid[:, None], (factor * A)[:, None] * curvature, 0.0)
    return _to_input_shape(layout, rows)


def binary_cross_entropy_hessian(input, target, weight=None, reduction="mean", pos_weight=None):
    """The exact second derivative of ``binary_cross_entropy_with_logits`` (reduced; for 'none' of
    ``loss.sum()``) with respect to each element of ``input``, as float64 of the input's shape."""
    x = np.asarray(input)
    shape = x.shape
    X = to_float64(x)
    Y = np.broadcast_to(to_float64(np.asarray(target)), shape)
    Wt = np.ones(shape) if weight is None else np.broadcast_to(to_float64(np.asarray(weight)), shape)
    P = np.ones(shape) if pos_weight is None else np.broadcast_to(to_float64(np.asarray(pos_weight)), shape)
    factor = 1.0 / X.size if reduction == "mean" and X.size else 1.0
    coefficient = (1.0 - Y) + P * Y
    if np.dtype(x.dtype).newbyteorder("=") != np.float64:
        with np.errstate(all="ignore"):
            e = np.exp(-np.abs(X))
            return factor * Wt * coefficient * (e / (1.0 + e) ** 2)
    mp = load_mpmath()
    out = np.empty(shape)
    with mp.workdps(MP_DPS):
        for index in np.ndindex(shape):
            v = float(X[index])
            if math.isnan(v):
                out[index] = math.nan
                continue
            e = mp.exp(-abs(mp.mpf(v)))
            value = (mp.mpf(factor) * mp.mpf(float(Wt[index])) * (mp.mpf(1) - mp.mpf(float(Y[index]))
                     + mp.mpf(float(P[index])) * mp.mpf(float(Y[index]))) * e / (1 + e) ** 2)
            out[index] = float(value)
    return out


def hessian_units(dtype):
    """The bound's units of eps: BOUNDS' (8) for float16 / float32 (computed in float32), 16 for float64."""
    return HESSIAN_FLOAT64_UNITS if np.dtype(dtype) == np.float64 else bound(CROSS_ENTROPY, HESSIAN).units


def assert_hessian_close(actual, exact, dtype, *, rowwise_axis=None, what="hessian"):
    """``actual`` within the bound of ``exact``: per row in the max-norm along ``rowwise_axis`` (cross-entropy),
    else per element (binary cross-entropy); nan exactly where the exact value is nan."""
    dtype = np.dtype(dtype)
    compute = np.float64 if dtype == np.float64 else np.float32
    actual = to_float64(np.asarray(actual))
    exact = np.asarray(exact, dtype=np.float64)
    assert actual.shape == exact.shape, (actual.shape, exact.shape)
    nan = np.isnan(exact)
    assert np.array_equal(np.isnan(actual), nan), f"{what}: nan where the exact value is not (or not where it is)"
    finite_exact = np.where(nan, 0.0, np.abs(exact))
    if rowwise_axis is not None and exact.ndim:
        scale = np.max(finite_exact, axis=rowwise_axis, keepdims=True, initial=0.0)
    else:
        scale = finite_exact
    smallest = float(np.finfo(dtype).smallest_subnormal)
    tol = hessian_units(dtype) * EPS[np.dtype(compute)] * scale + EPS[dtype] * finite_exact * (dtype == np.float16)
    tol = np.where(finite_exact < float(np.finfo(dtype).smallest_normal), tol + smallest, tol)
    with np.errstate(invalid="ignore"):
        error = np.where(nan, 0.0, np.abs(actual - exact))
    bad = ~(error <= tol)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, error / np.maximum(tol, 1e-300), 0)), exact.shape)
        raise AssertionError(f"{what}: {int(bad.sum())} elements beyond the bound; worst at {i}: actual "
                             f"{actual[i]!r}, exact {exact[i]!r}, tolerance {tol[i]!r}")
