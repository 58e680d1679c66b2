"""binary_cross_entropy_with_logits over Dask arrays (torch's semantics, as
logitloss.binary_cross_entropy_with_logits).

Elementwise: each chunk's losses come from the in-memory kernel; 'sum' and 'mean' add the
per-element losses as computed (as the in-memory call does) in double, per chunk and then over
chunks. The gradient is a blockwise pass of the in-memory backward function, chunked like the
input.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

import logitloss

from ._arrays import as_dask, like_input

# The in-memory sum is also kept scaled by 2^-128, which stays finite where the plain sum of
# float64 losses overflows although their mean does not (kLossSumScaleExponent).
_SUM_SCALE = 2.0**-128


def _broadcast(value: Any, name: str, x: da.Array) -> da.Array | None:
    """weight / pos_weight: broadcast to the input's shape by NumPy rules (never enlarging it),
    chunked like the input."""
    if value is None:
        return None
    array = value if isinstance(value, da.Array) else np.asarray(value)
    try:
        fits = np.broadcast_shapes(array.shape, x.shape) == x.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"`{name}` of shape {array.shape} does not broadcast to the input's shape {x.shape}")
    # Chunked as the input along the axes it varies on, one chunk of 1 along the broadcast ones.
    leading = x.ndim - array.ndim
    chunks = tuple((1,) if n == 1 else x.chunks[leading + axis] for axis, n in enumerate(array.shape))
    array = array.rechunk(chunks) if isinstance(array, da.Array) else da.from_array(array, chunks=chunks)
    return da.broadcast_to(array, x.shape, chunks=x.chunks)


def _chunk_sums(x, t, w, pw) -> np.ndarray:
    loss = np.asarray(logitloss.binary_cross_entropy_with_logits(x, t, w, "none", pw))
    plain = loss.sum(dtype=np.float64)
    scaled = (loss.astype(np.float64) * _SUM_SCALE).sum() if not np.isfinite(plain) else plain * _SUM_SCALE
    return np.array([plain, scaled]).reshape((1,) * x.ndim + (2,))


def binary_cross_entropy_with_logits(
    input: Any,
    target: Any,
    weight: Any = None,
    reduction: str = "mean",
    pos_weight: Any = None,
    *,
    return_grad: bool = False,
) -> Any:
    """``logitloss.binary_cross_entropy_with_logits`` over Dask arrays, lazily.

    Parameters are those of the in-memory function (no ``grad_out``). A Dask `target` must be
    chunked like the input; `weight` and `pos_weight` broadcast to the input's shape and are
    chunked like it; NumPy arguments are wrapped.

    Returns
    -------
    loss : dask.array.Array
        0-d for 'mean' and 'sum', the input's shape for 'none'.
    grad : dask.array.Array
        With `return_grad`: d loss / d input (for 'none': of ``loss.sum()``), chunked like the input.
    """
    x = as_dask(input, "input")
    t = like_input(target, "target", x, tuple(range(x.ndim)))
    if t.shape != x.shape:
        raise ValueError(f"`target` of shape {t.shape} must have the input's shape {x.shape}")
    # Dtypes and the reduction checked by the in-memory function on one element of each.
    scalar = logitloss.binary_cross_entropy_with_logits(
        np.zeros(1, x.dtype),
        np.zeros(1, t.dtype),
        None if weight is None else np.zeros(1, np.asarray(weight).dtype if not isinstance(weight, da.Array) else weight.dtype),
        reduction,
        None if pos_weight is None else np.zeros(1, pos_weight.dtype if isinstance(pos_weight, da.Array) else np.asarray(pos_weight).dtype),
    )
    dtype = np.asarray(scalar).dtype
    w = _broadcast(weight, "weight", x)
    pw = _broadcast(pos_weight, "pos_weight", x)
    numel = int(np.prod(x.shape))
    if reduction == "none":
        loss = da.map_blocks(
            lambda a, b, c, d: logitloss.binary_cross_entropy_with_logits(a, b, c, "none", d), x, t, w, pw, dtype=dtype
        )
    else:
        sums = da.map_blocks(
            _chunk_sums, x, t, w, pw, new_axis=x.ndim, chunks=tuple((1,) * len(c) for c in x.chunks) + ((2,),), dtype=np.float64
        ).sum(axis=tuple(range(x.ndim)))
        plain, scaled = sums[0], sums[1]
        if reduction == "sum":
            total = plain
        else:
            total = da.where(da.isfinite(plain) | da.isnan(plain), plain / numel, scaled / numel / _SUM_SCALE)
        compute = np.float32 if dtype.itemsize <= 4 else np.float64
        loss = total.astype(compute).astype(dtype)
    if not return_grad:
        return loss
    scale = 1.0 / numel if reduction == "mean" else 1.0
    grad = da.map_blocks(
        lambda a, b, c, d: logitloss.binary_cross_entropy_with_logits_backward(scale, a, b, c, "sum", d),
        x, t, w, pw, dtype=dtype,
    )
    return loss, grad
