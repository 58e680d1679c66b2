"""Exact reference for entropy_with_logits: H(softmax(x)) along axes, and its gradient.

Per row of logits, with ``max`` its largest entry, ``d_c = max - x_c``, ``e_c = exp(-d_c)``,
``total = sum e_c``, ``p_c = e_c / total`` and ``G = sum p_c d_c``:

* ``value = H = log(total) + G`` (two non-negative terms), condition scale ``|H|``: the inputs are
  exact and every term of H is non-negative, so an implementation that rounds each term a few times
  is within a few eps of H relative; the bound is plain relative (``docs/accuracy.md``);
* ``grad_c = p_c (d_c - G)``, condition scale ``p_c (d_c + G)`` per element: ``d_c - G`` cancels,
  and the roundings of ``d_c`` and ``G`` in the result dtype cannot be avoided.

Computed in float64 for float16 / float32 results (its own error ~1e-16 relative, against 1e-7 of the
float32 budget) and in mpmath (``MP_DPS`` digits) for float64 results, terms with ``d_c > 800`` left out
(``exp(-800) d_c < 1e-345``: no float64 result of a row whose largest term is 1 can see them).

Edge rows (softmax's rules): a nan, a ``+inf`` or only ``-inf`` entries give a nan value and an all-nan
gradient; ``-inf`` entries among finite ones are masked classes (``p = 0``, gradient 0).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .arithmetic import MP_DPS, load_mpmath, uses_mpmath
from .cache import cached, content_key
from .rows import rows_of
from .softmax_family import result_dtype

__all__ = ["EntropyExact", "entropy"]

_NEGLIGIBLE_GAP = 800.0


class EntropyExact(NamedTuple):
    value: np.ndarray  # H, the shape of x without the reduced axes
    value_scale: np.ndarray
    grad: np.ndarray  # dH/dx, x's shape
    grad_scale: np.ndarray


def _special_rows(X):
    """Rows softmax's rules make nan: any nan, any +inf, or nothing but -inf."""
    return np.isnan(X).any(axis=1) | (X == np.inf).any(axis=1) | (X == -np.inf).all(axis=1)


def _rows_float64(X):
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        top = np.max(np.where(np.isnan(X), -np.inf, X), axis=1, keepdims=True)
        d = top - X
        e = np.where(np.isfinite(d), np.exp(-d), 0.0)
        ed = np.where(e > 0, e * d, 0.0)
        count = (X == top).sum(axis=1).astype(np.float64)
        others = np.where(X == top, 0.0, e).sum(axis=1)
        total = count + others
        G = ed.sum(axis=1) / total
        H = np.log(count) + np.log1p(others / count) + G
        p = e / total[:, None]
        grad = np.where(e > 0, p * (np.where(np.isfinite(d), d, 0.0) - G[:, None]), 0.0)
        grad_scale = np.where(e > 0, p * (np.where(np.isfinite(d), d, 0.0) + G[:, None]), 0.0)
    return H, grad, grad_scale


def _row_mpmath(mp, x):
    top = max(v for v in x if not np.isnan(v))
    gaps = [mp.mpf(float(top)) - mp.mpf(float(v)) if np.isfinite(v) else None for v in x]
    terms = [mp.exp(-g) if g is not None and g <= _NEGLIGIBLE_GAP else mp.mpf(0) for g in gaps]
    count = sum(1 for g in gaps if g == 0)
    others = mp.fsum(t for t, g in zip(terms, gaps) if g != 0)
    total = count + others
    G = mp.fsum(t * g for t, g in zip(terms, gaps) if t != 0) / total
    # log(count) + log1p(others / count): at MP_DPS digits log(1 + 1e-87) would be 0, not 1e-87.
    H = mp.log(count) + mp.log1p(others / count) + G
    grad = np.array([float(t / total * (g - G)) if t != 0 else 0.0 for t, g in zip(terms, gaps)])
    scale = np.array([float(t / total * (g + G)) if t != 0 else 0.0 for t, g in zip(terms, gaps)])
    return float(H), grad, scale


def _rows(X, exact):
    R, n = X.shape
    H = np.full(R, np.nan)
    grad = np.full((R, n), np.nan)
    grad_scale = np.zeros((R, n))
    regular = ~_special_rows(X)
    if not exact:
        h, g, s = _rows_float64(X[regular])
        H[regular], grad[regular], grad_scale[regular] = h, g, s
        return H, grad, grad_scale
    mp = load_mpmath()
    with mp.workdps(MP_DPS):
        for r in np.flatnonzero(regular):
            H[r], grad[r], grad_scale[r] = _row_mpmath(mp, X[r])
    return H, grad, grad_scale


def entropy(x, axis=-1, *, method=None):
    """The exact entropy of softmax(x) over ``axis`` and its gradient (:class:`EntropyExact`), for the
    result dtype logitloss gives (float64 for integers and bool)."""
    x = np.asarray(x)
    dtype = result_dtype(x)
    exact = uses_mpmath(dtype, method)
    x64 = np.atleast_1d(x.astype(np.float64))

    def compute():
        layout = rows_of(x64.shape, axis)
        H, grad, grad_scale = _rows(layout.to_rows(x64), exact)
        return (layout.to_reduced(H, False), np.abs(layout.to_reduced(H, False)),
                layout.to_elements(grad).reshape(x.shape), layout.to_elements(grad_scale).reshape(x.shape))

    return EntropyExact(*cached(content_key("entropy", x64, axis, exact), compute))
