"""Providers of the distillation rows: a student's logits x (N, C) and a teacher's t = x + noise (the two
distributions close, as late in distillation), forward + backward of the KL, float32, 1 thread.

- ``logitloss``: ``kl_div_with_logits(x, t, return_grad=True)`` (a new gradient each call);
- ``logitloss cross_entropy``: ``cross_entropy(x, labels, return_grad=True)`` on the same x: the budget the
  KL is measured against (it reads one array where the KL reads two);
- ``torch``: ``F.kl_div(F.log_softmax(X, -1), F.log_softmax(T, -1), reduction="batchmean", log_target=True)``
  and ``.backward()``, X requiring grad.

And of the generalized JSD (``jsd_providers``, beta = 0.5): ``logitloss``: ``jsd_with_logits(x, t, 0.5,
return_grad=True)``; ``torch``: Liger's formula, two ``log_softmax``, ``M = torch.lerp(Q, P, beta)``,
``beta * kl(log M, log P) + (1 - beta) * kl(log M, log Q)`` (``F.kl_div(..., log_target=True)`` summed per
row, averaged over rows) and ``.backward()``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .harness import Provider
from .torch_composition import autograd_provider, import_torch

__all__ = ["jsd_providers", "kl_div_providers", "teacher_logits"]


def teacher_logits(x: np.ndarray) -> np.ndarray:
    """A teacher near the student: x plus N(0, 0.5^2) noise, deterministic."""
    rng = np.random.default_rng(21)
    return (x + rng.standard_normal(x.shape, np.float32) * np.float32(0.5)).astype(x.dtype)


def kl_div_providers(x: np.ndarray, teacher: np.ndarray, labels: np.ndarray) -> tuple[list[Provider], list[str]]:
    import logitloss

    providers = [Provider("logitloss", lambda: logitloss.kl_div_with_logits(x, teacher, return_grad=True),
                          checked=False),
                 Provider("logitloss cross_entropy", lambda: logitloss.cross_entropy(x, labels, return_grad=True),
                          checked=False)]
    torch, notes = import_torch()
    if torch is None:
        return providers, notes
    functional = torch.nn.functional
    teacher_tensor = torch.from_numpy(teacher)
    providers.append(autograd_provider(torch, x, lambda logits: functional.kl_div(
        functional.log_softmax(logits, -1), functional.log_softmax(teacher_tensor, -1), reduction="batchmean",
        log_target=True)))
    return providers, notes



def jsd_providers(x: np.ndarray, teacher: np.ndarray, beta: float = 0.5) -> tuple[list[Provider], list[str]]:
    import logitloss

    providers = [Provider("logitloss", lambda: logitloss.jsd_with_logits(x, teacher, beta, return_grad=True),
                          checked=False)]
    torch, notes = import_torch()
    if torch is None:
        return providers, notes
    functional = torch.nn.functional
    teacher_tensor = torch.from_numpy(teacher)

    def kl(input: Any, target: Any) -> Any:
        return functional.kl_div(input, target, reduction="none", log_target=True).sum(-1)

    def liger_jsd(logits: Any) -> Any:
        log_q, log_p = functional.log_softmax(logits, -1), functional.log_softmax(teacher_tensor, -1)
        log_m = torch.lerp(log_q.exp(), log_p.exp(), beta).log()
        return (beta * kl(log_m, log_p) + (1 - beta) * kl(log_m, log_q)).mean()

    providers.append(autograd_provider(torch, x, liger_jsd))
    return providers, notes
