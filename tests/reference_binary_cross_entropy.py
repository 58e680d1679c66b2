"""Exact reference for ``binary_cross_entropy_with_logits`` (torch.nn.functional semantics) and its
gradient, its tolerances, and torch / logitloss call helpers.

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
* float64 results: mpmath at ``reference.MP_DPS`` digits per element, kept as double-double
  pairs, and the combination with ``y``, ``pw``, ``w`` and the upstream factor done in double-double
  (``reference_cross_entropy.DD``, ~1e-30 relative).  Where a final value lies below 2**-900 (its
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
import reference
import reference_cross_entropy as rce
from tolerances import (
    COMPUTE_DTYPE,
    EPS,
    SMALLEST_NORMAL,
    SMALLEST_SUBNORMAL,
    FORWARD,
    GRADIENT,
    _float64,
    assert_close_to_exact,
    entry,
    library_compute_dtype,
    rounded_range,
    tolerance,
)

import logitloss

REDUCTIONS = ("none", "mean", "sum")

# The table's units (tolerances.TABLE): the spec's 4 eps for the loss, 8 eps for the gradient.
LOSS_UNITS = entry(np.float32, FORWARD).units
GRADIENT_UNITS = entry(np.float32, GRADIENT).units

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
    mp = reference._mpmath()
    flat = X.reshape(-1)
    out = {name: (np.empty(flat.size), np.zeros(flat.size)) for name in ("sp_big", "sp_small", "sig_big", "sig_small")}
    with mp.workdps(reference.MP_DPS):
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
                out[name][0][i], out[name][1][i] = reference._split(mp, value)
    shaped = {name: (hi.reshape(X.shape), lo.reshape(X.shape)) for name, (hi, lo) in out.items()}

    def by_sign(big, small):
        pos = tuple(np.where(X >= 0, b, s) for b, s in zip(shaped[big], shaped[small]))
        neg = tuple(np.where(X >= 0, s, b) for b, s in zip(shaped[big], shaped[small]))
        return pos, neg

    sp_pos, sp_neg = by_sign("sp_big", "sp_small")
    sig_pos, sig_neg = by_sign("sig_big", "sig_small")
    return _LogitTerms(sp_pos, sp_neg, sig_pos, sig_neg, shaped["sig_small"])


def _logit_terms(X, exact):
    key = reference._key("bce_logit_terms", X, exact)
    return reference._cached(key, lambda: (_logit_terms_mpmath if exact else _logit_terms_float64)(X))


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
    mp = reference._mpmath()
    flat = [np.reshape(a, -1) for a in (X, Y, PW, W, factor)]
    views = [a.reshape(-1) for a in outputs]  # views of the outputs: written through
    with mp.workdps(reference.MP_DPS):
        for k in np.flatnonzero(redo):
            loss, grad = _element_mpmath(mp, *(a[k] for a in flat[:4]))
            views[0][k], views[1][k] = reference._split(mp, loss)
            views[2][k], views[3][k] = reference._split(mp, grad * mp.mpf(float(flat[4][k])))


def _tiny_total_mpmath(X, Y, PW, W, den):
    """A reduction whose float64 value is below 2**-900: every element and the sum in mpmath."""
    mp = reference._mpmath()
    flat = [np.reshape(a, -1) for a in (X, Y, PW, W)]
    with mp.workdps(reference.MP_DPS):
        total = mp.fsum(_element_mpmath(mp, *(a[k] for a in flat))[0] for k in range(flat[0].size))
        return reference._split(mp, total / den)


# ----------------------------------------------------------------------------------------------
# The public reference
# ----------------------------------------------------------------------------------------------


class BCEExact(NamedTuple):
    # field names shared with reference_cross_entropy.CrossEntropyExact, so that its
    # assert_close_to_torch / check_return_kind / assert_no_flush_to_zero apply unchanged
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
    return np.broadcast_to(_float64(np.asarray(value)), shape)


def binary_cross_entropy(input, target, weight=None, reduction="mean", pos_weight=None, grad_output=None):
    """Exact loss and gradient of ``torch.nn.functional.binary_cross_entropy_with_logits``.

    ``grad_output`` is the upstream gradient (broadcasting to the input's shape for 'none', a
    scalar otherwise); ``None`` means 1, i.e. the gradient of ``loss`` (of ``loss.sum()`` for 'none').
    Cached by content: computed once for every ISA.
    """
    arrays = [None if a is None else np.asarray(a) for a in (input, target, weight, pos_weight, grad_output)]
    key = reference._key("bce", *arrays, reduction)
    return reference._cached(key, lambda: _binary_cross_entropy(*arrays, reduction))


def _binary_cross_entropy(input, target, weight, pos_weight, grad_output, reduction):
    x = np.asarray(input)
    shape = x.shape
    if np.dtype(x.dtype).newbyteorder("=") not in EPS:
        raise ValueError(f"reference: floating input only, got {x.dtype}")
    if np.shape(target) != shape:
        raise ValueError("reference: target must have the input's shape")
    if reduction not in REDUCTIONS:
        raise ValueError(reduction)
    dtype = result_dtype(x, target)
    numbers = rce._numbers(dtype)
    X = _float64(x)
    Y = _float64(np.asarray(target))
    W = _broadcast_operand(weight, shape, 1.0)
    PW = _broadcast_operand(pos_weight, shape, 1.0)
    n = int(np.prod(shape, dtype=np.int64))
    if reduction == "none":
        up = np.ones(shape) if grad_output is None else np.broadcast_to(_float64(np.asarray(grad_output)), shape)
        den = 1.0
    else:
        up = np.full(shape, 1.0 if grad_output is None else float(_float64(np.asarray(grad_output)).reshape(())))
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

        # ---- reduction ----------------------------------------------------------------------
        if reduction == "none":
            loss_values = loss_el
            torch_loss_scale = ratio * torch_loss_el
        else:
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
            torch_adds = summation_depth(n) / rce.TORCH_UNITS * np.abs(element_loss).sum()
            torch_loss_scale = np.array(ratio * (torch_loss_el.sum() + torch_adds) / den)
        values_hi, values_lo = N.split(loss_values)
        if N.exact and reduction != "none" and n and abs(float(values_hi)) < _TINY:
            values_hi, values_lo = _tiny_total_mpmath(X, Y, PW, W, den)

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


# ----------------------------------------------------------------------------------------------
# Assertions
# ----------------------------------------------------------------------------------------------


def loss_tolerance(exact):
    """The loss's absolute tolerance (float64, the loss's shape)."""
    return tolerance(exact.dtype, exact.loss, exact.loss_scale, FORWARD)


def grad_tolerance(exact):
    """The gradient's absolute tolerance per element (float64, the input's shape)."""
    return tolerance(exact.dtype, exact.grad, exact.grad_scale, GRADIENT)


def assert_loss_close(actual, exact, what="loss"):
    """Within LOSS_UNITS eps of the loss's condition scale (plain relative in the spec's domain);
    below the normal range within one subnormal ulp and never 0 where the exact value rounds to
    nonzero."""
    if exact.reduced_overflow and np.asarray(actual) == np.inf:
        return 0.0
    worst = assert_close_to_exact(actual, exact.loss, exact.dtype, exact.loss_scale, lo=exact.loss_lo, what=what)
    if exact.loss.ndim == 0 and exact.element_loss.size > 1:
        # A reduction adds the per-element losses as computed, each rounded to the compute dtype
        # (as torch's loss.sum() does): when every one of them rounds to 0, so may their sum.
        compute = np.float32 if np.dtype(exact.dtype).itemsize <= 4 else np.float64
        with np.errstate(under="ignore", over="ignore"):
            if not np.any(exact.element_loss.astype(compute) != 0):
                return worst
    rce.assert_no_flush_to_zero(actual, exact.loss + exact.loss_lo, exact.dtype, what)
    return worst


def assert_grad_close(actual, exact, what="gradient"):
    """Within GRADIENT_UNITS eps of each element's condition scale; never 0 where the exact value
    rounds to nonzero."""
    worst = assert_close_to_exact(
        actual, exact.grad, exact.dtype, exact.grad_scale, lo=exact.grad_lo, direction=GRADIENT, what=what
    )
    # Where the exact gradient is below its own tolerance (sigmoid(x) - y cancelling, e.g. x ~ 0
    # with y = 1/2) a computed 0 is within it; elsewhere 0 must not replace a nonzero value.
    exact_grad = exact.grad + exact.grad_lo
    significant = np.abs(exact_grad) > grad_tolerance(exact)
    rce.assert_no_flush_to_zero(np.where(significant, actual, 1.0), np.where(significant, exact_grad, 1.0), exact.dtype, what)
    return worst


def assert_close_to_torch(ours, theirs, exact, direction=FORWARD, what="result"):
    """``|ours - torch| <= our budget + torch's`` and the same nan / inf pattern (see
    ``reference_cross_entropy.assert_close_to_torch``)."""
    rce.assert_close_to_torch(ours, theirs, exact, direction=direction, what=what)


# ----------------------------------------------------------------------------------------------
# Calls
# ----------------------------------------------------------------------------------------------


def _native(a):
    a = np.asarray(a)
    return np.array(a, dtype=a.dtype.newbyteorder("="), copy=True)


def torch_binary_cross_entropy(torch, input, target, weight=None, reduction="mean", pos_weight=None, grad_output=None):
    """torch's loss and autograd gradient (of ``loss``, ``loss.sum()`` for 'none', or with
    ``grad_output``), as NumPy arrays (read-only; cached by content: the same for every ISA).

    torch rejects integer and bool targets: they are given to it in the result dtype (exact)."""
    arrays = [None if a is None else np.asarray(a) for a in (input, target, weight, pos_weight, grad_output)]
    key = reference._key("torch_bce", *arrays, reduction)
    return reference._cached(key, lambda: _torch_on_one_thread(torch, *arrays, reduction))


def _torch_on_one_thread(torch, *args):
    """torch's pool competing with ours (and other jobs) for the cores makes a call on a tiny
    tensor ~20x slower; the results do not depend on the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _torch_binary_cross_entropy(torch, *args)
    finally:
        torch.set_num_threads(before)


def _torch_binary_cross_entropy(torch, input, target, weight, pos_weight, grad_output, reduction):
    x = torch.from_numpy(_native(input)).requires_grad_(True)
    if not np.issubdtype(target.dtype, np.floating):
        target = target.astype(result_dtype(input, target))
    t = torch.from_numpy(_native(target))
    w = None if weight is None else torch.from_numpy(_native(weight))
    pw = None if pos_weight is None else torch.from_numpy(_native(pos_weight))
    loss = torch.nn.functional.binary_cross_entropy_with_logits(x, t, weight=w, reduction=reduction, pos_weight=pw)
    if grad_output is None:
        upstream = torch.ones_like(loss)
    else:
        loss_dtype = loss.detach().numpy().dtype
        upstream = torch.from_numpy(
            np.array(np.broadcast_to(_native(grad_output), tuple(loss.shape)), dtype=loss_dtype)
        )
    loss.backward(upstream)
    return np.array(loss.detach().numpy(), copy=True), np.array(x.grad.numpy(), copy=True)


def check_binary_cross_entropy(input, target, weight=None, reduction="mean", pos_weight=None, *, what="bce"):
    """Call ``logitloss.binary_cross_entropy_with_logits(..., return_grad=True)``; check return kind,
    dtype, loss and gradient against the exact reference.  Returns (loss, grad, exact)."""
    exact = binary_cross_entropy(input, target, weight, reduction, pos_weight)
    result = logitloss.binary_cross_entropy_with_logits(
        input, target, weight=weight, reduction=reduction, pos_weight=pos_weight, return_grad=True
    )
    assert isinstance(result, tuple) and len(result) == 2, f"{what}: return_grad=True gave {type(result).__name__}"
    loss, grad = result
    rce.check_return_kind(loss, exact.dtype, reduction, exact.loss.shape, what)
    assert isinstance(grad, np.ndarray) and grad.shape == np.shape(input), f"{what}: gradient shape {np.shape(grad)}"
    assert grad.dtype == exact.dtype, f"{what}: gradient dtype {grad.dtype}, expected {exact.dtype}"
    assert_loss_close(loss, exact, what=f"{what} loss")
    assert_grad_close(grad, exact, what=f"{what} gradient")
    return loss, grad, exact


# ----------------------------------------------------------------------------------------------
# Inputs (deterministic: every generator takes a seed)
# ----------------------------------------------------------------------------------------------


def binary_targets(shape, dtype, seed):
    """Targets in [0, 1]: about a quarter exact 0, a quarter exact 1, the rest uniform."""
    rng = np.random.default_rng(seed)
    y = rng.uniform(0.0, 1.0, shape)
    pick = rng.random(shape)
    y = np.where(pick < 0.25, 0.0, np.where(pick < 0.5, 1.0, y))
    return np.asarray(y).astype(dtype)


def positive_weights(shape, dtype, seed, low=0.25, high=3.0):
    """Non-negative weights (pos_weight) in [low, high], rounded to ``dtype``."""
    return np.asarray(np.random.default_rng(seed).uniform(low, high, shape)).astype(dtype)


__all__ = [
    "GRADIENT_UNITS",
    "LOSS_UNITS",
    "REDUCTIONS",
    "assert_close_to_torch",
    "assert_grad_close",
    "assert_loss_close",
    "binary_cross_entropy",
    "binary_targets",
    "check_binary_cross_entropy",
    "grad_tolerance",
    "loss_tolerance",
    "positive_weights",
    "result_dtype",
    "torch_binary_cross_entropy",
]
