"""Providers of the bfloat16 rows: logitloss on ``ml_dtypes.bfloat16`` logits (read by the kernels in registers)
against logitloss on float32 logits of the same values and torch on the same bfloat16 tensor (a zero-copy view
of the same memory)."""

from __future__ import annotations

import importlib

import numpy as np

from .harness import Provider
from .torch_composition import import_torch


def bfloat16_providers(op: str, x: np.ndarray, y: np.ndarray | None) -> tuple[list[Provider], list[str]]:
    """``op`` "logsumexp" (axis -1) or "cross_entropy_fwd_bwd" (``return_grad=True``, class-index targets ``y``).
    ``x``: float32 logits; the bfloat16 copy and the float32 logits of its values are made here, untimed."""
    import logitloss

    try:
        ml_dtypes = importlib.import_module("ml_dtypes")
    except ImportError as error:
        return [], [f"ml_dtypes: not importable ({error}): no bfloat16 row"]
    x16 = x.astype(ml_dtypes.bfloat16)
    x = x16.astype(np.float32)
    if op == "logsumexp":
        providers = [Provider("logitloss", lambda: logitloss.logsumexp(x, axis=-1)),
                     Provider("logitloss bfloat16", lambda: logitloss.logsumexp(x16, axis=-1))]
    else:
        providers = [Provider("logitloss", lambda: logitloss.cross_entropy(x, y, return_grad=True)),
                     Provider("logitloss bfloat16", lambda: logitloss.cross_entropy(x16, y, return_grad=True))]
    notes = ["`logitloss`: float32 logits of the same (bfloat16-exact) values; `logitloss bfloat16`: "
             "ml_dtypes.bfloat16 logits, half the bytes; `torch bfloat16`: the same bfloat16 memory as a tensor."]
    torch, torch_notes = import_torch()
    if torch is None:
        return providers, notes + torch_notes
    z16 = torch.from_numpy(x16.view(np.int16)).view(torch.bfloat16)
    if op == "logsumexp":
        providers.append(Provider("torch bfloat16", lambda: torch.logsumexp(z16, -1)))
    else:
        target = torch.from_numpy(y)

        def torch_training_step():
            z = z16.detach().requires_grad_()
            torch.nn.functional.cross_entropy(z, target).backward()
            return z.grad

        providers.append(Provider("torch bfloat16", torch_training_step))
    return providers, notes
