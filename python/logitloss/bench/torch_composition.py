"""The torch side of the loss rows: torch imported when it is there (or the note saying why not), and a
provider that times a torch composition's forward and ``.backward()`` on a fresh leaf tensor viewing the
row's NumPy logits, the way a torch user computes the loss and its gradient."""

from __future__ import annotations

import importlib
from typing import Any, Callable

import numpy as np

from .harness import Provider

__all__ = ["import_torch", "autograd_provider"]


def import_torch() -> tuple[Any, list[str]]:
    """``(torch, [])``, or ``(None, [note])`` when torch cannot be imported (its providers are skipped)."""
    try:
        return importlib.import_module("torch"), []
    except ImportError as error:
        return None, [f"torch: not importable ({error})"]


def autograd_provider(torch: Any, x: np.ndarray, loss_of: Callable[[Any], Any], name: str = "torch",
                      checked: bool = False) -> Provider:
    """Times ``loss = loss_of(leaf)`` and its backward (of the sum when the loss is not a scalar), where
    ``leaf`` is ``torch.from_numpy(x)`` requiring grad; the call returns ``(loss, leaf.grad)``."""

    def forward_backward() -> Any:
        leaf = torch.from_numpy(x).requires_grad_()
        loss = loss_of(leaf)
        (loss if loss.ndim == 0 else loss.sum()).backward()
        return loss.detach(), leaf.grad

    return Provider(name, forward_backward, checked=checked)
