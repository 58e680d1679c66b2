"""``nn.Module`` losses: torch's classes with their constructors, buffers and ``extra_repr``, whose
``forward`` runs logitloss's kernels (``isinstance(loss, torch.nn.CrossEntropyLoss)`` stays true)."""

from __future__ import annotations

import torch

from ._binary_cross_entropy import binary_cross_entropy_with_logits
from ._cross_entropy import cross_entropy

__all__ = ["BCEWithLogitsLoss", "CrossEntropyLoss"]


class CrossEntropyLoss(torch.nn.CrossEntropyLoss):
    """``torch.nn.CrossEntropyLoss`` (same arguments) computed by :func:`logitloss.torch.cross_entropy`.

    Examples
    --------
    >>> import torch, logitloss.torch
    >>> criterion = logitloss.torch.CrossEntropyLoss(label_smoothing=0.1)
    >>> logits = torch.zeros(4, 3, requires_grad=True)
    >>> loss = criterion(logits, torch.tensor([0, 1, 2, 0]))
    >>> loss.backward()
    >>> round(loss.item(), 6)
    1.098612
    """

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                             reduction=self.reduction, label_smoothing=self.label_smoothing)


class BCEWithLogitsLoss(torch.nn.BCEWithLogitsLoss):
    """``torch.nn.BCEWithLogitsLoss`` (same arguments) computed by
    :func:`logitloss.torch.binary_cross_entropy_with_logits`.

    Examples
    --------
    >>> import torch, logitloss.torch
    >>> criterion = logitloss.torch.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0]))
    >>> round(criterion(torch.zeros(2, 1), torch.ones(2, 1)).item(), 6)
    1.386294
    """

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return binary_cross_entropy_with_logits(input, target, self.weight, pos_weight=self.pos_weight,
                                                reduction=self.reduction)
