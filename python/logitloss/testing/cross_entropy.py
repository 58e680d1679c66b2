"""Exact reference for ``cross_entropy`` (torch.nn.functional semantics) and its gradient.

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

which is torch's ``(1-eps)*nll + (eps/C)*sum_c(-w_c logp_c)``, with ``y' = (1-eps) y + eps/C`` for probability
targets (``docs/semantics.md``), and its gradient.  Reductions: ``none`` keeps every row's loss (upstream gradient per
row), ``sum`` adds them, ``mean`` divides by ``sum_valid w_y`` (index targets) or by the number of
rows (probability targets); the gradient is ``upstream / denominator`` times the row gradient, and
an all-ignored ``mean`` is nan with an all-zero gradient.

Exactness
---------
``l`` and ``p`` come from ``softmax_family.row_statistics`` (float64-with-care for float16 / float32 results,
mpmath at 50 digits for float64 results, as the softmax family).  For float64 results the
combination above is evaluated in double-double arithmetic (``arithmetic.DD``: error-free sums and products,
``math.fsum`` for the sums over classes and rows) on the (hi, lo) pairs, good to ~1e-30 relative;
for float16 / float32 results plain float64 is ~1e-9 of the tolerance.  The target
element of an index row is evaluated without cancellation::

    A * p_y - B_y = sum_{c != y} B_c - A * q_y,    q_y = sum_{c != y} p_c = 1 - p_y

(for a confident row ``[40, 0]`` the exact gradient is ``-4.2e-18``, not 0).  ``L - z_max`` (the
loss of a confident row) is ``log(m) - log1p(-rho)`` with ``rho`` the non-maximal softmax mass, and
where some ``p_i`` lies in float64's subnormal range the row sums are redone in mpmath from the
logits (a sum of subnormal ``p_i`` would carry one rounding per term).

Condition scales (tolerance = units * eps(compute dtype) * scale, ``tolerances.tolerance``)
-----------------------------------------------------------------------------------------
* loss of a row: ``|loss| + A * S_y``, ``S_y = sum_i p_i |z_i - z_max|``: every ``l_c`` is the sum of
  the non-negative ``z_max - z_c`` and ``log(m) + log1p(s/m)``, so their roundings are relative to
  the loss; only the rounding of the exp arguments ``z_i - z_max`` (which an implementation cannot
  avoid) can cost more, and that is ``A * S_y``.  Where ``S_y`` is 0 (or small) the rule reads
  "8 eps relative".  ``sum`` / ``mean``: the sum of the rows' scales (over the denominator).
  Below the normal range: one subnormal ulp, and never 0 where the exact value rounds to nonzero.
  A mean / sum that is finite although some row's loss overflows the dtype may also be inf
  (torch reduces the rounded rows).
* gradient, normwise per row like the softmax family's: ``max_c mag_c * (1 + (L - z_max) + S_y)``
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

from .arithmetic import DD, MP_DPS, load_mpmath, numbers_for, split, uses_mpmath
from .cache import cached, content_key
from .rows import Rows, rows_of
from .softmax_family import row_statistics
from .tolerances import EPS, rounded_range, to_float64

__all__ = ["REDUCTIONS", "CrossEntropyExact", "Layout", "cross_entropy", "is_probability_target", "layout_of"]

REDUCTIONS = ("none", "mean", "sum")


# ----------------------------------------------------------------------------------------------
# Layout: class axis 1 (0 for 1-D input) moved last
# ----------------------------------------------------------------------------------------------


class Layout(NamedTuple):
    one_d: bool
    rows: Rows  # of the (N, C, d1..dk) view
    loss_shape: tuple  # shape of reduction='none'
    classes: int


def layout_of(input_shape):
    one_d = len(input_shape) == 1
    shape2 = (1,) + tuple(input_shape) if one_d else tuple(input_shape)
    rows = rows_of(shape2, 1)
    loss_shape = () if one_d else rows.kept_shape
    return Layout(one_d, rows, loss_shape, shape2[1])


def is_probability_target(input, target):
    return np.shape(target) == np.shape(input)


def _to_rows(layout, x):
    x = np.asarray(x)
    if layout.one_d:
        x = x[None]
    return layout.rows.to_rows(x)


def rows_and_targets(layout, x, target):
    """``(probability_target, rows, targets)``: x as float64 rows (one row per sample, classes last) and the
    target as float64 rows (probabilities) or a flat int64 vector of class indices, in the same row order."""
    probability = is_probability_target(x, target)
    rows = _to_rows(layout, to_float64(x))
    if probability:
        return True, rows, _to_rows(layout, to_float64(np.asarray(target)))
    indices = np.asarray(target)
    return False, rows, (indices[None] if layout.one_d else indices).reshape(-1).astype(np.int64)


def _to_input_shape(layout, rows_array):
    out = layout.rows.to_elements(rows_array)
    return out[0] if layout.one_d else out


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
    p_i, from the double-double p_i.  Where some p_i is tiny (subnormal range) its pair has lost digits:
    the sums are recomputed from the logits in mpmath (``exp(z_i - z_max)``, unlimited exponent range)
    and rounded once.
    """
    mp = load_mpmath()
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
    with mp.workdps(MP_DPS):
        for r in range(R):
            if m[r] == 0 or not np.isfinite(rho.hi[r]):
                continue
            if not tiny[r]:
                value = mp.log(int(m[r])) - mp.log1p(-(mp.mpf(float(rho.hi[r])) + mp.mpf(float(rho.lo[r]))))
                lse_hi[r], lse_lo[r] = split(mp, value)
                continue
            row = clean[r]
            zmax = mp.mpf(float(row[np.isfinite(row)].max()))
            terms = [mp.exp(mp.mpf(float(v)) - zmax) if np.isfinite(v) else mp.mpf(0) for v in row.tolist()]
            s = mp.fsum(t for t, top in zip(terms, core.at_max[r].tolist()) if not top)
            lse_hi[r], lse_lo[r] = split(mp, mp.log(int(m[r])) + mp.log1p(s / int(m[r])))
            if onehot[r].any():
                others = mp.fsum(t for t, hit in zip(terms, onehot[r].tolist()) if not hit)
                q_hi[r], q_lo[r] = split(mp, others / (int(m[r]) + s))
    return DD(lse_hi, lse_lo), DD(q_hi, q_lo)


def _redo_beyond_range(loss, clean, core, lse_rel, B, prob, rows):
    """Float64 results: ``L - z_c`` of finite logits at opposite ends of the range is beyond float64
    (it reaches 2 max), so the pairs give inf (and 0 * inf = nan) where a term -- and often the loss
    -- is finite. Such rows are summed again in mpmath, ``sum_c v_c (L - z_c)``, and rounded once."""
    with np.errstate(invalid="ignore"):
        beyond = rows & (np.isfinite(clean) & ~np.isfinite(core.log_softmax)).any(axis=1)
    if not beyond.any():
        return loss
    mp = load_mpmath()
    hi, lo = np.array(loss.hi, copy=True), np.array(loss.lo, copy=True)
    with mp.workdps(MP_DPS):
        for r in np.flatnonzero(beyond):
            row = clean[r]
            # L - z_c as (z_max - z_c) + (L - z_max): L itself, near 1.7e308 plus a few units,
            # is not representable at MP_DPS digits
            z_max = mp.mpf(float(row[np.isfinite(row)].max()))
            L_rel = mp.mpf(float(lse_rel.hi[r])) + mp.mpf(float(lse_rel.lo[r]))
            total = mp.mpf(0)
            for c, z in enumerate(row.tolist()):
                v = mp.mpf(float(B.hi[r, c])) + mp.mpf(float(B.lo[r, c]))
                if np.isfinite(z):
                    total += v * ((z_max - mp.mpf(z)) + L_rel)
                elif v != 0:
                    total = mp.inf
                elif prob:  # torch: 0 * inf = nan (a zero target on a -inf logit)
                    total = mp.nan
                    break
            hi[r], lo[r] = split(mp, total) if mp.isfinite(total) else (float(total), 0.0)
    return DD(hi, lo)


def _row_terms(X, T, W, prob, ignore_index, eps, dtype, numbers):
    R, C = X.shape
    with np.errstate(all="ignore"):
        bad = ~np.all(np.isfinite(X) | np.isneginf(X), axis=1)
    clean = np.where(bad[:, None], 0.0, X)  # the core rejects nan / +inf: those rows are nan below
    core = row_statistics(clean, None, dtype, "mpmath" if numbers.exact else "float64")
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
        if N.exact:
            loss = _redo_beyond_range(loss, clean, core, lse_rel, B, prob, valid & ~bad)
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


class _Reduced(NamedTuple):
    loss: object  # number-system values: the rows' losses ('none') or the reduced loss
    loss_scale: np.ndarray
    torch_loss_scale: np.ndarray
    factor: object  # (R,) number-system values: d loss / d row loss, times the upstream gradient
    upstream: np.ndarray  # (R,) |that factor| as float64, for the gradient's scales
    denominator: float  # of 'mean' (1.0 otherwise)


def _reduce(rows, reduction, grad_output, prob, layout, N):
    """The reduction of the per-row terms: 'none' keeps them (upstream gradient per row), 'sum' adds them, 'mean'
    divides by the valid rows' target weights (index targets) or the row count (probability targets)."""
    R = rows.valid.shape[0]
    with np.errstate(all="ignore"):
        if reduction == "none":
            if grad_output is None:
                up = np.ones(R)
            else:
                up = np.broadcast_to(to_float64(np.asarray(grad_output)), layout.loss_shape).reshape(-1)
            return _Reduced(rows.loss, rows.loss_scale, rows.loss_scale + rows.torch_loss_extra, N.pair(up, 0.0), up,
                            1.0)
        up = 1.0 if grad_output is None else float(to_float64(np.asarray(grad_output)).reshape(()))
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
        upstream = np.full(R, up / scale_div if denominator != 0.0 else 0.0)
    return _Reduced(loss_values, loss_scale, torch_loss_scale, factor, upstream, denominator)


def cross_entropy(
    input,
    target,
    weight=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    grad_output=None,
    *,
    method=None,
):
    """Exact loss and gradient of ``torch.nn.functional.cross_entropy`` (see the module docstring).

    ``grad_output`` is the upstream gradient (the loss's shape for 'none', a scalar otherwise);
    ``None`` means 1 everywhere, i.e. the gradient of ``loss`` (or of ``loss.sum()`` for 'none').
    ``method``: see ``arithmetic.uses_mpmath``.
    """
    x = np.asarray(input)
    dtype = np.dtype(x.dtype).newbyteorder("=")
    if dtype not in EPS:
        raise ValueError(f"reference: floating input only, got {dtype}")
    if reduction not in REDUCTIONS:
        raise ValueError(reduction)
    layout = layout_of(x.shape)
    C = layout.classes
    prob, X, T = rows_and_targets(layout, x, target)
    if not prob:
        valid = T != ignore_index
        if np.any(valid & ((T < 0) | (T >= C))):
            raise IndexError("reference: target out of range")
    W = np.ones(C) if weight is None else to_float64(np.asarray(weight)).reshape(C)
    eps = float(label_smoothing)
    N = numbers_for(uses_mpmath(dtype, method))
    key = content_key("cross_entropy_rows", X, T, W, prob, int(ignore_index), eps, dtype.str, N.exact)
    rows = cached(key, lambda: _row_terms(X, T, W, prob, int(ignore_index), eps, dtype, N))
    R = X.shape[0]
    reduced = _reduce(rows, reduction, grad_output, prob, layout, N)
    with np.errstate(all="ignore"):
        grad_values = reduced.factor[:, None] * rows.grad
        up_abs = np.abs(np.asarray(reduced.upstream, dtype=np.float64))[:, None]
        grad_scale = up_abs * rows.grad_scale
        torch_grad_scale = up_abs * (rows.grad_scale + rows.torch_grad_extra)
        loss_hi, loss_lo = N.split(reduced.loss)
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
        loss_scale=loss_shaped(reduced.loss_scale),
        grad=input_shaped(grad_hi),
        grad_lo=input_shaped(grad_lo),
        grad_scale=input_shaped(grad_scale),
        dtype=dtype,
        torch_loss_scale=loss_shaped(reduced.torch_loss_scale),
        torch_grad_scale=input_shaped(torch_grad_scale),
        denominator=reduced.denominator,
        row_loss=np.asarray(row_loss, dtype=np.float64).reshape(layout.loss_shape),
        reduced_overflow=bool(
            reduction != "none" and np.any(np.isfinite(row_loss) & np.isinf(rounded_range(row_loss, dtype)))
        ),
    )
