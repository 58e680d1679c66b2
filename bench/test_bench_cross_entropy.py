"""pytest-benchmark rows for cross_entropy (mean reduction, int64 class indices), float32.

The inputs and the timed calls are the ones of ``python -m logitloss.bench`` (``logitloss.bench.inputs`` and
``logitloss.bench.providers.cross_entropy_providers``), and every provider's result is checked against the
float64 reference (``logitloss.bench.checks.cross_entropy_check``) before it is timed.  Rows are grouped
by direction and shape (``run_loss_provider`` in ``conftest.py``).  ``logitloss grad_out=input`` works in place
on a private copy of the logits that is restored before every call (``benchmark.pedantic`` setup, outside the
timing).  pytest-benchmark runs the providers one after another, not interleaved: for ratios on a noisy
machine use ``python -m logitloss.bench``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from logitloss.bench.inputs import InputCache
from logitloss.bench.providers import CROSS_ENTROPY_VARIANTS, cross_entropy_providers

_FORWARD = ("logitloss", "torch", "jax", "numpy stable")
_OPTIONS = "logitloss grad_out= smoothing+weight"  # label_smoothing=0.1 and class weights


@pytest.mark.parametrize("provider_name", [*CROSS_ENTROPY_VARIANTS, _OPTIONS],
                         ids=lambda name: name.replace(" ", "_"))
def test_forward_backward(
    run_loss_provider: Callable[..., None], inputs: InputCache, provider_name: str, shape: tuple[int, int],
) -> None:
    x, y = inputs.logits(shape), inputs.targets(*shape)
    if provider_name == _OPTIONS:
        providers, notes = cross_entropy_providers(x, y, variants=("logitloss grad_out=",), label_smoothing=0.1,
                                                   weight=inputs.class_weights(shape[1]),
                                                   suffix=" smoothing+weight")
    else:
        providers, notes = cross_entropy_providers(x, y, variants=(provider_name,))
    chosen = {p.name: p for p in providers}.get(provider_name)
    if chosen is None:
        pytest.skip("; ".join(notes) or f"{provider_name} not available")
    run_loss_provider(chosen, "cross_entropy forward+backward", x, 2 * x.nbytes)


@pytest.mark.parametrize("provider_name", _FORWARD, ids=lambda name: name.replace(" ", "_"))
def test_forward(
    run_loss_provider: Callable[..., None], inputs: InputCache, provider_name: str, shape: tuple[int, int],
) -> None:
    x, y = inputs.logits(shape), inputs.targets(*shape)
    providers, notes = cross_entropy_providers(x, y, backward=False, variants=(provider_name,))
    chosen = {p.name: p for p in providers}.get(provider_name)
    if chosen is None:
        pytest.skip("; ".join(notes) or f"{provider_name} not available")
    run_loss_provider(chosen, "cross_entropy forward", x, x.nbytes)
