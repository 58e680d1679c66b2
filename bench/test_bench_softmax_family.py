"""pytest-benchmark rows for logsumexp, softmax and log_softmax over the last axis, float32.

The inputs and the timed calls are the ones of ``python -m logitloss.bench`` (``logitloss.bench.inputs`` and
``logitloss.bench.providers``), and every provider's result is checked against the test suite's reference
(``logitloss.bench.checks``) before it is timed.  Rows are grouped by op and shape, so the group tables
and ``--benchmark-compare`` compare providers on the same input.  pytest-benchmark runs the providers one
after another, not interleaved: for ratios on a noisy machine use ``python -m logitloss.bench``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from logitloss.bench.backward_providers import backward_providers
from logitloss.bench.harness import Provider
from logitloss.bench.inputs import InputCache
from logitloss.bench.providers import OPS, all_providers, logitloss_providers
from logitloss.bench.checks import check_result

_PROVIDERS = ["logitloss", "logitloss out=", "numpy stable", "numpy naive", "scipy", "torch", "torch out=", "jax"]
_BACKWARD_PROVIDERS = [f"{library} {mode}" for library in ("logitloss", "torch", "jax", "numpy stable")
                       for mode in ("backward only", "forward + backward")]
_CASES = [
    pytest.param(op, provider, id=f"{op}-{provider.replace(' ', '_')}")
    for op in OPS
    for provider in _PROVIDERS
    if not (op == "logsumexp" and provider.endswith("out="))
]


def _supported_isas() -> list[object]:
    try:
        import logitloss

        return list(logitloss.supported_isas())
    except Exception:
        return [pytest.param("none", marks=pytest.mark.skip(reason="logitloss is not importable"))]


def _run(benchmark: BenchmarkFixture, provider: Provider, op: str, x: np.ndarray, threads: int) -> None:
    rows, width = x.shape
    benchmark.group = f"{op} {rows}x{width} axis=-1"
    bytes_per_call = x.nbytes + 4 * rows if op == "logsumexp" else 2 * x.nbytes
    benchmark.extra_info.update(
        {"op": op, "shape": [rows, width], "axis": -1, "dtype": "float32", "provider": provider.name,
         "isa": provider.isa, "threads": threads, "bytes_per_call": bytes_per_call}
    )
    context = provider.context() if provider.context is not None else contextlib.nullcontext()
    with context:
        problem = check_result(op, x, -1, provider.fn())
        assert problem is None, f"{provider.name}: {problem}"
        benchmark(provider.fn)


@pytest.mark.parametrize(("op", "provider_name"), _CASES)
def test_forward(
    benchmark: BenchmarkFixture, inputs: InputCache, bench_threads: int, op: str, provider_name: str,
    shape: tuple[int, int],
) -> None:
    x = inputs.logits(shape)
    providers, notes = all_providers(op, x, -1, out=True)
    chosen = {p.name: p for p in providers}.get(provider_name)
    if chosen is None:
        pytest.skip("; ".join(notes) or f"{provider_name} has no {op} variant")
    _run(benchmark, chosen, op, x, bench_threads)


@pytest.mark.parametrize("provider_name", _BACKWARD_PROVIDERS, ids=lambda name: name.replace(" ", "_"))
@pytest.mark.parametrize("op", OPS)
def test_backward(
    run_loss_provider: Callable[..., None], inputs: InputCache, op: str, provider_name: str, shape: tuple[int, int],
) -> None:
    """The backward modes of ``backward_providers`` (upstream gradient and bytes as in ``python -m
    logitloss.bench``: 2 * x.nbytes for logsumexp, 3 * x.nbytes for softmax and log_softmax)."""
    x = inputs.logits(shape)
    providers, notes = backward_providers(op, x, -1)
    chosen = {p.name: p for p in providers}.get(provider_name)
    if chosen is None:
        pytest.skip("; ".join(notes) or f"{provider_name} not available")
    run_loss_provider(chosen, f"{op} backward", x, (2 if op == "logsumexp" else 3) * x.nbytes)


@pytest.mark.parametrize("isa", _supported_isas())
@pytest.mark.parametrize("op", OPS)
def test_forward_per_isa(
    benchmark: BenchmarkFixture, inputs: InputCache, bench_threads: int, op: str, isa: str, shape: tuple[int, int],
) -> None:
    """logitloss forced to each ISA this CPU supports (``use_isa``), ``out=`` where the op has it."""
    x = inputs.logits(shape)
    providers, notes = logitloss_providers(op, x, -1, fresh=False, out=True, isas=True)
    chosen = {p.isa: p for p in providers if p.context is not None}.get(isa)
    if chosen is None:
        pytest.skip("; ".join(notes) or f"logitloss has no {op} for ISA {isa}")
    _run(benchmark, chosen, op, x, bench_threads)
