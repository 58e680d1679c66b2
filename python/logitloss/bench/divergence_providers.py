"""Providers of the distillation rows: a student's logits x (N, C) and a teacher's t = x + noise (the two
distributions close, as late in distillation), forward + backward of the KL, float32, 1 thread.

- ``logitloss``: ``kl_div_with_logits(x, t, return_grad=True)`` (a new gradient each call);
- ``logitloss cross_entropy``: ``cross_entropy(x, labels, return_grad=True)`` on the same x: the budget the
  KL is measured against (it reads one array where the KL reads two);
- ``torch``: ``F.kl_div(F.log_softmax(X, -1), F.log_softmax(T, -1), reduction="batchmean", log_target=True)``
  and ``.backward()``, X requiring grad.
"""

from __future__ import annotations

import numpy as np

from .harness import Provider
from .torch_composition import autograd_provider, import_torch

__all__ = ["kl_div_providers", "teacher_logits"]


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
