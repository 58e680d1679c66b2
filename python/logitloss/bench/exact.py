"""Exact references for the safety and accuracy tables, and the rule that judges a result against them.

The inputs are taken as exact real numbers (every float16 / float32 / float64 is exactly an mpmath number).
Each reference is computed in mpmath with ``MP_DPS`` significant digits and rounded once to float64, far more
precise than the float16 / float32 results it judges.  The test suite has its own, more elaborate references
(``tests/reference*.py``); these are shipped with the package so ``python -m logitloss.bench`` works from an
installed wheel (mpmath comes with the ``bench`` extra).

Kernels and what "value" and "gradient" mean (``x`` of shape (R, C), class axis last, ``t`` one class per row):

- ``logsumexp``: value ``L_r = log sum_i exp(x_ri)``; gradient of ``sum_r L_r``: ``p = softmax(x)``;
- ``softmax``: value ``p``; gradient of ``sum_r p_{r t_r}``: ``p_t (onehot_t - p)``;
- ``log_softmax``: value ``x - L``; gradient of ``sum_r log_softmax_{r t_r}``: ``onehot_t - p``;
- ``cross_entropy``: value the mean of ``L_r - x_{r t_r}``; gradient ``(p - onehot_t) / R``;
- ``binary_cross_entropy_with_logits`` (``x`` and ``y`` of one shape, reduction "none"): value ``(1 - y) sp(x) +
  y sp(-x)`` (``sp(z) = log(1 + e^z)``), gradient of its sum ``(1 - y) sigmoid(x) - y sigmoid(-x)``.

Conventions where the exact value is undefined (those of torch and SciPy, ``shared/SEMANTICS.md``): a row with a
nan gives nan everywhere; a row with ``+inf`` has ``L = +inf`` and nan for everything else, but the limit (the
``+inf`` replaced by a huge finite logit: softmax one-hot, log_softmax ``-inf`` off the ``+inf``, a loss of ``+inf``
off it) is accepted as well, since libraries differ there; a row with only ``-inf`` has ``L = -inf`` and nan for
everything else.  ``-inf`` entries of other rows are masked classes
(``p = 0``, ``log_softmax = -inf``).  Binary cross-entropy takes the limits at ``x = +-inf`` (``x = +inf, y = 1``:
loss 0, gradient 0).

The rule (:func:`judge`), that of the issues' tolerance tables: a result is right when
``|result - exact| <= units * eps * S + floor`` with ``eps`` the machine epsilon of the input's dtype, ``units``
4 for values and 8 for gradients, ``floor`` one subnormal ulp of the dtype where the exact value is below the
normal range, and ``S`` the condition scale: how far the exact result moves when the input and every rounding an
implementation in the dtype cannot avoid (``x - max``, one ``exp`` / ``log`` per term) are perturbed by one
relative unit.  Where the problem is well conditioned ``S = |exact|`` (plain relative error); it is larger only
by terms that do not grow with the row length (``|x_i - max|``, ``|L - max|``), so ``logsumexp([0, -40]) =
4.25e-18`` must come out to ~1e-22 and 0 is wrong.  Gradients are judged normwise per row (``S`` includes the
row's largest gradient), except binary cross-entropy's, which are elementwise relative.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "KERNELS",
    "MP_DPS",
    "UNITS",
    "Exact",
    "Verdict",
    "binary_cross_entropy_exact",
    "FAMILY_KERNELS",
    "LIMIT_LOGIT",
    "error_units",
    "judge",
    "softmax_family_exact",
]

MP_DPS = 40
KERNELS = ("logsumexp", "softmax", "log_softmax", "cross_entropy", "binary_cross_entropy_with_logits")
UNITS = {"value": 4.0, "gradient": 8.0}


@dataclass
class Exact:
    """Exact results (float64, rounded once from mpmath) and their condition scales, same shapes."""

    value: np.ndarray
    value_scale: np.ndarray
    gradient: np.ndarray
    gradient_scale: np.ndarray
    # Where a nan is only a convention (rows with +inf): the limit, also accepted (see the module doc)
    limit: Exact | None = None


def _mpmath() -> Any:
    return importlib.import_module("mpmath")


# --- logsumexp, softmax, log_softmax, cross_entropy -------------------------------------------------------


@dataclass
class _Row:
    """One row's exact results at the chosen columns, and its condition terms (float64)."""

    lse: float
    p: np.ndarray  # softmax at the columns
    log_softmax: np.ndarray  # at the columns
    rest: float  # 1 - p_t = sum of p_j over j != t, without cancellation
    loss: float  # L - x_t
    shift: np.ndarray  # |x_i - max| at the columns (0 where p_i = 0)
    lse_rel: float  # L - max = log(sum of exp(x_i - max)) >= 0
    s_y: float  # sum_i p_i |x_i - max|: rounding of x - max, weighted by each term's share
    rho: float  # sum of p_i over the non-maximal terms: exp rounding per term
    special: str = ""  # "nan", "inf" or "empty" for the conventions of the module doc


def _family_row(mp: Any, row: np.ndarray, target: int, columns: np.ndarray) -> _Row:
    nan_columns = np.full(columns.size, np.nan)
    if np.isnan(row).any() or np.isposinf(row).any() or not np.isfinite(row).any():
        special = "nan" if np.isnan(row).any() else ("inf" if np.isposinf(row).any() else "empty")
        lse = {"nan": np.nan, "inf": np.inf, "empty": -np.inf}[special]
        return _Row(lse, nan_columns, nan_columns, np.nan, np.nan, nan_columns, np.nan, np.nan, np.nan, special)
    finite = np.isfinite(row)
    row_max = float(row[finite].max())
    m = mp.mpf(row_max)
    terms = [mp.exp(mp.mpf(float(v)) - m) if ok else mp.mpf(0) for v, ok in zip(row, finite, strict=True)]
    others = mp.fsum(terms[:target] + terms[target + 1 :])
    total = others + terms[target]
    at_max = finite & (row == row_max)
    # log(total) >= 0 as log(maximal count) + log1p(rest / count): 1 + 5e-42 would round to 1 at MP_DPS digits
    count = int(at_max.sum())
    log_total = mp.log(count) + mp.log1p(mp.fsum(t for t, top in zip(terms, at_max, strict=True) if not top) / count)
    # x_i - L as (x_i - max) - log_total: two non-positive terms, so no digits are lost next to a huge max
    # (L itself may be 3e38, beyond the reach of MP_DPS digits for its fractional part).
    p = np.array([float(terms[i] / total) for i in columns])
    log_softmax = np.array([float((mp.mpf(float(row[i])) - m) - log_total) if finite[i] else -np.inf
                            for i in columns])
    lse = float(m + log_total)
    # Condition terms: rough float64 is enough (x - max overflows to -inf next to float64's extremes: p = 0 there).
    with np.errstate(over="ignore"):
        p_all = np.where(finite, np.exp(np.where(finite, row, row_max) - row_max - float(log_total)), 0.0)
        shift_all = np.where(p_all > 0, np.abs(np.where(finite, row, row_max) - row_max), 0.0)
    return _Row(
        lse=lse, p=p, log_softmax=log_softmax, rest=float(others / total),
        loss=float((m - mp.mpf(float(row[target]))) + log_total) if finite[target] else np.inf,
        shift=shift_all[columns], lse_rel=float(log_total), s_y=float((p_all * shift_all).sum()),
        rho=float(p_all[~at_max].sum()),
    )


FAMILY_KERNELS = KERNELS[:4]


def softmax_family_exact(x: np.ndarray, targets: np.ndarray, columns: np.ndarray | None = None) -> dict[str, Exact]:
    """Exact value and gradient of logsumexp, softmax, log_softmax and cross_entropy (the keys) on the rows of
    the 2-D ``x`` with one class ``targets[r]`` per row (see the module doc), at ``columns`` of each row (all
    when None; shape (k,) or one set per row, (R, k); each row's target column must be among them).

    Shapes: value (R,) for logsumexp, (R, k) for softmax and log_softmax, () for cross_entropy; gradient (R, k).
    Where a row has a ``+inf`` (and no nan), ``Exact.limit`` holds the results with ``+inf`` replaced by
    ``LIMIT_LOGIT`` (1e300): the limit, with the results that grow with it (beyond 1e290) made infinite.
    """
    x64 = np.asarray(x, dtype=np.float64)
    exact = _softmax_family(x64, targets, columns)
    has_inf = np.isposinf(x64).any(axis=1) & ~np.isnan(x64).any(axis=1)
    if has_inf.any():
        limits = _softmax_family(np.where(has_inf[:, None] & np.isposinf(x64), LIMIT_LOGIT, x64), targets, columns)
        for kernel, limit in limits.items():
            # Results that grow with LIMIT_LOGIT are infinite in the limit: float64 would keep 1e300 finite
            # (float16 and float32 round it to inf anyway).  Inputs of such entries stay far below 1e290.
            limit.value = np.where(np.abs(limit.value) >= LIMIT_LOGIT * 1e-10, np.copysign(np.inf, limit.value),
                                   limit.value)
            exact[kernel].limit = limit
    return exact


LIMIT_LOGIT = 1e300


def _softmax_family(x: np.ndarray, targets: np.ndarray, columns: np.ndarray | None) -> dict[str, Exact]:
    mp = _mpmath()
    rows_count, classes = x.shape
    columns = np.arange(classes) if columns is None else np.asarray(columns)
    parts: dict[str, list[list[Any]]] = {kernel: [[], [], [], []] for kernel in FAMILY_KERNELS}

    def add(kernel: str, value: Any, value_scale: Any, gradient: np.ndarray, row: _Row, backward: float = 0.0) -> None:
        # gradients normwise: the row's largest |gradient| times the row's condition factor (or the condition
        # of the backward formula on the rounded forward output, ``backward``, when larger), plus each
        # element's own rounding of x_i - max
        norm = float(np.max(np.abs(np.where(np.isfinite(gradient), gradient, 0.0)), initial=0.0))
        gradient_scale = max(factor * norm, backward) + np.abs(gradient) * row.shift
        for collected, item in zip(parts[kernel], (value, value_scale, gradient, gradient_scale), strict=True):
            collected.append(item)

    with mp.workdps(MP_DPS):
        for r in range(rows_count):
            row_columns = columns[r] if columns.ndim == 2 else columns
            row = _family_row(mp, x[r], int(targets[r]), row_columns)
            is_target = row_columns == targets[r]
            # the condition factor shared by the row's outputs: |L - max| + S_y (+ 1 for one exp / division)
            factor = 1.0 + row.lse_rel + row.s_y
            p_target = float(np.sum(np.where(is_target, row.p, 0.0)))
            add("logsumexp", row.lse, abs(row.lse) + row.lse_rel + row.s_y + row.rho, row.p, row)
            # softmax_backward(u, p) = p (u - sum(u p)) from the rounded p: max_i p_i (|u_i| + sum_j |u_j| p_j);
            # log_softmax_backward(u, o) = u - exp(o) sum(u): max_i (|u_i| + p_i sum_j |u_j|); u = onehot_t
            add("softmax", row.p, row.p * (factor + row.shift),
                np.where(is_target, p_target * row.rest, -p_target * row.p), row,
                backward=float(np.max(row.p * (is_target + p_target), initial=0.0)))
            add("log_softmax", row.log_softmax,
                np.abs(row.log_softmax) + row.shift + row.lse_rel + row.s_y + row.rho,
                np.where(is_target, row.rest, -row.p), row, backward=float(np.max(is_target + row.p, initial=0.0)))
            target_shift = float(np.sum(np.where(is_target, row.shift, 0.0)))
            add("cross_entropy", row.loss, abs(row.loss) + target_shift + row.lse_rel + row.s_y + row.rho,
                np.where(is_target, -row.rest, row.p) / rows_count, row)
    exact = {kernel: Exact(*(np.array(collected) for collected in parts[kernel])) for kernel in FAMILY_KERNELS}
    losses = exact["cross_entropy"]
    mean = np.array(np.mean(losses.value))  # the mean of float64-rounded exact terms: ~1e-16 relative
    # the mean's scale: the rows' scales, plus the rounding of a summation tree of depth log2(R)
    losses.value_scale = np.array(np.mean(losses.value_scale) + np.log2(max(rows_count, 1)) * abs(float(mean)))
    losses.value = mean
    return exact


# --- binary_cross_entropy_with_logits ---------------------------------------------------------------------


def binary_cross_entropy_exact(x: np.ndarray, y: np.ndarray) -> Exact:
    """Exact per-element loss and gradient of binary cross-entropy with logits ``x`` and targets ``y`` (no
    weights, reduction "none"; see the module doc)."""
    mp = _mpmath()
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    loss, grad, loss_scale, grad_scale = (np.empty(x.size) for _ in range(4))

    def softplus(z: Any) -> Any:
        return mp.inf if z == mp.inf else (mp.mpf(0) if z == -mp.inf else mp.log1p(mp.exp(z)))

    def sigmoid(z: Any) -> Any:
        return mp.mpf(1) if z == mp.inf else (mp.mpf(0) if z == -mp.inf else 1 / (1 + mp.exp(-z)))

    with mp.workdps(MP_DPS):
        for i, (xi, yi) in enumerate(zip(x, y, strict=True)):
            if np.isnan(xi) or np.isnan(yi):
                loss[i] = grad[i] = loss_scale[i] = grad_scale[i] = np.nan
                continue
            z, t = mp.mpf(xi), mp.mpf(yi)
            negative, positive = 1 - t, t  # coefficients of sp(x) and sp(-x); a zero one contributes nothing
            value = (negative * softplus(z) if negative else 0) + (positive * softplus(-z) if positive else 0)
            gradient = negative * sigmoid(z) - positive * sigmoid(-z)
            loss[i], grad[i] = float(value), float(gradient)
            in_domain = 0 <= yi <= 1
            loss_scale[i] = abs(loss[i]) + (0.0 if in_domain else (1 + abs(yi)) * (abs(xi) + np.log(2)))
            if yi in (0.0, 1.0):
                grad_scale[i] = abs(grad[i])
            else:  # the terms of the gradient may cancel: their magnitudes
                small = float(sigmoid(-abs(z)))
                grad_scale[i] = (abs(1 - yi) * (float(sigmoid(z)) + small)
                                 + abs(yi) * (float(sigmoid(-z)) + small))
    return Exact(loss, loss_scale, grad, grad_scale)


# --- the rule ---------------------------------------------------------------------------------------------


def _rounded(exact: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``exact`` where it overflows ``dtype`` (beyond max + ulp(max) / 2) replaced by the infinity it rounds to."""
    info = np.finfo(dtype)
    limit = float(info.max) + 2.0 ** (info.maxexp - 1 - info.nmant) / 2
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(exact) >= limit, np.copysign(np.inf, exact), exact)


def error_units(got: Any, exact: np.ndarray, scale: np.ndarray, dtype: Any) -> np.ndarray:
    """Per element ``max(0, |got - exact| - floor) / (eps * S)`` (see the module doc): the error in units of
    the dtype's eps relative to the condition scale; 0 where both are the same infinity or both nan, ``inf``
    where one is non-finite and the other is not (or the other infinity)."""
    dtype = np.dtype(dtype)
    info = np.finfo(dtype)
    expected = _rounded(np.asarray(exact, dtype=np.float64), dtype)
    actual = np.asarray(got).astype(np.float64)
    with np.errstate(all="ignore"):
        floor = np.where(np.abs(expected) < float(info.smallest_normal), float(info.smallest_subnormal), 0.0)
        excess = np.maximum(np.abs(actual - expected) - floor, 0.0)
        units = np.where(excess == 0, 0.0, excess / (float(info.eps) * np.asarray(scale, dtype=np.float64)))
        same_special = (np.isnan(actual) & np.isnan(expected)) | (np.isinf(expected) & (actual == expected))
        one_special = ~np.isfinite(actual) | ~np.isfinite(expected)
        return np.where(same_special, 0.0, np.where(one_special, np.inf, units))


@dataclass
class Verdict:
    """How a provider's result compares with the exact one (see :func:`judge`)."""

    status: str  # "ok", "nan", "inf", "zero", "wrong", "n/a" or "error"
    worst_units: float = 0.0  # largest error in eps units among the finite, expected-finite elements
    detail: str = ""

    def text(self) -> str:
        if self.status == "wrong" and self.detail:
            return "wrong (not NaN)" if "nan" in self.detail else "wrong"
        if self.status == "wrong" and np.isfinite(self.worst_units):
            return f"wrong ({self.worst_units:.3g} eps)"
        return {"zero": "0 (lost)", "nan": "NaN", "inf": "inf"}.get(self.status, self.status)


def judge(got: Any, exact: np.ndarray, scale: np.ndarray, dtype: Any, units: float,
          limit: tuple[np.ndarray, np.ndarray] | None = None) -> Verdict:
    """The verdict on ``got`` (any array-like of ``exact``'s shape): "ok" when every element is within
    ``units`` (:func:`error_units`) or matches a nan / infinity of the exact result (or, where the exact result
    is a conventional nan, the ``limit`` = (value, scale)); otherwise the worst failure, in this order: "nan" (a
    nan where the exact value is not), "inf" (an infinity where the exact value is finite or the other infinity),
    "zero" (0 where the exact value is a nonzero number the dtype represents), "wrong" (a finite number off by
    more than ``units``, or a number where the exact result is nan)."""
    dtype = np.dtype(dtype)
    try:
        actual = np.broadcast_to(np.asarray(got).astype(np.float64), np.shape(exact))
    except ValueError:
        return Verdict("wrong", np.inf, f"shape {np.shape(got)}, expected {np.shape(exact)}")
    expected = _rounded(np.asarray(exact, dtype=np.float64), dtype)
    units_array = error_units(actual, expected, scale, dtype)
    if limit is not None:
        limit_value, limit_scale = limit
        at_limit = error_units(actual, limit_value, limit_scale, dtype)
        units_array = np.where(np.isnan(expected) & ~np.isnan(limit_value), np.minimum(units_array, at_limit),
                               units_array)
    bad = units_array > units
    finite_expected = np.isfinite(expected)
    worst = float(np.max(np.where(finite_expected & np.isfinite(actual), units_array, 0.0), initial=0.0))
    if not bad.any():
        return Verdict("ok", worst)
    smallest = float(np.finfo(dtype).smallest_subnormal)
    if (bad & np.isnan(actual)).any():
        return Verdict("nan", worst)
    if (bad & np.isinf(actual)).any():
        return Verdict("inf", worst)
    if (bad & (actual == 0) & finite_expected & (np.abs(expected) > smallest / 2)).any():
        return Verdict("zero", worst)
    if not (bad & finite_expected).any():
        return Verdict("wrong", np.inf, "a number where the exact result is nan")
    return Verdict("wrong", worst)
