"""The distribution losses as ``torch.library`` custom ops (namespace ``logitloss``), for ``torch.compile``:
``kl_div_with_logits`` (one op for the divergences of logits), ``entropy_with_logits``, ``perplexity``
and ``contrastive_loss``.

As for the cross-entropy ops (_custom_ops.py): eager calls never come here; under compilation the public
functions call these, whose fake implementations give the result shapes and dtypes without running a
kernel. The first three return ``(value, grad)``, the gradient from the forward pass when asked for (of
``value.sum()``: every row's value depends on that row alone, so the backward scales it row by row);
``contrastive_loss``'s columns mix the rows, so its backward is an op of its own.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import Tensor

from .. import _core
from .._contrastive import contrastive_loss as _numpy_contrastive_loss
from ._custom_ops import _array, _refuse_target_grad, _wants_grad
from ._tensors import tensor

__all__ = ["contrastive_loss", "divergence_with_logits", "entropy_with_logits", "perplexity"]


def _no_grad(input: Tensor) -> Tensor:
    return input.new_empty(0)


# --- kl_div_with_logits (and the other divergences of logits) -----------------------------------------------

@torch.library.custom_op("logitloss::divergence_with_logits", mutates_args=())
def _divergence(input: Tensor, target: Tensor, where: Optional[Tensor], name: str, reduction: str, temperature: float,
                dim: int, beta: Optional[float], with_grad: bool) -> tuple[Tensor, Tensor]:
    from ._divergence import divergence  # (the eager module imports this one)

    loss, grad = divergence(input, target, where, (name, reduction, temperature, dim, beta), with_grad)
    return loss, _no_grad(input) if grad is None else grad.contiguous()


@_divergence.register_fake
def _(input, target, where, name, reduction, temperature, dim, beta, with_grad):
    shape = input.shape[:dim] + input.shape[dim + 1:] if reduction == "none" else ()
    return input.new_empty(shape), input.new_empty(input.shape if with_grad else (0,))


def _divergence_setup(ctx, inputs, output):
    ctx.dim, ctx.per_row = inputs[6], inputs[4] == "none"
    ctx.save_for_backward(output[1])


def _divergence_backward(ctx, grad_loss, grad_of_grad):
    (grad,) = ctx.saved_tensors
    return (grad * (grad_loss.unsqueeze(ctx.dim) if ctx.per_row else grad_loss),) + (None,) * 8


_divergence.register_autograd(_divergence_backward, setup_context=_divergence_setup)


def divergence_with_logits(input, target, where, name, reduction, temperature, dim, beta):
    _refuse_target_grad(target, name)
    return _divergence(input, target, where, name, reduction, temperature, dim, beta, _wants_grad(input))[0]


# --- entropy_with_logits ---------------------------------------------------------------------------------------

def _kept_shape(shape, dims: Optional[list[int]]) -> list[int]:
    reduced = range(len(shape)) if dims is None else {d % max(len(shape), 1) for d in dims}
    return [1 if d in reduced else size for d, size in enumerate(shape)]


@torch.library.custom_op("logitloss::entropy_with_logits", mutates_args=())
def _entropy(input: Tensor, dim: Optional[list[int]], keepdim: bool, with_grad: bool) -> tuple[Tensor, Tensor]:
    result = _core.entropy_with_logits(_array(input), None if dim is None else tuple(dim), with_grad, None)
    entropy, grad = (tensor(result[0]), tensor(result[1])) if with_grad else (tensor(result), _no_grad(input))
    return (entropy.reshape(_kept_shape(input.shape, dim)) if keepdim else entropy), grad


@_entropy.register_fake
def _(input, dim, keepdim, with_grad):
    kept = _kept_shape(input.shape, dim)
    reduced = set(range(input.dim())) if dim is None else {d % max(input.dim(), 1) for d in dim}
    shape = kept if keepdim else [size for d, size in enumerate(input.shape) if d not in reduced]
    return input.new_empty(shape), input.new_empty(input.shape if with_grad else (0,))


def _entropy_setup(ctx, inputs, output):
    ctx.kept_shape = _kept_shape(inputs[0].shape, inputs[1])
    ctx.save_for_backward(output[1])


def _entropy_backward(ctx, grad_entropy, grad_of_grad):
    (grad,) = ctx.saved_tensors
    return grad * grad_entropy.reshape(ctx.kept_shape), None, None, None


_entropy.register_autograd(_entropy_backward, setup_context=_entropy_setup)


def entropy_with_logits(input, dim, keepdim):
    return _entropy(input, None if dim is None else list(dim), keepdim, _wants_grad(input))[0]


# --- perplexity ------------------------------------------------------------------------------------------------

@torch.library.custom_op("logitloss::perplexity", mutates_args=())
def _perplexity(input: Tensor, target: Tensor, weight: Optional[Tensor], ignore_index: int,
                with_grad: bool) -> tuple[Tensor, Tensor]:
    from ._entropy import _perplexity as eager  # (the eager module imports this one)

    value, grad = eager(input, target, weight, ignore_index, with_grad)
    return value, grad if grad is not None else _no_grad(input)


@_perplexity.register_fake
def _(input, target, weight, ignore_index, with_grad):
    dtype = input.dtype if not target.is_floating_point() else torch.promote_types(input.dtype, target.dtype)
    return input.new_empty((), dtype=dtype), input.new_empty(input.shape if with_grad else (0,))


def _perplexity_setup(ctx, inputs, output):
    ctx.save_for_backward(output[1])


def _perplexity_backward(ctx, grad_value, grad_of_grad):
    (grad,) = ctx.saved_tensors
    return grad * grad_value, None, None, None, None


_perplexity.register_autograd(_perplexity_backward, setup_context=_perplexity_setup)


def perplexity(input, target, weight, ignore_index):
    _refuse_target_grad(target, "perplexity")
    return _perplexity(input, target, weight, ignore_index, _wants_grad(input))[0]


# --- contrastive_loss ------------------------------------------------------------------------------------------

@torch.library.custom_op("logitloss::contrastive_loss", mutates_args=())
def _contrastive(logits: Tensor, target: Optional[Tensor], reduction: str, symmetric: bool,
                 label_smoothing: float) -> Tensor:
    return tensor(_numpy_contrastive_loss(_array(logits), _array(target), reduction, symmetric=symmetric,
                                          label_smoothing=label_smoothing))


@_contrastive.register_fake
def _(logits, target, reduction, symmetric, label_smoothing):
    return logits.new_empty(logits.shape[:-1] if reduction == "none" else ())


@torch.library.custom_op("logitloss::contrastive_loss_backward", mutates_args=())
def _contrastive_backward(grad_loss: Tensor, logits: Tensor, target: Optional[Tensor], reduction: str,
                          symmetric: bool, label_smoothing: float) -> Tensor:
    from ._contrastive import _per_row_grad  # (the eager module imports this one)

    upstream = _array(grad_loss).astype(np.float64)
    if reduction != "none":  # every row's share of a scalar upstream gradient
        rows = int(np.prod(logits.shape[:-1]))
        upstream = np.full(logits.shape[:-1], upstream / rows if reduction == "mean" and rows else upstream)
    return tensor(_per_row_grad(upstream, _array(logits), _array(target), symmetric, label_smoothing))


_contrastive_backward.register_fake(lambda grad_loss, logits, target, reduction, symmetric, label_smoothing:
                                    torch.empty_like(logits))


def _contrastive_setup(ctx, inputs, output):
    ctx.options = inputs[2:]
    ctx.save_for_backward(inputs[0], inputs[1])


def _contrastive_grad(ctx, grad_loss):
    logits, target = ctx.saved_tensors
    return _contrastive_backward(grad_loss, logits, target, *ctx.options), None, None, None, None


_contrastive.register_autograd(_contrastive_grad, setup_context=_contrastive_setup)


def contrastive_loss(logits, target, reduction, symmetric, label_smoothing):
    return _contrastive(logits, target, reduction, symmetric, label_smoothing)
