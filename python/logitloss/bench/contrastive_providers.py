"""Providers of the contrastive (CLIP) row: a square similarity matrix x (N, N), positives on the diagonal,
forward + backward of the symmetric loss, float32, 1 thread.

- ``logitloss``: ``contrastive_loss(x, return_grad=True)`` (a new gradient each call);
- ``logitloss 2 x cross_entropy``: the two directions' fused passes alone (rows, then the columns as the
  class-axis-1 layout), each into its own preallocated gradient: the floor the combined call builds on;
- ``torch``: ``(F.cross_entropy(X, t) + F.cross_entropy(X.T, t)) / 2`` and ``.backward()``, X requiring grad.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from .harness import Provider

__all__ = ["contrastive_providers"]


def contrastive_providers(x: np.ndarray) -> tuple[list[Provider], list[str]]:
    import logitloss

    target = np.arange(x.shape[0])
    row_grad, column_grad = np.empty_like(x), np.empty_like(x)

    def two_passes() -> Any:
        logitloss.cross_entropy(x, target, grad_out=row_grad)
        return logitloss.cross_entropy(x[None], target[None], grad_out=column_grad[None])

    providers = [Provider("logitloss", lambda: logitloss.contrastive_loss(x, return_grad=True), checked=False),
                 Provider("logitloss 2 x cross_entropy", two_passes, checked=False)]
    notes: list[str] = []
    try:
        torch = importlib.import_module("torch")
    except ImportError as error:
        return providers, [f"torch: not importable ({error})"]
    functional = torch.nn.functional
    labels = torch.from_numpy(target)

    def torch_clip() -> Any:
        logits = torch.from_numpy(x).requires_grad_()
        loss = (functional.cross_entropy(logits, labels) + functional.cross_entropy(logits.T, labels)) / 2
        loss.backward()
        return loss.item(), logits.grad

    providers.append(Provider("torch", torch_clip, checked=False))
    return providers, notes
