"""bfloat16 tensors handed to the kernels without a copy: a NumPy view of the tensor's own memory with
``ml_dtypes.bfloat16`` as its dtype, which the kernels read in registers (``logsumexp`` values and
``cross_entropy`` with class-index targets). Without ml_dtypes (an optional dependency) the callers keep their
float32 copies; torch itself never needs it.
"""

from __future__ import annotations

import importlib

import numpy as np
import torch

from .. import _core
from ._tensors import once_differentiable_guard

__all__ = ["BFloat16CrossEntropy", "bfloat16_array", "bfloat16_cross_entropy_loss", "bfloat16_tensor"]


def _bfloat16_dtype() -> np.dtype | None:
    try:
        return np.dtype(importlib.import_module("ml_dtypes").bfloat16)
    except ImportError:
        return None


def bfloat16_array(value: torch.Tensor) -> np.ndarray | None:
    """A NumPy bfloat16 view of a bfloat16 CPU tensor's memory (strides kept, detached), or None without
    ml_dtypes."""
    dtype = _bfloat16_dtype()
    if dtype is None:
        return None
    return value.detach().view(torch.int16).numpy().view(dtype)


def bfloat16_tensor(result) -> torch.Tensor:
    """A bfloat16 tensor sharing the memory of a bfloat16 kernel result (an array, or a NumPy scalar)."""
    return torch.from_numpy(np.asarray(result).view(np.int16)).view(torch.bfloat16)


def _arguments(input, target, weight):
    return (bfloat16_array(input), target.numpy(force=True), None if weight is None else weight.detach().float().numpy())


def bfloat16_cross_entropy_loss(input, target, weight, options) -> torch.Tensor:
    """The loss alone (no graph) of bfloat16 logits against class indices, the logits read in place."""
    ignore_index, reduction, label_smoothing = options
    x, y, w = _arguments(input, target, weight)
    return bfloat16_tensor(_core.cross_entropy(x, y, w, ignore_index, reduction, label_smoothing, False, None,
                                               False, None, 1.0, None, 0.0))


class BFloat16CrossEntropy(torch.autograd.Function):
    """cross_entropy of bfloat16 logits against class indices, the logits read in place; the gradient (bfloat16,
    rounded once) computed in the forward pass when the input requires grad."""

    @staticmethod
    def forward(ctx, input, target, weight, options):
        ignore_index, reduction, label_smoothing = options
        x, y, w = _arguments(input, target, weight)
        loss, grad = _core.cross_entropy(x, y, w, ignore_index, reduction, label_smoothing, True, None,
                                         False, None, 1.0, None, 0.0)
        ctx.grad = bfloat16_tensor(grad)
        ctx.arguments = (x, y, w, ignore_index, reduction, label_smoothing)
        return bfloat16_tensor(loss)

    @staticmethod
    def backward(ctx, grad_output):
        once_differentiable_guard("cross_entropy")
        grad, ctx.grad = ctx.grad, None  # handed over once: autograd may accumulate into it
        if grad is None:  # a second backward through a retained graph
            upstream = grad_output.detach().float().numpy()
            grad = bfloat16_tensor(_core.cross_entropy_backward(upstream, *ctx.arguments, 1.0, None, 0.0))
            return grad, None, None, None
        if ctx.arguments[4] == "none" and grad_output.dim() > 0:
            grad.mul_(grad_output.unsqueeze(1))
        elif grad_output.item() != 1.0:
            grad.mul_(grad_output)
        return grad, None, None, None
