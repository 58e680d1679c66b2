"""Exact reference for ``cross_entropy`` (torch.nn.functional semantics) and its gradient, the
tolerance rule the cross-entropy tests use, and torch / logitloss call helpers.

One formula for every mode
--------------------------
Per position (a *row*: the class axis moved last), with ``C`` classes, logits ``z``, softmax ``p``
and ``l_c = L - z_c = -log_softmax(z)_c >= 0`` (``L`` the row's logsumexp), torch's loss is a
non-negative combination of the ``l_c``::

    loss_row = sum_c B_c * l_c,        A = sum_c B_c,        d loss_row / d z_c = A * p_c - B_c

with the per-class coefficients ``B`` (``w`` the class weights, 1 without ``weight``, ``eps`` the
label smoothing)::

    index target y:        B_c = (1 - eps) * w_y * [c == y] + (eps / C) * w_c   (0 for an ignored row)
    probability target y:  B_c = w_c * ((1 - eps) * y_c + eps / C)

which is SEMANTICS.md's ``(1-eps)*nll + (eps/C)*sum_c(-w_c logp_c)``, ``y' = (1-eps) y + eps/C`` and
its three gradient formulas.  Reductions: ``none`` keeps every row's loss (upstream gradient per
row), ``sum`` adds them, ``mean`` divides by ``sum_valid w_y`` (index targets) or by the number of
rows (probability targets); the gradient is ``upstream / denominator`` times the row gradient, and
an all-ignored ``mean`` is nan with an all-zero gradient.

Exactness
---------
``l`` and ``p`` come from ``reference._core`` (float64-with-care for float16 / float32 results,
mpmath at 50 digits for float64 results, as the softmax family).  For float64 results the
combination above is evaluated in double-double arithmetic (``DD``: error-free sums and products,
``math.fsum`` for the sums over classes and rows) on the (hi, lo) pairs, good to ~1e-30 relative;
for float16 / float32 results plain float64 is ~1e-9 of the tolerance.  The target
element of an index row is evaluated without cancellation::

    A * p_y - B_y = sum_{c != y} B_c - A * q_y,    q_y = sum_{c != y} p_c = 1 - p_y

(for a confident row ``[40, 0]`` the exact gradient is ``-4.2e-18``, not 0).  ``L - z_max`` (the
loss of a confident row) is ``log(m) - log1p(-rho)`` with ``rho`` the non-maximal softmax mass, and
where some ``p_i`` lies in float64's subnormal range the row sums are redone in mpmath from the
logits (the 50-digit core drops ``s = exp(-700)`` next to 1; a sum of subnormal ``p_i`` would carry
one rounding per term).

Condition scales (tolerance = units * eps(compute dtype) * scale, ``tolerances.tolerance``)
-----------------------------------------------------------------------------------------------
* loss of a row: ``|loss| + A * S_y``, ``S_y = sum_i p_i |z_i - z_max|``: every ``l_c`` is the sum of
  the non-negative ``z_max - z_c`` and ``log(m) + log1p(s/m)``, so their roundings are relative to
  the loss; only the rounding of the exp arguments ``z_i - z_max`` (which an implementation cannot
  avoid) can cost more, and that is ``A * S_y``.  Where ``S_y`` is 0 (or small) the rule reads
  "8 eps relative".  ``sum`` / ``mean``: the sum of the rows' scales (over the denominator).
  Below the normal range: one subnormal ulp, and never 0 where the exact value rounds to nonzero.
  A mean / sum that is finite although some row's loss overflows the dtype may also be inf
  (torch reduces the rounded rows).
* gradient, normwise per row like ``tolerances.py``: ``max_c mag_c * (1 + (L - z_max) + S_y)``
  plus each element's own ``A p_c |z_c - z_max|`` (``A S_y`` at an index target: the roundings of
  the other exp arguments enter ``q_y``), times ``|upstream| / denominator``, where
  ``mag_c = A p_c + B_c`` (the two terms of the element) except at an index target:
  ``(1-eps) w_y q_y + (eps/C)(p_y sum w + w_y)`` --
  the no-smoothing part must be computed without the ``p_y - 1`` cancellation, as the spec
  demands (for ``eps = 0`` and no weights the rule is "8 eps of the row's max |grad|").
* torch's own error (for the parity tests) additionally carries ``A * (2 + (L - z_max) + S_y)``
  absolute per row loss (it rounds ``log(sum)`` next to ``z - max``) and ``A p_c (1 + l_c)`` per
  gradient element (it computes ``p = exp(log_softmax)`` and ``p_y - 1`` directly), in its compute
  dtype (float16 in float16, see ``tolerances.library_compute_dtype``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import reference
from tolerances import (
    COMPUTE_DTYPE,
    EPS,
    FORWARD,
    GRADIENT,
    SMALLEST_NORMAL,
    SMALLEST_SUBNORMAL,
    _float64,
    assert_close_to_exact,
    check_special_values,
    entry,
    library_compute_dtype,
    rounded_range,
    tolerance,
)

import logitloss

# The cross-entropy budget, per direction, in eps of the compute dtype times the condition scale
# (float16: plus one float16 eps of |exact| for the single rounding of the float32 result, and a
# subnormal ulp below the normal range -- the softmax family's table entries, with these units).
LOSS_UNITS = 8
GRADIENT_UNITS = 8
UNITS = {FORWARD: LOSS_UNITS, GRADIENT: GRADIENT_UNITS}

# torch's own budget (parity tests only): the same units on its larger scale, in its compute dtype.
TORCH_UNITS = 8

REDUCTIONS = ("none", "mean", "sum")


def extra_units(dtype, direction):
    """Units to add to the softmax family's table entry to get the cross-entropy budget."""
    return UNITS[direction] - entry(dtype, direction).units


# ----------------------------------------------------------------------------------------------
# Layout: class axis 1 (0 for 1-D input) moved last
# ----------------------------------------------------------------------------------------------


class Layout(NamedTuple):
    one_d: bool
    rows: reference._Rows  # of the (N, C, d1..dk) view
    loss_shape: tuple  # shape of reduction='none'
    classes: int


def layout_of(input_shape):
    one_d = len(input_shape) == 1
    shape2 = (1,) + tuple(input_shape) if one_d else tuple(input_shape)
    rows = reference._layout(shape2, 1)
    loss_shape = () if one_d else rows.kept_shape
    return Layout(one_d, rows, loss_shape, shape2[1])


def is_probability_target(input, target):
    return np.shape(target) == np.shape(input)


def _to_rows(layout, x):
    x = np.asarray(x)
    if layout.one_d:
        x = x[None]
    return layout.rows.to_rows(x)


def _to_input_shape(layout, rows_array):
    out = layout.rows.to_elements(rows_array)
    return out[0] if layout.one_d else out


# ----------------------------------------------------------------------------------------------
# Number systems: float64 (float16 / float32 results) or double-double (float64 results)
# ----------------------------------------------------------------------------------------------


def _two_sum(x, y):
    s = x + y
    virtual = s - x
    e = (x - (s - virtual)) + (y - virtual)
    return s, np.where(np.isfinite(s), e, 0.0)


def _fast_two_sum(x, y):
    s = x + y
    e = y - (s - x)
    return s, np.where(np.isfinite(s), e, 0.0)


def _two_prod(x, y):
    p, e = reference._two_prod(x, y)
    return p, np.where(np.isfinite(e), e, 0.0)  # Dekker's split overflows beyond ~1e300: drop e there


class DD:
    """A float64 array pair ``hi + lo`` (|lo| <= ulp(hi) / 2): ~106 bits, vectorized.

    Enough for a float64 result to ~1e-30 relative (the tolerance is 8 eps = 1.8e-15).
    """

    __array_priority__ = 1000  # numpy arrays defer to our reflected operators

    def __init__(self, hi, lo=0.0):
        self.hi = np.asarray(hi, dtype=np.float64)
        self.lo = np.broadcast_to(np.asarray(lo, dtype=np.float64), self.hi.shape)

    @staticmethod
    def of(value):
        return value if isinstance(value, DD) else DD(value)

    @property
    def shape(self):
        return self.hi.shape

    def __getitem__(self, key):
        return DD(self.hi[key], self.lo[key])

    def __neg__(self):
        return DD(-self.hi, -self.lo)

    def __add__(self, other):
        other = DD.of(other)
        s, e = _two_sum(self.hi, other.hi)
        e = e + (self.lo + other.lo)
        return DD(*_fast_two_sum(s, np.where(np.isfinite(s), e, 0.0)))

    __radd__ = __add__

    def __sub__(self, other):
        return self + (-DD.of(other))

    def __rsub__(self, other):
        return DD.of(other) + (-self)

    def __mul__(self, other):
        other = DD.of(other)
        p, e = _two_prod(self.hi, other.hi)
        with np.errstate(invalid="ignore"):
            cross = self.hi * other.lo + self.lo * other.hi
        e = e + np.where(np.isfinite(cross), cross, 0.0)
        return DD(*_fast_two_sum(p, np.where(np.isfinite(p), e, 0.0)))

    __rmul__ = __mul__

    def __truediv__(self, other):
        other = DD.of(other)
        q1 = self.hi / other.hi
        r = self - other * q1
        q2 = r.hi / other.hi
        r = r - other * q2
        q3 = r.hi / other.hi
        finite = np.isfinite(q1)
        q2 = np.where(finite, q2, 0.0)
        q3 = np.where(finite, q3, 0.0)
        s, e = _fast_two_sum(q1, q2)
        return DD(s, e) + DD(np.where(finite, q3, 0.0))

    def __rtruediv__(self, other):
        return DD.of(other) / self

    def __float__(self):
        return float(self.hi) + float(self.lo)


class _Float64:
    exact = False

    def pair(self, hi, lo):
        return np.asarray(hi, dtype=np.float64) + np.asarray(lo, dtype=np.float64)

    def const(self, value):
        return np.float64(value)

    def where(self, cond, a, b):
        return np.where(cond, a, b)

    def nonzero(self, x):
        return np.asarray(x) != 0

    def rowsum(self, x):
        return np.asarray(x).sum(axis=1)

    def total(self, x):
        return np.float64(np.asarray(x).sum())

    def split(self, values):
        values = np.asarray(values, dtype=np.float64)
        return values, np.zeros_like(values)

    def to_float(self, values):
        return np.asarray(values, dtype=np.float64)


class _DoubleDouble:
    exact = True

    def pair(self, hi, lo):
        return DD(hi, lo)

    def const(self, value):
        return DD(float(value))

    def where(self, cond, a, b):
        a, b = DD.of(a), DD.of(b)
        return DD(np.where(cond, a.hi, b.hi), np.where(cond, a.lo, b.lo))

    def nonzero(self, x):
        return DD.of(x).hi != 0

    def rowsum(self, x):
        """Row sums, correctly rounded as hi and again as lo (math.fsum); plain where non-finite."""
        x = DD.of(x)
        R = x.shape[0]
        hi = np.empty(R)
        lo = np.zeros(R)
        for r in range(R):
            pieces = np.concatenate([x.hi[r], x.lo[r]])
            if np.all(np.isfinite(pieces)):
                h = math.fsum(pieces.tolist())
                hi[r] = h
                if math.isfinite(h):
                    lo[r] = math.fsum(pieces.tolist() + [-h])
            else:
                with np.errstate(invalid="ignore"):
                    hi[r] = x.hi[r].sum()
        return DD(hi, lo)

    def total(self, x):
        x = DD.of(x)
        return self.rowsum(DD(x.hi.reshape(1, -1), x.lo.reshape(1, -1)))[0]

    def split(self, values):
        values = DD.of(values)
        return values.hi.copy(), np.where(np.isfinite(values.hi), values.lo, 0.0)

    def to_float(self, values):
        values = DD.of(values)
        with np.errstate(invalid="ignore"):
            return values.hi + np.where(np.isfinite(values.hi), values.lo, 0.0)


def _numbers(dtype):
    return _DoubleDouble() if np.dtype(dtype) == np.float64 else _Float64()


# ----------------------------------------------------------------------------------------------
# Per-row terms (cached by content: computed once for every ISA and every reduction)
# ----------------------------------------------------------------------------------------------


class _RowTerms(NamedTuple):
    loss: object  # (R,) number-system values (float64 array or DD)
    grad: object  # (R, C) d loss_row / d z, number-system values
    loss_scale: np.ndarray  # (R,)
    grad_scale: np.ndarray  # (R, C), before the upstream / denominator factor
    torch_loss_extra: np.ndarray  # (R,)
    torch_grad_extra: np.ndarray  # (R, C)
    valid: np.ndarray  # (R,) bool: not ignored
    target_weight: object  # (R,) w_y for valid index rows (0 otherwise), number-system values
    bad: np.ndarray  # (R,) rows with nan / +inf logits


# Below this a float64 p_i (or L - z_max) has lost digits to the subnormal range: its (hi, lo)
# pair is only the rounded hi, and sums of such values carry one rounding per term.
_TINY = 2.0**-900


def _exact_row_sums(clean, core, p, onehot, N):
    """Per row: ``L - z_max`` and ``q_y = 1 - p_y`` (the sum of the other p_c, index targets) as DD.

    ``L - z_max = log(m) + log1p(s/m) = log(m) - log1p(-rho)``, ``rho`` the sum of the non-maximal
    p_i: the mpmath core's ``a - lse`` at a maximal entry is ``-log(total)`` with ``total = m + s``
    rounded to 50 digits, so ``s = exp(-700)`` is lost there while the loss ``log1p(exp(-700))``
    is a normal float64.  Where some p_i is tiny (subnormal range) the sums are recomputed from
    the logits in mpmath (``exp(z_i - z_max)``, unlimited exponent range) and rounded once.
    """
    mp = reference._mpmath()
    rho = N.rowsum(N.where(core.at_max, 0.0, p))
    q = N.rowsum(N.where(onehot, 0.0, p))
    m = core.at_max.sum(axis=1)
    R, C = clean.shape
    with np.errstate(invalid="ignore"):
        # a finite logit whose p is tiny or has underflowed to 0
        tiny = (np.isfinite(clean) & (core.grad < _TINY)).any(axis=1) | ((rho.hi > 0) & (rho.hi < _TINY))
    lse_hi = np.full(R, np.nan)
    lse_lo = np.zeros(R)
    q_hi, q_lo = q.hi.copy(), q.lo.copy()
    with mp.workdps(reference.MP_DPS):
        for r in range(R):
            if m[r] == 0 or not np.isfinite(rho.hi[r]):
                continue
            if not tiny[r]:
                value = mp.log(int(m[r])) - mp.log1p(-(mp.mpf(float(rho.hi[r])) + mp.mpf(float(rho.lo[r]))))
                lse_hi[r], lse_lo[r] = reference._split(mp, value)
                continue
            row = clean[r]
            zmax = mp.mpf(float(row[np.isfinite(row)].max()))
            terms = [mp.exp(mp.mpf(float(v)) - zmax) if np.isfinite(v) else mp.mpf(0) for v in row.tolist()]
            s = mp.fsum(t for t, top in zip(terms, core.at_max[r].tolist()) if not top)
            lse_hi[r], lse_lo[r] = reference._split(mp, mp.log(int(m[r])) + mp.log1p(s / int(m[r])))
            if onehot[r].any():
                others = mp.fsum(t for t, hit in zip(terms, onehot[r].tolist()) if not hit)
                q_hi[r], q_lo[r] = reference._split(mp, others / (int(m[r]) + s))
    return DD(lse_hi, lse_lo), DD(q_hi, q_lo)


def _row_terms(X, T, W, prob, ignore_index, eps, dtype, numbers):
    R, C = X.shape
    with np.errstate(all="ignore"):
        bad = ~np.all(np.isfinite(X) | np.isneginf(X), axis=1)
    clean = np.where(bad[:, None], 0.0, X)  # the core rejects nan / +inf: those rows are nan below
    core = reference._core(clean, None, dtype)
    N = numbers
    with np.errstate(all="ignore"):
        ls = N.pair(-core.log_softmax, -core.log_softmax_lo)  # L - z_c (+inf where masked, nan if dead)
        p = N.pair(core.grad, core.grad_lo)
        w = N.pair(W, 0.0)  # (C,)
        keep = N.const(1) - N.const(eps)
        smooth = N.const(eps) / N.const(C)
        if prob:
            valid = np.ones(R, dtype=bool)
            onehot = np.zeros((R, C), dtype=bool)
        else:
            idx = T.astype(np.int64)
            valid = idx != ignore_index
            safe = np.where(valid, idx, 0)
            onehot = (np.arange(C)[None, :] == safe[:, None]) & valid[:, None]
        if N.exact:
            lse_rel, q_exact = _exact_row_sums(clean, core, p, onehot, N)
            ls = N.where(core.at_max, lse_rel[:, None], ls)
        if prob:
            B = w[None, :] * (keep * N.pair(T, 0.0) + smooth)
            target_weight = N.pair(np.zeros(R), 0.0)
            terms = B * ls  # torch: 0 * inf = nan (a zero target on a -inf logit)
        else:
            w_y = w[safe]
            target_weight = N.where(valid, w_y, 0.0)
            B = N.where(onehot, (keep * w_y)[:, None], 0.0)
            if eps != 0:
                B = B + N.where(valid[:, None], smooth * w[None, :], 0.0)
            terms = N.where(N.nonzero(B), B * ls, 0.0)  # nll only reads the target: a masked class adds 0
        A = N.rowsum(B)
        loss = N.where(valid, N.rowsum(terms), 0.0)
        grad = A[:, None] * p - B
        if not prob:
            # the target element without the p_y - 1 cancellation
            others_B = N.rowsum(N.where(onehot, 0.0, B))
            q = q_exact if N.exact else N.rowsum(N.where(onehot, 0.0, p))
            grad = N.where(onehot, (others_B - A * q)[:, None], grad)
            grad = N.where(valid[:, None], grad, p * 0.0)  # an ignored row: 0 (nan if its logits are)
        nan = N.const(math.nan)
        loss = N.where(bad & valid, nan, loss)  # an ignored row's loss is 0 whatever its logits
        grad = N.where(bad[:, None], nan, grad)

        # ---- condition scales (float64, rough is fine) ------------------------------------
        Af = N.to_float(A)
        Bf = np.abs(N.to_float(B))
        lossf = N.to_float(loss)
        pf = np.where(np.isfinite(core.grad), core.grad, 0.0)
        shift = core.shift
        s_y = (core.weight * core.shift).sum(axis=1)
        lse_rel = np.where(np.isfinite(core.lse_rel), core.lse_rel, 0.0)
        loss_scale = np.abs(lossf) + Af * s_y
        mag = Af[:, None] * pf + Bf
        if not prob:
            Bt = np.where(valid, float(N.to_float(keep)) * N.to_float(w_y), 0.0)  # (1 - eps) w_y
            qf = np.where(onehot, 0.0, pf).sum(axis=1)
            p_y = np.where(onehot, pf, 0.0).sum(axis=1)
            B_y = np.where(onehot, Bf, 0.0).sum(axis=1)
            mag_y = Bt * qf + (Af - Bt) * p_y + (B_y - Bt)
            mag = np.where(onehot, mag_y[:, None], mag)
        row_norm = mag.max(axis=1, initial=0.0)
        condition = 1.0 + lse_rel + s_y
        grad_scale = (row_norm * condition)[:, None] + Af[:, None] * pf * shift
        grad_scale = grad_scale + np.where(onehot, (Af * s_y)[:, None], 0.0)
        # torch: log(sum) rounded next to z - max; p = exp(log_softmax) and p_y - 1 directly
        lsf = np.where(np.isfinite(core.log_softmax), -core.log_softmax, 0.0)
        torch_loss_extra = Af * (1.0 + condition)
        naive_norm = (Af[:, None] * pf + Bf).max(axis=1, initial=0.0)
        torch_grad_extra = (naive_norm * (1.0 + condition))[:, None] + Af[:, None] * pf * (1.0 + lsf)
    return _RowTerms(
        loss=loss,
        grad=grad,
        loss_scale=loss_scale,
        grad_scale=grad_scale,
        torch_loss_extra=torch_loss_extra,
        torch_grad_extra=torch_grad_extra,
        valid=valid,
        target_weight=target_weight,
        bad=bad,
    )


# ----------------------------------------------------------------------------------------------
# The public reference
# ----------------------------------------------------------------------------------------------


class CrossEntropyExact(NamedTuple):
    loss: np.ndarray  # float64: shape () for mean / sum, the 'none' loss shape otherwise
    loss_lo: np.ndarray
    loss_scale: np.ndarray
    grad: np.ndarray  # float64, the input's shape: d loss / d input times grad_output
    grad_lo: np.ndarray
    grad_scale: np.ndarray
    dtype: np.dtype  # the result dtype (the input's)
    torch_loss_scale: np.ndarray  # loss_scale plus torch's own error terms
    torch_grad_scale: np.ndarray
    denominator: float  # of 'mean' (1.0 otherwise)
    row_loss: np.ndarray  # float64 per-row loss (the 'none' values), whatever the reduction
    # mean / sum where some row's loss overflows the dtype (its 'none' value is inf) although the
    # reduced value is finite: inf (torch's answer: it reduces the rounded rows) is accepted too
    reduced_overflow: bool


def cross_entropy(
    input,
    target,
    weight=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    grad_output=None,
):
    """Exact loss and gradient of ``torch.nn.functional.cross_entropy`` (see the module docstring).

    ``grad_output`` is the upstream gradient (the loss's shape for 'none', a scalar otherwise);
    ``None`` means 1 everywhere, i.e. the gradient of ``loss`` (or of ``loss.sum()`` for 'none').
    """
    x = np.asarray(input)
    dtype = np.dtype(x.dtype).newbyteorder("=")
    if dtype not in EPS:
        raise ValueError(f"reference: floating input only, got {dtype}")
    if reduction not in REDUCTIONS:
        raise ValueError(reduction)
    layout = layout_of(x.shape)
    C = layout.classes
    prob = is_probability_target(x, target)
    X = _to_rows(layout, _float64(x))
    if prob:
        T = _to_rows(layout, _float64(np.asarray(target)))
    else:
        t = np.asarray(target)
        T = (t[None] if layout.one_d else t).reshape(-1).astype(np.int64)
        valid = T != ignore_index
        if np.any(valid & ((T < 0) | (T >= C))):
            raise IndexError("reference: target out of range")
    W = np.ones(C) if weight is None else _float64(np.asarray(weight)).reshape(C)
    eps = float(label_smoothing)
    N = _numbers(dtype)
    key = reference._key("cross_entropy_rows", X, T, W, prob, int(ignore_index), eps, dtype.str)
    rows = reference._cached(key, lambda: _row_terms(X, T, W, prob, int(ignore_index), eps, dtype, N))
    R = X.shape[0]

    with np.errstate(all="ignore"):
        if reduction == "none":
            if grad_output is None:
                up = np.ones(R)
            else:
                up = np.broadcast_to(_float64(np.asarray(grad_output)), layout.loss_shape).reshape(-1)
            factor = N.pair(up, 0.0)
            loss_values = rows.loss
            loss_scale = rows.loss_scale
            torch_loss_scale = rows.loss_scale + rows.torch_loss_extra
            denominator = 1.0
        else:
            up = 1.0 if grad_output is None else float(_float64(np.asarray(grad_output)).reshape(()))
            total = N.total(rows.loss)
            if reduction == "sum":
                den = N.const(1)
            elif prob:
                den = N.const(R)
            else:
                den = N.total(rows.target_weight)
            denominator = float(N.to_float(den))
            if denominator == 0.0:  # mean over nothing (all ignored, empty): nan, zero gradient
                loss_values = N.const(math.nan)
                factor = N.pair(np.zeros(R), 0.0)
                scale_div = 1.0
            else:
                loss_values = total / den
                factor = N.pair(np.zeros(R), 0.0) + N.const(up) / den
                scale_div = abs(denominator)
            loss_scale = np.array(rows.loss_scale.sum() / scale_div)
            torch_loss_scale = np.array((rows.loss_scale + rows.torch_loss_extra).sum() / scale_div)
            up = np.full(R, up / scale_div if denominator != 0.0 else 0.0)
        grad_values = factor[:, None] * rows.grad
        up_abs = np.abs(np.asarray(up, dtype=np.float64))[:, None]
        grad_scale = up_abs * rows.grad_scale
        torch_grad_scale = up_abs * (rows.grad_scale + rows.torch_grad_extra)
        loss_hi, loss_lo = N.split(loss_values)
        grad_hi, grad_lo = N.split(grad_values)
        row_loss = N.to_float(rows.loss)

    def loss_shaped(values):
        values = np.asarray(values, dtype=np.float64)
        return values.reshape(layout.loss_shape) if reduction == "none" else values.reshape(())

    def input_shaped(values):
        return _to_input_shape(layout, np.asarray(values, dtype=np.float64).reshape(R, C))

    return CrossEntropyExact(
        loss=loss_shaped(loss_hi),
        loss_lo=loss_shaped(loss_lo),
        loss_scale=loss_shaped(loss_scale),
        grad=input_shaped(grad_hi),
        grad_lo=input_shaped(grad_lo),
        grad_scale=input_shaped(grad_scale),
        dtype=dtype,
        torch_loss_scale=loss_shaped(torch_loss_scale),
        torch_grad_scale=input_shaped(torch_grad_scale),
        denominator=denominator,
        row_loss=np.asarray(row_loss, dtype=np.float64).reshape(layout.loss_shape),
        reduced_overflow=bool(
            reduction != "none" and np.any(np.isfinite(row_loss) & np.isinf(rounded_range(row_loss, dtype)))
        ),
    )


# ----------------------------------------------------------------------------------------------
# Assertions
# ----------------------------------------------------------------------------------------------


def loss_tolerance(exact):
    """The loss's absolute tolerance (float64, the loss's shape)."""
    return tolerance(exact.dtype, exact.loss, exact.loss_scale, FORWARD, extra_units=extra_units(exact.dtype, FORWARD))


def grad_tolerance(exact):
    """The gradient's absolute tolerance per element (float64, the input's shape)."""
    units = extra_units(exact.dtype, GRADIENT)
    return tolerance(exact.dtype, exact.grad, exact.grad_scale, GRADIENT, extra_units=units)


def assert_loss_close(actual, exact, what="loss"):
    """The loss within LOSS_UNITS of its condition scale (see the module docstring); below the
    normal range within one subnormal ulp and never 0 where the exact value rounds to nonzero."""
    dtype = exact.dtype
    if exact.reduced_overflow and np.asarray(actual) == np.inf:
        return 0.0
    worst = assert_close_to_exact(
        actual,
        exact.loss,
        dtype,
        exact.loss_scale,
        lo=exact.loss_lo,
        what=what,
        extra_units=extra_units(dtype, FORWARD),
    )
    assert_no_flush_to_zero(actual, exact.loss + exact.loss_lo, dtype, what)
    return worst


def assert_grad_close(actual, exact, what="gradient"):
    """The gradient normwise per row within GRADIENT_UNITS (see the module docstring)."""
    dtype = exact.dtype
    return assert_close_to_exact(
        actual,
        exact.grad,
        dtype,
        exact.grad_scale,
        lo=exact.grad_lo,
        direction=GRADIENT,
        what=what,
        extra_units=extra_units(dtype, GRADIENT),
    )


def assert_no_flush_to_zero(actual, exact64, dtype, what):
    """Where the exact value rounds to a nonzero number of ``dtype``, the result is not 0."""
    actual64 = _float64(np.asarray(actual))
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
    actual64 = _float64(np.asarray(actual))
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
    """``|ours - torch| <= our budget + torch's budget`` (torch's on its larger scale, in its compute
    dtype), and the same nan / inf pattern."""
    dtype = exact.dtype
    if direction == FORWARD:
        value, scale, torch_scale = exact.loss + exact.loss_lo, exact.loss_scale, exact.torch_loss_scale
    else:
        value, scale, torch_scale = exact.grad + exact.grad_lo, exact.grad_scale, exact.torch_grad_scale
    ours64 = _float64(np.asarray(ours))
    theirs64 = _float64(np.asarray(theirs))
    assert ours64.shape == theirs64.shape, f"{what}: shape {ours64.shape}, torch gives {theirs64.shape}"
    check_special_values(ours64, theirs64, f"{what} vs torch")
    ours_tol = tolerance(dtype, value, scale, direction, extra_units=extra_units(dtype, direction))
    torch_compute = library_compute_dtype(dtype, "torch")
    torch_tol = tolerance(
        dtype,
        value,
        torch_scale,
        direction,
        compute_dtype=torch_compute,
        extra_units=TORCH_UNITS - entry(dtype, direction).units,
    )
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


# ----------------------------------------------------------------------------------------------
# Calls
# ----------------------------------------------------------------------------------------------


def torch_cross_entropy(
    torch, input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0, grad_output=None
):
    """torch's loss and autograd gradient (of ``loss``, ``loss.sum()`` for 'none', or with
    ``grad_output``), as NumPy arrays (read-only; cached by content: the same for every ISA)."""
    key = reference._key(
        "torch_cross_entropy",
        np.asarray(input),
        np.asarray(target),
        None if weight is None else np.asarray(weight),
        int(ignore_index),
        reduction,
        float(label_smoothing),
        None if grad_output is None else np.asarray(grad_output),
    )
    return reference._cached(
        key,
        lambda: _torch_cross_entropy(
            torch, input, target, weight, ignore_index, reduction, label_smoothing, grad_output
        ),
    )


def _torch_cross_entropy(torch, input, target, weight, ignore_index, reduction, label_smoothing, grad_output):
    x = torch.from_numpy(np.array(input, copy=True)).requires_grad_(True)
    if is_probability_target(input, target):
        t = torch.from_numpy(np.array(target, copy=True))
    else:
        t = torch.from_numpy(np.asarray(target).astype(np.int64))
    w = None if weight is None else torch.from_numpy(np.array(weight, copy=True))
    loss = torch.nn.functional.cross_entropy(
        x, t, weight=w, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing
    )
    if grad_output is None:
        upstream = torch.ones_like(loss)
    else:
        upstream = torch.from_numpy(np.array(np.broadcast_to(grad_output, tuple(loss.shape)), dtype=input.dtype))
    loss.backward(upstream)
    return np.array(loss.detach().numpy(), copy=True), np.array(x.grad.numpy(), copy=True)


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


def check_cross_entropy(
    input,
    target,
    weight=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    *,
    what="cross_entropy",
):
    """Call ``logitloss.cross_entropy(..., return_grad=True)``; check kind, loss and gradient
    against the exact reference.  Returns (loss, grad, exact)."""
    exact = cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing)
    result = logitloss.cross_entropy(
        input,
        target,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        return_grad=True,
    )
    assert isinstance(result, tuple) and len(result) == 2, f"{what}: return_grad=True gave {type(result).__name__}"
    loss, grad = result
    check_return_kind(loss, exact.dtype, reduction, exact.loss.shape, what)
    assert isinstance(grad, np.ndarray) and grad.shape == np.shape(input), f"{what}: gradient {np.shape(grad)}"
    assert grad.dtype == exact.dtype, f"{what}: gradient dtype {grad.dtype}"
    assert_loss_close(loss, exact, what=f"{what} loss")
    assert_grad_close(grad, exact, what=f"{what} gradient")
    return loss, grad, exact


# ----------------------------------------------------------------------------------------------
# Inputs (deterministic: every generator takes a seed)
# ----------------------------------------------------------------------------------------------

# Every integer dtype a target may come in (torch: int64 and uint8 only; logitloss: all).
TARGET_DTYPES = (np.int64, np.int32, np.uint8, np.int16, np.uint16, np.int8, np.uint32, np.uint64)


def classes_of(input_shape):
    return input_shape[0] if len(input_shape) == 1 else input_shape[1]


def target_shape(input_shape):
    """The index-target shape: () for 1-D input, else (N, d1..dk)."""
    return () if len(input_shape) == 1 else (input_shape[0],) + tuple(input_shape[2:])


def target_dtype_for(seed, classes, ignore_index):
    """The seed-th integer dtype (cycling) that holds every class, and the ignore_index when that
    is a class (a negative ignore_index in an unsigned dtype simply never occurs)."""
    for k in range(len(TARGET_DTYPES)):
        dtype = np.dtype(TARGET_DTYPES[(seed + k) % len(TARGET_DTYPES)])
        info = np.iinfo(dtype)
        if info.max >= classes - 1:
            return dtype
    raise AssertionError("unreachable")


def index_targets(input_shape, seed, *, ignore_index=-100, dtype=np.int64, ignored=0.25):
    """Random classes; about ``ignored`` of the positions (at least one, when there are several)
    set to ``ignore_index`` when ``dtype`` can hold it."""
    rng = np.random.default_rng(seed)
    C = classes_of(input_shape)
    shape = target_shape(input_shape)
    t = rng.integers(0, C, shape)
    info = np.iinfo(dtype)
    if t.size > 1 and ignored > 0 and info.min <= ignore_index <= info.max:
        mask = rng.random(shape) < ignored
        mask.flat[0] = True
        t = np.where(mask, ignore_index, t)
    return np.asarray(t).astype(dtype)


def probability_targets(input_shape, dtype, seed, *, one_hot_first=True):
    """Rows of the softmax of normal numbers (in [0, 1], summing to 1 before rounding to ``dtype``);
    the first position one-hot (exact zeros elsewhere)."""
    rng = np.random.default_rng(seed)
    layout = layout_of(input_shape)
    R = math.prod(layout.rows.kept_shape)
    C = layout.classes
    z = 2.0 * rng.standard_normal((R, C))
    y = np.exp(z - z.max(axis=1, keepdims=True))
    y /= y.sum(axis=1, keepdims=True)
    if one_hot_first and R > 0:
        y[0] = 0.0
        y[0, rng.integers(0, C)] = 1.0
    return np.ascontiguousarray(_to_input_shape(layout, y)).astype(dtype)


def class_weights(classes, dtype, seed):
    return np.random.default_rng(seed).uniform(0.25, 2.0, classes).astype(dtype)


def upstream(shape, dtype, seed):
    """A grad_output: normal, with a few exact zeros."""
    g = np.random.default_rng(seed).standard_normal(shape)
    if g.size > 3:
        g.flat[:: max(1, g.size // 3)] = 0.0
    return np.asarray(g).astype(dtype)
