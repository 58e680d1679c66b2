"""Providers of the calibration rows: fitting a temperature (logitloss, the cost of 12 fused cross-entropy
passes, torch's LBFGS as in Guo et al.'s reference code) and the ECE (logitloss, torchmetrics)."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from .harness import Provider

PASSES = 12  # the budget for fit_temperature: the time of this many fused cross-entropy passes


def calibrated_targets(x: np.ndarray, seed: int = 2) -> np.ndarray:
    """Labels that make the temperature fit interior: the argmax of each row of `x` for 60% of the rows, a
    uniform random class for the rest (uniform labels alone would send T to the upper bound in two passes)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, x.shape[1], x.shape[0])
    keep = rng.random(x.shape[0]) < 0.6
    labels[keep] = x[keep].argmax(axis=1)
    return labels


def temperature_providers(x: np.ndarray, y: np.ndarray) -> tuple[list[Provider], list[str]]:
    import logitloss
    from logitloss.calibration import fit_temperature

    fitted = fit_temperature(x, y)
    notes = [f"fit_temperature: T = {float(fitted):.6f} in {fitted.iterations} passes (at_bound={fitted.at_bound})"]

    def passes() -> Any:
        for _ in range(PASSES):
            logitloss.cross_entropy(x, y)

    providers = [
        Provider("logitloss fit_temperature", lambda: fit_temperature(x, y)),
        Provider(f"logitloss {PASSES} x cross_entropy", passes),
    ]
    torch_fit = _torch_lbfgs(x, y)
    if torch_fit is None:
        notes.append("torch LBFGS: torch not importable")
    else:
        providers.append(Provider("torch LBFGS (Guo et al.)", torch_fit))
        notes.append(f"torch LBFGS (Guo et al.'s settings: T0 = 1.5, lr = 0.01, max_iter = 50): T = {torch_fit():.6f}")
    return providers, notes


def _torch_lbfgs(x: np.ndarray, y: np.ndarray):
    """Guo et al.'s ModelWithTemperature.set_temperature (github.com/gpleiss/temperature_scaling): nn.CrossEntropyLoss
    on logits / T, optim.LBFGS([T], lr=0.01, max_iter=50), T initialised to 1.5, on the CPU."""
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        return None
    logits, labels = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    criterion = torch.nn.CrossEntropyLoss()

    def fit() -> float:
        temperature = torch.nn.Parameter(torch.ones(1) * 1.5)
        optimizer = torch.optim.LBFGS([temperature], lr=0.01, max_iter=50)

        def closure():
            optimizer.zero_grad()
            loss = criterion(logits / temperature, labels)
            loss.backward()
            return loss

        optimizer.step(closure)
        return float(temperature.item())

    return fit


def ece_providers(x: np.ndarray, y: np.ndarray) -> tuple[list[Provider], list[str]]:
    from logitloss.calibration import expected_calibration_error

    providers = [Provider("logitloss expected_calibration_error", lambda: expected_calibration_error(x, y))]
    notes = [f"ECE (15 uniform bins, top-label) = {expected_calibration_error(x, y):.6f}"]
    try:
        torch = importlib.import_module("torch")
        functional = importlib.import_module("torchmetrics.functional.classification")
    except ImportError as error:
        return providers, notes + [f"torchmetrics: not importable ({error})"]
    logits, labels = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    providers.append(Provider("torchmetrics multiclass_calibration_error", lambda: functional.multiclass_calibration_error(
        logits, labels, num_classes=x.shape[1], n_bins=15)))
    notes.append("torchmetrics: logits in (it applies softmax), its left-closed bins")
    return providers, notes
