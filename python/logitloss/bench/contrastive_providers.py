"""Providers of the contrastive (CLIP) row: a square similarity matrix x (N, N), positives on the diagonal,
forward + backward of the symmetric loss, float32, 1 thread.

- ``logitloss``: ``contrastive_loss(x, return_grad=True)`` (a new gradient each call);
- ``logitloss 2 x cross_entropy``: the two directions' fused passes alone (rows, then the columns as the
  class-axis-1 layout), each into its own preallocated gradient: the floor the combined call builds on;
- ``torch``: ``(F.cross_entropy(X, t) + F.cross_entropy(X.T, t)) / 2`` and ``.backward()``, X requiring grad.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .harness import Provider
from .torch_composition import autograd_provider, import_torch

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
    torch, notes = import_torch()
    if torch is None:
        return providers, notes
    functional = torch.nn.functional
    labels = torch.from_numpy(target)
    providers.append(autograd_provider(
        torch, x, lambda logits: (functional.cross_entropy(logits, labels) + functional.cross_entropy(logits.T, labels)) / 2))
    return providers, notes
