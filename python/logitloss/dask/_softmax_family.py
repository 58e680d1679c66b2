"""logsumexp, softmax and log_softmax over Dask arrays (scipy.special's semantics).

One statistics task per input chunk (each chunk read once), a tree of merges over the chunks of
the reduced axes (dask.array.reduction), and for softmax / log_softmax a second blockwise pass
that writes each output chunk from its input chunk and its rows' merged statistics.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

import logitloss

from .._bfloat16 import is_bfloat16
from ._arrays import as_dask, floating_result_dtype, reduced_axes
from ._statistics import STATISTICS, block_statistics, compute_dtype, log_total, merge_chunks, regular, rows_last


def _kept_shape(shape: tuple[int, ...], reduced: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if axis in reduced else n for axis, n in enumerate(shape))


def _plain_statistics(block: np.ndarray, reduced: tuple[int, ...]) -> np.ndarray:
    floating = block.dtype.kind == "f" or is_bfloat16(block.dtype)
    rows = rows_last(block, reduced, compute_dtype(block.dtype) if floating else np.float64)
    return block_statistics(rows).reshape(_kept_shape(block.shape, reduced))


def _weighted_statistics(block: np.ndarray, weights: np.ndarray, reduced: tuple[int, ...]) -> np.ndarray:
    """A weighted chunk's value and sign from the in-memory logsumexp (its rules for b == 0,
    negative and extreme weights), held as statistics: max = value, count = sign."""
    # In float64 whatever the dtype: each chunk's value is rounded once more than the in-memory
    # result, so it is taken as precisely as the kernels can.
    value, sign = logitloss.logsumexp(
        block.astype(np.float64, copy=False), axis=reduced, b=weights.astype(np.float64, copy=False), keepdims=True,
        return_sign=True,
    )
    value = np.asarray(value, np.float64)
    sign = np.asarray(sign, np.float64)
    out = np.zeros(value.shape, STATISTICS)
    out["max"] = np.where(np.isnan(value), -np.inf, value)
    out["count"] = np.where(value == -np.inf, 0.0, sign)
    out["others"] = np.where(np.isnan(value), np.nan, 0.0)
    return out


def merged_statistics(x: da.Array, reduced: tuple[int, ...], b: da.Array | None) -> da.Array:
    """Per-row statistics over `reduced` (kept as length-1 axes), merged by a tree reduction."""
    chunks = tuple(tuple(1 for _ in c) if axis in reduced else c for axis, c in enumerate(x.chunks))
    if b is None:
        per_chunk = x.map_blocks(_plain_statistics, reduced, chunks=chunks, dtype=STATISTICS)
    else:
        per_chunk = da.map_blocks(_weighted_statistics, x, b, reduced, chunks=chunks, dtype=STATISTICS)
    return merge_chunks(per_chunk, reduced, True, "logitloss-statistics")


def logsumexp_value(stats: np.ndarray, return_sign: bool) -> tuple[np.ndarray, np.ndarray]:
    """SciPy's logsumexp from merged statistics (finalize_logsumexp in csrc/drivers/logsumexp_rules.h)."""
    m, count, others = stats["max"], stats["count"], stats["others"]
    value = np.full(m.shape, np.nan)
    sign = np.full(m.shape, np.nan)
    with np.errstate(all="ignore"):
        known = ~(np.isnan(others) | np.isnan(count))
        masked = known & (m == -np.inf)
        value[masked], sign[masked] = -np.inf, 0.0
        infinite = known & (m == np.inf)
        sign[infinite] = np.where(count > 0, 1.0, np.where(count < 0, -1.0, np.nan))[infinite]
        value[infinite] = np.where(np.isnan(sign), np.nan, np.inf)[infinite]
        finite = known & np.isfinite(m)
        common = finite & (count > 0) & (others >= 0)
        value[common] = (m + np.where(count == 1, 0.0, np.log(count)) + np.where(others == 0, 0.0, np.log1p(others / count)))[common]
        sign[common] = 1.0
        signed = finite & ~common
        r = np.where(others == 0, 0.0, others / count)
        t = r + 1
        signed_sign = np.sign(t) * np.sign(count)
        r = np.where(r < -1, -r - 2, r)
        signed_value = np.log1p(r) + np.log(np.abs(count)) + m
        total = count + others
        fallback = ~np.isfinite(signed_value)
        signed_value = np.where(fallback, np.log(np.abs(total)) + m, signed_value)
        signed_sign = np.where(fallback, np.sign(total), signed_sign)
        value[signed], sign[signed] = signed_value[signed], signed_sign[signed]
    if not return_sign:
        value = np.where(sign < 0, np.nan, value)
    return value, sign


def _empty_result(function: Any, *arrays: da.Array, **kwargs: Any) -> Any:
    """A call on an array with no elements: the in-memory function's result (there is no data to
    distribute), as Dask arrays."""
    result = function(*[np.zeros(a.shape, a.dtype) if a is not None else None for a in arrays], **kwargs)
    if isinstance(result, tuple):
        return tuple(da.from_array(np.asarray(r)) for r in result)
    return da.from_array(np.asarray(result))


def logsumexp(
    a: Any, axis: int | tuple[int, ...] | None = None, b: Any = None, keepdims: bool = False, return_sign: bool = False
) -> Any:
    """``logitloss.logsumexp`` over a Dask array: ``log(sum(b * exp(a)))`` over `axis`, lazily.

    `a` may be chunked along the reduced axes (the merged statistics equal the in-memory call's up
    to the order of double additions). With `b`, each chunk's weighted value and sign come from
    the in-memory function in float64 and are merged in float64 (each chunk's value rounded to
    float64 once more than the in-memory result: README, "Scaling out with Dask"). NumPy arrays are wrapped as one chunk;
    `b` is broadcast with `a` and chunked like it.

    Returns a Dask array (0-d for a full reduction), or ``(value, sign)`` with `return_sign`.
    """
    a = as_dask(a, "a")
    b = None if b is None else as_dask(b, "b")
    dtype = floating_result_dtype(a.dtype, *(() if b is None else (b.dtype,)))
    if b is not None:
        try:
            a, b = da.broadcast_arrays(a, b)
        except ValueError as error:
            raise ValueError(f"`b` of shape {b.shape} does not broadcast with `a` of shape {a.shape}") from error
    if a.ndim == 0:  # SciPy promotes 0-d input to 1-d
        a = a.reshape(1)
        b = None if b is None else b.reshape(1)
    reduced = reduced_axes(axis, a.ndim)
    if a.size == 0:
        return _empty_result(logitloss.logsumexp, a, b, axis=reduced, keepdims=keepdims, return_sign=return_sign)
    merged = merged_statistics(a, reduced, b)
    if not keepdims:
        merged = merged.squeeze(axis=reduced)
    value = merged.map_blocks(lambda s: logsumexp_value(s, return_sign)[0].astype(compute_dtype(dtype)).astype(dtype), dtype=dtype)
    if not return_sign:
        return value
    return value, merged.map_blocks(lambda s: logsumexp_value(s, True)[1].astype(dtype), dtype=dtype)


def scaled_softmax(rows: np.ndarray, scale: np.ndarray, maximum: np.ndarray, total: np.ndarray) -> np.ndarray:
    """scale * exp(x - lse) per row of a (rows, classes) block by the kernels (logsumexp_backward),
    lse = maximum + total. The kernels take lse in the block's dtype, rounded; its rounding error
    is folded into the factor: exp(x - fl(lse)) * exp((fl(lse) - maximum) - total), the difference
    exact in double (so rows near +-3e38, where maximum + total rounds to maximum, stay right)."""
    with np.errstate(all="ignore"):
        rounded = (maximum + total).astype(rows.dtype)
        factor = (scale * np.exp((rounded.astype(np.float64) - maximum) - total)).astype(rows.dtype)
        return logitloss.logsumexp_backward(factor, rows, axis=-1, result=rounded)


def _normalized_block(block: np.ndarray, stats: np.ndarray, reduced: tuple[int, ...], dtype: np.dtype, log: bool) -> np.ndarray:
    """softmax (log False) or log_softmax of one chunk from its rows' merged statistics."""
    compute = compute_dtype(dtype)
    rows = rows_last(block, reduced, compute)
    s = stats.reshape(-1)
    ok = regular(s)
    maximum = np.where(ok, s["max"], 0.0)
    total = np.where(ok, log_total(s), 0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        if log:
            # (x - max) - log_total: both terms <= 0, no cancellation (the row kernel's formula).
            out = (rows - maximum.astype(compute)[:, None]) - total.astype(compute)[:, None]
            # Edge rows: a nan anywhere, or no finite max: x - max (inf - inf = nan, as SciPy).
            edge = ~ok
            if edge.any():
                edge_rows = rows[edge] - np.where(s["max"][edge] == -np.inf, np.nan, s["max"][edge]).astype(compute)[:, None]
                edge_rows[np.isnan(s["others"][edge])] = np.nan
                out[edge] = edge_rows
        else:
            out = scaled_softmax(rows, np.ones(len(s)), maximum, total)
            out[~ok] = np.nan
    kept = [axis for axis in range(block.ndim) if axis not in reduced]
    order = kept + list(reduced)
    with np.errstate(over="ignore"):  # float16 results: beyond its range is +-inf, as in memory
        shaped = out.reshape([block.shape[axis] for axis in order]).astype(dtype, copy=False)
    return np.transpose(shaped, np.argsort(order))


def _normalized(x: Any, axis: Any, log: bool) -> da.Array:
    x = as_dask(x, "x")
    dtype = floating_result_dtype(x.dtype)
    if x.ndim == 0:
        x = x.reshape(1)
        squeeze = True
    else:
        squeeze = False
    reduced = reduced_axes(axis, x.ndim)
    if not reduced:
        raise ValueError("`axis` must name at least one axis")
    if x.size == 0:
        result = _empty_result(logitloss.log_softmax if log else logitloss.softmax, x, axis=reduced)
    else:
        merged = merged_statistics(x, reduced, None)
        result = da.map_blocks(_normalized_block, x, merged, reduced, dtype, log, dtype=dtype)
    return result.reshape(()) if squeeze else result


def softmax(x: Any, axis: int | tuple[int, ...] | None = None) -> da.Array:
    """``logitloss.softmax`` over a Dask array, lazily: ``exp(x - logsumexp(x))`` along `axis`.

    The reduced axes may be chunked; each output chunk is written from its input chunk by the
    kernels (logsumexp_backward) against its rows' merged logsumexp. An all ``-inf`` slice gives
    nan, any ``+inf`` an all-nan slice (SciPy). Returns a Dask array chunked like `x`.
    """
    return _normalized(x, axis, log=False)


def log_softmax(x: Any, axis: int | tuple[int, ...] | None = None) -> da.Array:
    """``logitloss.log_softmax`` over a Dask array, lazily: ``(x - max) - log(sum(exp(x - max)))``
    along `axis`, the kernels' formula (no cancellation; ``[0, -40]`` gives -4.25e-18).

    Returns a Dask array chunked like `x`.
    """
    return _normalized(x, axis, log=True)
