"""InfoNCE / CLIP: cross-entropy over a similarity matrix, by rows and (symmetric) by columns.

Both directions run the fused cross-entropy kernel on the logits as they lie: the columns first, as
a (1, N, N) array whose class axis is the row axis (the kernel's column mode: no transposed copy),
writing their gradient; then the rows in tiles of about TILE_BYTES, each tile's gradient written into
a small scratch, added to the columns' and scaled while both are in the cache. The only
logits-sized array is the gradient itself; memory passes: the logits read twice, the gradient
written, read and written again.

Numerics: each position's loss comes back from the kernel rounded once to the logits' dtype
(reduction 'none') and the positions are added in float64, so the reductions add no error of their
own (and a float16 'sum' cannot overflow midway); the gradient of a symmetric loss is the sum of the two directions' halves, each rounded once
in the logits' dtype and then added (at most one more rounding).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._cross_entropy import cross_entropy
from ._bfloat16 import any_bfloat16, through_float32
from ._output_checks import check_grad_out

# Bytes of a tile of rows: small enough that its gradient is still in the L2 cache when it is added
# and scaled, large enough that the per-call cost (a few microseconds) stays small.
TILE_BYTES = 1 << 20

_REDUCTIONS = ("mean", "sum", "none")


def contrastive_loss(
    logits: ArrayLike,
    target: ArrayLike | None = None,
    reduction: str = "mean",
    *,
    symmetric: bool = True,
    label_smoothing: float = 0.0,
    return_grad: bool = False,
    grad_out: np.ndarray | None = None,
) -> Any:
    """InfoNCE over a similarity matrix; with ``symmetric=True`` the CLIP loss, both directions averaged.

    For ``logits`` of shape ``(..., N, M)`` (already divided by the user's temperature) and ``target``
    the positive column of each row (default ``arange(N)``: positives on the diagonal), the loss is
    ``F.cross_entropy(logits, target)`` over the rows; with ``symmetric=True`` (requires ``N == M``) it
    is ``(F.cross_entropy(L, t) + F.cross_entropy(L.T, t)) / 2`` as in torch, the columns read in place.

    Parameters
    ----------
    logits : array_like
        float16/32/64 or bfloat16 of shape ``(..., N, M)``; leading dimensions are independent batches.
    target : array_like of int, optional
        Class indices in ``[0, M)`` of shape ``(N,)`` (shared by every batch) or ``(..., N)``; with
        ``symmetric=True`` column ``j``'s positive is row ``target[j]``. No ``ignore_index``: every row
        counts.
    reduction : {'mean', 'sum', 'none'}, optional
        'mean': over all rows of all batches (and, symmetric, the two directions averaged);
        'none': shape ``(..., N)``, row i's loss (symmetric: the mean of row i's and column i's).
    symmetric : bool, keyword-only
        Average the row-wise and the column-wise cross-entropy (CLIP). Default True.
    label_smoothing : float, keyword-only
        In [0, 1], applied in each direction as ``cross_entropy`` does.
    return_grad : bool, keyword-only
        Also return d loss / d logits (for 'none': of ``loss.sum()``).
    grad_out : ndarray, keyword-only, optional
        Where to write the gradient (implies `return_grad`): the logits' shape and dtype, writable,
        not overlapping `logits` (the column pass reads the logits after the row pass wrote its part).

    Returns
    -------
    loss : numpy scalar or ndarray
        A scalar of the logits' dtype for 'mean' and 'sum'; shape ``(..., N)`` for 'none'.
    grad : ndarray
        With `return_grad` or `grad_out`: the gradient.

    Raises
    ------
    ValueError
        `logits` with fewer than 2 dimensions, ``symmetric`` with ``N != M``, a `target` of the wrong
        shape, an unknown `reduction`, `label_smoothing` outside [0, 1], a bad `grad_out`.
    IndexError
        A target outside ``[0, M)``.
    TypeError
        Non-floating logits, non-integer targets, a `grad_out` of the wrong dtype.

    Examples
    --------
    >>> import numpy as np, logitloss
    >>> image = np.array([[1.0, 0.0], [0.0, 1.0]]); text = np.array([[0.8, 0.6], [0.6, 0.8]])
    >>> similarity = image @ text.T / 0.1   # a temperature of 0.1
    >>> loss, grad = logitloss.contrastive_loss(similarity, return_grad=True)
    >>> round(float(loss), 6), grad.shape
    (0.126928, (2, 2))
    """
    if any_bfloat16(logits):  # through a float32 copy, results rounded once
        if grad_out is not None:
            check_grad_out(grad_out, logits, "logits")
        return through_float32(contrastive_loss, (logits, target), {
            "reduction": reduction, "symmetric": symmetric, "label_smoothing": label_smoothing,
            "return_grad": return_grad}, grad_out)
    logits, target, reduction, label_smoothing = _parse(logits, target, reduction, symmetric, label_smoothing)
    want_grad = return_grad or grad_out is not None
    if grad_out is not None:
        check_grad_out(grad_out, logits, "logits")
    grad = (grad_out if grad_out is not None else np.empty(logits.shape, logits.dtype)) if want_grad else None

    rows, columns = logits.shape[-2:]
    batches = int(np.prod(logits.shape[:-2], dtype=np.int64))
    directions = 2 if symmetric else 1
    # d reduced loss / d (one direction's summed loss): the mean over all rows, and the average of the directions
    scale = (1.0 / directions) * (1.0 / (batches * rows) if reduction == "mean" and batches * rows else 1.0)
    losses = np.zeros(logits.shape[:-1], np.float64)  # per row; symmetric: row i's plus column i's
    for index in np.ndindex(*logits.shape[:-2]):
        matrix, labels, matrix_grad = logits[index], target[index], grad[index] if want_grad else None
        if symmetric:
            _columns(matrix, labels, label_smoothing, losses[index], matrix_grad)
        _rows(matrix, labels, label_smoothing, scale, losses[index], matrix_grad, accumulate=symmetric)
    if reduction == "none":
        loss = (losses / directions).astype(logits.dtype)
    elif reduction == "sum":
        loss = logits.dtype.type(losses.sum() / directions)
    else:
        loss = logits.dtype.type(losses.sum() / (directions * batches * rows) if batches * rows else math.nan)
    return (loss, grad) if want_grad else loss


def _columns(matrix, labels, label_smoothing, losses, grad) -> None:
    """Cross-entropy of each column of one (N, N) matrix, its class axis the rows: the matrix as the
    kernel's class-axis-1 layout (1, N, N), read in place. Losses added to `losses`; the unscaled
    gradient written into `grad` (the row pass adds its part and scales)."""
    if grad is None:
        losses += cross_entropy(matrix[None], labels[None], None, -100, "none", label_smoothing)[0]
    else:
        loss, _ = cross_entropy(matrix[None], labels[None], None, -100, "none", label_smoothing, grad_out=grad[None])
        losses += loss[0]


def _rows(matrix, labels, label_smoothing, scale, losses, grad, *, accumulate) -> None:
    """Cross-entropy of each row of one (N, M) matrix, a tile of rows at a time. Losses added to
    `losses`; the gradient written (or, `accumulate`, added) into `grad` and scaled by `scale`, each
    tile while it is in the cache."""
    rows, columns = matrix.shape
    step = max(1, TILE_BYTES // max(1, columns * matrix.itemsize))
    buffer = np.empty((min(step, rows), columns), matrix.dtype) if accumulate and grad is not None else None
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        tile_logits, tile_labels = matrix[start:stop], labels[start:stop]
        if grad is None:
            losses[start:stop] += cross_entropy(tile_logits, tile_labels, None, -100, "none", label_smoothing)
            continue
        tile = grad[start:stop]
        written = buffer[: stop - start] if accumulate else tile
        loss, _ = cross_entropy(tile_logits, tile_labels, None, -100, "none", label_smoothing, grad_out=written)
        losses[start:stop] += loss
        if accumulate:
            np.add(tile, written, out=tile)
        if scale != 1.0:
            np.multiply(tile, tile.dtype.type(scale), out=tile)


def _parse(logits, target, reduction, symmetric, label_smoothing):
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"`reduction` must be one of 'mean', 'sum', 'none', got {reduction!r}")
    try:
        label_smoothing = float(label_smoothing)
    except (TypeError, ValueError):
        raise TypeError(f"`label_smoothing` must be a number, got {label_smoothing!r}") from None
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"`label_smoothing` must be in [0, 1], got {label_smoothing}")
    if not isinstance(symmetric, (bool, np.bool_)):
        raise TypeError(f"`symmetric` must be a bool, got {symmetric!r}")
    logits = np.asarray(logits)
    if logits.dtype.kind != "f" or logits.dtype not in (np.float16, np.float32, np.float64):
        raise TypeError(f"`logits` must be float16, float32 or float64, got dtype {logits.dtype}")
    if logits.ndim < 2:
        raise ValueError(f"`logits` must have shape (..., N, M), got shape {logits.shape}")
    rows, columns = logits.shape[-2:]
    if symmetric and rows != columns:
        raise ValueError(f"symmetric=True needs square logits (N == M), got shape {logits.shape}")
    if target is None:
        if rows > columns:
            raise ValueError(f"target=None means arange(N), which needs N <= M; got shape {logits.shape}")
        target = np.arange(rows)
    target = np.asarray(target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"`target` must be class indices (an integer dtype), got dtype {target.dtype}")
    if target.shape not in ((rows,), logits.shape[:-1]):
        raise ValueError(f"`target` must have shape ({rows},) or {logits.shape[:-1]}, got {target.shape}")
    if target.size and (int(target.min()) < 0 or int(target.max()) >= columns):
        bad = int(target.min()) if int(target.min()) < 0 else int(target.max())
        raise IndexError(f"`target` holds {bad}, outside [0, {columns})")
    target = np.broadcast_to(target, logits.shape[:-1])
    return logits, target, reduction, label_smoothing


__all__ = ["contrastive_loss"]
