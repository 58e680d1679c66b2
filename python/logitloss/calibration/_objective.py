"""The temperature-scaling objective and its first two derivatives in s = 1/T, from the public kernels.

For logits z (N, C), labels y and s = 1/T, with p = softmax(s z) per row,

    NLL(s)    = mean( lse(s z) - s z_y )
    NLL'(s)   = mean( E_p[z] - z_y )
    NLL''(s)  = mean( Var_p[z] )            (>= 0: NLL is convex in s)

One fused pass per row computes all three (``_core._temperature_terms``, csrc/drivers/temperature_terms.h):
the softmax moments of the row about its max (kernels/softmax_moments-inl.h), from which

- the NLL is ``s (max - z_y) + log(total)``, with ``log(total)`` as ``log(count) + log1p(others / count)``,
  so a confident correct row keeps its tiny loss instead of losing it in ``lse(s z) - s z_y``;
- ``E_p[z] - z_y = (max - z_y) + E_p[z - max]``, with no ``z_y`` to cancel when the label is the max;
- ``Var_p[z]`` from sums of non-negative terms about the max (its cancellation is bounded by the number of
  classes, far below what a Newton step needs).

float16 logits are widened to float32 chunk by chunk (about CHUNK_ELEMENTS elements, so the extra memory
stays bounded); float32 and float64 C-contiguous logits are read in place. Binary logits x (N,) with 0/1
labels use the sigmoid: NLL = mean BCE(s x, y), NLL' = mean (sigma(s x) - y) x, NLL'' = mean sigma(1 - sigma) x^2.
"""

from __future__ import annotations

import numpy as np

from .. import _binary_cross_entropy, _core
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
    elif logits.dtype in (np.float32, np.float64) and logits.flags.c_contiguous:
        rows = _multiclass_rows
        chunks = [slice(None)]  # read in place: the kernel's memory is the (N, 3) result
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
    """Per-row NLL, E_p[z] - z_y and Var_p[z] (see the module docstring), float64."""
    if z.dtype not in (np.float32, np.float64):
        z = z.astype(np.float32)  # float16: exact in float32
    terms = _core._temperature_terms(np.ascontiguousarray(z), np.ascontiguousarray(y, dtype=np.int64), s)
    return terms[:, 0], terms[:, 1], terms[:, 2]


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
