"""The NumPy code users write by hand: the "NumPy stable" and "NumPy naive" providers of the benchmark.

``numpy_logsumexp`` / ``numpy_softmax`` / ``numpy_log_softmax`` / ``numpy_cross_entropy*`` /
``numpy_binary_cross_entropy*``: the numerically stable code (shift by the maximum, exponentiate, sum;
``max(x, 0) - x y + log1p(exp(-|x|))``), in the input's dtype.  ``numpy_naive_*``: the textbook code without the
shift (``log(sum(exp(x)))``, ``exp(x) / sum(exp(x))``, softmax then log).  These are what is timed and judged,
not references: the references are in :mod:`logitloss.testing`.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "numpy_binary_cross_entropy",
    "numpy_binary_cross_entropy_fwd_bwd",
    "numpy_cross_entropy",
    "numpy_cross_entropy_fwd_bwd",
    "numpy_log_softmax",
    "numpy_logsumexp",
    "numpy_naive_log_softmax",
    "numpy_naive_logsumexp",
    "numpy_naive_softmax",
    "numpy_softmax",
]


def numpy_logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``max + log(sum(exp(x - max)))`` along ``axis``, in ``x.dtype``."""
    x_max = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(x_max, axis=axis) + np.log(np.sum(np.exp(x - x_max), axis=axis))


def numpy_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``exp(x - max) / sum(exp(x - max))`` along ``axis``, in ``x.dtype``."""
    exp_shifted = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return exp_shifted / np.sum(exp_shifted, axis=axis, keepdims=True)


def numpy_log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``(x - max) - log(sum(exp(x - max)))`` along ``axis``, in ``x.dtype``."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def numpy_naive_logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``log(sum(exp(x)))``: overflows once a logit passes log(max) (88.7 in float32)."""
    return np.log(np.sum(np.exp(x), axis=axis))


def numpy_naive_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``exp(x) / sum(exp(x))``, unshifted."""
    exp = np.exp(x)
    return exp / np.sum(exp, axis=axis, keepdims=True)


def numpy_naive_log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``log(softmax(x))``: the naive softmax, then its log (-inf where the softmax underflows)."""
    return np.log(numpy_naive_softmax(x, axis))


def numpy_cross_entropy(x: np.ndarray, y: np.ndarray) -> np.floating:
    """Mean cross-entropy of logits ``x`` (N, C) and class indices ``y`` (N,) or probability targets ``y`` (N, C),
    max-shifted, in ``x.dtype``."""
    x_max = x.max(1, keepdims=True)
    sums = np.exp(x - x_max).sum(1, keepdims=True)
    if y.shape == x.shape:  # probabilities: -sum_c y_c log_softmax_c
        return -np.mean((y * (x - x_max - np.log(sums))).sum(1))
    rows = np.arange(x.shape[0])
    return np.mean(np.log(sums[:, 0]) + x_max[:, 0] - x[rows, y])


def numpy_cross_entropy_fwd_bwd(x: np.ndarray, y: np.ndarray) -> tuple[np.floating, np.ndarray]:
    """Mean cross-entropy and its gradient ``(softmax(x) - onehot(y)) / N``, the stable NumPy code users write::

        m = x.max(1, keepdims=True); e = np.exp(x - m); s = e.sum(1, keepdims=True)
        loss = np.mean(np.log(s[:, 0]) + m[:, 0] - x[r, y]); e /= s; e[r, y] -= 1; e /= N

    With probability targets ``y`` of ``x``'s shape (rows summing to 1): ``-mean(sum(y * log_softmax))`` and
    ``(softmax(x) - y) / N``.
    """
    n = x.shape[0]
    x_max = x.max(1, keepdims=True)
    exp_shifted = np.exp(x - x_max)
    sums = exp_shifted.sum(1, keepdims=True)
    if y.shape == x.shape:
        loss = -np.mean((y * (x - x_max - np.log(sums))).sum(1))
        exp_shifted /= sums
        exp_shifted -= y
        exp_shifted /= n
        return loss, exp_shifted
    rows = np.arange(n)
    loss = np.mean(np.log(sums[:, 0]) + x_max[:, 0] - x[rows, y])
    exp_shifted /= sums
    exp_shifted[rows, y] -= 1
    exp_shifted /= n
    return loss, exp_shifted


def numpy_binary_cross_entropy(
    x: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None, pos_weight: np.ndarray | None = None
) -> np.floating:
    """Mean binary cross-entropy with logits, the stable form users write (in ``x.dtype``)::

        np.mean(np.maximum(x, 0) - x*y + np.log1p(np.exp(-np.abs(x))))

    With ``pos_weight`` the positive term is weighted (``(1 - y) x + (1 + (pw - 1) y) softplus(-x)``, softplus
    written the same stable way); ``weight`` multiplies each element.
    """
    softplus_minus_x = np.maximum(-x, 0) + np.log1p(np.exp(-np.abs(x)))
    if pos_weight is None:
        losses = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
    else:
        losses = (1 - y) * x + (1 + (pos_weight - 1) * y) * softplus_minus_x
    if weight is not None:
        losses = losses * weight
    return np.mean(losses)


def numpy_binary_cross_entropy_fwd_bwd(
    x: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None, pos_weight: np.ndarray | None = None
) -> tuple[np.floating, np.ndarray]:
    """:func:`numpy_binary_cross_entropy` and its gradient as users write it: ``(1 / (1 + np.exp(-x)) - y) / x.size``
    (with ``pos_weight``: ``((1 + (pw - 1) y) sigmoid(x) - pw y) / x.size``; times ``weight``)."""
    loss = numpy_binary_cross_entropy(x, y, weight, pos_weight)
    sigmoid = 1 / (1 + np.exp(-x))
    if pos_weight is None:
        gradient = (sigmoid - y) / x.size
    else:
        gradient = ((1 + (pos_weight - 1) * y) * sigmoid - pos_weight * y) / x.size
    if weight is not None:
        gradient *= weight
    return loss, gradient
