"""The classifier head and its cross-entropy in one call, chunk by chunk: never an N x V logits array.

Per chunk of rows: the logits ``X[chunk] @ W.T (+ b)`` with one BLAS product into a reused buffer, the
fused cross-entropy kernel in place on that buffer (loss, and the gradient G written over the logits),
then ``grad_input[chunk] = G @ W``, ``grad_weight += G.T @ X[chunk]``, ``grad_bias += G.sum(0)``.

Numerics: the kernel reduces each chunk with reduction 'sum' (or 'none'); 'mean' divides the sum of
every chunk, and the gradients, by torch's denominator over ALL rows, computed before any work. The
gradients of the parameters are accumulated across chunks in the compute dtype (float32 for float16
and float32 inputs, float64 otherwise), so their rounding error grows with the number of chunks K as
about K eps times the size of the largest partial sum (docs/accuracy.md).
"""

from __future__ import annotations

import operator
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from . import _core
from ._bfloat16 import any_bfloat16, through_float32
from ._blas_threads import blas_threads

# Logits bytes per chunk when chunk_size is None: large enough that the per-chunk fixed costs (the
# V x D accumulation of grad_weight, one pass over W per product) stay a few percent of the products,
# small enough to be a bounded fraction of a big head's N x V logits.
CHUNK_BYTES = 48 * 2**20
# At least this many rows per chunk: the rows are the inner dimension of grad_weight's product
# G.T @ X[chunk], and below a few hundred the BLAS runs it far from its peak (V = 128256, D = 2048,
# one thread: 98 rows per chunk took 2.1x the time of 256, and 512 gained little more).
MIN_CHUNK_ROWS = 256
# Bytes of the scratch that grad_weight's per-chunk product goes through before it is added: a block
# of rows of grad_weight at a time, so the scratch is not a second V x D array (NumPy's matmul has no
# beta = 1 to accumulate in place). Blocks of this size keep the products large for the BLAS.
WEIGHT_BLOCK_BYTES = 8 * 2**20

_REDUCTIONS = ("mean", "sum", "none")


class LinearCrossEntropyResult(NamedTuple):
    """``linear_cross_entropy(..., return_grad=True)``: the loss and its gradients (``grad_bias`` None without a bias).

    >>> import numpy as np, logitloss
    >>> r = logitloss.linear_cross_entropy(np.ones((2, 3)), np.eye(4, 3), np.array([0, 3]), return_grad=True)
    >>> r.grad_input.shape, r.grad_weight.shape, r.grad_bias
    ((2, 3), (4, 3), None)
    """

    loss: Any
    grad_input: np.ndarray
    grad_weight: np.ndarray
    grad_bias: np.ndarray | None


def linear_cross_entropy(
    input: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    return_grad: bool = False,
    chunk_size: int | None = None,
    temperature: float = 1.0,
    softcap: float | None = None,
    z_loss: float = 0.0,
) -> Any:
    """Cross-entropy of a linear layer's output, ``cross_entropy(input @ linear_weight.T + linear_bias, target)``,
    without ever holding the N x V logits.

    Semantics are those of ``torch.nn.functional.linear_cross_entropy`` (and of ``F.linear`` followed by
    ``F.cross_entropy``) with class-index targets; the loss per row is computed by the same fused
    kernel as :func:`cross_entropy`.

    Parameters
    ----------
    input : array_like
        Hidden states of shape ``(..., D)``, float16/32/64 or bfloat16; the leading dimensions are N rows.
    linear_weight : array_like
        The head's weight, shape ``(V, D)`` (as torch stores it), floating.
    target : array_like
        Class indices of shape ``input.shape[:-1]``, any integer dtype.
    linear_bias : array_like, optional, keyword-only
        The head's bias, shape ``(V,)``.
    weight : array_like, optional, keyword-only
        Per-class weights of the loss, shape ``(V,)``.
    ignore_index : int, keyword-only
        A class index whose rows are skipped (loss 0, no gradient, not in the mean's denominator).
    reduction : {'mean', 'sum', 'none'}, keyword-only
        'mean' divides by the sum of ``weight[target]`` over the kept rows of the whole input (the
        number of kept rows without `weight`); 'none' returns the per-row losses (per-token NLL).
    label_smoothing : float, keyword-only
        In [0, 1], as :func:`cross_entropy`.
    return_grad : bool, keyword-only
        Also return the gradients (for 'none': of the sum of the per-row losses). Without it no
        gradient work is done at all.
    chunk_size : int, optional, keyword-only
        Rows per chunk. ``None`` picks about 48 MiB of logits per chunk (in the compute dtype), at
        least 256 rows (the inner dimension of grad_weight's product), at most N.
    temperature, softcap, z_loss : keyword-only
        As :func:`cross_entropy`: the loss is taken of ``softcap * tanh(z / softcap) / temperature``
        for the logits ``z``, plus ``z_loss * lse**2`` per kept row (weighted like the row).

    Returns
    -------
    loss : numpy scalar or ndarray
        A scalar for 'mean' and 'sum', shape ``input.shape[:-1]`` for 'none'; the result dtype of the
        inputs (float16 for float16 inputs, computed in float32).
    LinearCrossEntropyResult
        With `return_grad`: the named tuple ``(loss, grad_input, grad_weight, grad_bias)``, each
        gradient of its argument's shape and the result dtype; ``grad_bias`` is None without a bias.

    Raises
    ------
    IndexError
        A class index out of range, found before any work.
    ValueError
        Shapes that do not fit (D, V, N), an unknown `reduction`, `label_smoothing` outside [0, 1],
        `chunk_size` < 1, `temperature`, `softcap` or `z_loss` out of range.
    TypeError
        Non-floating `input`, `linear_weight`, `linear_bias` or `weight`; non-integer targets;
        non-integer `ignore_index` or `chunk_size`; non-bool `return_grad`.

    Notes
    -----
    float16 inputs are computed with float32 products and float32 accumulation of the gradients.
    The matrix products run in NumPy's BLAS; with ``threadpoolctl`` installed (the ``threads`` extra)
    it is limited to :func:`get_num_threads` threads for the call, so :func:`set_num_threads` governs
    both; without it the BLAS uses its own setting (``OPENBLAS_NUM_THREADS`` and the like).

    Examples
    --------
    >>> import numpy as np, logitloss
    >>> rng = np.random.default_rng(0)
    >>> hidden = rng.standard_normal((6, 4)).astype(np.float32)   # 6 tokens, D = 4
    >>> head = rng.standard_normal((10, 4)).astype(np.float32)    # V = 10
    >>> tokens = np.array([1, 2, 3, 4, 5, 6])
    >>> nll = logitloss.linear_cross_entropy(hidden, head, tokens, reduction="none")
    >>> nll.shape
    (6,)
    >>> loss, grad_input, grad_weight, grad_bias = logitloss.linear_cross_entropy(
    ...     hidden, head, tokens, return_grad=True, chunk_size=4)
    >>> bool(np.isclose(loss, nll.mean())), grad_weight.shape, grad_bias is None
    (True, (10, 4), True)
    """
    if any_bfloat16(input, linear_weight, linear_bias, weight):  # through float32 copies, results rounded once
        return through_float32(linear_cross_entropy, (input, linear_weight, target), {
            "linear_bias": linear_bias, "weight": weight, "ignore_index": ignore_index, "reduction": reduction,
            "label_smoothing": label_smoothing, "return_grad": return_grad, "chunk_size": chunk_size,
            "temperature": temperature, "softcap": softcap, "z_loss": z_loss})
    call = _parse(input, linear_weight, target, linear_bias, weight, ignore_index, reduction, label_smoothing,
                  return_grad, chunk_size)._replace(logit_options=_logit_options(temperature, softcap, z_loss))
    with blas_threads():
        return _run(call)


class _Call(NamedTuple):
    x: np.ndarray  # (N, D), the input's dtype (cast per chunk when it is not the compute dtype)
    w: np.ndarray  # (V, D) compute dtype
    bias: np.ndarray | None  # (V,) compute dtype
    target: np.ndarray  # (N,) int64
    weight: np.ndarray | None  # (V,) compute dtype
    ignore_index: int
    reduction: str
    label_smoothing: float
    return_grad: bool
    chunk: int
    compute: np.dtype
    result: np.dtype
    input_shape: tuple
    denominator: float
    logit_options: tuple = (1.0, None, 0.0)  # (temperature, softcap, z_loss), checked


def _real(value, name):
    # As cross_entropy: any real number (a 0-d array too), not a bool, not complex.
    if isinstance(value, (bool, np.bool_, complex, np.complexfloating)) or not hasattr(value, "__float__"):
        raise TypeError(f"`{name}` must be a real number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a real number, got {value!r}") from None


def _logit_options(temperature, softcap, z_loss):
    """The logit options checked as cross_entropy checks them, before any work."""
    t = _real(temperature, "temperature")
    if not (t > 0 and np.isfinite(t)):
        raise ValueError(f"`temperature` must be a positive finite number, got {temperature!r}")
    cap = None
    if softcap is not None:
        cap = _real(softcap, "softcap")
        if not (cap > 0 and np.isfinite(cap)):
            raise ValueError(f"`softcap` must be a positive finite number or None, got {softcap!r}")
    z = _real(z_loss, "z_loss")
    if not (z >= 0 and np.isfinite(z)):
        raise ValueError(f"`z_loss` must be a non-negative finite number, got {z_loss!r}")
    return t, cap, z


def _array(value, name):
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged lists and the like: say which argument
        raise ValueError(f"`{name}` is not an array: {exc}") from None


def _floating(value, name):
    array = _array(value, name)
    if array.dtype.kind != "f":
        raise TypeError(f"`{name}` must be a floating-point array, got dtype {array.dtype}")
    return array


def _integer(value, name):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"`{name}` must be an integer, got {value!r}") from None


def _parse(input, linear_weight, target, linear_bias, weight, ignore_index, reduction, label_smoothing,
           return_grad, chunk_size):
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"`reduction` must be one of 'mean', 'sum', 'none', got {reduction!r}")
    # As cross_entropy: any real number (a 0-d array too), not a bool, not complex.
    bad_smoothing = TypeError(f"`label_smoothing` must be a real number in [0, 1], got {label_smoothing!r}")
    if isinstance(label_smoothing, (bool, np.bool_, complex, np.complexfloating)) or not hasattr(label_smoothing,
                                                                                                  "__float__"):
        raise bad_smoothing
    try:
        label_smoothing = float(label_smoothing)
    except (TypeError, ValueError):
        raise bad_smoothing from None
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"`label_smoothing` must be in [0, 1], got {label_smoothing!r}")
    if not isinstance(return_grad, (bool, np.bool_)):
        raise TypeError(f"`return_grad` must be a bool, got {return_grad!r}")
    ignore_index = _integer(ignore_index, "ignore_index")
    if chunk_size is not None:
        chunk_size = _integer(chunk_size, "chunk_size")
        if chunk_size < 1:
            raise ValueError(f"`chunk_size` must be >= 1, got {chunk_size}")

    x = _floating(input, "input")
    if x.ndim < 1:
        raise ValueError("`input` must have at least 1 dimension (the features D), got a 0-d array")
    w = _floating(linear_weight, "linear_weight")
    if w.ndim != 2:
        raise ValueError(f"`linear_weight` must have shape (V, D), got {w.shape}")
    classes, features = w.shape
    if x.shape[-1] != features:
        raise ValueError(f"`input` has {x.shape[-1]} features (last axis) but `linear_weight` has D = {features} "
                         f"(shape {w.shape})")
    arrays = [x, w]
    bias = None
    if linear_bias is not None:
        bias = _floating(linear_bias, "linear_bias")
        if bias.shape != (classes,):
            raise ValueError(f"`linear_bias` must have shape ({classes},) (one per class), got {bias.shape}")
        arrays.append(bias)
    if weight is not None:
        weight = _floating(weight, "weight")
        if weight.shape != (classes,):
            raise ValueError(f"`weight` must have shape ({classes},) (one per class), got {weight.shape}")
    if classes == 0:
        raise ValueError("`linear_weight` has no classes (V = 0)")

    t = _array(target, "target")
    if t.dtype.kind not in "iu":
        raise TypeError(f"`target` holds class indices and must be an integer array, got dtype {t.dtype}")
    if t.shape != x.shape[:-1]:
        raise ValueError(f"`target` has shape {t.shape}; expected the input's leading shape {x.shape[:-1]}")

    result = np.result_type(*arrays)
    compute = np.dtype(np.float32) if result.itemsize <= 4 else np.dtype(np.float64)
    # float64 for the weights' denominator and the range check; the kernel gets the compute dtype.
    rows = t.reshape(-1)
    kept = rows != ignore_index
    kept_targets = rows[kept]
    if kept_targets.size:
        low, high = kept_targets.min(), kept_targets.max()
        bad = low if low < 0 else high if high >= classes else None
        if bad is not None:
            raise IndexError(f"`target`: Target {int(bad)} is out of bounds (classes 0..{classes - 1}, "
                             f"ignore_index {ignore_index})")
    rows = rows.astype(np.int64)  # checked in range: no wrap-around of large uint64
    weight_c = None if weight is None else np.ascontiguousarray(weight, compute)
    if weight_c is None:
        denominator = float(kept_targets.size)
    else:
        denominator = float(np.sum(weight_c[kept_targets.astype(np.intp)], dtype=np.float64))

    n = rows.size
    # The budget fixes the rows from V alone: the per-chunk costs that chunking adds (the V x D
    # accumulation of grad_weight, a pass over W per product) scale like the products' V x D, so D
    # cancels out. At least MIN_CHUNK_ROWS rows, so a huge vocabulary still gives the BLAS real products
    # (V = 128256 in float32: 256 rows, 131 MB of logits).
    chunk = chunk_size or max(MIN_CHUNK_ROWS, CHUNK_BYTES // (classes * compute.itemsize))
    chunk = min(chunk, max(n, 1))
    return _Call(
        x=x.reshape(n, features), w=w.astype(compute, copy=False),
        bias=None if bias is None else bias.astype(compute, copy=False), target=rows, weight=weight_c,
        ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing,
        return_grad=bool(return_grad), chunk=chunk, compute=compute, result=result, input_shape=x.shape,
        denominator=denominator)


def _run(c: _Call):
    n, features = c.x.shape
    classes = c.w.shape[0]
    per_row = c.reduction == "none"
    kernel_reduction = "none" if per_row else "sum"
    logits = np.empty((c.chunk, classes), c.compute)
    x_chunk = None if c.x.dtype == c.compute else np.empty((c.chunk, features), c.compute)
    losses = np.empty(n, c.compute) if per_row else None
    total = 0.0
    if c.return_grad:
        grad_input = np.empty((n, features), c.compute)
        grad_weight = np.zeros((classes, features), c.compute)
        block = max(1, min(classes, WEIGHT_BLOCK_BYTES // max(1, features * c.compute.itemsize)))
        partial_weight = np.empty((block, features), c.compute) if n > c.chunk else None
        grad_bias = np.zeros(classes, c.compute) if c.bias is not None else None
    for start in range(0, n, c.chunk):
        stop = min(start + c.chunk, n)
        z = logits[: stop - start]
        if x_chunk is None:
            xc = c.x[start:stop]
        else:
            xc = x_chunk[: stop - start]
            np.copyto(xc, c.x[start:stop], casting="unsafe")
        np.matmul(xc, c.w.T, out=z)
        if c.bias is not None:
            z += c.bias
        result = _core.cross_entropy(z, c.target[start:stop], c.weight, c.ignore_index, kernel_reduction,
                                     c.label_smoothing, c.return_grad, z if c.return_grad else None, False, None,
                                     *c.logit_options)
        loss = result[0] if c.return_grad else result
        if per_row:
            losses[start:stop] = loss
        else:
            total += float(loss)
        if c.return_grad:  # z now holds G, the gradient of this chunk's summed loss
            np.matmul(z, c.w, out=grad_input[start:stop])
            if start == 0:
                np.matmul(z.T, xc, out=grad_weight)
            else:  # matmul into a scratch and add, block by block of grad_weight's rows
                for first in range(0, classes, block):
                    last = min(first + block, classes)
                    scratch = partial_weight[: last - first]
                    np.matmul(z[:, first:last].T, xc, out=scratch)
                    grad_weight[first:last] += scratch
            if grad_bias is not None:
                grad_bias += z.sum(axis=0)

    if per_row:
        loss = losses.reshape(c.input_shape[:-1]).astype(c.result)
        loss = loss[()] if loss.ndim == 0 else loss
    elif c.reduction == "mean":
        loss = c.result.type(total / c.denominator) if c.denominator != 0 else c.result.type(np.nan)
    else:
        loss = c.result.type(total)
    if not c.return_grad:
        return loss
    # 'mean': the chunks' gradients are of their sums; torch's gradient of a mean over no weight at
    # all (every row ignored) is zero, not 0 / 0.
    scale = 1.0 / c.denominator if c.reduction == "mean" and c.denominator != 0 else (
        0.0 if c.reduction == "mean" else 1.0)
    grads = [grad_input, grad_weight] + ([grad_bias] if grad_bias is not None else [])
    if scale != 1.0:
        for g in grads:
            g *= g.dtype.type(scale)
    grad_input = grad_input.reshape(c.input_shape)
    return LinearCrossEntropyResult(
        loss, grad_input.astype(c.result, copy=False), grad_weight.astype(c.result, copy=False),
        None if grad_bias is None else grad_bias.astype(c.result, copy=False))
