"""``entropy_with_logits`` and ``perplexity`` for torch tensors, as autograd Functions.

Both take their gradient from the forward pass (``logitloss.entropy_with_logits(..., return_grad=True)``;
for the perplexity, cross-entropy's gradient times the perplexity) and the backward scales it by the
upstream gradient.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import _core
from . import _distribution_ops
from ._cross_entropy import _probability_target_grad
from ._tensors import (array, autograd_apply, check_loss_operands, once_differentiable_guard, optional_array,
                       reduction_operand, scaled_by_upstream, tensor, widened)

__all__ = ["entropy_with_logits", "perplexity"]


class EntropyFunction(torch.autograd.Function):
    """The Function behind :func:`entropy_with_logits` in eager mode."""

    @staticmethod
    def forward(ctx, input, dim, keepdim):
        entropy, grad = _entropy(input, dim, keepdim, True)
        ctx.grad = grad
        ctx.save_for_backward(input)
        ctx.dim, ctx.keepdim = dim, keepdim
        return entropy

    @staticmethod
    def backward(ctx, grad_output):
        once_differentiable_guard("entropy_with_logits")
        grad, ctx.grad = ctx.grad, None  # handed over once: autograd may accumulate into it
        (input,) = ctx.saved_tensors
        if grad is None:  # a second backward through a retained graph
            grad = _entropy(input, ctx.dim, ctx.keepdim, True)[1]
        return scaled_by_upstream(grad, grad_output, _kept_shape(input, ctx.dim)), None, None


_apply_entropy = autograd_apply(EntropyFunction)


def _kept_shape(input: torch.Tensor, dim) -> tuple[int, ...]:
    """The input's shape with the dimensions `dim` (None: all) as 1: the entropy with ``keepdim=True``."""
    dims = range(input.dim()) if dim is None else {d % max(input.dim(), 1) for d in dim}
    return tuple(1 if d in dims else size for d, size in enumerate(input.shape))


def _entropy(input, dim, keepdim, with_grad):
    """The kernel on the tensor's memory: (entropy, grad or None) as tensors."""
    result = _core.entropy_with_logits(array(input), dim, with_grad, None)
    entropy, grad = (result[0], tensor(result[1])) if with_grad else (result, None)
    entropy = tensor(entropy)
    return (entropy.reshape(_kept_shape(input, dim)) if keepdim else entropy), grad


def entropy_with_logits(input: torch.Tensor, dim: int | tuple[int, ...] | list[int] | None = -1,
                        keepdim: bool = False) -> torch.Tensor:
    """Entropy in nats of ``softmax(input, dim)``, computed by ``logitloss.entropy_with_logits`` and
    differentiable once.

    torch's composition is ``-(F.softmax(input, dim) * F.log_softmax(input, dim)).sum(dim)`` (its masked
    ``0 * -inf`` terms taken as 0), or ``torch.distributions.Categorical(logits=input).entropy()`` for
    ``dim=-1``; logitloss keeps a nearly deterministic row's tiny entropy to 8 eps relative where the
    composition rounds it to 0. ``dim``: an int, a tuple of ints (one distribution over those dimensions),
    or None (all elements); ``keepdim`` as torch's reductions. Integer and bool inputs compute in torch's
    default floating dtype; float16 in float32, returned as float16; bfloat16 through a float32 copy.

    Examples
    --------
    >>> import torch, logitloss.torch
    >>> logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, -40.0, -40.0, -40.0]], dtype=torch.float64,
    ...                       requires_grad=True)
    >>> entropy = logitloss.torch.entropy_with_logits(logits)
    >>> entropy.sum().backward()
    >>> [f"{value:.6g}" for value in entropy.tolist()], logits.grad.shape
    (['1.38629', '5.22548e-16'], torch.Size([2, 4]))
    """
    input, dim = reduction_operand(input, dim)
    if isinstance(dim, int) and not isinstance(dim, bool):
        dim = (dim,)
    if input.dtype is torch.bfloat16:
        return entropy_with_logits(input.float(), dim, keepdim).to(torch.bfloat16)
    if torch.compiler.is_compiling():
        return _distribution_ops.entropy_with_logits(input, dim, keepdim)
    if input.requires_grad and torch.is_grad_enabled():
        return _apply_entropy(input, dim, keepdim)
    return _entropy(input, dim, keepdim, False)[0]


class PerplexityFunction(torch.autograd.Function):
    """The Function behind :func:`perplexity` in eager mode: ``exp`` of cross-entropy's mean, its gradient the
    mean's times the perplexity."""

    @staticmethod
    def forward(ctx, input, target, weight, ignore_index):
        perplexity, grad = _perplexity(input, target, weight, ignore_index, ctx.needs_input_grad[0])
        ctx.grad = grad
        ctx.save_for_backward(input, target, weight, perplexity)
        ctx.ignore_index = ignore_index
        return perplexity

    @staticmethod
    def backward(ctx, grad_output):
        once_differentiable_guard("perplexity")
        input, target, weight, perplexity = ctx.saved_tensors
        grad_input = grad_target = None
        if ctx.needs_input_grad[0]:
            grad_input, ctx.grad = ctx.grad, None  # handed over once: autograd may accumulate into it
            if grad_input is None:  # a second backward through a retained graph
                grad_input = _perplexity(input, target, weight, ctx.ignore_index, True)[1]
            grad_input = scaled_by_upstream(grad_input, grad_output)
        if ctx.needs_input_grad[1]:  # probability targets: d exp(L) / d target = exp(L) dL / d target
            grad_target = _probability_target_grad(grad_output * perplexity, array(input), optional_array(weight, "weight"),
                                                   "mean", 0.0, 1.0, None)
        return grad_input, grad_target, None, None


_apply_perplexity = autograd_apply(PerplexityFunction)


def _perplexity(input, target, weight, ignore_index, with_grad):
    """exp of the mean cross-entropy, taken in float64 and rounded once to the loss's dtype; with `with_grad`
    also its gradient with respect to the input (the mean's, times the perplexity)."""
    result = _core.cross_entropy(array(input), array(target), optional_array(weight, "weight"), ignore_index, "mean",
                                 0.0, with_grad, None, False, None, 1.0, None, 0.0)
    loss, grad = result if with_grad else (result, None)
    with np.errstate(over="ignore"):
        exact = np.exp(np.float64(loss))
    perplexity = tensor(np.asarray(exact).astype(np.asarray(loss).dtype))
    if grad is not None:
        grad = tensor(grad)
        grad.mul_(float(exact))
    return perplexity, grad


def perplexity(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
               ignore_index: int = -100) -> torch.Tensor:
    """Perplexity ``exp(mean cross-entropy)``, torch's ``torch.exp(F.cross_entropy(input, target, weight,
    ignore_index=ignore_index))``, computed by logitloss's fused kernel and differentiable once.

    Arguments as :func:`logitloss.torch.cross_entropy`'s (classes on dimension 1, index or probability
    targets; the mean's denominators are torch's). The exponential is taken in float64 and rounded once to
    the input's dtype (float16 perplexities above 65504 are inf); the gradient is the mean's, from the same
    pass, times the perplexity. Probability targets that require grad get torch's gradient; class weights
    that require grad are refused, as torch refuses them. bfloat16 through a float32 copy.

    Examples
    --------
    >>> import torch, logitloss.torch
    >>> logits = torch.zeros(2, 10, requires_grad=True)
    >>> value = logitloss.torch.perplexity(logits, torch.tensor([3, 7]))
    >>> value.backward()
    >>> round(value.item(), 4), logits.grad.shape
    (10.0, torch.Size([2, 10]))
    """
    check_loss_operands("perplexity", input, target, (weight, "weight"))
    if input.dtype is torch.bfloat16:
        value = perplexity(input.float(), widened(target), widened(weight), ignore_index)
        return value.to(torch.bfloat16)
    if torch.compiler.is_compiling():
        return _distribution_ops.perplexity(input, target, weight, ignore_index)
    if (input.requires_grad or target.requires_grad) and torch.is_grad_enabled():
        return _apply_perplexity(input, target, weight, ignore_index)
    return _perplexity(input, target, weight, ignore_index, False)[0]
