"""Per-row softmax statistics of one block, and their exact merge.

A row's statistics (the row kernels' SliceStats, kept in float64 whatever the data type):
  max    largest element (nan ignored),
  count  number of elements equal to max (a sum of signed weights for a weighted logsumexp),
  others sum of exp(x - max) over the other elements (nan if any element is nan),
plus cross-entropy's target terms v_c (smoothing, probability targets):
  gap    sum_c v_c (reference - x_c), reference = max where finite, else 0,
  mass   sum_c v_c,
and the class-index target's logit where it falls in the block (target, found).

Two blocks of one row merge as the kernels merge their own chunks (fold_stats in
csrc/kernels/softmax_family-inl.h): the larger max stays, the other block's count and others are
scaled by exp(its max - max) into the others, and its gap moves to the new reference. Every term
is non-negative for unweighted rows, so the merge adds no cancellation, and log(count) +
log1p(others / count) keeps full relative precision when one term dominates
(logsumexp([0, -40]) = 4.25e-18 whichever chunks hold the two elements).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core

STATISTICS = np.dtype(
    [
        ("max", "f8"),
        ("count", "f8"),
        ("others", "f8"),
        ("gap", "f8"),
        ("mass", "f8"),
        ("target", "f8"),
        ("found", "f8"),
    ]
)


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype the kernels compute in: float32 for float16 and float32, float64 otherwise."""
    return np.dtype(np.float32) if np.dtype(dtype).itemsize <= 4 else np.dtype(np.float64)


def rows_last(block: np.ndarray, reduced: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """The block as a C-contiguous (rows, classes) array of `dtype`, the reduced axes last (in
    order), kept axes first; copies only what is not already laid out so."""
    kept = [axis for axis in range(block.ndim) if axis not in reduced]
    moved = np.transpose(block, kept + list(reduced)) if kept + list(reduced) != list(range(block.ndim)) else block
    classes = int(np.prod([block.shape[axis] for axis in reduced], dtype=np.int64))
    rows = int(np.prod([block.shape[axis] for axis in kept], dtype=np.int64))
    return np.ascontiguousarray(moved, dtype=dtype).reshape(rows, classes)


def block_statistics(
    x: np.ndarray,
    target_probabilities: np.ndarray | None = None,
    weight: np.ndarray | None = None,
    target_scale: float = 0.0,
    target_offset: float = 0.0,
) -> np.ndarray:
    """Statistics of each row of a (rows, classes) float32/float64 block (STATISTICS records).

    The target terms are v_c = weight_c * (target_scale * target_probabilities_c + target_offset),
    formed as cross_entropy's kernel forms them.
    """
    out = np.zeros(x.shape[0], STATISTICS)
    if x.shape[1] == 0:  # an empty block: nothing to count
        out["max"] = -np.inf
        return out
    stats = _core._softmax_statistics(x, target_probabilities, weight, float(target_scale), float(target_offset))
    out["max"], out["count"], out["others"], out["gap"], out["mass"] = stats.T
    # A row of nothing but -inf: the kernel's gap there is relative to -inf. Against any finite
    # reference it is sum_c v_c * inf, with IEEE products (0 * inf = nan, as torch's 0 * -logp).
    masked = out["max"] == -np.inf
    if masked.any() and (target_scale != 0 or target_offset != 0):
        terms = np.full(x.shape, np.float64(target_offset))
        if target_probabilities is not None:
            terms = terms + np.float64(target_scale) * target_probabilities.astype(np.float64)
        if weight is not None:
            terms = terms * weight.astype(np.float64)
        with np.errstate(invalid="ignore"):
            out["gap"][masked] = (terms[masked] * np.inf).sum(axis=1)
    return out


def _reference(maximum: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(maximum), maximum, 0.0)


def fold(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The statistics of rows whose elements are those of `a`'s and `b`'s rows (fold_stats)."""
    out = np.empty(np.broadcast(a, b).shape, STATISTICS)
    m = np.where(b["max"] > a["max"], b["max"], a["max"])
    with np.errstate(invalid="ignore", over="ignore"):

        def rescaled_others(s: np.ndarray) -> np.ndarray:
            return np.where(s["max"] < m, (s["others"] + s["count"]) * np.exp(s["max"] - m), s["others"])

        masked = m == -np.inf
        out["count"] = np.where(
            masked, a["count"] + b["count"], np.where(a["max"] < m, 0.0, a["count"]) + np.where(b["max"] < m, 0.0, b["count"])
        )
        out["others"] = np.where(masked, a["others"] + b["others"], rescaled_others(a) + rescaled_others(b))
        reference = _reference(m)
        out["gap"] = (
            a["gap"]
            + b["gap"]
            + np.where(a["mass"] != 0, a["mass"] * (reference - _reference(a["max"])), 0.0)
            + np.where(b["mass"] != 0, b["mass"] * (reference - _reference(b["max"])), 0.0)
        )
    out["max"] = m
    out["mass"] = a["mass"] + b["mass"]
    out["target"] = np.where(a["found"] != 0, a["target"], b["target"])
    out["found"] = a["found"] + b["found"]
    return out


def fold_axis(stats: np.ndarray, axis: tuple[int, ...] | int, keepdims: bool = True) -> np.ndarray:
    """fold() over `axis` of an array of statistics, in index order (results never depend on how
    the graph was scheduled, only on the chunking)."""
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    axes = tuple(sorted(a % stats.ndim for a in axes))
    kept = [a for a in range(stats.ndim) if a not in axes]
    moved = np.transpose(stats, kept + list(axes))
    flat = moved.reshape(moved.shape[: len(kept)] + (-1,))
    if flat.shape[-1] == 0:
        result = np.zeros(flat.shape[:-1], STATISTICS)
        result["max"] = -np.inf
    else:
        result = flat[..., 0]
        for k in range(1, flat.shape[-1]):
            result = fold(result, flat[..., k])
    if keepdims:
        result = np.expand_dims(result, axes)
    return result


def regular(stats: np.ndarray) -> np.ndarray:
    """Rows the plain formulas apply to: a finite max and no nan (else the edge-case rules)."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(stats["max"]) & ~np.isnan(stats["others"])


def log_total(stats: np.ndarray) -> np.ndarray:
    """log(count + others) of regular rows as log(count) + log1p(others / count): full relative
    precision when the maximal terms dominate (the kernels' log_total)."""
    count = stats["count"]
    others = stats["others"]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count == 1, 0.0, np.log(count)) + np.where(others == 0, 0.0, np.log1p(others / count))


def merge_chunks(per_chunk: Any, axis: tuple[int, ...] | int, keepdims: bool, name: str) -> Any:
    """A tree reduction of per-chunk statistics (a Dask array of STATISTICS, one element per row
    and chunk of `axis`) over `axis`: fold_axis at every level, in index order."""
    import dask.array as da

    return da.reduction(
        per_chunk,
        chunk=lambda s, axis, keepdims: s,
        combine=lambda s, axis, keepdims: fold_axis(s, axis, keepdims),
        aggregate=lambda s, axis, keepdims: fold_axis(s, axis, keepdims),
        axis=axis,
        keepdims=keepdims,
        dtype=STATISTICS,
        concatenate=True,
        name=name,
    )
