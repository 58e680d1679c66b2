"""pytest-benchmark rows for cross_entropy (mean reduction, int64 class indices), float32.

The inputs and the timed calls are the ones of ``python -m logitloss.bench`` (``logitloss.bench.inputs`` and
``logitloss.bench.providers.cross_entropy_providers``), and every provider's result is checked against the
float64 reference (``logitloss.bench.references.cross_entropy_check``) before it is timed.  Rows are grouped
by direction and shape.  ``logitloss grad_out=input`` works in place on a private copy of the logits that is
restored before every call (``benchmark.pedantic`` setup, outside the timing).  pytest-benchmark runs the
providers one after another, not interleaved: for ratios on a noisy machine use ``python -m logitloss.bench``.
"""

from __future__ import annotations

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from logitloss.bench.harness import Provider
from logitloss.bench.inputs import InputCache
from logitloss.bench.providers import CROSS_ENTROPY_VARIANTS, cross_entropy_providers

_FORWARD = ("logitloss", "torch", "numpy stable")
_OPTIONS = "logitloss grad_out= smoothing+weight"  # label_smoothing=0.1 and class weights


def _run(benchmark: BenchmarkFixture, provider: Provider, direction: str, x: np.ndarray, threads: int) -> None:
    rows, classes = x.shape
    benchmark.group = f"cross_entropy {direction} {rows}x{classes}"
    benchmark.extra_info.update(
        {"op": f"cross_entropy {direction}", "shape": [rows, classes], "dtype": "float32",
         "provider": provider.name, "isa": provider.isa, "threads": threads,
         "bytes_per_call": x.nbytes if direction == "forward" else 2 * x.nbytes}
    )
    if provider.setup is not None:
        provider.setup()
    assert provider.check is not None
    problem = provider.check(provider.fn())
    assert problem is None, f"{provider.name}: {problem}"
    if provider.setup is None:
        benchmark(provider.fn)
    else:  # in place: restore the logits before every call, outside the timing
        rounds = 20 if x.size > 1_000_000 else 2000
        benchmark.pedantic(provider.fn, setup=provider.setup, rounds=rounds, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("provider_name", [*CROSS_ENTROPY_VARIANTS, _OPTIONS],
                         ids=lambda name: name.replace(" ", "_"))
def test_forward_backward(
    benchmark: BenchmarkFixture, inputs: InputCache, bench_threads: int, provider_name: str, shape: tuple[int, int],
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
    _run(benchmark, chosen, "forward+backward", x, bench_threads)


@pytest.mark.parametrize("provider_name", _FORWARD, ids=lambda name: name.replace(" ", "_"))
def test_forward(
    benchmark: BenchmarkFixture, inputs: InputCache, bench_threads: int, provider_name: str, shape: tuple[int, int],
) -> None:
    x, y = inputs.logits(shape), inputs.targets(*shape)
    providers, notes = cross_entropy_providers(x, y, backward=False, variants=(provider_name,))
    chosen = {p.name: p for p in providers}.get(provider_name)
    if chosen is None:
        pytest.skip("; ".join(notes) or f"{provider_name} not available")
    _run(benchmark, chosen, "forward", x, bench_threads)
