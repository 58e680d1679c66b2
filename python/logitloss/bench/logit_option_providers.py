"""Providers of the cross-entropy logit options row: the plain fused call, the same call with
``softcap``, ``z_loss`` and ``temperature`` (the options' cost), and torch's composition of them."""

from __future__ import annotations

from typing import Any

import numpy as np

from .harness import Provider
from .torch_composition import autograd_provider, import_torch

# The options of the row: Gemma 2's cap, PaLM's z-loss coefficient, a temperature.
SOFTCAP, Z_LOSS, TEMPERATURE = 30.0, 1e-4, 2.0
PLAIN = "logitloss"
OPTIONS = "logitloss softcap+z_loss+temperature"
TORCH = "torch composition"


def logit_option_providers(x: np.ndarray, y: np.ndarray) -> tuple[list[Provider], list[str]]:
    """fwd+bwd of (N, C) logits ``x`` and class indices ``y``: the three providers (torch's when importable)."""
    import logitloss

    notes = [f"`{OPTIONS}`: return_grad=True with softcap={SOFTCAP}, z_loss={Z_LOSS}, temperature={TEMPERATURE}; "
             f"`{TORCH}`: z = {SOFTCAP} * torch.tanh(x / {SOFTCAP}) / {TEMPERATURE}; F.cross_entropy(z, y) + "
             f"{Z_LOSS} * (z.logsumexp(1)**2).mean(); .backward()."]
    isa = logitloss.get_isa()
    providers = [
        Provider(PLAIN, lambda: logitloss.cross_entropy(x, y, return_grad=True), isa=isa, checked=False),
        Provider(OPTIONS, lambda: logitloss.cross_entropy(x, y, return_grad=True, softcap=SOFTCAP, z_loss=Z_LOSS,
                                                          temperature=TEMPERATURE), isa=isa, checked=False),
    ]
    torch, missing = import_torch()
    if torch is None:
        return providers, notes + missing
    target = torch.from_numpy(y)

    def composition(leaf: Any) -> Any:
        z = SOFTCAP * torch.tanh(leaf / SOFTCAP) / TEMPERATURE
        return torch.nn.functional.cross_entropy(z, target) + Z_LOSS * (z.logsumexp(1) ** 2).mean()

    providers.append(autograd_provider(torch, x, composition, name=TORCH))
    return providers, notes
