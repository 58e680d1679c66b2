"""Exact results of the safety and accuracy tables, and the rule that judges a result against them.

The exact values come from the references of :mod:`logitloss.testing` (the ones the test suite checks against):
float64 with care for float16 / float32 inputs, mpmath (``arithmetic.MP_DPS`` digits) for float64 inputs, rounded
once to float64.  This module picks from them what the tables compare and gives each its condition scale.

Kernels and what "value" and "gradient" mean (``x`` of shape (R, C), class axis last, ``t`` one class per row):

- ``logsumexp``: value ``L_r = log sum_i exp(x_ri)``; gradient of ``sum_r L_r``: ``p = softmax(x)``;
- ``softmax``: value ``p``; gradient of ``sum_r p_{r t_r}``: ``p_t (onehot_t - p)``;
- ``log_softmax``: value ``x - L``; gradient of ``sum_r log_softmax_{r t_r}``: ``onehot_t - p``;
- ``cross_entropy``: value the mean of ``L_r - x_{r t_r}``; gradient ``(p - onehot_t) / R``;
- ``binary_cross_entropy_with_logits`` (``x`` and ``y`` of one shape, reduction "none"): value ``(1 - y) sp(x) +
  y sp(-x)`` (``sp(z) = log(1 + e^z)``), gradient of its sum ``(1 - y) sigmoid(x) - y sigmoid(-x)``.

Conventions where the exact value is undefined (those of torch and SciPy, ``docs/semantics.md``): a row with a
nan gives nan everywhere; a row with ``+inf`` has ``L = +inf`` and nan for everything else, but the limit (the
``+inf`` replaced by a huge finite logit: softmax one-hot, log_softmax ``-inf`` off the ``+inf``, a loss of ``+inf``
off it) is accepted as well, since libraries differ there; a row with only ``-inf`` has ``L = -inf`` and nan for
everything else.  ``-inf`` entries of other rows are masked classes
(``p = 0``, ``log_softmax = -inf``).  Binary cross-entropy takes the limits at ``x = +-inf`` (``x = +inf, y = 1``:
loss 0, gradient 0).

The rule (:func:`judge`), the same for every library: a result is right when
``|result - exact| <= units * eps * S + floor`` with ``eps`` the machine epsilon of the input's dtype, ``units``
the tolerance table's for the softmax family (4 for values, 8 for gradients, ``docs/accuracy.md``), ``floor`` one
subnormal ulp of the dtype where the exact value is below the normal range, and ``S`` the condition scale: how far
the exact result moves when the input and every rounding an implementation in the dtype cannot avoid
(``x - max``, one ``exp`` / ``log`` per term) are perturbed by one relative unit.  Where the problem is well
conditioned ``S = |exact|`` (plain relative error); it is larger only by terms that do not grow with the row
length (``|x_i - max|``, ``|L - max|``), so ``logsumexp([0, -40]) = 4.25e-18`` must come out to ~1e-22 and 0 is
wrong.  Gradients are judged normwise per row (``S`` includes the row's largest gradient), except binary
cross-entropy's, which are elementwise relative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from logitloss.testing.arithmetic import MP_DPS
from logitloss.testing.binary_cross_entropy import binary_cross_entropy as exact_binary_cross_entropy
from logitloss.testing.cross_entropy import cross_entropy as exact_cross_entropy
from logitloss.testing.softmax_family import condition_terms, row_statistics
from logitloss.testing.tolerances import FORWARD, GRADIENT, SOFTMAX_FAMILY, bound, to_float64

__all__ = [
    "FAMILY_KERNELS",
    "KERNELS",
    "LIMIT_LOGIT",
    "MP_DPS",
    "UNITS",
    "Exact",
    "Verdict",
    "binary_cross_entropy_exact",
    "error_units",
    "judge",
    "softmax_family_exact",
]

KERNELS = ("logsumexp", "softmax", "log_softmax", "cross_entropy", "binary_cross_entropy_with_logits")
FAMILY_KERNELS = KERNELS[:4]
UNITS = {"value": bound(SOFTMAX_FAMILY, FORWARD).units, "gradient": bound(SOFTMAX_FAMILY, GRADIENT).units}
LIMIT_LOGIT = 1e300


@dataclass
class Exact:
    """Exact results (float64) and their condition scales, same shapes."""

    value: np.ndarray
    value_scale: np.ndarray
    gradient: np.ndarray
    gradient_scale: np.ndarray
    # Where a nan is only a convention (rows with +inf): the limit, also accepted (see the module doc)
    limit: Exact | None = None


# --- logsumexp, softmax, log_softmax, cross_entropy -------------------------------------------------------


def softmax_family_exact(x: np.ndarray, targets: np.ndarray, columns: np.ndarray | None = None) -> dict[str, Exact]:
    """Exact value and gradient of logsumexp, softmax, log_softmax and cross_entropy (the keys) on the rows of
    the 2-D ``x`` with one class ``targets[r]`` per row (see the module doc), at ``columns`` of each row (all
    when None; shape (k,) or one set per row, (R, k); each row's target column must be among them).

    Shapes: value (R,) for logsumexp, (R, k) for softmax and log_softmax, () for cross_entropy; gradient (R, k).
    Where a row has a ``+inf`` (and no nan), ``Exact.limit`` holds the results with ``+inf`` replaced by
    ``LIMIT_LOGIT`` (1e300): the limit, with the results that grow with it (beyond 1e290) made infinite.
    """
    x = np.asarray(x)
    exact = _softmax_family(x, targets, columns)
    x64 = to_float64(x)
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


def _softmax_family(x: np.ndarray, targets: np.ndarray, columns: np.ndarray | None) -> dict[str, Exact]:
    """The four kernels' exact results (the references at every column, then those of ``columns``)."""
    rows_count, classes = x.shape
    x64 = to_float64(x)
    targets = np.asarray(targets, dtype=np.int64)
    special = np.isnan(x64).any(axis=1) | np.isposinf(x64).any(axis=1)  # the conventions of the module doc
    clean = np.where(special[:, None], 0.0, x64)
    statistics = row_statistics(clean, None, x.dtype)
    s_y, _, rho = condition_terms(statistics, False)
    # reduction "none", no weights: per row the loss L - x_t and the gradient p - onehot_t, whose target entry
    # -(1 - p_t) the reference forms without cancellation
    losses = exact_cross_entropy(clean.astype(x.dtype), targets, reduction="none")
    with np.errstate(invalid="ignore"):
        lse = np.where(special, np.where(np.isnan(x64).any(axis=1), np.nan, np.inf), statistics.lse)
    nan_rows = special[:, None]
    p = np.where(nan_rows, np.nan, statistics.grad)
    log_softmax = np.where(nan_rows, np.nan, statistics.log_softmax)
    shift = np.where(nan_rows, np.nan, statistics.shift)
    lse_rel, s_y, rho = (np.where(special, np.nan, v) for v in (statistics.lse_rel, s_y, rho))
    loss = np.where(special, np.nan, losses.loss + losses.loss_lo)
    loss_gradient = np.where(nan_rows, np.nan, losses.grad)
    rows = np.arange(rows_count)
    rest = -loss_gradient[rows, targets]  # 1 - p_t
    p_target = p[rows, targets]
    target_shift = shift[rows, targets]
    columns = np.arange(classes) if columns is None else np.asarray(columns)
    picked = columns if columns.ndim == 2 else np.broadcast_to(columns, (rows_count, columns.size))
    at = (rows[:, None], picked)
    is_target = picked == targets[:, None]
    p_at, shift_at = p[at], shift[at]
    # the condition factor shared by the row's outputs: |L - max| + S_y (+ 1 for one exp / division)
    factor = 1.0 + lse_rel + s_y

    def gradient_scale(gradient: np.ndarray, backward: np.ndarray | float = 0.0) -> np.ndarray:
        # normwise: the row's largest |gradient| times its condition factor (or the condition of the backward
        # formula on the rounded forward output, ``backward``, when larger), plus each element's own rounding
        # of x_i - max
        norm = np.max(np.abs(np.where(np.isfinite(gradient), gradient, 0.0)), axis=1, initial=0.0)
        return np.maximum(factor * norm, backward)[:, None] + np.abs(gradient) * shift_at

    with np.errstate(invalid="ignore"):
        exact = {}
        gradient = p_at
        exact["logsumexp"] = Exact(lse, np.abs(lse) + lse_rel + s_y + rho, gradient, gradient_scale(gradient))
        # softmax_backward(u, p) = p (u - sum(u p)) from the rounded p: max_i p_i (|u_i| + sum_j |u_j| p_j);
        # log_softmax_backward(u, o) = u - exp(o) sum(u): max_i (|u_i| + p_i sum_j |u_j|); u = onehot_t
        gradient = np.where(is_target, (p_target * rest)[:, None], -p_target[:, None] * p_at)
        backward = np.max(p_at * (is_target + p_target[:, None]), axis=1, initial=0.0)
        exact["softmax"] = Exact(p_at, p_at * (factor[:, None] + shift_at), gradient,
                                 gradient_scale(gradient, backward))
        gradient = np.where(is_target, rest[:, None], -p_at)
        backward = np.max(is_target + p_at, axis=1, initial=0.0)
        values = log_softmax[at]
        exact["log_softmax"] = Exact(values, np.abs(values) + shift_at + (lse_rel + s_y + rho)[:, None], gradient,
                                     gradient_scale(gradient, backward))
        gradient = loss_gradient[at] / rows_count
        mean = np.array(np.mean(loss))  # the mean of float64-rounded exact terms: ~1e-16 relative
        # the mean's scale: the rows' scales, plus the rounding of a summation tree of depth log2(R)
        row_scale = np.abs(loss) + target_shift + lse_rel + s_y + rho
        exact["cross_entropy"] = Exact(mean, np.array(np.mean(row_scale) + np.log2(max(rows_count, 1)) * abs(float(mean))),
                                       gradient, gradient_scale(gradient))
    return exact


# --- binary_cross_entropy_with_logits ---------------------------------------------------------------------


def binary_cross_entropy_exact(x: np.ndarray, y: np.ndarray) -> Exact:
    """Exact per-element loss and gradient of binary cross-entropy with logits ``x`` and targets ``y`` (no
    weights, reduction "none"; see the module doc)."""
    exact = exact_binary_cross_entropy(np.asarray(x).reshape(-1), np.asarray(y).reshape(-1), reduction="none")
    x64, y64 = to_float64(x).reshape(-1), to_float64(y).reshape(-1)
    loss, gradient = exact.loss + exact.loss_lo, exact.grad + exact.grad_lo
    with np.errstate(all="ignore"):
        in_domain = (0 <= y64) & (y64 <= 1)
        loss_scale = np.abs(loss) + np.where(in_domain, 0.0, (1 + np.abs(y64)) * (np.abs(x64) + np.log(2)))
        # at y in {0, 1} plain relative; elsewhere the terms of the gradient may cancel: their magnitudes
        sigmoid, sigmoid_minus = 1 / (1 + np.exp(-x64)), 1 / (1 + np.exp(x64))
        small = np.minimum(sigmoid, sigmoid_minus)
        terms = np.abs(1 - y64) * (sigmoid + small) + np.abs(y64) * (sigmoid_minus + small)
        gradient_scale = np.where((y64 == 0) | (y64 == 1), np.abs(gradient), terms)
    unknown = np.isnan(x64) | np.isnan(y64)
    loss_scale, gradient_scale = (np.where(unknown, np.nan, v) for v in (loss_scale, gradient_scale))
    return Exact(loss, loss_scale, gradient, gradient_scale)


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
