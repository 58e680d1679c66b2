"""pytest-benchmark suites of logitloss (kept out of ``pytest tests``).

Run ``pytest bench/ --benchmark-only`` (add ``--bench-size=full`` for the (4096, 32000) rows and
``--bench-threads N`` for more than one thread).  Without ``--benchmark-only`` or ``--benchmark-enable``
every benchmark is skipped, so a plain ``pytest`` that reaches this folder stays fast.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from logitloss.bench.harness import Provider, set_threads
from logitloss.bench.inputs import InputCache

SIZES = {
    "small": [(32, 10), (8192, 1000), (1024, 32000)],
    "full": [(32, 10), (8192, 1000), (1024, 32000), (4096, 32000)],
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("logitloss bench")
    group.addoption("--bench-size", choices=sorted(SIZES), default="small",
                    help="input shapes: small (default) or full (adds (4096, 32000), 524 MB)")
    group.addoption("--bench-threads", type=int, default=1, help="threads for logitloss and torch (default 1)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "shape" in metafunc.fixturenames:
        shapes = SIZES[metafunc.config.getoption("--bench-size")]
        metafunc.parametrize("shape", shapes, ids=["x".join(map(str, s)) for s in shapes])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("benchmark_only", False) or config.getoption("benchmark_enable", False):
        return
    skip = pytest.mark.skip(reason="benchmarks run with: pytest bench/ --benchmark-only")
    for item in items:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def inputs() -> InputCache:
    return InputCache()


@pytest.fixture(scope="session", autouse=True)
def bench_threads(request: pytest.FixtureRequest) -> int:
    threads: int = request.config.getoption("--bench-threads")
    for note in set_threads(threads):
        print(note)
    return threads


@pytest.fixture
def run_loss_provider(
    benchmark: BenchmarkFixture, bench_threads: int
) -> Callable[[Provider, str, np.ndarray, int], None]:
    """``run(provider, label, x, bytes_per_call)``: check a loss provider's first result against its float64
    reference (``Provider.check``), then time it in the group ``"{label} {shape}"``.  A provider with a
    ``setup`` (in place: restores the logits) is timed one call per round with the setup outside the timing."""

    def run(provider: Provider, label: str, x: np.ndarray, bytes_per_call: int) -> None:
        shape = "x".join(map(str, x.shape))
        benchmark.group = f"{label} {shape}"
        benchmark.extra_info.update(
            {"op": label, "shape": list(x.shape), "dtype": str(x.dtype), "provider": provider.name,
             "isa": provider.isa, "threads": bench_threads, "bytes_per_call": bytes_per_call}
        )
        if provider.setup is not None:
            provider.setup()
        assert provider.check is not None
        problem = provider.check(provider.fn())
        assert problem is None, f"{provider.name}: {problem}"
        if provider.setup is None:
            benchmark(provider.fn)
        else:
            rounds = 20 if x.size > 1_000_000 else 2000
            benchmark.pedantic(provider.fn, setup=provider.setup, rounds=rounds, iterations=1, warmup_rounds=1)

    return run
