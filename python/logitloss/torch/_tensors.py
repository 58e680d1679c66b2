"""Torch tensors <-> the NumPy views the kernels read, with the adapter's argument rules.

A CPU tensor of the strided layout is handed to the kernels as a NumPy view of its own memory (any
strides, no copy); results come back as tensors sharing the kernels' NumPy outputs. Tensors anywhere
else (CUDA, MPS, meta, sparse) are refused rather than copied behind the caller's back.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["array", "autograd_apply", "check_cpu", "check_loss_operands", "check_no_grad", "check_unchanged",
           "direct_apply", "once_differentiable_guard", "optional_array", "reduction_operand",
           "refuse_grad", "scaled_by_upstream", "tensor", "widened"]

_PLACES = "logitloss runs on the CPU; "


def check_cpu(value: torch.Tensor, name: str) -> None:
    """``ValueError`` for a tensor the kernels cannot read in place: not on the CPU, or not strided."""
    if not value.is_cpu:
        raise ValueError(f"{_PLACES}`{name}` is on {value.device}: move it with `.cpu()` (a copy you choose to make) "
                         "or call torch's own function on that device")
    if value.layout is not torch.strided:
        raise ValueError(f"`{name}` has layout {value.layout}: logitloss reads strided (dense) tensors; "
                         "convert with `.to_dense()`")


def check_loss_operands(function: str, input: torch.Tensor, target: torch.Tensor, *constants) -> None:
    """The losses' prologue: `input` and `target` on the CPU and strided (the common case tested first: two
    attribute reads each), and each ``(value, name)`` of `constants` (class weights, pos_weight), when given,
    on the CPU and not requiring grad (:func:`check_no_grad`)."""
    if not input.is_cpu or input.layout is not torch.strided:
        check_cpu(input, "input")
    if not target.is_cpu or target.layout is not torch.strided:
        check_cpu(target, "target")
    for value, name in constants:
        if value is not None:
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"`{name}` must be a torch.Tensor or None, got {type(value).__name__}")
            check_cpu(value, name)
            check_no_grad(value, name, function)


def reduction_operand(input: torch.Tensor, dim):
    """A reduction's input and dimensions as torch takes them: the input a CPU strided tensor, integer and bool
    inputs in torch's default floating dtype, a list of dimensions as a tuple."""
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"`input` must be a torch.Tensor, got {type(input).__name__}")
    if not input.is_cpu or input.layout is not torch.strided:
        check_cpu(input, "input")
    if isinstance(dim, list):
        dim = tuple(dim)
    if not input.is_floating_point():
        input = input.to(torch.get_default_dtype())
    return input, dim


def array(value: torch.Tensor) -> np.ndarray:
    """A NumPy view of a CPU tensor's memory (its strides as they are; detached: the view carries no graph).

    ``numpy(force=True)`` is ``detach().cpu().resolve_conj().resolve_neg().numpy()``: on a checked CPU tensor
    of a real dtype every step but the view is a no-op, and it is one call instead of two."""
    return value.numpy(force=True)


def optional_array(value: torch.Tensor | None, name: str) -> np.ndarray | None:
    """:func:`array` of an optional tensor argument, checked by :func:`check_cpu`; None stays None."""
    if value is None:
        return None
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor or None, got {type(value).__name__}")
    check_cpu(value, name)
    return value.numpy(force=True)


def tensor(result) -> torch.Tensor:
    """A tensor sharing the memory of a kernel result (a NumPy array, or a NumPy scalar as a 0-d tensor)."""
    if type(result) is not np.ndarray:
        result = np.asarray(result)
    return torch.from_numpy(result)


def check_no_grad(value: torch.Tensor | None, name: str, function: str) -> None:
    """Refuse an argument torch does not differentiate (class weights, pos_weight): a clear error, not a zero."""
    if value is not None and value.requires_grad:
        raise ValueError(f"logitloss.torch.{function} is not differentiable with respect to `{name}` (nor is "
                         f"torch's): pass `{name}.detach()`")


def once_differentiable_guard(function: str) -> None:
    """Raise in a backward that runs with grad mode on, that is under ``create_graph=True``.

    The kernels' gradients are not themselves differentiable; ``once_differentiable`` alone stays silent
    when the upstream gradient does not require grad (``grad(loss, x, create_graph=True)`` of a scalar loss)
    and a later backward through the result would silently miss the second-order term.
    """
    if torch.is_grad_enabled():
        raise RuntimeError(f"logitloss.torch.{function} is differentiable once: its backward cannot build a graph "
                           "(create_graph=True, double backward, gradient penalties through it); use torch's own "
                           "function where second derivatives are needed")


def widened(value: torch.Tensor | None) -> torch.Tensor | None:
    """A bfloat16 tensor as a float32 copy (autograd-tracked), anything else as it is: the kernels read
    float16, float32 and float64, not yet bfloat16."""
    if value is not None and value.dtype is torch.bfloat16:
        return value.float()
    return value


def direct_apply(function: type[torch.autograd.Function]):
    """``function.apply`` without ``Function.apply``'s Python prologue (argument binding for setup_context,
    unwrapping of dead functorch wrappers: about 3 us of a 30 us training step at (32, 10)); the caller
    takes ``function.apply`` instead while functorch transforms are active."""
    return torch._C._FunctionBase.__dict__["apply"].__get__(None, function)


def autograd_apply(function: type[torch.autograd.Function]):
    """``function.apply`` for eager calls: :func:`direct_apply`'s, or ``Function.apply`` while functorch
    transforms (``torch.func``) are active, which need its prologue.

    Also the backward node's ``apply`` becomes the Function's ``backward`` itself: ``BackwardCFunction.apply``
    only picks ``backward`` (or ``vjp``, which these Functions do not define) in two Python frames, about
    0.5 us of a 30 us training step at (32, 10)."""
    function._backward_cls.apply = function.backward
    direct = direct_apply(function)
    transforms_active = torch._C._are_functorch_transforms_active

    def apply(*arguments):
        return function.apply(*arguments) if transforms_active() else direct(*arguments)

    return apply


def check_unchanged(value: torch.Tensor, version: int, function: str) -> None:
    """Autograd's check on a saved tensor, for the tensors a Function keeps as attributes: modified in place
    since the forward, its backward would differentiate at the wrong point."""
    if value._version != version:
        raise RuntimeError(f"logitloss.torch.{function}: an argument needed for its backward was modified in place "
                           f"after the forward (version {version}, now {value._version})")


def scaled_by_upstream(grad: torch.Tensor, grad_output: torch.Tensor, shape=None) -> torch.Tensor:
    """A gradient computed in the forward pass (of the loss, or of ``loss.sum()`` for per-position losses),
    times the upstream gradient, in place: a scalar (nothing to do for 1), or per position `grad_output`
    viewed as `shape` (the loss's shape with the reduced dimensions kept as 1) to broadcast over them."""
    if shape is not None and grad_output.dim() > 0:
        return grad.mul_(grad_output.reshape(shape))
    if grad_output.item() != 1.0:
        grad.mul_(grad_output)
    return grad


def refuse_grad(value: torch.Tensor | None, name: str, function: str, reason: str) -> None:
    """Refuse an argument that requires grad where logitloss does not give its gradient (torch's composition
    would): a clear error, never a silent zero."""
    if value is not None and value.requires_grad and torch.is_grad_enabled():
        raise ValueError(f"logitloss.torch.{function} does not differentiate with respect to `{name}` ({reason}): "
                         f"pass `{name}.detach()`")
