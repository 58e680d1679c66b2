"""Exact reference for ``binary_cross_entropy_with_logits`` (torch.nn.functional semantics) and its
gradient.

The formula
-----------
Per element, with logit ``x``, target ``y``, ``w`` the weight and ``pw`` the pos_weight (both 1 when
not given, broadcast to the input's shape), torch's loss
``(1 - y) x - (1 + (pw - 1) y) log_sigmoid(x)`` times ``w`` is, with ``sp(t) = log(1 + e^t)``
(softplus, ``sp(t) - sp(-t) = t``)::

    loss = w * ((1 - y) * sp(x) + pw * y * sp(-x))
    d loss / d x = w * ((1 - y) * sigmoid(x) - pw * y * sigmoid(-x))

For ``y`` in [0, 1] and ``w, pw >= 0`` both loss terms are non-negative: the loss has no
cancellation, so the tolerance is plain relative (the spec's "4 eps wherever the exact loss is a
normal number").  A term whose coefficient is exactly 0 contributes 0 even where its softplus is
infinite (the limit: ``x = +inf, y = 1`` gives 0, ``x = -inf, y = 0`` gives 0; torch gives nan).
Reductions: ``none`` keeps every element (upstream gradient per element, broadcast), ``sum`` adds
them, ``mean`` divides by the element count (weights never in the denominator; 0 elements: nan).

Exactness
---------
Only the four functions of ``x`` (``sp(+-x)``, ``sigmoid(+-x)``, all from ``e = exp(-|x|)``) need
transcendental functions; they are computed once per distinct logit array (cached by content):

* float16 / float32 results: vectorized float64 (``|x| + log1p(e)``, ``log1p(e)``, ``1 / (1 + e)``,
  ``e / (1 + e)``), a few float64 eps relative -- ~1e-9 of the float32 tolerance;
* float64 results: mpmath at ``arithmetic.MP_DPS`` digits per element, kept as double-double
  pairs, and the combination with ``y``, ``pw``, ``w`` and the upstream factor done in double-double
  (``arithmetic.DD``, ~1e-30 relative).  Where a final value lies below 2**-900 (its
  double-double pair has lost digits to the subnormal range) the element is recomputed in mpmath.

Condition scales (tolerance = units * eps(compute dtype) * scale, ``tolerances.tolerance``)
-----------------------------------------------------------------------------------------------
* loss: ``|w| (|1 - y| sp(x) + |pw y| sp(-x))`` = ``|loss|`` in the spec's domain.  Outside it
  (``y`` outside [0, 1] or ``pw < 0``: accepted, torch parity only) the terms of any stable form
  (``(1 - y) x``, ``x y``, ``a sp(-x)``) may cancel: ``|w| (1 + |y|) (1 + |pw|) (|x| + log 2)`` is
  added.  ``sum`` / ``mean``: the sum of the element scales plus ``depth / LOSS_UNITS`` times
  ``sum |loss_i|`` for the additions (``depth = ceil(log2 n) + 1``, a summation tree's depth)
  and half a subnormal ulp (of the compute dtype) per element loss below the normal range (each
  is rounded to the subnormal grid before it is summed), over ``n`` for the mean.
* gradient, per element: ``|w f| (|1 - y| (sigmoid(x) + sigmoid(-|x|)) + |pw y| (sigmoid(-x) +
  sigmoid(-|x|)))`` with ``f`` the upstream gradient over the mean's ``n``: the magnitude of the
  terms of ``(1 - y) - a q`` (``x >= 0``) / ``a q - pw y`` (``x < 0``), ``q = e / (1 + e)``,
  ``a = 1 - y + pw y``, yet ``|exact|`` (plain relative) at ``y`` in {0, 1}: the gradient
  ``-sigmoid(-20)`` at ``x = 20, y = 1`` must be -2.06e-9, not 0.  Outside the domain
  ``|w f| (1 + |y|) (1 + |pw|)`` is added.
* torch's own error (parity tests only): it rounds ``(1 - y) x`` next to
  ``(1 + (pw - 1) y) log_sigmoid(x)`` (so ``x = -40, y = 0`` gives 0) and computes the gradient as
  ``a sigmoid(x) - pw y``: scales ``|w| (|1 - y| |x| + (1 + |pw - 1| |y|) sp(-x)) + |loss|`` and
  ``|w f| ((1 + |y| + |pw y|) sigmoid(x) + |pw y|)``, in eps of the less precise of the dtypes
  torch computes in: the input's (``log_sigmoid``, the gradient; float16 in float16) and a floating
  target's (torch's loss has the *target's* dtype: float32 logits with float64 targets give a
  float64 loss from a float32 log_sigmoid, with float16 targets a float16 loss).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .arithmetic import MP_DPS, load_mpmath, numbers_for, split, uses_mpmath
from .cache import cached, content_key
from .tolerances import (
    BINARY_CROSS_ENTROPY,
    COMPUTE_DTYPE,
    EPS,
    FORWARD,
    LOSS_PARITY,
    SMALLEST_NORMAL,
    SMALLEST_SUBNORMAL,
    bound,
    library_compute_dtype,
    rounded_range,
    to_float64,
)

__all__ = ["REDUCTIONS", "BCEExact", "binary_cross_entropy", "result_dtype", "summation_depth"]

REDUCTIONS = ("none", "mean", "sum")

# The table's units: 4 eps for the loss (the reduction's scale is in these units), 8 for torch parity.
LOSS_UNITS = bound(BINARY_CROSS_ENTROPY, FORWARD).units
PARITY_UNITS = bound(LOSS_PARITY, FORWARD).units

# Below this a float64 (hi, lo) pair has lost digits to the subnormal range.
_TINY = 2.0**-900
_LOG2 = math.log(2.0)
_SUM_SCALE = 2.0**-64


def result_dtype(input, target):
    """The result dtype: ``promote_types(input, target)`` for a floating target, else the input's."""
    x_dtype = np.asarray(input).dtype.newbyteorder("=")
    t_dtype = np.asarray(target).dtype.newbyteorder("=")
    if np.issubdtype(t_dtype, np.floating):
        return np.promote_types(x_dtype, t_dtype)
    return x_dtype


def summation_depth(n):
    """The depth of a balanced summation tree over n terms, plus one (the final scaling)."""
    return math.ceil(math.log2(max(n, 1))) + 1


# ----------------------------------------------------------------------------------------------
# The functions of x alone: sp(x), sp(-x), sigmoid(x), sigmoid(-x), sigmoid(-|x|)
# ----------------------------------------------------------------------------------------------


class _LogitTerms(NamedTuple):
    """Each a (hi, lo) pair of float64 arrays of x's shape (lo = 0 on the float64 path)."""

    sp_pos: tuple
    sp_neg: tuple
    sig_pos: tuple
    sig_neg: tuple
    sig_min: tuple  # sigmoid(-|x|) = q, the smaller of the two sigmoids


def _by_sign(x, big, small):
    """sp(x) / sigmoid(x) is ``big`` (the value at |x|) for x >= 0, ``small`` (at -|x|) for x < 0."""
    return np.where(x >= 0, big, small), np.where(x >= 0, small, big)


def _logit_terms_float64(X):
    with np.errstate(all="ignore"):
        a = np.abs(X)
        e = np.exp(-a)
        log1p_e = np.log1p(e)
        sp_big = a + log1p_e
        sig_big = 1.0 / (1.0 + e)
        sig_small = e / (1.0 + e)
    sp_pos, sp_neg = _by_sign(X, sp_big, log1p_e)
    sig_pos, sig_neg = _by_sign(X, sig_big, sig_small)
    zero = np.zeros_like(X)
    return _LogitTerms((sp_pos, zero), (sp_neg, zero), (sig_pos, zero), (sig_neg, zero), (sig_small, zero))


def _logit_terms_mpmath(X):
    mp = load_mpmath()
    flat = X.reshape(-1)
    out = {name: (np.empty(flat.size), np.zeros(flat.size)) for name in ("sp_big", "sp_small", "sig_big", "sig_small")}
    with mp.workdps(MP_DPS):
        for i, v in enumerate(flat.tolist()):
            if not math.isfinite(v):  # +-inf: e = 0; nan: nan everywhere
                values = {"sp_big": math.inf, "sp_small": 0.0, "sig_big": 1.0, "sig_small": 0.0}
                for name, value in values.items():
                    out[name][0][i] = math.nan if math.isnan(v) else value
                continue
            a = mp.mpf(abs(v))
            e = mp.exp(-a)
            log1p_e = mp.log1p(e)
            values = {"sp_big": a + log1p_e, "sp_small": log1p_e, "sig_big": 1 / (1 + e), "sig_small": e / (1 + e)}
            for name, value in values.items():
                out[name][0][i], out[name][1][i] = split(mp, value)
    shaped = {name: (hi.reshape(X.shape), lo.reshape(X.shape)) for name, (hi, lo) in out.items()}

    def by_sign(big, small):
        pos = tuple(np.where(X >= 0, b, s) for b, s in zip(shaped[big], shaped[small]))
        neg = tuple(np.where(X >= 0, s, b) for b, s in zip(shaped[big], shaped[small]))
        return pos, neg

    sp_pos, sp_neg = by_sign("sp_big", "sp_small")
    sig_pos, sig_neg = by_sign("sig_big", "sig_small")
    return _LogitTerms(sp_pos, sp_neg, sig_pos, sig_neg, shaped["sig_small"])


def _logit_terms(X, exact):
    key = content_key("bce_logit_terms", X, exact)
    return cached(key, lambda: (_logit_terms_mpmath if exact else _logit_terms_float64)(X))


def _element_mpmath(mp, x, y, pw, w):
    """One element's loss and d loss / d x as mpmath numbers (a zero coefficient: a zero term)."""
    x, y, pw, w = (mp.mpf(float(v)) for v in (x, y, pw, w))
    e = mp.exp(-abs(x))
    log1p_e = mp.log1p(e)
    sp_pos, sp_neg = (abs(x) + log1p_e, log1p_e) if x >= 0 else (log1p_e, abs(x) + log1p_e)
    sig_pos, sig_neg = (1 / (1 + e), e / (1 + e)) if x >= 0 else (e / (1 + e), 1 / (1 + e))
    c1, c2 = 1 - y, pw * y
    loss = (w * c1 * sp_pos if c1 != 0 else 0) + (w * c2 * sp_neg if c2 != 0 else 0)
    return loss, w * (c1 * sig_pos - c2 * sig_neg)


def _redo_tiny_elements(redo, X, Y, PW, W, factor, outputs):
    """Overwrite the (loss hi, loss lo, grad hi, grad lo) arrays ``outputs`` at ``redo`` with the
    element recomputed in mpmath (the gradient times ``factor``)."""
    mp = load_mpmath()
    flat = [np.reshape(a, -1) for a in (X, Y, PW, W, factor)]
    views = [a.reshape(-1) for a in outputs]  # views of the outputs: written through
    with mp.workdps(MP_DPS):
        for k in np.flatnonzero(redo):
            loss, grad = _element_mpmath(mp, *(a[k] for a in flat[:4]))
            views[0][k], views[1][k] = split(mp, loss)
            views[2][k], views[3][k] = split(mp, grad * mp.mpf(float(flat[4][k])))


def _tiny_total_mpmath(X, Y, PW, W, den):
    """A reduction whose float64 value is below 2**-900: every element and the sum in mpmath."""
    mp = load_mpmath()
    flat = [np.reshape(a, -1) for a in (X, Y, PW, W)]
    with mp.workdps(MP_DPS):
        total = mp.fsum(_element_mpmath(mp, *(a[k] for a in flat))[0] for k in range(flat[0].size))
        return split(mp, total / den)


# ----------------------------------------------------------------------------------------------
# The public reference
# ----------------------------------------------------------------------------------------------


class BCEExact(NamedTuple):
    # field names shared with cross_entropy.CrossEntropyExact, so that the loss checks (torch parity,
    # return kind, no flush to zero) apply to both
    loss: np.ndarray  # float64: shape () for mean / sum, the input's shape for 'none'
    loss_lo: np.ndarray
    loss_scale: np.ndarray
    grad: np.ndarray  # float64, the input's shape: d loss / d input times grad_output
    grad_lo: np.ndarray
    grad_scale: np.ndarray
    dtype: np.dtype  # the result dtype
    torch_loss_scale: np.ndarray  # in eps of the result's compute dtype (see the module docstring)
    torch_grad_scale: np.ndarray
    element_loss: np.ndarray  # float64 per-element loss (the 'none' values), whatever the reduction
    # mean / sum finite although some element's loss overflows the dtype: inf (what reducing the
    # rounded elements gives, torch's answer) is accepted too
    reduced_overflow: bool


def _subnormal_elements_scale(element_loss, dtype):
    """An element loss below the compute dtype's normal range is no better than its rounding to
    the subnormal grid (half a subnormal ulp), and a sum carries every such rounding: that much
    absolute error, as a scale for ``LOSS_UNITS`` eps."""
    compute = COMPUTE_DTYPE[np.dtype(dtype)]
    below = np.abs(element_loss) < SMALLEST_NORMAL[compute]
    return below.sum() * SMALLEST_SUBNORMAL[compute] / 2 / (LOSS_UNITS * EPS[compute])


def _torch_eps(input, target):
    """The eps of torch's own arithmetic: log_sigmoid in the input's dtype, ``(1 - y) * x`` and
    the in-place ops after it in a floating target's dtype (torch's loss has the *target's* dtype:
    float32 logits with float16 targets give float16), the less precise of the two."""
    dtypes = [np.asarray(input).dtype, np.asarray(target).dtype]
    floating = [np.dtype(d).newbyteorder("=") for d in dtypes if np.issubdtype(d, np.floating)]
    return max(EPS[library_compute_dtype(d, "torch")] for d in floating)


def _broadcast_operand(value, shape, default):
    if value is None:
        return np.full(shape, default)
    return np.broadcast_to(to_float64(np.asarray(value)), shape)


def binary_cross_entropy(
    input, target, weight=None, reduction="mean", pos_weight=None, grad_output=None, *, method=None
):
    """Exact loss and gradient of ``torch.nn.functional.binary_cross_entropy_with_logits``.

    ``grad_output`` is the upstream gradient (broadcasting to the input's shape for 'none', a
    scalar otherwise); ``None`` means 1, i.e. the gradient of ``loss`` (of ``loss.sum()`` for 'none').
    Cached by content: computed once for every ISA.  ``method``: see ``arithmetic.uses_mpmath``.
    """
    arrays = [None if a is None else np.asarray(a) for a in (input, target, weight, pos_weight, grad_output)]
    key = content_key("bce", *arrays, reduction, method)
    return cached(key, lambda: _binary_cross_entropy(*arrays, reduction, method))


def _reduce(loss_el, loss_scale, torch_loss_el, ratio, reduction, den, dtype, N, operands):
    """The loss (hi, lo) and its scales: every element ('none'), or their sum over ``den`` ('sum': 1, 'mean': n)
    with a summation tree's roundings added to the scales (torch's times ``ratio``, its eps in ours)."""
    element_loss = N.to_float(loss_el)
    n = element_loss.size
    with np.errstate(all="ignore"):
        if reduction == "none":
            values_hi, values_lo = N.split(loss_el)
            return values_hi, values_lo, loss_scale, ratio * torch_loss_el
        if n:
            # huge losses are summed at 2**-64 (exactly) so that a float64 total beyond the
            # range still gives the in-range mean; the sum then rounds to inf, its correct rounding
            finite_loss = np.abs(element_loss[np.isfinite(element_loss)])
            scale = _SUM_SCALE if finite_loss.size and finite_loss.max() > 2.0**960 else 1.0
            total = N.total(loss_el * N.const(scale))
            loss_values = (total / N.const(den)) * N.const(1.0 / scale)
        else:
            loss_values = N.const(math.nan if reduction == "mean" else 0.0)
        adds = summation_depth(n) / LOSS_UNITS * np.abs(element_loss).sum() + _subnormal_elements_scale(
            element_loss, dtype
        )
        loss_scale = np.array((loss_scale.sum() + adds) / den)
        torch_adds = summation_depth(n) / PARITY_UNITS * np.abs(element_loss).sum()
        torch_loss_scale = np.array(ratio * (torch_loss_el.sum() + torch_adds) / den)
        values_hi, values_lo = N.split(loss_values)
    if N.exact and n and abs(float(values_hi)) < _TINY:
        values_hi, values_lo = _tiny_total_mpmath(*operands, den)
    return values_hi, values_lo, loss_scale, torch_loss_scale


def _binary_cross_entropy(input, target, weight, pos_weight, grad_output, reduction, method):
    x = np.asarray(input)
    shape = x.shape
    if np.dtype(x.dtype).newbyteorder("=") not in EPS:
        raise ValueError(f"reference: floating input only, got {x.dtype}")
    if np.shape(target) != shape:
        raise ValueError("reference: target must have the input's shape")
    if reduction not in REDUCTIONS:
        raise ValueError(reduction)
    dtype = result_dtype(x, target)
    numbers = numbers_for(uses_mpmath(dtype, method))
    X = to_float64(x)
    Y = to_float64(np.asarray(target))
    W = _broadcast_operand(weight, shape, 1.0)
    PW = _broadcast_operand(pos_weight, shape, 1.0)
    n = int(np.prod(shape, dtype=np.int64))
    if reduction == "none":
        up = np.ones(shape) if grad_output is None else np.broadcast_to(to_float64(np.asarray(grad_output)), shape)
        den = 1.0
    else:
        up = np.full(shape, 1.0 if grad_output is None else float(to_float64(np.asarray(grad_output)).reshape(())))
        den = float(n) if reduction == "mean" else 1.0
    terms = _logit_terms(X, numbers.exact)
    N = numbers

    with np.errstate(all="ignore"):
        # ---- per element, in the number system of the result dtype ----------------------------
        c1 = N.const(1) - N.pair(Y, 0.0)  # 1 - y
        c2 = N.pair(PW, 0.0) * N.pair(Y, 0.0)  # pw * y
        w = N.pair(W, 0.0)
        sp_pos, sp_neg, sig_pos, sig_neg = (N.pair(*t) for t in terms[:4])
        c1_zero = N.to_float(c1) == 0  # the limit: 0 * sp(+-inf) contributes 0
        c2_zero = N.to_float(c2) == 0
        # (w c) sp, not w (c sp): in the domain each term is at most the loss, so nothing
        # overflows unless the loss does (pw y |x| may exceed the dtype while w pw y |x| does not)
        loss_el = N.where(c1_zero, 0.0, (w * c1) * sp_pos) + N.where(c2_zero, 0.0, (w * c2) * sp_neg)
        factor = N.pair(up, 0.0) / N.const(den) if n else N.pair(up, 0.0)
        grad_el = factor * (w * (c1 * sig_pos - c2 * sig_neg))
        loss_hi, loss_lo = N.split(loss_el)
        grad_hi, grad_lo = N.split(grad_el)
        if N.exact:  # tiny final values: recompute the element in mpmath
            # (an infinite x has exact terms 0, 1, inf: nothing to redo)
            tiny = (np.isfinite(loss_hi) & (np.abs(loss_hi) < _TINY)) | (
                np.isfinite(grad_hi) & (np.abs(grad_hi) < _TINY)
            )
            factor_f = np.broadcast_to(up / den if n else up, shape)
            _redo_tiny_elements(tiny & np.isfinite(X), X, Y, PW, W, factor_f, (loss_hi, loss_lo, grad_hi, grad_lo))
            loss_el = N.pair(loss_hi, loss_lo)

        # ---- condition scales (float64, rough is fine) ------------------------------------
        y_abs, w_abs = np.abs(Y), np.abs(W)
        c1_abs = np.abs(1.0 - Y)
        c2_abs = np.abs(PW * Y)
        f_abs = np.abs(up) / den if n else np.abs(up)
        sp_p, sp_n, s_p, s_n, s_min = (t[0] for t in terms)
        outside = (Y < 0) | (Y > 1) | (PW < 0)
        spread = (1.0 + y_abs) * (1.0 + np.abs(PW))
        element_loss = N.to_float(loss_el)
        # in the domain the terms' sum is |loss| itself (taken from the exact value: forming
        # pw * y here could underflow); outside it, the terms' magnitudes plus the extension
        terms_sum = np.where(c1_zero, 0.0, (w_abs * c1_abs) * sp_p) + np.where(c2_zero, 0.0, (w_abs * c2_abs) * sp_n)
        outside_scale = terms_sum + w_abs * spread * (np.abs(X) + _LOG2)
        loss_scale = np.where(outside, outside_scale, np.abs(element_loss))
        grad_scale = w_abs * f_abs * (c1_abs * (s_p + s_min) + c2_abs * (s_n + s_min) + np.where(outside, spread, 0.0))
        # torch, converted to eps of the result's compute dtype
        ratio = _torch_eps(x, target) / EPS[library_compute_dtype(dtype, "torch")]
        torch_loss_el = w_abs * (
            np.where(c1_zero, 0.0, c1_abs * np.abs(X)) + (1.0 + np.abs(PW - 1.0) * y_abs) * sp_n
        ) + np.abs(element_loss)
        torch_grad_scale = ratio * w_abs * f_abs * ((1.0 + y_abs + c2_abs) * s_p + c2_abs)
    values_hi, values_lo, loss_scale, torch_loss_scale = _reduce(
        loss_el, loss_scale, torch_loss_el, ratio, reduction, den, dtype, N, (X, Y, PW, W))

    return BCEExact(
        loss=np.asarray(values_hi, dtype=np.float64).reshape(shape if reduction == "none" else ()),
        loss_lo=np.asarray(values_lo, dtype=np.float64).reshape(shape if reduction == "none" else ()),
        loss_scale=np.asarray(loss_scale, dtype=np.float64).reshape(shape if reduction == "none" else ()),
        grad=np.asarray(grad_hi, dtype=np.float64),
        grad_lo=np.asarray(grad_lo, dtype=np.float64),
        grad_scale=np.asarray(grad_scale, dtype=np.float64),
        dtype=dtype,
        torch_loss_scale=np.asarray(torch_loss_scale, dtype=np.float64).reshape(shape if reduction == "none" else ()),
        torch_grad_scale=np.asarray(torch_grad_scale, dtype=np.float64),
        element_loss=np.asarray(element_loss, dtype=np.float64),
        reduced_overflow=bool(
            reduction != "none" and np.any(np.isfinite(element_loss) & np.isinf(rounded_range(element_loss, dtype)))
        ),
    )
