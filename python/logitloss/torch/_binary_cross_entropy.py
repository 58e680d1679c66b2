"""``binary_cross_entropy_with_logits`` for torch tensors: the fused kernel as an autograd Function.

As for cross-entropy, the gradient with respect to the input comes from the forward pass and the
backward scales it by the upstream gradient; targets that require grad get torch's gradient.
"""

from __future__ import annotations

import torch
from torch.nn import _reduction

from .. import _core
from . import _custom_ops
from ._tensors import (array, autograd_apply, check_loss_operands, once_differentiable_guard,
                       optional_array, tensor, widened)

__all__ = ["binary_cross_entropy_with_logits"]


class BinaryCrossEntropyFunction(torch.autograd.Function):
    """The Function behind :func:`binary_cross_entropy_with_logits` in eager mode."""

    @staticmethod
    def forward(ctx, input, target, weight, pos_weight, reduction):
        x, y = input.numpy(force=True), target.numpy(force=True)
        w = None if weight is None else weight.numpy()
        p = None if pos_weight is None else pos_weight.numpy()
        if ctx.needs_input_grad[0]:
            loss, grad = _core.binary_cross_entropy_with_logits(x, y, w, reduction, p, True, None, False, None)
            ctx.grad = torch.from_numpy(grad)
        else:
            loss = _core.binary_cross_entropy_with_logits(x, y, w, reduction, p, False, None, False, None)
            ctx.grad = None
        ctx.save_for_backward(input, target, weight, pos_weight)
        ctx.reduction = reduction
        return tensor(loss)

    @staticmethod
    def backward(ctx, grad_output):
        once_differentiable_guard("binary_cross_entropy_with_logits")
        input, target, weight, pos_weight = ctx.saved_tensors
        reduction = ctx.reduction
        grad_input = grad_target = None
        if ctx.needs_input_grad[0]:
            grad_input, ctx.grad = ctx.grad, None  # handed over once: autograd may accumulate into it
            if grad_input is None:  # a second backward through a retained graph
                grad_input = tensor(_core.binary_cross_entropy_with_logits_backward(
                    array(grad_output), array(input), array(target), optional_array(weight, "weight"), reduction,
                    optional_array(pos_weight, "pos_weight")))
            elif reduction == "none":
                grad_input.mul_(grad_output)
            elif grad_output.item() != 1.0:
                grad_input.mul_(grad_output)
            if grad_input.dtype != input.dtype:  # float32 logits with float64 targets: a float64 result
                grad_input = grad_input.to(input.dtype)
        if ctx.needs_input_grad[1]:
            grad_target = _target_grad(grad_output, input.detach(), weight, pos_weight, reduction)
        return grad_input, grad_target, None, None, None


_apply = autograd_apply(BinaryCrossEntropyFunction)


def _target_grad(grad_output, input, weight, pos_weight, reduction):
    """d loss / d target, torch's: ``weight (pos_weight softplus(-x) - softplus(x))`` (``-x weight`` without
    pos_weight), times the upstream gradient (divided by the number of elements for 'mean')."""
    if pos_weight is None:
        grad = -input
    else:
        grad = pos_weight * torch.nn.functional.softplus(-input) - torch.nn.functional.softplus(input)
    if weight is not None:
        grad = grad * weight
    if reduction == "mean":
        grad_output = grad_output / max(input.numel(), 1)
    return grad * grad_output


def binary_cross_entropy_with_logits(
    input: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    pos_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """``torch.nn.functional.binary_cross_entropy_with_logits`` computed by logitloss's fused kernel,
    differentiable once.

    Arguments and semantics are torch's (a target of the input's shape, ``weight`` and ``pos_weight``
    broadcasting to it); the loss is logitloss's, without cancellation (``x = -40, y = 0``: 4.25e-18 where
    torch gives 0) and with the limits at infinite logits. Targets that require grad get torch's gradient;
    ``weight`` and ``pos_weight`` that require grad are refused, as torch refuses them. bfloat16 goes
    through a float32 copy.

    Examples
    --------
    >>> import torch, logitloss.torch
    >>> scores = torch.tensor([[1.0, -2.0], [0.5, 3.0]], requires_grad=True)
    >>> loss = logitloss.torch.binary_cross_entropy_with_logits(scores, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    >>> loss.backward()
    >>> round(loss.item(), 6), scores.grad.shape
    (0.365714, torch.Size([2, 2]))
    """
    if size_average is not None or reduce is not None:
        reduction = _reduction.legacy_get_string(size_average, reduce)
    check_loss_operands("binary_cross_entropy_with_logits", input, target, (weight, "weight"),
                        (pos_weight, "pos_weight"))
    if input.dtype is torch.bfloat16 or target.dtype is torch.bfloat16:
        return _bfloat16(input, target, weight, pos_weight, reduction)
    if torch.compiler.is_compiling():
        return _custom_ops.binary_cross_entropy_with_logits(input, target, weight, pos_weight, reduction)
    if (input.requires_grad or target.requires_grad) and torch.is_grad_enabled():
        return _apply(input, target, weight, pos_weight, reduction)
    return tensor(_core.binary_cross_entropy_with_logits(
        input.numpy(force=True), target.numpy(force=True), None if weight is None else weight.numpy(), reduction,
        None if pos_weight is None else pos_weight.numpy(), False, None, False, None))


def _bfloat16(input, target, weight, pos_weight, reduction):
    """bfloat16 through float32 copies; the loss is rounded once to torch's result dtype."""
    loss = binary_cross_entropy_with_logits(widened(input), widened(target), widened(weight), reduction=reduction,
                                            pos_weight=widened(pos_weight))
    return loss.to(torch.promote_types(input.dtype, target.dtype))
