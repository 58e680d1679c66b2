"""cross_entropy over Dask arrays, vocabulary-parallel (torch.nn.functional.cross_entropy's
semantics, as logitloss.cross_entropy).

Forward: one task per input chunk takes its rows' statistics with the kernels' fused pass (max,
count, others; smoothing's and probability targets' gap and mass) and the target logit where the
target falls in the chunk; a tree reduction over the class chunks merges them (_statistics.fold);
per row the loss is then formed exactly as the in-memory driver forms it (position_loss in
csrc/drivers/cross_entropy.cpp), in double. Each input chunk is read once.

Gradient (return_grad=True): a second blockwise pass, chunked like the input: per chunk
logsumexp_backward writes scale * exp(x - lse) with the kernels, the smoothing / probability terms
are subtracted, and the target lane is set from the merged statistics without cancellation.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

import logitloss

from ._arrays import as_dask, like_input
from ._softmax_family import scaled_softmax
from ._statistics import STATISTICS, block_statistics, compute_dtype, log_total, regular, rows_last
from ._statistics import merge_chunks

# Per-row quantities the gradient pass needs, from the merged statistics and the reduction.
_ROW_GRADIENT = np.dtype(
    [("max", "f8"), ("log_total", "f8"), ("scale", "f8"), ("bias", "f8"), ("lane", "f8"), ("target", "f8"), ("state", "f8")]
)
_REGULAR, _IGNORED, _NAN = 0.0, 1.0, 2.0


class _Options:
    """The call's options, resolved once (passed to every task: plain data, no state)."""

    def __init__(self, classes: int, ignore_index: int, smoothing: float, probability: bool, dtype: np.dtype):
        self.classes = classes
        self.ignore_index = ignore_index
        self.smoothing = smoothing
        self.probability = probability
        self.dtype = dtype
        self.compute = compute_dtype(dtype)
        # The target terms as the in-memory driver builds them (rounded to the compute dtype).
        self.target_scale = float(self.compute.type(1.0 - smoothing)) if probability else 0.0
        self.target_offset = float(self.compute.type(smoothing / classes)) if smoothing > 0 else 0.0

    def has_terms(self) -> bool:
        return self.target_scale != 0 or self.target_offset != 0


def _class_offset(block_info: dict) -> int:
    return int(block_info[0]["array-location"][1][0])


def _index_targets(target_block: np.ndarray, options: _Options) -> np.ndarray:
    """The block's class indices as int64, checked: an index that is neither ignore_index nor in
    [0, C) raises IndexError (it would fall in no chunk)."""
    if target_block.dtype == np.uint64 and (target_block > np.iinfo(np.int64).max).any():
        bad = target_block[target_block > np.iinfo(np.int64).max].flat[0]
        raise IndexError(f"Target {bad} is out of bounds.")
    t = target_block.astype(np.int64, copy=False).reshape(-1)
    bad = (t != options.ignore_index) & ((t < 0) | (t >= options.classes))
    if bad.any():
        raise IndexError(f"Target {t[bad][0]} is out of bounds.")
    return t


def _chunk_statistics(x_block, target_block, weight_block, options: _Options, block_info=None) -> np.ndarray:
    rows = rows_last(x_block, (1,), options.compute)
    weight = None if weight_block is None else np.ascontiguousarray(weight_block.reshape(-1), options.compute)
    probabilities = rows_last(target_block, (1,), options.compute) if options.probability else None
    stats = block_statistics(
        rows, probabilities, weight if options.has_terms() else None, options.target_scale, options.target_offset
    )
    if not options.probability:
        t = _index_targets(target_block, options)
        local = t - _class_offset(block_info)
        inside = (t != options.ignore_index) & (local >= 0) & (local < rows.shape[1])
        stats["found"] = inside
        stats["target"][inside] = rows[np.nonzero(inside)[0], local[inside]]
    shape = list(x_block.shape)
    shape[1] = 1
    return stats.reshape([shape[0]] + shape[2:]).reshape(shape)


def _row_losses(stats, target_block, weight, options: _Options) -> np.ndarray:
    """Per-row loss in double (position_loss), nan for rows with a nan, +inf or no finite logit."""
    gap, mass = stats["gap"], stats["mass"]
    ok = regular(stats)
    with np.errstate(invalid="ignore", over="ignore"):
        L = np.where(ok, log_total(stats), np.nan)
        loss = gap + mass * L
        if not options.probability:
            t = target_block.astype(np.int64, copy=False)
            ignored = t == options.ignore_index
            if ((stats["found"] == 0) & ~ignored).any():  # every kept target lies in exactly one chunk
                raise IndexError(f"Target {t[(stats['found'] == 0) & ~ignored].flat[0]} is out of bounds.")
            w_y = np.ones(t.shape) if weight is None else weight.astype(np.float64)[np.where(ignored, 0, t)]
            loss = loss + (1.0 - options.smoothing) * w_y * ((stats["max"] - stats["target"]) + L)
        loss = np.where(ok, np.where(loss == 0, -0.0, loss), np.nan)
        if not options.probability:
            loss = np.where(ignored, np.nan if options.classes == 0 and options.smoothing > 0 else 0.0, loss)
    return loss


def _denominator(target_block, weight, options: _Options) -> np.ndarray:
    """A row block's part of the mean's denominator: sum of weight[target] over kept rows."""
    t = target_block.astype(np.int64, copy=False).reshape(-1)
    kept = t[t != options.ignore_index]
    total = float(kept.size) if weight is None else float(weight.astype(np.float64)[kept].sum())
    return np.full((1,) * target_block.ndim, total)


def _row_gradient(stats, target_block, weight, g_common, options: _Options) -> np.ndarray:
    """Per row: lse, the factor of softmax, the factor of the target terms, and the target lane's
    value g ((1 - e) w_y (p_y - 1) + p_y mass - v_y), p_y - 1 without cancellation
    (target_lane_gradient in csrc/drivers/cross_entropy.cpp)."""
    out = np.zeros(stats.shape, _ROW_GRADIENT)
    g = float(g_common)
    ok = regular(stats)
    with np.errstate(all="ignore"):
        out["max"] = stats["max"]
        out["log_total"] = log_total(stats)
        out["bias"] = g
        mass = stats["mass"]
        out["state"] = np.where(ok, _REGULAR, _NAN)
        if options.probability:
            out["scale"] = g * mass
            return out
        t = target_block.astype(np.int64, copy=False)
        ignored = t == options.ignore_index
        safe = np.where(ignored, 0, t)
        w_y = np.ones(t.shape) if weight is None else weight.astype(np.float64)[safe]
        nll = (1.0 - options.smoothing) * w_y
        out["scale"] = g * (nll + mass)
        total = stats["count"] + stats["others"]
        z_y, m = stats["target"], stats["max"]
        p_y = np.exp(z_y - m) / total
        p_y_minus_1 = np.where(z_y == m, -(stats["count"] - 1.0 + stats["others"]) / total, p_y - 1.0)
        v_y = w_y * options.target_offset
        out["lane"] = g * (nll * p_y_minus_1 + p_y * mass - v_y)
        out["target"] = safe
        out["state"] = np.where(ignored, _IGNORED, out["state"])
    return out


def _gradient_chunk(x_block, row_block, target_block, weight_block, options: _Options, block_info=None) -> np.ndarray:
    compute = options.compute
    rows = rows_last(x_block, (1,), compute)
    r = row_block.reshape(-1)
    grad = scaled_softmax(rows, r["scale"], r["max"], r["log_total"])
    with np.errstate(all="ignore"):
        if options.has_terms():
            # g * v_c, v_c = w_c (scale y_c + offset), in the compute dtype as the kernel forms it;
            # in double where g is beyond 2^+-64 (a mean over extreme weights: the in-memory driver
            # rescales the weights by a power of two there, which this product in double matches).
            bias = r["bias"]
            wide = not np.all((bias == 0) | ((np.abs(bias) < 2.0**64) & (np.abs(bias) > 2.0**-64)))
            dtype = np.dtype(np.float64) if wide else compute
            terms = np.full(rows.shape, float(compute.type(options.target_offset)), dtype)
            if options.probability:
                terms = dtype.type(compute.type(options.target_scale)) * rows_last(target_block, (1,), dtype) + terms
            if weight_block is not None:
                terms = terms * weight_block.reshape(1, -1).astype(compute).astype(dtype)
            grad -= (bias.astype(dtype)[:, None] * terms).astype(compute)
    if not options.probability:
        local = r["target"].astype(np.int64) - _class_offset(block_info)
        inside = (r["state"] == _REGULAR) & (local >= 0) & (local < rows.shape[1])
        grad[np.nonzero(inside)[0], local[inside]] = r["lane"][inside]
    grad[r["state"] == _NAN] = np.nan
    grad[r["state"] == _IGNORED] = 0
    shape = [x_block.shape[0]] + list(x_block.shape[2:]) + [x_block.shape[1]]
    return np.moveaxis(grad.reshape(shape), -1, 1).astype(options.dtype, copy=False)


def cross_entropy(
    input: Any,
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    return_grad: bool = False,
) -> Any:
    """``logitloss.cross_entropy`` over Dask arrays, lazily; the class axis may be chunked.

    Parameters are those of :func:`logitloss.cross_entropy` (no ``grad_out``). `input` is a Dask
    array of shape ``(N, C, d1, ..., dk)`` or ``(C,)``; a NumPy array is wrapped as one chunk. A
    Dask `target` must be chunked like the input's non-class axes (probability targets: like the
    input), a Dask `weight` like its class axis; NumPy ones are chunked to match. An
    index target outside ``[0, C)`` (other than `ignore_index`) raises IndexError when computed.

    Returns
    -------
    loss : dask.array.Array
        0-d for 'mean' and 'sum', ``(N, d1, ..., dk)`` for 'none'; the input's dtype.
    grad : dask.array.Array
        With `return_grad`: d loss / d input (for 'none': of ``loss.sum()``), chunked like the input.
    """
    x = as_dask(input, "input")
    if x.ndim == 1:  # (C,) with a 0-d target: one row
        squeeze = True
        x = x[None, :]
        target = as_dask(target, "target")
        target = target[None] if target.ndim == 0 else target[None, :]
    else:
        squeeze = False
    if x.ndim == 0:
        raise ValueError("`input` must have at least one dimension")
    probability = np.shape(target) == x.shape
    batch_axes = tuple(range(x.ndim)) if probability else (0,) + tuple(range(2, x.ndim))
    target = like_input(target, "target", x, batch_axes)
    weight = None if weight is None else like_input(weight, "weight", x, (1,))
    # The in-memory function checks dtypes, shapes and options on an empty batch of the same layout.
    empty_shape = (0,) + x.shape[1:]
    logitloss.cross_entropy(
        np.zeros(empty_shape, x.dtype),
        np.zeros((0,) + target.shape[1:], target.dtype),
        None if weight is None else np.zeros(weight.shape, weight.dtype),
        ignore_index,
        reduction,
        label_smoothing,
    )
    classes = x.shape[1]
    options = _Options(classes, int(ignore_index), float(label_smoothing), probability, x.dtype)
    if x.size == 0:
        return _empty(x, target, weight, ignore_index, reduction, label_smoothing, return_grad, squeeze)

    # Broadcast views for the blockwise calls: a target row per (row, 1, d...) and the weight along
    # the class axis.
    index_t = None if probability else target[:, None]
    weight_b = None if weight is None else weight.reshape((1, classes) + (1,) * (x.ndim - 2))
    stat_chunks = (x.chunks[0], (1,) * len(x.chunks[1])) + x.chunks[2:]
    per_chunk = da.map_blocks(
        _chunk_statistics, x, target if probability else index_t, weight_b, options, chunks=stat_chunks, dtype=STATISTICS
    )
    merged = merge_chunks(per_chunk, 1, False, "logitloss-cross-entropy-statistics")
    batch = "".join(chr(ord("a") + i) for i in range(merged.ndim))
    row_target = target[:, 0] if probability else target  # only its block structure is used then
    weight_full = None if weight is None else weight.rechunk(-1)
    weight_args = () if weight is None else (weight_full, "z")
    with_weight = weight is not None

    def _losses(stats, target_block, *w):
        return _row_losses(stats, target_block, w[0] if with_weight else None, options)

    losses = da.blockwise(_losses, batch, merged, batch, row_target, batch, *weight_args, dtype=np.float64, concatenate=True)
    loss, g_common = _reduce(losses, target, weight_args, batch, reduction, options, x.shape)
    if squeeze and reduction == "none":
        loss = loss.reshape(())
    if not return_grad:
        return loss

    def _rows(stats, target_block, g, *w):
        return _row_gradient(stats, target_block, w[0] if with_weight else None, g, options)

    g_array = g_common if isinstance(g_common, da.Array) else da.from_array(np.float64(g_common))
    row_info = da.blockwise(
        _rows, batch, merged, batch, row_target, batch, g_array, "", *weight_args, dtype=_ROW_GRADIENT, concatenate=True
    )
    row_info = row_info[:, None]
    grad = da.map_blocks(
        _gradient_chunk, x, row_info, target if probability else None, weight_b, options, dtype=x.dtype
    )
    if squeeze:
        grad = grad[0]
    return loss, grad


def _reduce(losses, target, weight_args, batch, reduction, options: _Options, shape) -> tuple[Any, Any]:
    """The loss in the input's dtype from the per-row losses (double), and the factor g every row's
    gradient carries (1, or 1 / the mean's denominator: torch's, a sum of weight[target])."""
    dtype = options.dtype
    if reduction == "none":
        return losses.astype(options.compute).astype(dtype), 1.0
    total = losses.sum(dtype=np.float64)
    total = da.where(total == 0, -0.0 if options.probability else 0.0, total)
    if reduction == "sum":
        return total.astype(options.compute).astype(dtype), 1.0
    if options.probability:
        denominator = da.from_array(np.float64(np.prod(shape) / options.classes))
    else:
        with_weight = bool(weight_args)

        def _part(target_block, *w):
            return _denominator(target_block, w[0] if with_weight else None, options)

        denominator = da.blockwise(
            _part, batch, target, batch, *weight_args, dtype=np.float64, concatenate=True,
            adjust_chunks={c: 1 for c in batch},
        ).sum()
    return (total / denominator).astype(options.compute).astype(dtype), 1.0 / denominator


def _empty(x, target, weight, ignore_index, reduction, label_smoothing, return_grad, squeeze):
    """No elements: the in-memory function on the (tiny) targets, for its edge rules."""
    import dask

    def call(t, w):
        shape = x.shape[1:] if squeeze else x.shape
        return logitloss.cross_entropy(
            np.zeros(shape, x.dtype), t[0] if squeeze else t, w, ignore_index, reduction, label_smoothing
        )

    result = dask.delayed(call)(target, weight)
    shape = () if reduction != "none" else (() if squeeze else (x.shape[0],) + x.shape[2:])
    loss = da.from_delayed(result, shape, dtype=x.dtype)
    if not return_grad:
        return loss
    return loss, da.zeros(x.shape[1:] if squeeze else x.shape, x.dtype, chunks=x.chunks[1:] if squeeze else x.chunks)
