"""Providers of the entropy row: ``entropy_with_logits(x, return_grad=True)`` against torch's composition
``-(softmax(z) * log_softmax(z)).sum(-1)`` and ``.backward()`` on its sum."""

from __future__ import annotations

import importlib

import numpy as np

from .harness import Provider


def entropy_providers(x: np.ndarray) -> tuple[list[Provider], list[str]]:
    import logitloss

    providers = [
        Provider("logitloss", lambda: logitloss.entropy_with_logits(x, return_grad=True)),
        Provider("logitloss forward", lambda: logitloss.entropy_with_logits(x)),
    ]
    notes = []
    try:
        torch = importlib.import_module("torch")
    except ImportError as error:
        return providers, [f"torch: not importable ({error})"]

    def torch_entropy():
        z = torch.from_numpy(x).requires_grad_()
        entropy = -(torch.softmax(z, -1) * torch.log_softmax(z, -1)).sum(-1)
        entropy.sum().backward()
        return entropy.detach(), z.grad

    def torch_forward():
        with torch.no_grad():
            z = torch.from_numpy(x)
            return -(torch.softmax(z, -1) * torch.log_softmax(z, -1)).sum(-1)

    providers += [Provider("torch", torch_entropy), Provider("torch forward", torch_forward)]
    return providers, notes
