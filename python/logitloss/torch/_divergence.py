"""``kl_div_with_logits`` for torch tensors: the KL divergence between two softmax distributions given by
their logits (knowledge distillation), as an autograd Function shared by the divergences of logits.

The forward runs the NumPy function (``logitloss.kl_div_with_logits``) on the tensors' memory along ``dim``
(a NumPy view with that axis moved last, no copy) and, when the student's logits require grad, takes the
gradient from the same pass; the backward scales it by the upstream gradient (per row for
``reduction="none"``).
"""

from __future__ import annotations

import numpy as np
import torch

from .. import _divergence as _numpy_divergences
from . import _distribution_ops
from ._tensors import (array, autograd_apply, check_cpu, once_differentiable_guard, refuse_grad, scaled_by_upstream,
                       tensor, widened)

__all__ = ["kl_div_with_logits"]


class DivergenceFunction(torch.autograd.Function):
    """The Function behind the divergences of logits in eager mode; differentiable with respect to ``input``.
    ``options``: (the NumPy function's name, reduction, temperature, dim, beta or None)."""

    @staticmethod
    def forward(ctx, input, target, where, options):
        ctx.grad = None
        loss, grad = divergence(input, target, where, options, ctx.needs_input_grad[0])
        if grad is not None:
            ctx.grad = grad
        ctx.save_for_backward(input, target, where)
        ctx.options = options
        return loss

    @staticmethod
    def backward(ctx, grad_output):
        once_differentiable_guard(ctx.options[0])
        grad, ctx.grad = ctx.grad, None  # handed over once: autograd may accumulate into it
        if grad is None:  # a second backward through a retained graph
            grad = divergence(*ctx.saved_tensors, ctx.options, True)[1]
        _, reduction, _, dim, _ = ctx.options
        shape = grad_output.unsqueeze(dim).shape if reduction == "none" else None
        return scaled_by_upstream(grad, grad_output, shape), None, None, None


_apply = autograd_apply(DivergenceFunction)


def divergence(input, target, where, options, with_grad):
    """The NumPy function on the tensors' memory, `dim` moved last in the NumPy views: (loss, grad or None) as
    tensors, the gradient viewed back in the input's layout."""
    name, reduction, temperature, dim, beta = options
    function = getattr(_numpy_divergences, name)
    x, t = np.moveaxis(array(input), dim, -1), np.moveaxis(array(target), dim, -1)
    keywords = dict(reduction=reduction, temperature=temperature, where=None if where is None else array(where))
    if beta is not None:
        keywords["beta"] = beta
    if not with_grad:
        return tensor(function(x, t, **keywords)), None
    loss, grad = function(x, t, return_grad=True, **keywords)
    return tensor(loss), tensor(grad).movedim(-1, dim)


def kl_div_with_logits(
    input: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "mean",
    *,
    dim: int = -1,
    temperature: float = 1.0,
    where: torch.Tensor | None = None,
) -> torch.Tensor:
    """``KL(softmax(target / T) || softmax(input / T))`` along ``dim``, from the student's logits ``input`` and
    the teacher's logits ``target``, computed by ``logitloss.kl_div_with_logits`` and differentiable once with
    respect to ``input``.

    torch has no single function for this: its composition is ``F.kl_div(F.log_softmax(input / T, dim),
    F.log_softmax(target / T, dim), reduction="none", log_target=True).sum(dim)``, reduced over the rows
    (the positions other than ``dim``). ``reduction``: 'none' (one value per row: the input's shape without
    ``dim``), 'sum', or 'mean' over the included rows (torch's ``"batchmean"`` for 2-d input, not its
    ``"mean"``, which also divides by the classes). ``where`` (bool, the rows' shape) leaves rows out (padding
    tokens): zero loss and gradient, not counted by 'mean'. No ``T**2`` factor. The loss keeps its relative
    precision when the two distributions nearly agree (where the composition cancels to 0 or to noise).

    ``input`` and ``target`` share shape and dtype (float16/32/64; bfloat16 through float32 copies). The
    teacher's logits are not differentiated: a ``target`` that requires grad raises ``ValueError`` (pass
    ``target.detach()``, as distillation does anyway).

    Examples
    --------
    >>> import torch, logitloss.torch
    >>> student = torch.tensor([[1.5, 1.0, 0.5]], requires_grad=True)
    >>> loss = logitloss.torch.kl_div_with_logits(student, torch.tensor([[2.0, 1.0, 0.0]]))
    >>> loss.backward()
    >>> round(loss.item(), 6), student.grad.shape
    (0.060269, torch.Size([1, 3]))
    """
    return _divergence_with_logits("kl_div_with_logits", input, target, reduction, dim, temperature, where, None)


def _divergence_with_logits(name, input, target, reduction, dim, temperature, where, beta):
    """The divergences' checks, then their Function (eager), custom op (compiled) or plain call (no grad)."""
    for value, argument in ((input, "input"), (target, "target")):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"`{argument}` must be a torch.Tensor, got {type(value).__name__}")
        check_cpu(value, argument)
    if where is not None:
        if not isinstance(where, torch.Tensor):
            raise TypeError(f"`where` must be a torch.Tensor or None, got {type(where).__name__}")
        check_cpu(where, "where")
    refuse_grad(target, "target", name, "the teacher's logits")
    if input.dim() == 0:
        raise ValueError("`input` must have a class dimension, got a 0-d tensor")
    if not isinstance(dim, int) or isinstance(dim, bool) or not -input.dim() <= dim < input.dim():
        raise ValueError(f"`dim` must be an integer in [{-input.dim()}, {input.dim()}), got {dim!r}")
    dim %= input.dim()
    if torch.bfloat16 in (input.dtype, target.dtype):
        loss = _divergence_with_logits(name, widened(input), widened(target), reduction, dim, temperature, where, beta)
        return loss.to(torch.bfloat16)
    options = (name, reduction, temperature, dim, beta)
    if torch.compiler.is_compiling():
        return _distribution_ops.divergence_with_logits(input, target, where, name, reduction, float(temperature),
                                                        dim, None if beta is None else float(beta))
    if input.requires_grad and torch.is_grad_enabled():
        return _apply(input, target, where, options)
    return divergence(input, target, where, options, False)[0]
