"""The kernels as ``torch.library`` custom ops (namespace ``logitloss``), for ``torch.compile``.

Eager calls never come here (the autograd Functions are leaner: no dispatcher); under compilation the
public functions call these ops instead, whose fake implementations give the compiler the result shapes
and dtypes without running a kernel, so a model using them compiles into one graph with the kernels as
opaque calls. The losses' ops return ``(loss, grad)``, the gradient computed in the forward pass when
asked for (an empty tensor otherwise), and their backward scales it by the upstream gradient.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .. import _core
from ._tensors import tensor

__all__ = ["binary_cross_entropy_with_logits", "cross_entropy", "log_softmax", "logsumexp", "softmax"]


def _array(value: Optional[Tensor]):
    return None if value is None else value.detach().numpy()


def _wants_grad(input: Tensor) -> bool:
    return input.requires_grad and torch.is_grad_enabled()


# --- cross_entropy ---------------------------------------------------------------------------------------------

@torch.library.custom_op("logitloss::cross_entropy", mutates_args=())
def _cross_entropy(input: Tensor, target: Tensor, weight: Optional[Tensor], ignore_index: int, reduction: str,
                   label_smoothing: float, temperature: float, softcap: Optional[float], z_loss: float,
                   with_grad: bool) -> tuple[Tensor, Tensor]:
    result = _core.cross_entropy(_array(input), _array(target), _array(weight), ignore_index, reduction,
                                 label_smoothing, with_grad, None, False, None, temperature, softcap, z_loss)
    if with_grad:
        return tensor(result[0]), tensor(result[1])
    return tensor(result), input.new_empty(0)


@_cross_entropy.register_fake
def _(input, target, weight, ignore_index, reduction, label_smoothing, temperature, softcap, z_loss, with_grad):
    shape = (input.shape[0], *input.shape[2:]) if reduction == "none" and input.dim() > 1 else ()
    dtype = input.dtype if not target.is_floating_point() else torch.promote_types(input.dtype, target.dtype)
    return input.new_empty(shape, dtype=dtype), input.new_empty(input.shape if with_grad else (0,))


def _cross_entropy_setup(ctx, inputs, output):
    ctx.per_position = inputs[4] == "none" and inputs[0].dim() > 1
    ctx.save_for_backward(output[1])


def _cross_entropy_backward(ctx, grad_loss, grad_of_grad):
    (grad,) = ctx.saved_tensors
    return (grad * (grad_loss.unsqueeze(1) if ctx.per_position else grad_loss),) + (None,) * 9


_cross_entropy.register_autograd(_cross_entropy_backward, setup_context=_cross_entropy_setup)


def _refuse_target_grad(target: Tensor, function: str) -> None:
    if target.requires_grad and torch.is_grad_enabled():
        raise ValueError(f"logitloss.torch.{function} under torch.compile does not differentiate its target: "
                         "pass `target.detach()`, or call it outside the compiled region")


def cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing, temperature, softcap, z_loss):
    _refuse_target_grad(target, "cross_entropy")
    return _cross_entropy(input, target, weight, ignore_index, reduction, float(label_smoothing), float(temperature),
                          None if softcap is None else float(softcap), float(z_loss), _wants_grad(input))[0]


# --- binary_cross_entropy_with_logits ---------------------------------------------------------------------------

@torch.library.custom_op("logitloss::binary_cross_entropy_with_logits", mutates_args=())
def _binary_cross_entropy(input: Tensor, target: Tensor, weight: Optional[Tensor], pos_weight: Optional[Tensor],
                          reduction: str, with_grad: bool) -> tuple[Tensor, Tensor]:
    result = _core.binary_cross_entropy_with_logits(_array(input), _array(target), _array(weight), reduction,
                                                    _array(pos_weight), with_grad, None, False, None)
    if with_grad:
        return tensor(result[0]), tensor(result[1]).to(input.dtype)
    return tensor(result), input.new_empty(0)


@_binary_cross_entropy.register_fake
def _(input, target, weight, pos_weight, reduction, with_grad):
    shape = input.shape if reduction == "none" else ()
    return (input.new_empty(shape, dtype=torch.promote_types(input.dtype, target.dtype)),
            input.new_empty(input.shape if with_grad else (0,)))


def _binary_cross_entropy_setup(ctx, inputs, output):
    ctx.save_for_backward(output[1])


def _binary_cross_entropy_backward(ctx, grad_loss, grad_of_grad):
    (grad,) = ctx.saved_tensors
    return grad * grad_loss, None, None, None, None, None


_binary_cross_entropy.register_autograd(_binary_cross_entropy_backward, setup_context=_binary_cross_entropy_setup)


def binary_cross_entropy_with_logits(input, target, weight, pos_weight, reduction):
    _refuse_target_grad(target, "binary_cross_entropy_with_logits")
    return _binary_cross_entropy(input, target, weight, pos_weight, reduction, _wants_grad(input))[0]


# --- softmax, log_softmax, logsumexp ----------------------------------------------------------------------------

@torch.library.custom_op("logitloss::softmax", mutates_args=())
def _softmax(input: Tensor, dim: int) -> Tensor:
    return tensor(_core.softmax(_array(input), dim, None))


@torch.library.custom_op("logitloss::softmax_backward", mutates_args=())
def _softmax_backward(grad_output: Tensor, output: Tensor, dim: int) -> Tensor:
    return tensor(_core.softmax_backward(_array(grad_output), _array(output), dim))


@torch.library.custom_op("logitloss::log_softmax", mutates_args=())
def _log_softmax(input: Tensor, dim: int) -> Tensor:
    return tensor(_core.log_softmax(_array(input), dim, None))


@torch.library.custom_op("logitloss::log_softmax_backward", mutates_args=())
def _log_softmax_backward(grad_output: Tensor, output: Tensor, dim: int) -> Tensor:
    return tensor(_core.log_softmax_backward(_array(grad_output), _array(output), dim))


@torch.library.custom_op("logitloss::logsumexp", mutates_args=())
def _logsumexp(input: Tensor, dim: list[int], keepdim: bool) -> Tensor:
    return tensor(_core.logsumexp(_array(input), tuple(dim), None, keepdim, False, False))


@torch.library.custom_op("logitloss::logsumexp_backward", mutates_args=())
def _logsumexp_backward(grad_output: Tensor, input: Tensor, result: Tensor, dim: list[int], keepdim: bool) -> Tensor:
    return tensor(_core.logsumexp_backward(_array(grad_output), _array(input), tuple(dim), None, keepdim,
                                           _array(result)))


for _op in (_softmax, _log_softmax):
    _op.register_fake(lambda input, dim: torch.empty_like(input))
for _op in (_softmax_backward, _log_softmax_backward):
    _op.register_fake(lambda grad_output, output, dim: torch.empty_like(output))
_logsumexp.register_fake(lambda input, dim, keepdim: torch.empty_like(torch.amax(input, dim, keepdim)))
_logsumexp_backward.register_fake(lambda grad_output, input, result, dim, keepdim: torch.empty_like(input))


def _save_output(ctx, inputs, output):
    ctx.dim = inputs[1]
    ctx.save_for_backward(output)


_softmax.register_autograd(lambda ctx, grad: (_softmax_backward(grad, ctx.saved_tensors[0], ctx.dim), None),
                           setup_context=_save_output)
_log_softmax.register_autograd(lambda ctx, grad: (_log_softmax_backward(grad, ctx.saved_tensors[0], ctx.dim), None),
                               setup_context=_save_output)


def _logsumexp_setup(ctx, inputs, output):
    ctx.dim, ctx.keepdim = inputs[1], inputs[2]
    ctx.save_for_backward(inputs[0], output)


def _logsumexp_grad(ctx, grad):
    input, result = ctx.saved_tensors
    return _logsumexp_backward(grad, input, result, ctx.dim, ctx.keepdim), None, None


_logsumexp.register_autograd(_logsumexp_grad, setup_context=_logsumexp_setup)


def softmax(input, dim):
    return _softmax(input, dim)


def log_softmax(input, dim):
    return _log_softmax(input, dim)


def logsumexp(input, dim, keepdim):
    dims = [dim] if isinstance(dim, int) else list(dim)
    return _logsumexp(input, dims, keepdim)
