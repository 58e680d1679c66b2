"""KL and generalized Jensen-Shannon divergences between two softmax distributions given by their
logits (knowledge distillation).

The KL kernel (csrc/kernels/divergence-inl.h) reads both logit rows and writes the gradient once; it
returns each row's KL in float64, keeping full relative precision when the two distributions
nearly agree (a KL of 1e-12 from float32 logits, 1e-30 from float64 ones). The reductions add the
float64 row values here, so they add no error of their own; float16 is computed in float32. The
JSD kernel (csrc/kernels/jensen_shannon-inl.h) builds on the KL's passes and keeps the same precision.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _core
from ._bfloat16 import any_bfloat16, through_float32
from ._output_checks import check_grad_out

_REDUCTIONS = ("mean", "sum", "none")
_FLOATS = (np.float16, np.float32, np.float64)


def kl_div_with_logits(
    input: ArrayLike,
    target: ArrayLike,
    reduction: str = "mean",
    *,
    temperature: float = 1.0,
    where: ArrayLike | None = None,
    return_grad: bool = False,
    grad_out: np.ndarray | None = None,
) -> Any:
    """KL(softmax(target / T) || softmax(input / T)) along the last axis, from the two arrays of logits.

    Per row, with ``P = softmax(target / T)`` (the teacher) and ``Q = softmax(input / T)`` (the
    student), the loss is ``sum_c P_c (log P_c - log Q_c)``: torch's
    ``F.kl_div(F.log_softmax(input / T, -1), F.log_softmax(target / T, -1), reduction="none",
    log_target=True).sum(-1)``, within 8 eps relative of exact even when it is tiny.

    Parameters
    ----------
    input : array_like
        The student's logits, float16/32/64 or bfloat16, shape ``(..., C)``; leading dimensions are rows.
    target : array_like
        The teacher's logits, the shape and dtype of `input`. ``-inf`` masks a class (the student's
        probability there still counts, as its own term; ``-inf`` in both adds nothing).
    reduction : {'mean', 'sum', 'none'}, optional
        'none': one value per row, shape ``input.shape[:-1]``; 'sum': their sum; 'mean': their mean
        over the included rows (torch's ``reduction="batchmean"`` for 2-d input: the true KL per
        row, not torch's ``"mean"``, which also divides by C).
    temperature : float, keyword-only
        T > 0. No ``T**2`` factor is applied: for Hinton's distillation scaling multiply the loss
        and the gradient by ``T**2``.
    where : array_like of bool, keyword-only, optional
        Shape ``input.shape[:-1]``: rows where it is False (padding tokens) contribute a zero loss
        and a zero gradient and are not counted by 'mean'.
    return_grad : bool, keyword-only
        Also return d loss / d input, ``(Q - P) / T`` times the reduction's scale (for 'none': of
        ``loss.sum()``).
    grad_out : ndarray, keyword-only, optional
        Where to write the gradient (implies `return_grad`): `input`'s shape and dtype, writable,
        not overlapping either input.

    Returns
    -------
    loss : numpy scalar or ndarray
        Of `input`'s dtype: a scalar for 'mean' and 'sum' (nan for 'mean' with no included row),
        shape ``input.shape[:-1]`` for 'none'.
    grad : ndarray
        With `return_grad` or `grad_out`: the gradient with respect to `input`.

    Raises
    ------
    ValueError
        Shapes that differ or have no class axis, an unknown `reduction`, a non-positive or
        non-finite `temperature`, a `where` or `grad_out` of the wrong shape, a read-only or
        overlapping `grad_out`.
    TypeError
        Non-floating or different dtypes, a non-boolean `where`, a `grad_out` of the wrong dtype.

    Notes
    -----
    A row whose logits have no finite maximum in either operand (all ``-inf``, or ``+inf``) gives
    nan, as torch; nan propagates. The KL is +inf where the teacher has mass and the student none.

    Examples
    --------
    >>> import numpy as np, logitloss
    >>> teacher = np.array([[2.0, 1.0, 0.0]]); student = np.array([[1.5, 1.0, 0.5]])
    >>> loss, grad = logitloss.kl_div_with_logits(student, teacher, return_grad=True)
    >>> round(float(loss), 6), grad.shape
    (0.060269, (1, 3))
    """
    return _divergence(_core._kl_div_rows, (), input, target, reduction, temperature, where, return_grad, grad_out)


def jsd_with_logits(
    input: ArrayLike,
    target: ArrayLike,
    beta: float = 0.5,
    reduction: str = "mean",
    *,
    temperature: float = 1.0,
    where: ArrayLike | None = None,
    return_grad: bool = False,
    grad_out: np.ndarray | None = None,
) -> Any:
    """Liger-Kernel's generalized Jensen-Shannon divergence along the last axis, from two arrays of logits.

    Per row, with ``P = softmax(target / T)`` (the teacher), ``Q = softmax(input / T)`` (the student)
    and ``M = beta * P + (1 - beta) * Q``, the loss is ``beta * KL(P || M) + (1 - beta) * KL(Q || M)``
    for ``0 < beta < 1``; ``beta = 0`` is ``KL(P || Q)`` (`kl_div_with_logits`) and ``beta = 1`` is
    ``KL(Q || P)`` (Liger's convention: the forward and the reverse KL, not the vanishing limits).
    Within 16 eps relative of exact wherever it is a normal number, also when tiny (near-identical rows).

    Parameters
    ----------
    input : array_like
        The student's logits, float16/32/64, shape ``(..., C)``; leading dimensions are rows.
    target : array_like
        The teacher's logits, the shape and dtype of `input`. ``-inf`` masks a class (the student's
        probability there counts, ``(1 - beta) log(1 / (1 - beta))`` per unit; ``-inf`` in both adds nothing).
    beta : float
        The teacher's weight in the mixture, ``0 <= beta <= 1``.
    reduction : {'mean', 'sum', 'none'}, optional
        'none': one value per row, shape ``input.shape[:-1]``; 'sum': their sum; 'mean': their mean
        over the included rows (the true divergence per row, as Liger's batch mean).
    temperature : float, keyword-only
        T > 0; both distributions are taken at ``logits / T``. No ``T**2`` factor is applied.
    where : array_like of bool, keyword-only, optional
        Shape ``input.shape[:-1]``: rows where it is False contribute a zero loss and a zero gradient
        and are not counted by 'mean'.
    return_grad : bool, keyword-only
        Also return d loss / d input: ``(1 - beta) / T * Q * (log(Q / M) - KL(Q || M))`` per row
        (``(Q - P) / T`` at beta = 0, ``Q * (log(Q / P) - KL(Q || P)) / T`` at beta = 1) times the
        reduction's scale (for 'none': of ``loss.sum()``).
    grad_out : ndarray, keyword-only, optional
        Where to write the gradient (implies `return_grad`): `input`'s shape and dtype, writable,
        not overlapping either input.

    Returns
    -------
    loss : numpy scalar or ndarray
        Of `input`'s dtype: a scalar for 'mean' and 'sum' (nan for 'mean' with no included row),
        shape ``input.shape[:-1]`` for 'none'.
    grad : ndarray
        With `return_grad` or `grad_out`: the gradient with respect to `input`.

    Raises
    ------
    ValueError
        A `beta` outside [0, 1] or not finite, and the errors of `kl_div_with_logits`.
    TypeError
        A `beta` that is not a real number, and the errors of `kl_div_with_logits`.

    Notes
    -----
    A row whose logits have no finite maximum in either operand (all ``-inf``, or ``+inf``) gives
    nan, as torch; nan propagates. At ``beta = 1`` the loss is +inf where the student has mass and
    the teacher none, and the gradient of such a row is nan (as torch's autograd); at ``beta = 0``
    the rule of `kl_div_with_logits` holds; in between the divergence is always finite.

    Examples
    --------
    >>> import numpy as np, logitloss
    >>> teacher = np.array([[2.0, 1.0, 0.0]]); student = np.array([[1.5, 1.0, 0.5]])
    >>> loss, grad = logitloss.jsd_with_logits(student, teacher, beta=0.5, return_grad=True)
    >>> round(float(loss), 6), grad.shape
    (0.015732, (1, 3))
    """
    if isinstance(beta, (bool, np.bool_)) or not isinstance(beta, (int, float, np.integer, np.floating)):
        raise TypeError(f"`beta` must be a real number, got {beta!r}")
    beta = float(beta)
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"`beta` must be in [0, 1], got {beta}")
    return _divergence(_core._jsd_rows, (beta,), input, target, reduction, temperature, where, return_grad,
                       grad_out)


def _divergence(kernel, options, input, target, reduction, temperature, where, return_grad, grad_out):
    """The common body of the divergences: checks, rows, the kernel call and the reduction."""
    if any_bfloat16(input, target):  # through float32 copies, results rounded once
        if grad_out is not None:
            check_grad_out(grad_out, input, "input", ("target", target))

        def divergence(input, target, **keywords):
            return _divergence(kernel, options, input, target, keywords["reduction"], keywords["temperature"],
                               keywords["where"], keywords["return_grad"], None)

        return through_float32(divergence, (input, target), {
            "reduction": reduction, "temperature": temperature, "where": where, "return_grad": return_grad}, grad_out)
    input, target, where, temperature = _parse(input, target, reduction, temperature, where)
    want_grad = return_grad or grad_out is not None
    if grad_out is not None:
        check_grad_out(grad_out, input, "input", ("target", target))
    compute = np.float32 if input.dtype == np.float16 else input.dtype.type
    classes = input.shape[-1]
    input_rows = _rows_of(input.astype(compute, copy=False), classes)
    target_rows = _rows_of(target.astype(compute, copy=False), classes)
    included = None if where is None else np.ascontiguousarray(where.reshape(-1))
    count = input_rows.shape[0] if included is None else int(np.count_nonzero(included))
    scale = 1.0 / count if reduction == "mean" and count else 1.0

    grad = grad_rows = None
    if want_grad:
        grad = grad_out if grad_out is not None else np.empty(input.shape, input.dtype)
        grad_rows = _writable_rows_of(grad, classes, compute)
    losses = kernel(input_rows, target_rows, *options, 1.0 / temperature, scale / temperature, included, grad_rows)
    if want_grad and not np.shares_memory(grad_rows, grad):
        grad[...] = grad_rows.reshape(grad.shape)

    if reduction == "none":
        loss = losses.reshape(input.shape[:-1]).astype(input.dtype)
        loss = loss[()] if loss.ndim == 0 else loss
    elif reduction == "sum":
        loss = input.dtype.type(losses.sum())
    else:
        loss = input.dtype.type(losses.sum() / count if count else math.nan)
    return (loss, grad) if want_grad else loss


def _rows_of(array: np.ndarray, classes: int) -> np.ndarray:
    """`array` as (rows, classes), a view whenever NumPy can make one (any strides)."""
    return array.reshape(-1, classes)


def _writable_rows_of(grad: np.ndarray, classes: int, compute) -> np.ndarray:
    """A (rows, classes) view of `grad` the kernel writes into, or a scratch copied back after."""
    if grad.dtype == compute:
        view = grad.view()
        try:
            view.shape = (-1, classes)  # raises where only a copy could reshape
            return view
        except AttributeError:
            pass
    return np.empty((grad.size // max(classes, 1), classes), compute)


def _parse(input, target, reduction, temperature, where):
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"`reduction` must be one of 'mean', 'sum', 'none', got {reduction!r}")
    if isinstance(temperature, (bool, np.bool_)) or not isinstance(temperature, (int, float, np.integer, np.floating)):
        raise TypeError(f"`temperature` must be a number, got {temperature!r}")
    temperature = float(temperature)
    if not 0.0 < temperature < math.inf:
        raise ValueError(f"`temperature` must be positive and finite, got {temperature}")
    input, target = np.asarray(input), np.asarray(target)
    for name, array in (("input", input), ("target", target)):
        if array.dtype not in _FLOATS:
            raise TypeError(f"`{name}` must be float16, float32 or float64, got dtype {array.dtype}")
    if target.dtype != input.dtype:
        raise TypeError(f"`target` must have the dtype of `input` ({input.dtype}), got {target.dtype}")
    if target.shape != input.shape:
        raise ValueError(f"`target` must have the shape of `input` {input.shape}, got {target.shape}")
    if input.ndim < 1 or input.shape[-1] < 1:
        raise ValueError(f"`input` must have a class axis of at least one class, got shape {input.shape}")
    if where is not None:
        where = np.asarray(where)
        if where.dtype != np.bool_:
            raise TypeError(f"`where` must be a boolean array, got dtype {where.dtype}")
        if where.shape != input.shape[:-1]:
            raise ValueError(f"`where` must have the batch shape {input.shape[:-1]}, got {where.shape}")
    return input, target, where, temperature


__all__ = ["jsd_with_logits", "kl_div_with_logits"]
