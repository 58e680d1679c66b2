"""``linear_cross_entropy`` for torch tensors: the classifier head and its loss chunk by chunk, never the
N x V logits, as an autograd Function; and ``LinearCrossEntropyLoss``, torch's module running it.

'mean' and 'sum': the forward computes the loss and the three gradients in one chunked pass
(``logitloss.linear_cross_entropy(..., return_grad=True)``) and the backward scales them by the scalar
upstream gradient. 'none': the upstream gradient differs per row, so the forward computes the losses only
and the backward makes a second chunked pass with it (logits, ``cross_entropy_backward`` of the chunk with
its rows' upstream gradients, the three products).
"""

from __future__ import annotations

import numpy as np
import torch

from .. import _core
from .._blas_threads import blas_threads
from .._linear_cross_entropy import CHUNK_BYTES, MIN_CHUNK_ROWS, linear_cross_entropy as _numpy_linear_cross_entropy
from ._tensors import array, check_cpu, check_no_grad, once_differentiable_guard, optional_array, tensor, widened

__all__ = ["LinearCrossEntropyLoss", "linear_cross_entropy"]


class LinearCrossEntropyFunction(torch.autograd.Function):
    """The Function behind :func:`linear_cross_entropy`."""

    @staticmethod
    def forward(ctx, input, linear_weight, linear_bias, target, weight, ignore_index, reduction, label_smoothing):
        arguments = (array(input), array(linear_weight), array(target))
        options = dict(linear_bias=optional_array(linear_bias, "linear_bias"), weight=optional_array(weight, "weight"),
                       ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing)
        ctx.grads = None
        if reduction != "none" and any(ctx.needs_input_grad[:3]):
            result = _numpy_linear_cross_entropy(*arguments, return_grad=True, **options)
            loss = result.loss
            ctx.grads = [None if grad is None else tensor(grad) for grad in result[1:]]
        else:
            loss = _numpy_linear_cross_entropy(*arguments, **options)
        ctx.save_for_backward(input, linear_weight, linear_bias, target, weight)
        ctx.options = options
        return tensor(loss)

    @staticmethod
    def backward(ctx, grad_output):
        once_differentiable_guard("linear_cross_entropy")
        input, linear_weight, linear_bias, target, weight = ctx.saved_tensors
        grads, ctx.grads = ctx.grads, None  # handed over once: autograd may accumulate into them
        if grads is None and ctx.options["reduction"] == "none":
            grads = [None if grad is None else tensor(grad) for grad in _per_row_gradients(
                array(grad_output), array(input), array(linear_weight), array(target), ctx.options)]
        elif grads is None:  # a second backward through a retained graph
            grads = [None if grad is None else tensor(grad) for grad in _numpy_linear_cross_entropy(
                array(input), array(linear_weight), array(target), return_grad=True, **ctx.options)[1:]]
        if ctx.options["reduction"] != "none" and grad_output.item() != 1.0:
            grads = [None if grad is None else grad.mul_(grad_output) for grad in grads]
        grad_input, grad_weight, grad_bias = (
            None if grad is None or not needed else grad.to(value.dtype)
            for grad, needed, value in zip(grads, ctx.needs_input_grad[:3], (input, linear_weight, linear_bias)))
        return grad_input.reshape(input.shape) if grad_input is not None else None, grad_weight, grad_bias, \
            None, None, None, None, None


def _per_row_gradients(upstream, x, w, target, options):
    """Gradients of ``sum(upstream * losses)``: per chunk of rows the logits, the kernel's backward with the
    rows' upstream gradients, then ``G @ W``, ``G.T @ X`` and ``G.sum(0)`` (float32 for float16 inputs)."""
    bias = options["linear_bias"]
    compute = np.result_type(np.float32, x, w, *(() if bias is None else (bias,)))
    classes, features = w.shape
    x = x.reshape(-1, features)
    rows = x.shape[0]
    target, upstream = target.reshape(rows), np.broadcast_to(upstream, target.shape).reshape(rows)
    w = w.astype(compute, copy=False)
    weight = options["weight"]
    grad_input = np.empty((rows, features), compute)
    grad_weight = np.zeros((classes, features), compute)
    grad_bias = None if bias is None else np.zeros(classes, compute)
    chunk = max(MIN_CHUNK_ROWS, CHUNK_BYTES // (classes * compute.itemsize))
    with blas_threads():
        for start in range(0, rows, chunk):
            stop = min(start + chunk, rows)
            x_chunk = x[start:stop].astype(compute, copy=False)
            logits = x_chunk @ w.T
            if bias is not None:
                logits += bias
            grad = _core.cross_entropy_backward(upstream[start:stop].astype(compute), logits, target[start:stop],
                                                None if weight is None else weight.astype(compute, copy=False),
                                                options["ignore_index"], "none", options["label_smoothing"],
                                                1.0, None, 0.0)
            np.matmul(grad, w, out=grad_input[start:stop])
            grad_weight += grad.T @ x_chunk
            if grad_bias is not None:
                grad_bias += grad.sum(axis=0)
    return grad_input, grad_weight, grad_bias


def linear_cross_entropy(
    input: torch.Tensor,
    linear_weight: torch.Tensor,
    target: torch.Tensor,
    *,
    linear_bias: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    options: object | None = None,
) -> torch.Tensor:
    """``torch.nn.functional.linear_cross_entropy`` computed by ``logitloss.linear_cross_entropy`` (chunks of
    rows, never the N x V logits), differentiable once with respect to ``input``, ``linear_weight`` and
    ``linear_bias``.

    Class-index targets only (probability targets raise ``ValueError``); ``ignore_index=None`` means -100
    as in torch; ``options`` (torch's chunking strategy) is accepted and not used: logitloss always chunks.
    bfloat16 goes through float32 copies.

    Examples
    --------
    >>> import torch, logitloss.torch
    >>> hidden = torch.randn(6, 4, requires_grad=True)
    >>> head = torch.randn(10, 4, requires_grad=True)
    >>> loss = logitloss.torch.linear_cross_entropy(hidden, head, torch.tensor([1, 2, 3, 4, 5, 6]))
    >>> loss.backward()
    >>> hidden.grad.shape, head.grad.shape
    (torch.Size([6, 4]), torch.Size([10, 4]))
    """
    for value, name in ((input, "input"), (linear_weight, "linear_weight"), (target, "target"),
                        (linear_bias, "linear_bias"), (weight, "weight")):
        if value is not None:
            check_cpu(value, name)
    check_no_grad(weight, "weight", "linear_cross_entropy")
    if target.is_floating_point():
        raise ValueError("logitloss.torch.linear_cross_entropy takes class-index targets only (an integer tensor "
                         "of the input's leading shape); use torch's for probability targets")
    ignore_index = -100 if ignore_index is None else ignore_index
    if torch.bfloat16 in (input.dtype, linear_weight.dtype):
        loss = linear_cross_entropy(widened(input), widened(linear_weight), target, linear_bias=widened(linear_bias),
                                    weight=widened(weight), reduction=reduction, ignore_index=ignore_index,
                                    label_smoothing=label_smoothing)
        return loss.to(torch.bfloat16)
    return LinearCrossEntropyFunction.apply(input, linear_weight, linear_bias, target, weight, ignore_index,
                                            reduction, label_smoothing)


class LinearCrossEntropyLoss(torch.nn.LinearCrossEntropyLoss):
    """``torch.nn.LinearCrossEntropyLoss`` (same constructor; ``out_features=()`` only) computed by
    :func:`linear_cross_entropy`.

    Examples
    --------
    >>> import torch, logitloss.torch
    >>> criterion = logitloss.torch.LinearCrossEntropyLoss(4, 10, bias=True)
    >>> loss = criterion(torch.randn(6, 4), torch.tensor([1, 2, 3, 4, 5, 6]))
    >>> loss.backward()
    >>> criterion.linear.weight.grad.shape, criterion.linear.bias.grad.shape
    (torch.Size([10, 4]), torch.Size([10]))
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if tuple(self.out_features) != ():
            raise ValueError(f"logitloss.torch.LinearCrossEntropyLoss takes out_features=() only (logits of shape "
                             f"(N, C)), got {self.out_features}")

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return linear_cross_entropy(input, self.linear.weight, target, linear_bias=self.linear.bias,
                                    weight=self.weight, reduction=self.reduction, ignore_index=self.ignore_index,
                                    label_smoothing=self.label_smoothing)
