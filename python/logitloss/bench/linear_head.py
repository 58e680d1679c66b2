"""Providers and memory values of the linear_cross_entropy rows: a classifier head ``x @ w.T`` and its
cross-entropy, hidden states x (N, D), head w (V, D), class-index targets y (N,), float32.

Providers (1 thread unless the row sets its own):

- ``logitloss``: ``linear_cross_entropy(x, w, y, return_grad=True)`` (forward rows: ``reduction="none"``);
- ``torch``: what a torch user writes, ``F.cross_entropy(F.linear(X, W), y)`` and ``.backward()`` with X and W
  requiring grad (forward rows: the same under ``torch.no_grad()``, ``reduction="none"``): the whole N x V logits;
- ``torch linear_cross_entropy``: ``F.linear_cross_entropy(X, W, y, options=nn.LinearCrossEntropyOptions())``,
  torch's opt-in batch-chunked path, and ``.backward()`` (forward rows: as ``torch``).

Memory: peak extra RSS of one fwd+bwd call in a fresh subprocess (:func:`~logitloss.bench.harness.measure_peak_memory`)
minus the returned gradients (grad_input and grad_weight, which any caller keeps).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

from .harness import Provider, measure_peak_memory

__all__ = ["LINEAR_HEAD_VARIANTS", "linear_head_memory_values", "linear_head_providers"]

LINEAR_HEAD_VARIANTS = ("logitloss", "torch", "torch linear_cross_entropy")


def linear_head_providers(x: np.ndarray, w: np.ndarray, y: np.ndarray, *, backward: bool = True,
                          variants: tuple[str, ...] = LINEAR_HEAD_VARIANTS) -> tuple[list[Provider], list[str]]:
    providers: list[Provider] = []
    notes: list[str] = []
    if "logitloss" in variants:
        import logitloss

        if backward:
            providers.append(Provider("logitloss", lambda: logitloss.linear_cross_entropy(x, w, y, return_grad=True),
                                      checked=False))
        else:
            providers.append(Provider("logitloss", lambda: logitloss.linear_cross_entropy(x, w, y, reduction="none"),
                                      checked=False))
    torch_variants = [v for v in variants if v.startswith("torch")]
    if torch_variants:
        try:
            import torch
            import torch.nn.functional as F
        except ImportError:
            return providers, notes + ["torch: not installed, its providers skipped"]
        tx, tw, ty = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(y)

        def plain() -> Any:
            if not backward:
                with torch.no_grad():
                    return F.cross_entropy(F.linear(tx, tw), ty, reduction="none")
            X, W = tx.detach().requires_grad_(), tw.detach().requires_grad_()
            loss = F.cross_entropy(F.linear(X, W), ty)
            loss.backward()
            return loss, X.grad, W.grad

        if "torch" in torch_variants:
            providers.append(Provider("torch", plain, checked=False))
        if "torch linear_cross_entropy" in torch_variants:
            if not hasattr(F, "linear_cross_entropy"):
                notes.append(f"torch {torch.__version__} has no F.linear_cross_entropy")
            else:
                def chunked() -> Any:
                    options = torch.nn.LinearCrossEntropyOptions()
                    if not backward:
                        with torch.no_grad():
                            return F.linear_cross_entropy(tx, tw, ty, reduction="none", options=options)
                    X, W = tx.detach().requires_grad_(), tw.detach().requires_grad_()
                    loss = F.linear_cross_entropy(X, W, ty, options=options)
                    loss.backward()
                    return loss, X.grad, W.grad

                providers.append(Provider("torch linear_cross_entropy", chunked, checked=False))
    return providers, notes


_SETUP = """
import numpy as np
import logitloss
logitloss.set_num_threads(1)
rng = np.random.default_rng(0)
x = rng.standard_normal(({rows}, {features}), dtype=np.float32)
w = rng.standard_normal(({classes}, {features}), dtype=np.float32)
w *= np.float32({features} ** -0.5)
y = rng.integers(0, {classes}, {rows}, dtype=np.int64)
report["logits_bytes"] = {rows} * {classes} * 4
report["returned_bytes"] = x.nbytes + w.nbytes
{prepare}
"""

_MEMORY_CALLS = {
    "logitloss": ("logitloss.linear_cross_entropy(x[:8], w, y[:8], return_grad=True)",
                  "result = logitloss.linear_cross_entropy(x, w, y, return_grad=True)"),
    "torch": ("import torch\nimport torch.nn.functional as F\ntorch.set_num_threads(1)\n"
              "tx, tw, ty = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(y)\n"
              "X, W = tx[:8].detach().requires_grad_(), tw.detach().requires_grad_()\n"
              "F.cross_entropy(F.linear(X, W), ty[:8]).backward()\ndel X, W",
              "X, W = tx.detach().requires_grad_(), tw.detach().requires_grad_()\n"
              "F.cross_entropy(F.linear(X, W), ty).backward()\nresult = X.grad, W.grad"),
}


def linear_head_memory_values(row_counts: tuple[int, ...], features: int,
                              classes: int) -> Callable[[], tuple[dict[str, float], list[str]]]:
    """Values of the memory row: ``logits N=<n>`` (N x V float32 bytes) and ``<provider> N=<n>`` (peak extra bytes
    beyond the inputs and the returned gradients) for each N of ``row_counts``."""

    def values() -> tuple[dict[str, float], list[str]]:
        measured: dict[str, float] = {}
        notes: list[str] = []
        for rows in row_counts:
            for name, (prepare, call) in _MEMORY_CALLS.items():
                if name == "torch" and importlib.util.find_spec("torch") is None:
                    notes.append("torch: not measured, torch is not installed")
                    continue
                setup = _SETUP.format(rows=rows, features=features, classes=classes, prepare=prepare)
                try:
                    peak = measure_peak_memory(setup, call, label=name)
                except Exception as error:
                    notes.append(f"{name} N={rows}: not measured, {type(error).__name__}: {error}")
                    continue
                measured[f"logits N={rows}"] = float(peak.report["logits_bytes"])
                measured[f"{name} N={rows}"] = float(peak.peak_extra - peak.report["returned_bytes"])
                notes.append(f"{name} N={rows}: peak extra {peak.peak_extra / 1e6:.1f} MB including "
                             f"{peak.report['returned_bytes'] / 1e6:.1f} MB of returned gradients")
        return measured, notes

    return values
