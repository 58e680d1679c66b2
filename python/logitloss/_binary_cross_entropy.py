"""Binary cross-entropy with logits, torch.nn.functional.binary_cross_entropy_with_logits's
semantics, on NumPy arrays.

Loss and gradient come from one pass over the logits; weight and pos_weight broadcast without
being copied.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _core


def binary_cross_entropy_with_logits(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    reduction: str = "mean",
    pos_weight: ArrayLike | None = None,
    *,
    return_grad: bool = False,
    grad_out: np.ndarray | None = None,
    return_hessian: bool = False,
    hessian_out: np.ndarray | None = None,
) -> Any:
    """Binary cross-entropy between logits and targets, as torch's
    ``binary_cross_entropy_with_logits``.

    Per element ``weight * [(1 - y) x - (1 + (pos_weight - 1) y) log_sigmoid(x)]``, computed as
    a sum of non-negative terms (``(1 - y)|x| + a log1p(exp(-|x|))`` for ``x >= 0``) so that tiny
    losses keep full relative precision: ``x = -40, y = 0`` gives 4.25e-18 where torch returns 0.
    At infinite logits the result is the limit (torch returns nan for ``x = inf, y = 1``).

    Parameters
    ----------
    input : array_like
        Logits, float16/32/64 or bfloat16 (computed in float32), any shape.
    target : array_like
        Targets of the input's shape: floating (usually in [0, 1]; not range-checked), integer
        or bool.
    weight : array_like, optional
        Per-element weights broadcasting to the input's shape (NumPy rules, never enlarging it).
    reduction : {'mean', 'sum', 'none'}, optional
        'mean' divides the sum by the number of elements, with or without weights.
    pos_weight : array_like, optional
        Weight of the positive term, broadcasting to the input's shape; shape ``(C,)`` weighs the
        classes of the last axis (multi-label).
    return_grad : bool, keyword-only
        Also return d loss / d input (for 'none': of ``loss.sum()``), from the same pass.
    grad_out : ndarray, keyword-only, optional
        Where to write the gradient (implies `return_grad`): the input's shape and the result
        dtype; may be `input` itself for an in-place gradient.
    return_hessian : bool, keyword-only
        Also return the second derivative of the reduced loss (for 'none': of ``loss.sum()``)
        with respect to each input element (implies `return_grad`): ``g * weight * (1 + (pos_weight
        - 1) y) * sigmoid(x) * sigmoid(-x)``, ``g`` the reduction's factor, formed without
        cancellation at large ``|x|`` (tiny values keep full relative precision).
    hessian_out : ndarray, keyword-only, optional
        Where to write it (implies `return_hessian`): as `grad_out`, but never overlapping `input`
        or `grad_out`.

    Returns
    -------
    loss : numpy scalar or ndarray
        A scalar for 'mean' and 'sum', the input's shape for 'none'. The dtype is the input's,
        promoted with a floating target's (float32 logits with float64 targets give float64).
    grad : ndarray
        With `return_grad` or `grad_out`: the gradient (`grad_out` itself when given).
    hessian : ndarray
        With `return_hessian` or `hessian_out`: the second derivatives (`hessian_out` itself
        when given).

    Raises
    ------
    ValueError
        A target of another shape, a weight or pos_weight that does not broadcast to the
        input's shape, an unknown `reduction`, or a bad `grad_out` or `hessian_out`.
    TypeError
        Non-floating logits, complex or non-numeric arguments, a `grad_out` or `hessian_out` of
        the wrong dtype.

    Examples
    --------
    >>> import numpy as np, logitloss
    >>> x = np.array([[2.0, -1.0], [0.0, 3.0]], np.float32)
    >>> y = np.array([[1.0, 0.0], [1.0, 1.0]], np.float32)
    >>> loss, grad = logitloss.binary_cross_entropy_with_logits(x, y, return_grad=True)
    >>> round(float(loss), 6)
    0.295481
    >>> grad[1, 0]
    np.float32(-0.125)
    >>> print(logitloss.binary_cross_entropy_with_logits(np.float32(-40.0), np.float32(0.0)))
    4.248354e-18
    >>> loss, grad, hess = logitloss.binary_cross_entropy_with_logits(
    ...     np.zeros(2), np.array([1.0, 0.0]), reduction="sum", return_hessian=True)
    >>> hess
    array([0.25, 0.25])
    """
    return _core.binary_cross_entropy_with_logits(
        input, target, weight, reduction, pos_weight, return_grad, grad_out, return_hessian, hessian_out
    )


def binary_cross_entropy_with_logits_backward(
    grad_output: ArrayLike,
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    reduction: str = "mean",
    pos_weight: ArrayLike | None = None,
) -> np.ndarray:
    """Gradient of :func:`binary_cross_entropy_with_logits` with respect to `input`.

    Parameters
    ----------
    grad_output : array_like
        d result / d loss: a scalar for 'mean' and 'sum'; for 'none', the loss's shape (or
        any shape broadcasting to it).
    input, target, weight, reduction, pos_weight
        As given to :func:`binary_cross_entropy_with_logits`.

    Returns
    -------
    ndarray
        d result / d input, the input's shape, in the result dtype.

    Raises
    ------
    ValueError
        `grad_output` of the wrong shape, and as :func:`binary_cross_entropy_with_logits`.

    Examples
    --------
    >>> import numpy as np, logitloss
    >>> logitloss.binary_cross_entropy_with_logits_backward(1.0, np.zeros(2), np.array([1.0, 0.0]))
    array([-0.25,  0.25])
    """
    return _core.binary_cross_entropy_with_logits_backward(grad_output, input, target, weight, reduction, pos_weight)
