"""``cross_entropy`` for torch tensors: the fused kernel as an autograd Function.

The forward computes the loss and, when the input requires grad, its gradient in the same pass over the
logits (as ``logitloss.cross_entropy(..., return_grad=True)``); the backward hands that gradient over,
scaled by the upstream gradient (no work at all for ``loss.backward()``, whose upstream gradient is 1).
A second backward through the same graph (``retain_graph=True``) recomputes it with
``cross_entropy_backward`` from the saved input.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import _reduction

from .. import _core
from . import _custom_ops
from ._bfloat16 import BFloat16CrossEntropy, bfloat16_array, bfloat16_cross_entropy_loss
from ._tensors import (array, autograd_apply, check_loss_operands, check_unchanged,
                       once_differentiable_guard, optional_array, tensor, widened)

__all__ = ["cross_entropy"]


class CrossEntropyFunction(torch.autograd.Function):
    """Loss of logits ``input`` against class indices or probabilities ``target``; the Function behind
    :func:`cross_entropy` in eager mode."""

    @staticmethod
    def forward(ctx, input, target, weight, options):
        # options: (ignore_index, reduction, label_smoothing, temperature, softcap, z_loss), one argument
        # (each one costs apply and backward)
        ignore_index, reduction, label_smoothing, temperature, softcap, z_loss = options
        x = input.numpy(force=True)
        y = target.numpy(force=True)
        w = None if weight is None else weight.numpy()
        if ctx.needs_input_grad[0]:
            loss, grad = _core.cross_entropy(x, y, w, ignore_index, reduction, label_smoothing, True, None,
                                             False, None, temperature, softcap, z_loss)
            ctx.grad = torch.from_numpy(grad)
        else:
            loss = _core.cross_entropy(x, y, w, ignore_index, reduction, label_smoothing, False, None,
                                      False, None, temperature, softcap, z_loss)
            ctx.grad = None
        # Kept as attributes, not save_for_backward (a per-call cost the small calls feel): only a second
        # backward or a target gradient reads them, after checking the input's version as autograd would.
        ctx.arguments = (input, target, weight, options, input._version)
        return tensor(loss)

    @staticmethod
    def backward(ctx, grad_output):
        once_differentiable_guard("cross_entropy")
        grad_input = grad_target = None
        if ctx.needs_input_grad[0]:
            grad_input, ctx.grad = ctx.grad, None  # handed over once: autograd may accumulate into it
            if grad_input is None:  # a second backward through a retained graph
                grad_input = tensor(_core.cross_entropy_backward(array(grad_output), *_arrays(ctx.arguments)))
            elif ctx.arguments[3][1] == "none" and grad_output.dim() > 0:
                grad_input.mul_(grad_output.unsqueeze(1))
            elif grad_output.item() != 1.0:
                grad_input.mul_(grad_output)
        if ctx.needs_input_grad[1]:
            input, _, weight, _, reduction, label_smoothing, temperature, softcap, _ = _arrays(ctx.arguments)
            grad_target = _probability_target_grad(grad_output, input, weight, reduction, label_smoothing,
                                                   temperature, softcap)
        return grad_input, grad_target, None, None


_apply = autograd_apply(CrossEntropyFunction)


def _arrays(arguments):
    """The forward's arguments as NumPy views (then the options, flat), once the input is checked unchanged
    since the forward."""
    input, target, weight, options, version = arguments
    check_unchanged(input, version, "cross_entropy")
    return (array(input), array(target), optional_array(weight, "weight"), *options)


def _transformed(input, temperature, softcap):
    """The logits the loss is taken of: ``softcap * tanh(input / softcap)`` (with a cap), over the temperature
    (float64 for the cap's tanh, rounded once to the input's dtype)."""
    if softcap is None and temperature == 1.0:
        return input
    z = input.astype(np.float64)
    if softcap is not None:
        z = softcap * np.tanh(z / softcap)
    return (z / temperature).astype(input.dtype)


def _probability_target_grad(grad_output, input, weight, reduction, label_smoothing, temperature, softcap):
    """d loss / d target for probability targets, torch's: ``-(1 - e) weight_c log_softmax(z)_c`` per
    position, ``z`` the transformed logits (z-loss does not depend on the target), times the upstream
    gradient (divided by the number of positions for 'mean')."""
    class_axis = 1 if input.ndim > 1 else 0
    log_probabilities = tensor(_core.log_softmax(_transformed(input, temperature, softcap), class_axis, None))
    grad = log_probabilities.mul_(-(1.0 - label_smoothing))
    if weight is not None:
        grad.mul_(torch.from_numpy(weight).reshape((-1,) + (1,) * (input.ndim - 1 - class_axis)))
    if reduction == "none" and input.ndim > 1:
        return grad.mul_(grad_output.unsqueeze(1))
    if reduction == "mean":
        grad_output = grad_output / (input.size // max(input.shape[class_axis], 1))
    return grad.mul_(grad_output)


def cross_entropy(
    input: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    temperature: float = 1.0,
    softcap: float | None = None,
    z_loss: float = 0.0,
) -> torch.Tensor:
    """``torch.nn.functional.cross_entropy`` computed by logitloss's fused kernel, differentiable once.

    Arguments, shapes, result dtype and semantics are torch's (class axis 1, index or probability
    targets, ``weight``, ``ignore_index``, reductions, ``label_smoothing``; ``size_average`` / ``reduce``
    are torch's deprecated spellings of ``reduction``). The loss is logitloss's (exact where torch rounds
    a tiny loss to 0, see ``logitloss.cross_entropy``); the gradient with respect to ``input`` is computed
    in the forward pass when ``input`` requires grad. Probability targets that require grad get torch's
    gradient. bfloat16 logits with class-index targets are read in place (with ml_dtypes installed; the
    gradient is bfloat16, rounded once), other bfloat16 tensors through float32 copies; the loss is returned
    as bfloat16.

    Keyword-only extras, not in torch (``logitloss.cross_entropy``'s): ``temperature`` (the loss of
    ``input / temperature``), ``softcap`` (logits capped as ``softcap * tanh(input / softcap)`` first) and
    ``z_loss`` (adds ``z_loss * logsumexp**2`` per kept position, weighted as the position); the gradient
    is the transformed loss's, from the same pass. Torch's composition is
    ``F.cross_entropy(softcap * torch.tanh(input / softcap) / temperature, ...)`` plus the z-loss term.

    Raises ``ValueError`` for tensors that are not on the CPU or not strided, for class weights that
    require grad, and the errors of ``logitloss.cross_entropy`` for bad arguments (``temperature``,
    ``softcap`` or ``z_loss`` out of range included); ``RuntimeError`` for a backward with
    ``create_graph=True`` through it.

    Examples
    --------
    >>> import torch, logitloss.torch
    >>> logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0]], requires_grad=True)
    >>> loss = logitloss.torch.cross_entropy(logits, torch.tensor([0, 1]))
    >>> loss.backward()
    >>> round(loss.item(), 6), logits.grad.shape
    (0.132384, torch.Size([2, 3]))
    """
    if size_average is not None or reduce is not None:
        reduction = _reduction.legacy_get_string(size_average, reduce)
    check_loss_operands("cross_entropy", input, target, (weight, "weight"))
    options = (ignore_index, reduction, label_smoothing, temperature, softcap, z_loss)
    if input.dtype is torch.bfloat16:
        return _bfloat16(input, target, weight, options)
    if torch.compiler.is_compiling():
        return _custom_ops.cross_entropy(input, target, weight, *options)
    if (input.requires_grad or target.requires_grad) and torch.is_grad_enabled():
        return _apply(input, target, weight, options)
    return tensor(_core.cross_entropy(input.numpy(force=True), target.numpy(force=True),
                                      None if weight is None else weight.numpy(), ignore_index, reduction,
                                      label_smoothing, False, None, False, None, temperature, softcap, z_loss))


def _bfloat16(input, target, weight, options):
    """bfloat16 logits: read in place by the kernels for class-index targets without logit options
    (BFloat16CrossEntropy); otherwise (probability targets, temperature / softcap / z_loss, no ml_dtypes,
    torch.compile) through a float32 copy of the input (and of bfloat16 targets and weights), the loss rounded
    once to bfloat16 and the gradient flowing back through the casts."""
    ignore_index, reduction, label_smoothing, temperature, softcap, z_loss = options
    plain = temperature == 1.0 and softcap is None and z_loss == 0.0
    if plain and not target.is_floating_point() and not torch.compiler.is_compiling() \
            and bfloat16_array(input) is not None:
        if input.requires_grad and torch.is_grad_enabled():
            return BFloat16CrossEntropy.apply(input, target, weight, (ignore_index, reduction, label_smoothing))
        return bfloat16_cross_entropy_loss(input, target, weight, (ignore_index, reduction, label_smoothing))
    loss = cross_entropy(input.float(), widened(target), widened(weight), ignore_index=ignore_index,
                         reduction=reduction, label_smoothing=label_smoothing, temperature=temperature,
                         softcap=softcap, z_loss=z_loss)
    return loss.to(torch.bfloat16)
