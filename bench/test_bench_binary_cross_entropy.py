"""pytest-benchmark rows for binary_cross_entropy_with_logits (mean reduction, float32 0 / 1 targets), float32.

The inputs and the timed calls are the ones of ``python -m logitloss.bench`` (``logitloss.bench.inputs`` and
``logitloss.bench.providers.binary_cross_entropy_providers``), and every provider's result is checked against the
float64 reference (``logitloss.bench.checks.binary_cross_entropy_check``) before it is timed.  Shapes: the
1,000,000-element vector of the performance targets, the (4096, 1000) multi-label batch with ``weight`` and
``pos_weight`` of shape (1000,), and the 2-element call; grouped by direction and shape (``run_loss_provider`` in
``conftest.py``).  pytest-benchmark runs the providers one after another, not interleaved: for ratios on a noisy
machine use ``python -m logitloss.bench``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from logitloss.bench.harness import Provider
from logitloss.bench.inputs import InputCache
from logitloss.bench.providers import BINARY_CROSS_ENTROPY_VARIANTS, binary_cross_entropy_providers

_FORWARD = ("logitloss", "torch", "jax", "numpy stable")
_SHAPES = {"1000000": ((1_000_000,), False), "4096x1000_weighted": ((4096, 1000), True), "2": ((2,), False)}


def _provider(
    inputs: InputCache, shape_id: str, backward: bool, provider_name: str
) -> tuple[Provider, np.ndarray, str]:
    """The provider, its logits and the group label's options part."""
    shape, weighted = _SHAPES[shape_id]
    x, y = inputs.logits(shape), inputs.binary_targets(shape)
    weight = inputs.class_weights(shape[-1]) if weighted else None
    pos_weight = inputs.positive_weights(shape[-1]) if weighted else None
    providers, notes = binary_cross_entropy_providers(x, y, backward=backward, variants=(provider_name,),
                                                      weight=weight, pos_weight=pos_weight)
    chosen = {p.name: p for p in providers}.get(provider_name)
    if chosen is None:
        pytest.skip("; ".join(notes) or f"{provider_name} not available")
    return chosen, x, " weight+pos_weight" if weighted else ""


@pytest.mark.parametrize("shape_id", list(_SHAPES))
@pytest.mark.parametrize("provider_name", BINARY_CROSS_ENTROPY_VARIANTS, ids=lambda name: name.replace(" ", "_"))
def test_forward_backward(
    run_loss_provider: Callable[..., None], inputs: InputCache, provider_name: str, shape_id: str,
) -> None:
    provider, x, options = _provider(inputs, shape_id, True, provider_name)
    run_loss_provider(provider, "binary_cross_entropy_with_logits forward+backward" + options, x, 3 * x.nbytes)


@pytest.mark.parametrize("shape_id", list(_SHAPES))
@pytest.mark.parametrize("provider_name", _FORWARD, ids=lambda name: name.replace(" ", "_"))
def test_forward(run_loss_provider: Callable[..., None], inputs: InputCache, provider_name: str, shape_id: str) -> None:
    provider, x, options = _provider(inputs, shape_id, False, provider_name)
    run_loss_provider(provider, "binary_cross_entropy_with_logits forward" + options, x, 2 * x.nbytes)
