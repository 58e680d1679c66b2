"""``softmax``, ``log_softmax`` and ``logsumexp`` for torch tensors, as autograd Functions.

The forward runs the kernel on the tensor's memory and saves its result; the backward is the kernels'
``*_backward`` on the upstream gradient (``softmax_backward(g, y)``, ``log_softmax_backward(g, o)``,
``logsumexp_backward(g, x, result=r)``), one fused pass each.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import _core
from . import _custom_ops
from ._bfloat16 import bfloat16_array, bfloat16_tensor
from ._tensors import array, check_cpu, once_differentiable_guard, reduction_operand, tensor

__all__ = ["log_softmax", "logsumexp", "softmax"]


class NormalizedFunction(torch.autograd.Function):
    """softmax / log_softmax over one dimension: the forward saves the kernel's output, the backward is the
    matching ``*_backward`` kernel on it. Subclasses name the function and its two kernels."""

    name: str  # and the staticmethods kernel(x, dim, out), backward_kernel(grad, output, dim)

    @staticmethod
    def forward(ctx, input, dim):
        function = ctx._forward_cls  # the subclass applied (autograd's node knows it)
        output = tensor(function.kernel(input.detach().numpy(), dim, None))
        ctx.save_for_backward(output)
        ctx.dim = dim
        return output

    @staticmethod
    def backward(ctx, grad_output):
        function = ctx._forward_cls
        once_differentiable_guard(function.name)
        (output,) = ctx.saved_tensors
        return tensor(function.backward_kernel(array(grad_output), array(output), ctx.dim)), None


class SoftmaxFunction(NormalizedFunction):
    """``softmax`` over one dimension; the backward is ``y * (g - sum(g * y))``."""

    name = "softmax"
    kernel = staticmethod(_core.softmax)
    backward_kernel = staticmethod(_core.softmax_backward)


class LogSoftmaxFunction(NormalizedFunction):
    """``log_softmax`` over one dimension; the backward is ``g - exp(o) * sum(g)``."""

    name = "log_softmax"
    kernel = staticmethod(_core.log_softmax)
    backward_kernel = staticmethod(_core.log_softmax_backward)


_FUNCTIONS = {function.name: function for function in (SoftmaxFunction, LogSoftmaxFunction)}


class LogSumExpFunction(torch.autograd.Function):
    """``logsumexp`` over the dimensions ``dim``; the backward is ``g * exp(x - result)``."""

    @staticmethod
    def forward(ctx, input, dim, keepdim):
        result = tensor(_core.logsumexp(input.detach().numpy(), dim, None, keepdim, False, False))
        ctx.save_for_backward(input, result)
        ctx.dim, ctx.keepdim = dim, keepdim
        return result

    @staticmethod
    def backward(ctx, grad_output):
        once_differentiable_guard("logsumexp")
        input, result = ctx.saved_tensors
        grad = _core.logsumexp_backward(array(grad_output), array(input), ctx.dim, None, ctx.keepdim, array(result))
        return tensor(grad), None, None


def _normalized(name: str, input: torch.Tensor, dim: int | None, dtype: torch.dtype | None):
    """softmax / log_softmax: torch's implicit dim (with its warning) and ``dtype=`` cast, then the kernel."""
    if not input.is_cpu or input.layout is not torch.strided:
        check_cpu(input, "input")
    if dim is None:
        dim = F._get_softmax_dim(name, input.dim(), 4)
    if dtype is not None:
        input = input.to(dtype)
    if input.dtype is torch.bfloat16:
        # Without a graph the kernels read the tensor's memory in place; with one, through a float32 copy.
        view = None if input.requires_grad and torch.is_grad_enabled() else bfloat16_array(input)
        if view is None or torch.compiler.is_compiling():
            return _normalized(name, input.float(), dim, None).to(torch.bfloat16)
        return bfloat16_tensor((_core.softmax if name == "softmax" else _core.log_softmax)(view, dim, None))
    if torch.compiler.is_compiling():
        return getattr(_custom_ops, name)(input, dim)
    function = _FUNCTIONS[name]  # looked up past the compiled branch: Dynamo fails on a Function class argument
    if input.requires_grad and torch.is_grad_enabled():
        return function.apply(input, dim)
    return tensor(function.kernel(input.detach().numpy(), dim, None))


def softmax(input: torch.Tensor, dim: int | None = None, _stacklevel: int = 3,
            dtype: torch.dtype | None = None) -> torch.Tensor:
    """``torch.nn.functional.softmax`` computed by logitloss's kernel, differentiable once.

    ``dim=None`` picks torch's implicit dimension with torch's deprecation warning; ``dtype=`` casts the
    input first, as torch does. bfloat16 goes through a float32 copy.

    Examples
    --------
    >>> import torch, logitloss.torch
    >>> logitloss.torch.softmax(torch.tensor([[0.0, 0.0], [0.0, 1e4]]), dim=1)
    tensor([[0.5000, 0.5000],
            [0.0000, 1.0000]])
    """
    return _normalized("softmax", input, dim, dtype)


def log_softmax(input: torch.Tensor, dim: int | None = None, _stacklevel: int = 3,
                dtype: torch.dtype | None = None) -> torch.Tensor:
    """``torch.nn.functional.log_softmax`` computed by logitloss's kernel, differentiable once; tiny
    results keep their relative precision (``[0, -40]``: -4.25e-18 where torch gives 0).

    Examples
    --------
    >>> import torch, logitloss.torch
    >>> logitloss.torch.log_softmax(torch.tensor([0.0, -40.0], dtype=torch.float64), dim=0)[0].item()
    -4.248354255291589e-18
    """
    return _normalized("log_softmax", input, dim, dtype)


def logsumexp(input: torch.Tensor, dim: int | tuple[int, ...] | list[int], keepdim: bool = False) -> torch.Tensor:
    """``torch.logsumexp`` computed by logitloss's kernel, differentiable once.

    Integer and bool inputs compute in torch's default floating dtype, as torch's do; bfloat16 values are
    read in place (with ml_dtypes installed), bfloat16 with a graph goes through a float32 copy.

    Examples
    --------
    >>> import torch, logitloss.torch
    >>> logitloss.torch.logsumexp(torch.tensor([0.0, -40.0], dtype=torch.float64), dim=0).item()
    4.248354255291589e-18
    """
    input, dim = reduction_operand(input, dim)
    if input.dtype is torch.bfloat16:
        # Values alone: the kernels read the tensor's memory in place; with a graph, through a float32 copy.
        view = None if input.requires_grad and torch.is_grad_enabled() else bfloat16_array(input)
        if view is None or torch.compiler.is_compiling():
            return logsumexp(input.float(), dim, keepdim).to(torch.bfloat16)
        return bfloat16_tensor(_core.logsumexp(view, dim, None, keepdim, False, False))
    if torch.compiler.is_compiling():
        return _custom_ops.logsumexp(input, dim, keepdim)
    if input.requires_grad and torch.is_grad_enabled():
        return LogSumExpFunction.apply(input, dim, keepdim)
    return tensor(_core.logsumexp(input.detach().numpy(), dim, None, keepdim, False, False))
