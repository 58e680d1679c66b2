"""The temperature-scaling objective and its first two derivatives in s = 1/T, from the public kernels.

For logits z (N, C), labels y and s = 1/T, with p = softmax(s z) per row,

    NLL(s)    = mean( lse(s z) - s z_y )
    NLL'(s)   = mean( E_p[z] - z_y )
    NLL''(s)  = mean( Var_p[z] )            (>= 0: NLL is convex in s)

Every row is first centred on its label's logit, d = z - z_y (in float64, d_y = 0), which changes
none of the three (softmax is shift-invariant) but makes each accurate:

- ``lse(s d)`` *is* the row's NLL, and the kernel computes it as ``max + log1p(...)``, so a confident
  correct row keeps its tiny loss instead of losing it in ``lse(s z) - s z_y``;
- ``E_p[d] = sum_j p_j d_j`` has no ``z_y`` to cancel against (the j = y term is exactly 0);
- the variance is summed centred, ``sum_j p_j (d_j - E_p[d])^2``, a sum of non-negative terms, not
  ``E[d^2] - E[d]^2``, which cancels catastrophically when p is concentrated.

p comes from the same kernel call as lse (``logsumexp(..., return_grad=True)``). Rows are processed in
chunks of about CHUNK_ELEMENTS float64 scratch elements, so the extra memory is bounded (no float64 copy
of the whole input) and the scratch stays in cache. Binary logits x (N,) with 0/1 labels use the
sigmoid: NLL = mean BCE(s x, y), NLL' = mean (sigma(s x) - y) x, NLL'' = mean sigma(1 - sigma) x^2.

A fused kernel returning the three sums in one pass can replace `temperature_objective` without
changing its callers.
"""

from __future__ import annotations

import numpy as np

from .. import _binary_cross_entropy, _softmax_family
from ._inputs import row_chunks


def temperature_objective(logits, labels, inverse_temperature, weight=None):
    """``(nll, first, second)``: the (weighted) mean NLL of ``softmax(s * logits)`` and its first and
    second derivatives in ``s = inverse_temperature``, as float64. `logits` (N, C) with integer `labels`
    (N,), or binary (N,) with 0/1 labels; `weight` None or float64 (N,) per-sample weights. Non-finite
    logits give a non-finite triple (the caller reports them)."""
    s = float(inverse_temperature)
    if logits.ndim == 1:
        rows = _binary_rows
        chunks = row_chunks(logits.shape[0], 1)
    else:
        rows = _multiclass_rows
        chunks = row_chunks(*logits.shape)
    totals = np.zeros(3)
    for chunk in chunks:
        # inf - inf in a row with infinite logits: nan, which the caller turns into an error.
        with np.errstate(invalid="ignore", over="ignore"):
            nll, first, second = rows(logits[chunk], labels[chunk], s)
        if weight is None:
            totals += (nll.sum(), first.sum(), second.sum())
        else:
            w = weight[chunk]
            totals += (w @ nll, w @ first, w @ second)
    denominator = logits.shape[0] if weight is None else weight.sum()
    nll, first, second = totals / denominator
    return float(nll), float(first), float(second)


def _multiclass_rows(z, y, s):
    """Per-row NLL, E_p[z] - z_y and Var_p[z] of one chunk, float64 (see the module docstring)."""
    z_label = np.take_along_axis(z, y[:, None], axis=1)
    d = np.subtract(z, z_label, dtype=np.float64)
    nll, p = _softmax_family.logsumexp(d * s, axis=1, return_grad=True)
    mean = np.einsum("ij,ij->i", p, d)
    d -= mean[:, None]
    d *= d
    return nll, mean, np.einsum("ij,ij->i", p, d)


def _binary_rows(x, y, s):
    """Per-sample BCE(s x, y), (sigma(s x) - y) x and sigma(1 - sigma) x^2 of one chunk, float64."""
    x = x.astype(np.float64)
    sx = x * s
    nll, residual = _binary_cross_entropy.binary_cross_entropy_with_logits(
        sx, y.astype(np.float64), reduction="none", return_grad=True
    )
    # sigma(1 - sigma) = e^-|t| / (1 + e^-|t|)^2: no 1 - sigma to cancel when sigma is near 1.
    q = np.exp(-np.abs(sx))
    return nll, residual * x, q / (1.0 + q) ** 2 * (x * x)
