"""Softmax cross-entropy with torch.nn.functional.cross_entropy's semantics, on NumPy arrays.

Loss and gradient (and on request the Hessian's diagonal) come from one fused pass over the
logits; the only logits-sized allocations are the gradient (none with ``grad_out=input``) and the
Hessian.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _core


def cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    return_grad: bool = False,
    grad_out: np.ndarray | None = None,
    return_hessian: bool = False,
    hessian_out: np.ndarray | None = None,
    temperature: float = 1.0,
    softcap: float | None = None,
    z_loss: float = 0.0,
) -> Any:
    """Cross-entropy between logits and targets, as ``torch.nn.functional.cross_entropy``.

    ``-log softmax(input)[target]`` per position, computed as ``(max - z_y) + log(m) +
    log1p(s / m)`` so that confident correct predictions keep their tiny loss (logits ``[40, 0]``,
    target 0: 4.25e-18 in float32, where torch returns 0).

    Parameters
    ----------
    input : array_like
        Logits, float16/32/64 or bfloat16 (``ml_dtypes``; read in place for class-index targets), of shape ``(N, C, d1, ..., dk)`` (classes on axis 1) or ``(C,)``.
    target : array_like
        Class indices of shape ``(N, d1, ..., dk)`` (any integer dtype; ``()`` for 1-D input), or
        class probabilities of the input's shape (floating).
    weight : array_like, optional
        Per-class weights, shape ``(C,)``.
    ignore_index : int, optional
        A class index whose positions are skipped (loss 0, no gradient, not in the mean's
        denominator). Default -100.
    reduction : {'mean', 'sum', 'none'}, optional
        'mean' divides by the sum of ``weight[target]`` over kept positions (index targets) or by
        the number of positions (probability targets).
    label_smoothing : float, optional
        In [0, 1]: the target becomes ``(1 - e) * target + e / C``.
    return_grad : bool, keyword-only
        Also return d loss / d input (for 'none': of ``loss.sum()``), from the same pass.
    grad_out : ndarray, keyword-only, optional
        Where to write the gradient (implies `return_grad`): the input's shape and dtype; may be
        `input` itself for an in-place gradient, but no other view overlapping `input`, `target` or
        `weight`. `input` is never modified otherwise.
    return_hessian : bool, keyword-only
        Also return the diagonal of the Hessian of the reduced loss with respect to `input` (for
        'none': of ``loss.sum()``), input-shaped, from the same pass (implies `return_grad`):
        ``g * m * p * (1 - p)`` per position, ``p = softmax(input)``, ``m`` the position's target
        mass (its class weight, or the sum of its weighted target distribution), ``g`` the
        reduction's factor; ``1 - p`` without cancellation (a confident row's largest entry keeps
        its tiny curvature). The per-example ``(grad, hess)`` pair of a gradient-boosting custom
        objective with ``reduction='sum'``.
    hessian_out : ndarray, keyword-only, optional
        Where to write the Hessian's diagonal (implies `return_hessian`): as `grad_out`, but never
        overlapping `input` or `grad_out`. With `temperature`, `softcap` or `z_loss`: the Hessian
        with respect to the input logits, by the chain rule through the cap and z-loss's curvature.
    temperature : float, keyword-only
        Positive and finite: the loss is taken of ``z / temperature`` (after the cap). Default 1.
    softcap : float or None, keyword-only
        Positive and finite, or None (default): logits capped as ``softcap * tanh(z / softcap)``
        (Gemma 2) before the temperature. ``-inf`` logits become ``-softcap``: masks do not
        survive the cap.
    z_loss : float, keyword-only
        Non-negative and finite: adds ``z_loss * lse**2`` to each kept position's loss, ``lse`` the
        log-sum-exp of the transformed logits (PaLM), weighted like the position (``weight[target]``
        for class indices, 1 for probabilities), so 'mean' divides by the same denominator.
        Default 0.

    Returns
    -------
    loss : numpy scalar or ndarray
        A scalar of the input's dtype for 'mean' and 'sum'; shape ``(N, d1, ..., dk)`` for 'none'.
    grad : ndarray
        With `return_grad` or `grad_out`: the gradient (`grad_out` itself when given).
    hessian : ndarray
        With `return_hessian` or `hessian_out`: the Hessian's diagonal (`hessian_out` itself when
        given).

    Raises
    ------
    IndexError
        A class index out of range (the message names it).
    ValueError
        Mismatched shapes, `weight` of the wrong length, an unknown `reduction`,
        `label_smoothing` outside [0, 1] (torch accepts negatives), `ignore_index` >= 0 with
        probability targets, a bad `grad_out` or `hessian_out` (wrong shape, read-only,
        overlapping an argument), or `temperature`, `softcap`, `z_loss` out of range.
    TypeError
        Non-floating logits, non-integer class indices, non-floating probabilities, a `grad_out`
        or `hessian_out` of the wrong dtype.

    Examples
    --------
    >>> import numpy as np, logitloss
    >>> logits = np.array([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0]], np.float32)
    >>> labels = np.array([0, 1])
    >>> loss, grad = logitloss.cross_entropy(logits, labels, return_grad=True)
    >>> round(float(loss), 6)
    0.132384
    >>> grad.shape
    (2, 3)
    >>> print(logitloss.cross_entropy(np.array([40.0, 0.0], np.float32), np.array(0)))
    4.248354e-18
    >>> loss, grad, hess = logitloss.cross_entropy(np.zeros((1, 2)), np.array([0]), return_hessian=True)
    >>> hess
    array([[0.25, 0.25]])

    Temperature is the confidence knob: above 1 it softens the distribution, so a confident correct
    prediction costs more and a confident wrong one less.

    >>> [round(float(logitloss.cross_entropy(logits, labels, temperature=t)), 4) for t in (0.5, 1.0, 4.0)]
    [0.0128, 0.1324, 0.6985]
    """
    return _core.cross_entropy(
        input, target, weight, ignore_index, reduction, label_smoothing, return_grad, grad_out, return_hessian, hessian_out,
        temperature, softcap, z_loss
    )


def cross_entropy_backward(
    grad_output: ArrayLike,
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    temperature: float = 1.0,
    softcap: float | None = None,
    z_loss: float = 0.0,
) -> np.ndarray:
    """Gradient of :func:`cross_entropy` with respect to `input`, for an upstream gradient.

    Parameters
    ----------
    grad_output : array_like
        d result / d loss: a scalar for 'mean' and 'sum', the loss's shape for 'none'.
    input, target, weight, ignore_index, reduction, label_smoothing
        As given to :func:`cross_entropy`.
    temperature, softcap, z_loss : keyword-only
        As given to :func:`cross_entropy`.

    Returns
    -------
    ndarray
        d result / d input, the input's shape and dtype.

    Raises
    ------
    ValueError
        `grad_output` of the wrong shape, and as :func:`cross_entropy`.

    Examples
    --------
    >>> import numpy as np, logitloss
    >>> logitloss.cross_entropy_backward(1.0, np.zeros((1, 2)), np.array([0]))
    array([[-0.5,  0.5]])
    """
    return _core.cross_entropy_backward(
        grad_output, input, target, weight, ignore_index, reduction, label_smoothing, temperature, softcap, z_loss
    )
