"""``contrastive_loss`` (InfoNCE / CLIP) for torch tensors, as an autograd Function.

'mean' and 'sum': the forward computes the loss and its gradient in the fused passes of
``logitloss.contrastive_loss(..., return_grad=True)`` and the backward scales the gradient by the scalar
upstream gradient. 'none': the upstream gradient differs per row, so the forward computes the losses only
and the backward runs ``cross_entropy_backward`` once per direction with it: the rows as a class-axis-1 view
of the transposed batch, the columns on the logits as they lie (both read in place).
"""

from __future__ import annotations

import numpy as np
import torch

from .. import _core
from .._contrastive import _parse, contrastive_loss as _numpy_contrastive_loss
from . import _distribution_ops
from ._tensors import (array, autograd_apply, check_cpu, once_differentiable_guard, scaled_by_upstream, tensor,
                       widened)

__all__ = ["contrastive_loss"]


class ContrastiveFunction(torch.autograd.Function):
    """The Function behind :func:`contrastive_loss` in eager mode."""

    @staticmethod
    def forward(ctx, logits, target, options):
        reduction, symmetric, label_smoothing = options
        labels = None if target is None else array(target)
        ctx.grad = None
        if reduction == "none":
            loss = _numpy_contrastive_loss(array(logits), labels, reduction, symmetric=symmetric,
                                           label_smoothing=label_smoothing)
        else:
            loss, grad = _numpy_contrastive_loss(array(logits), labels, reduction, symmetric=symmetric,
                                                 label_smoothing=label_smoothing, return_grad=True)
            ctx.grad = tensor(grad)
        ctx.save_for_backward(logits, target)
        ctx.options = options
        return tensor(loss)

    @staticmethod
    def backward(ctx, grad_output):
        once_differentiable_guard("contrastive_loss")
        logits, target = ctx.saved_tensors
        reduction, symmetric, label_smoothing = ctx.options
        labels = None if target is None else array(target)
        if reduction == "none":
            return tensor(_per_row_grad(array(grad_output), array(logits), labels, symmetric, label_smoothing)), \
                None, None
        grad, ctx.grad = ctx.grad, None  # handed over once: autograd may accumulate into it
        if grad is None:  # a second backward through a retained graph
            grad = tensor(_numpy_contrastive_loss(array(logits), labels, reduction, symmetric=symmetric,
                                                  label_smoothing=label_smoothing, return_grad=True)[1])
        return scaled_by_upstream(grad, grad_output), None, None


_apply = autograd_apply(ContrastiveFunction)


def _per_row_grad(upstream, logits, labels, symmetric, label_smoothing):
    """d sum(upstream * losses) / d logits for reduction 'none' (row i's loss, symmetric: the mean of row i's
    and column i's): each direction's ``cross_entropy_backward`` with its half of the upstream gradient."""
    logits, labels, _, label_smoothing = _parse(logits, labels, "none", symmetric, label_smoothing)
    rows, columns = logits.shape[-2:]
    batch = logits.reshape(-1, rows, columns)  # a view where NumPy can make one
    labels = np.ascontiguousarray(labels).reshape(-1, rows)
    share = np.ascontiguousarray(upstream, dtype=np.float64).reshape(-1, rows) * (0.5 if symmetric else 1.0)
    # Rows: (B, M, N) with the classes (the columns) on axis 1, one position per row.
    grad = _core.cross_entropy_backward(share, batch.transpose(0, 2, 1), labels, None, -100, "none", label_smoothing,
                                        1.0, None, 0.0).transpose(0, 2, 1)
    if symmetric:  # columns: (B, N, M) as it lies, the classes (the rows) on axis 1, one position per column
        columns_grad = _core.cross_entropy_backward(share, batch, labels, None, -100, "none", label_smoothing,
                                                    1.0, None, 0.0)
        grad = grad + columns_grad
    return np.ascontiguousarray(grad).reshape(logits.shape)


def contrastive_loss(
    logits: torch.Tensor,
    target: torch.Tensor | None = None,
    reduction: str = "mean",
    *,
    symmetric: bool = True,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """InfoNCE over a similarity matrix; with ``symmetric=True`` the CLIP loss, both directions averaged:
    ``logitloss.contrastive_loss`` on torch tensors, differentiable once with respect to ``logits``.

    torch has no function for it; its composition is ``(F.cross_entropy(L, t) + F.cross_entropy(L.mT, t)) / 2``
    for ``L`` of shape ``(N, N)`` (``symmetric=False``: the first term alone), ``t`` the positive column of
    each row (default ``arange(N)``, the diagonal). ``logits`` ``(..., N, M)``: leading dimensions are
    independent batches; ``target`` ``(N,)`` or ``(..., N)`` class indices (no ``ignore_index``).
    ``reduction``: 'mean' over all rows (and directions), 'sum', or 'none' (shape ``(..., N)``: row i's loss,
    symmetric: the mean of row i's and column i's). float16/32/64; bfloat16 through a float32 copy.

    Examples
    --------
    >>> import torch, logitloss.torch
    >>> image = torch.tensor([[1.0, 0.0], [0.0, 1.0]]); text = torch.tensor([[0.8, 0.6], [0.6, 0.8]])
    >>> similarity = (image @ text.T / 0.1).requires_grad_()
    >>> loss = logitloss.torch.contrastive_loss(similarity)
    >>> loss.backward()
    >>> round(loss.item(), 6), similarity.grad.shape
    (0.126928, torch.Size([2, 2]))
    """
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"`logits` must be a torch.Tensor, got {type(logits).__name__}")
    check_cpu(logits, "logits")
    if target is not None:
        if not isinstance(target, torch.Tensor):
            raise TypeError(f"`target` must be a torch.Tensor or None, got {type(target).__name__}")
        check_cpu(target, "target")
    if logits.dtype is torch.bfloat16:
        return contrastive_loss(widened(logits), target, reduction, symmetric=symmetric,
                                label_smoothing=label_smoothing).to(torch.bfloat16)
    options = (reduction, symmetric, label_smoothing)
    if torch.compiler.is_compiling():
        return _distribution_ops.contrastive_loss(logits, target, reduction, bool(symmetric), float(label_smoothing))
    if logits.requires_grad and torch.is_grad_enabled():
        return _apply(logits, target, options)
    return tensor(_numpy_contrastive_loss(array(logits), None if target is None else array(target), reduction,
                                          symmetric=symmetric, label_smoothing=label_smoothing))
