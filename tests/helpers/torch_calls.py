"""torch's losses and autograd gradients, as NumPy arrays, for the parity tests (cached by content: the same
for every ISA)."""

from __future__ import annotations

import numpy as np

from logitloss.testing.binary_cross_entropy import result_dtype
from logitloss.testing.cache import cached, content_key
from logitloss.testing.cross_entropy import is_probability_target


def torch_cross_entropy(
    torch, input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0, grad_output=None
):
    """torch's loss and autograd gradient (of ``loss``, ``loss.sum()`` for 'none', or with
    ``grad_output``), as NumPy arrays (read-only; cached by content: the same for every ISA)."""
    key = content_key(
        "torch_cross_entropy",
        np.asarray(input),
        np.asarray(target),
        None if weight is None else np.asarray(weight),
        int(ignore_index),
        reduction,
        float(label_smoothing),
        None if grad_output is None else np.asarray(grad_output),
    )
    return cached(
        key,
        lambda: _torch_cross_entropy(
            torch, input, target, weight, ignore_index, reduction, label_smoothing, grad_output
        ),
    )


def _torch_cross_entropy(torch, input, target, weight, ignore_index, reduction, label_smoothing, grad_output):
    x = torch.from_numpy(np.array(input, copy=True)).requires_grad_(True)
    if is_probability_target(input, target):
        t = torch.from_numpy(np.array(target, copy=True))
    else:
        t = torch.from_numpy(np.asarray(target).astype(np.int64))
    w = None if weight is None else torch.from_numpy(np.array(weight, copy=True))
    loss = torch.nn.functional.cross_entropy(
        x, t, weight=w, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing
    )
    if grad_output is None:
        upstream = torch.ones_like(loss)
    else:
        upstream = torch.from_numpy(np.array(np.broadcast_to(grad_output, tuple(loss.shape)), dtype=input.dtype))
    loss.backward(upstream)
    return np.array(loss.detach().numpy(), copy=True), np.array(x.grad.numpy(), copy=True)


def _native(a):
    a = np.asarray(a)
    return np.array(a, dtype=a.dtype.newbyteorder("="), copy=True)


def torch_binary_cross_entropy(torch, input, target, weight=None, reduction="mean", pos_weight=None, grad_output=None):
    """torch's loss and autograd gradient (of ``loss``, ``loss.sum()`` for 'none', or with
    ``grad_output``), as NumPy arrays (read-only; cached by content: the same for every ISA).

    torch rejects integer and bool targets: they are given to it in the result dtype (exact)."""
    arrays = [None if a is None else np.asarray(a) for a in (input, target, weight, pos_weight, grad_output)]
    key = content_key("torch_bce", *arrays, reduction)
    return cached(key, lambda: _torch_on_one_thread(torch, *arrays, reduction))


def _torch_on_one_thread(torch, *args):
    """torch's pool competing with ours (and other jobs) for the cores makes a call on a tiny
    tensor ~20x slower; the results do not depend on the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _torch_binary_cross_entropy(torch, *args)
    finally:
        torch.set_num_threads(before)


def _torch_binary_cross_entropy(torch, input, target, weight, pos_weight, grad_output, reduction):
    x = torch.from_numpy(_native(input)).requires_grad_(True)
    if not np.issubdtype(target.dtype, np.floating):
        target = target.astype(result_dtype(input, target))
    t = torch.from_numpy(_native(target))
    w = None if weight is None else torch.from_numpy(_native(weight))
    pw = None if pos_weight is None else torch.from_numpy(_native(pos_weight))
    loss = torch.nn.functional.binary_cross_entropy_with_logits(x, t, weight=w, reduction=reduction, pos_weight=pw)
    if grad_output is None:
        upstream = torch.ones_like(loss)
    else:
        loss_dtype = loss.detach().numpy().dtype
        upstream = torch.from_numpy(
            np.array(np.broadcast_to(_native(grad_output), tuple(loss.shape)), dtype=loss_dtype)
        )
    loss.backward(upstream)
    return np.array(loss.detach().numpy(), copy=True), np.array(x.grad.numpy(), copy=True)
