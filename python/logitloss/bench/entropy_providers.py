"""Providers of the entropy row: ``entropy_with_logits(x, return_grad=True)`` against torch's composition
``-(softmax(z) * log_softmax(z)).sum(-1)`` and ``.backward()`` on its sum."""

from __future__ import annotations

import numpy as np

from .harness import Provider
from .torch_composition import autograd_provider, import_torch


def entropy_providers(x: np.ndarray) -> tuple[list[Provider], list[str]]:
    import logitloss

    providers = [
        Provider("logitloss", lambda: logitloss.entropy_with_logits(x, return_grad=True)),
        Provider("logitloss forward", lambda: logitloss.entropy_with_logits(x)),
    ]
    torch, notes = import_torch()
    if torch is None:
        return providers, notes

    def torch_forward():
        with torch.no_grad():
            z = torch.from_numpy(x)
            return -(torch.softmax(z, -1) * torch.log_softmax(z, -1)).sum(-1)

    providers += [autograd_provider(torch, x, lambda z: -(torch.softmax(z, -1) * torch.log_softmax(z, -1)).sum(-1),
                                    checked=True),
                  Provider("torch forward", torch_forward)]
    return providers, notes
