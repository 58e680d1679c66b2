"""Per-row cost of the C API (a Cython loop calling cross_entropy_row / logsumexp_row once per row,
one thread) against the batched Python call on the same rows (one thread) and a Python call per
row. Run from the repository root with the package and the test extra installed:

    python bench/c_api_per_row.py

Builds the test suite's Cython consumer (tests/helpers/c_api/consumer.pyx) in a temporary folder;
prints ns per row, the best of interleaved repeats.
"""

from __future__ import annotations

import pathlib
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import logitloss  # noqa: E402
from logitloss.testing import inputs  # noqa: E402
from tests.helpers.c_api_build import build_consumers  # noqa: E402

REPEATS = 7


def best_ns_per_row(calls, rows):
    """{name: best ns per row} over REPEATS interleaved rounds of every call."""
    best = {name: float("inf") for name in calls}
    for _ in range(REPEATS):
        for name, (call, count) in calls.items():
            start = time.perf_counter_ns()
            call()
            best[name] = min(best[name], (time.perf_counter_ns() - start) / count)
    return best


def main():
    logitloss.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        consumer = build_consumers(pathlib.Path(folder)).consumer
        print(f"logitloss {logitloss.__version__}, target {logitloss.get_isa()}, 1 thread, float32, ns per row")
        print(f"{'classes':>8} {'function':>14} {'C API loop':>11} {'batched Python':>15} {'Python per row':>15}")
        for classes, rows in ((10, 200_000), (1000, 4_000)):
            x = inputs.logits((rows, classes), np.float32, seed=0)
            target = np.random.default_rng(0).integers(0, classes, rows).astype(np.intp)
            loss, grad, lse = np.empty(rows, np.float32), np.empty_like(x), np.empty(rows, np.float32)
            few = 2000  # rows for the Python-per-row loop
            ce = best_ns_per_row({
                "c": (lambda: consumer.cross_entropy_rows(x, target, loss, grad, 1), rows),
                "batched": (lambda: logitloss.cross_entropy(x, target, reduction="none", grad_out=grad), rows),
                "per_row": (lambda: [logitloss.cross_entropy(x[i], target[i], reduction="none", return_grad=True)
                                     for i in range(few)], few),
            }, rows)
            ls = best_ns_per_row({
                "c": (lambda: consumer.logsumexp_rows(x, lse, 1), rows),
                "batched": (lambda: logitloss.logsumexp(x, axis=-1), rows),
                "per_row": (lambda: [logitloss.logsumexp(x[i]) for i in range(few)], few),
            }, rows)
            for name, t in (("cross_entropy", ce), ("logsumexp", ls)):
                print(f"{classes:>8} {name:>14} {t['c']:>11.1f} {t['batched']:>15.1f} {t['per_row']:>15.1f}")


if __name__ == "__main__":
    main()
