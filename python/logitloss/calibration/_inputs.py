"""Checks shared by the calibration functions: logits, labels and sample weights, with messages
that name the argument; the arrays are never modified."""

from __future__ import annotations

import numpy as np

from .._bfloat16 import is_bfloat16

# Rows per chunk are chosen so that a chunk of float64 scratch holds about this many elements
# (256 KiB): the float64 copies stay in cache and their memory stays bounded whatever N is.
CHUNK_ELEMENTS = 1 << 15


def row_chunks(n_rows, n_cols):
    """Slices of rows covering ``range(n_rows)``, each about CHUNK_ELEMENTS elements."""
    step = max(1, CHUNK_ELEMENTS // max(1, n_cols))
    return [slice(start, min(start + step, n_rows)) for start in range(0, n_rows, step)]


def check_logits_labels(logits, labels):
    """Return ``(logits, labels, binary)``: `logits` a floating (N, C) or binary (N,) array, `labels`
    integer (N,) in range (0/1 for binary). Raises ValueError / TypeError / IndexError naming the argument."""
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if is_bfloat16(logits.dtype):
        logits = logits.astype(np.float32)  # exact: bfloat16 is float32's upper half
    if logits.dtype.kind != "f":
        raise TypeError(f"`logits` must be floating (float16/32/64 or bfloat16), got {logits.dtype}")
    if logits.ndim not in (1, 2):
        raise ValueError(f"`logits` must be (N, C) or binary (N,), got shape {logits.shape}")
    if labels.dtype.kind not in "iub":
        raise TypeError(f"`labels` must be integers (class indices, or 0/1 for binary logits), got {labels.dtype}")
    if labels.ndim != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"`labels` must have shape ({logits.shape[0]},) to match `logits` {logits.shape}, got {labels.shape}")
    if logits.shape[0] == 0:
        raise ValueError("`logits` is empty: no samples")
    binary = logits.ndim == 1
    n_classes = 2 if binary else logits.shape[1]
    if n_classes == 0:
        raise ValueError("`logits` has no classes (C = 0)")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= n_classes:
        bad = low if low < 0 else high
        what = "0 or 1 for binary `logits`" if binary else f"in [0, {n_classes})"
        raise IndexError(f"`labels` must be {what}, found {bad}")
    return logits, labels.astype(np.intp, copy=False), binary


def check_weight(weight, n_rows):
    """Per-sample weights as float64 (N,), finite, >= 0, not all zero; None -> None."""
    if weight is None:
        return None
    weight = np.asarray(weight)
    if weight.dtype.kind not in "iuf" or weight.shape != (n_rows,):
        raise ValueError(f"`weight` must be real per-sample weights of shape ({n_rows},), got {weight.dtype} {weight.shape}")
    weight = weight.astype(np.float64)
    if not np.all(np.isfinite(weight)) or np.any(weight < 0) or not np.any(weight > 0):
        raise ValueError("`weight` must be finite and >= 0 with at least one positive weight")
    return weight


def nonfinite_logits_error():
    return ValueError("`logits` contains nan or inf: the temperature and the calibration are undefined")
