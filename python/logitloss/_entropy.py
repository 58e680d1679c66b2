"""What is read off a predicted distribution: the entropy of softmax(logits) and the perplexity.

``entropy_with_logits`` is one fused kernel (``csrc/kernels/entropy-inl.h``); ``perplexity`` is
``exp`` of :func:`~logitloss.cross_entropy`'s mean, with torch's denominators.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _core
from ._cross_entropy import cross_entropy


def entropy_with_logits(
    x: ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    *,
    return_grad: bool = False,
    grad_out: np.ndarray | None = None,
) -> Any:
    """Entropy, in nats, of ``softmax(x)`` along `axis`, from the logits.

    ``H = -sum p log p`` with ``p = softmax(x, axis)``: ``scipy.stats.entropy(softmax(x), axis=axis)``
    (which takes probabilities), or torch's ``-(softmax(x) * log_softmax(x)).sum(axis)`` with the
    masked ``0 * inf`` terms taken as 0. Computed as ``log(total) + G``, two non-negative terms
    (``total = sum exp(x - max)``, ``G`` the mean of ``max - x`` under ``p``), so a nearly
    deterministic row keeps its tiny entropy to 8 eps relative (``[0, -40]``: 1.74e-16, where
    ``-(p * log p).sum()`` in float64 gives 1.78e-16 and float32 gives 0).

    Parameters
    ----------
    x : array_like
        Logits (float16/32/64 or bfloat16; integers and bool compute in float64, float16 and
        bfloat16 in float32 and are returned in their own dtype).
    axis : None or int or tuple of ints, optional
        The axes of the distribution; default -1 (the last). None: all elements form one
        distribution.
    return_grad : bool, keyword-only
        Also return dH/dx, ``p * ((lse - x) - H)``, computed as ``p * ((max - x) - G)`` without
        cancellation, the shape of `x`.
    grad_out : ndarray, keyword-only, optional
        Where to write the gradient (implies `return_grad`): the shape of `x` and the result dtype;
        may be `x` itself (in place), but no other view overlapping `x`.

    Returns
    -------
    entropy : ndarray or scalar
        The shape of `x` without `axis`; a NumPy scalar when that is 0-d.
    grad : ndarray
        With `return_grad` or `grad_out`: the gradient, the shape of `x` (`grad_out` itself when
        given).

    Notes
    -----
    ``-inf`` logits are masked classes (probability 0, contributing 0). A slice with a nan, a
    ``+inf`` or only ``-inf`` entries has a nan entropy and an all-nan gradient (softmax's rules).
    A slice of length 0 raises ``ValueError``, as ``softmax`` does.

    Raises
    ------
    ValueError
        `x` has length 0 along `axis`, `axis` is repeated, or `grad_out` has the wrong shape, is
        read-only or partly overlaps `x`.
    TypeError
        Complex or non-numeric input, a non-integer `axis`, a non-boolean `return_grad`, a
        `grad_out` that is not an array of the result dtype.
    numpy.exceptions.AxisError
        An axis out of range.

    Examples
    --------
    >>> import numpy as np, logitloss
    >>> float(logitloss.entropy_with_logits(np.zeros(4)))   # uniform over 4: log(4)
    1.3862943611198906
    >>> float(logitloss.entropy_with_logits([0.0, -40.0]))
    1.7418252446695514e-16
    >>> h, grad = logitloss.entropy_with_logits(np.array([[2.0, 0.0, -1.0]], np.float32), return_grad=True)
    >>> h
    array([0.5242666], dtype=float32)
    >>> grad
    array([[-0.29905826,  0.18791726,  0.11114097]], dtype=float32)
    """
    return _core.entropy_with_logits(x, axis, return_grad, grad_out)


def perplexity(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None, ignore_index: int = -100) -> Any:
    """Perplexity ``exp(mean cross-entropy)``: ``torch.exp(F.cross_entropy(input, target, ...))``.

    The mean is :func:`~logitloss.cross_entropy`'s ``reduction="mean"``, with torch's
    denominators: the sum of ``weight[target]`` over positions not ignored (index targets; their
    count without weights), or the number of positions (probability targets). A batch whose every
    position is ignored has a nan mean, so a nan perplexity, as torch gives. To accumulate over
    batches, add ``cross_entropy(..., reduction="sum")`` and the denominator, and take ``exp`` of
    their ratio at the end (README, "Entropy and perplexity").

    Parameters
    ----------
    input, target, weight, ignore_index
        As :func:`~logitloss.cross_entropy`'s (classes on axis 1).

    Returns
    -------
    numpy scalar
        ``exp`` of the mean loss, in the input's dtype (float16 perplexities above 65504 are inf).

    Raises
    ------
    IndexError, ValueError, TypeError
        As :func:`~logitloss.cross_entropy`.

    Examples
    --------
    >>> import numpy as np, logitloss
    >>> float(logitloss.perplexity(np.zeros((2, 10)), np.array([3, 7])))   # uniform over 10 classes
    10.000000000000002
    """
    loss = cross_entropy(input, target, weight, ignore_index, "mean")
    # exp taken in float64 and rounded once to the loss's dtype.
    with np.errstate(over="ignore"):
        return np.asarray(np.exp(np.float64(loss))).astype(np.asarray(loss).dtype)[()]
