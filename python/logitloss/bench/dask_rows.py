"""Benchmark rows for logitloss.dask (opt-in: ``python -m logitloss.bench --dask``; needs the
``dask`` extra, a LocalCluster of two worker processes and about 4 x the logits' size of memory).

Cross-entropy of (8192, 128256) float32 logits (4.2 GB), chunked along the vocabulary, held on the
cluster (persisted, so every variant reads the same chunks from worker memory), forward and
forward + backward, against:
  * the in-memory call (logitloss.cross_entropy on one NumPy array in this process),
  * a hand-written two-pass Dask version: m = x.max(axis=1), then log(exp(x - m).sum(axis=1)).
Reported per variant: median and range of the wall time over the repeats, and the bytes of
logits the graph reads (each task's reads of the input chunks, counted on the graph), so a second
pass shows as twice the bytes. Gradients are new arrays kept on the workers: on a VM that backs
fresh memory lazily their first-touch page faults can dominate the fwd+bwd rows.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

SHAPE = (8192, 128256)
CLASS_CHUNKS = 8  # vocabulary chunks of 16032 classes: 525 MB each


@dataclass
class DaskRow:
    variant: str
    direction: str
    seconds: list[float]
    bytes_read: int | None

    def markdown(self) -> str:
        median = statistics.median(self.seconds)
        read = "" if self.bytes_read is None else f"{self.bytes_read / 1e9:.1f}"
        return (f"| {self.variant} | {self.direction} | {median:.2f} | {min(self.seconds):.2f}-{max(self.seconds):.2f} "
                f"| {read} |")


def input_bytes_read(collections: list[Any], x: Any) -> int:
    """Bytes of `x`'s chunks the tasks of the graph of `collections` take as inputs (the graph as
    built: optimization fuses a lazy input's chunks into their readers, hiding the reads)."""
    import dask
    from dask.core import get_dependencies

    chunk_bytes = {key: int(np.prod([c[i] for c, i in zip(x.chunks, key[1:])])) * x.dtype.itemsize
                   for key in dask.core.flatten(x.__dask_keys__())}
    graph: dict = {}
    for collection in collections:
        graph.update(dict(collection.__dask_graph__()))
    total = 0
    for key in graph:
        for dependency in get_dependencies(graph, key):
            total += chunk_bytes.get(dependency, 0)
    return total


def two_pass_cross_entropy(x: Any, target: np.ndarray, return_grad: bool) -> Any:
    """The textbook Dask version: a max pass, then an exp-sum pass against it."""
    import dask.array as da

    m = x.max(axis=1, keepdims=True)
    lse = m[:, 0] + da.log(da.exp(x - m).sum(axis=1))
    picked = x.vindex[np.arange(x.shape[0]), target]
    loss = (lse - picked).mean()
    if not return_grad:
        return loss
    grad = da.exp(x - lse[:, None]) / x.shape[0]
    columns = da.arange(x.shape[1], chunks=x.chunks[1])
    grad = grad - (columns[None, :] == da.from_array(target, chunks=x.chunks[0])[:, None]) / np.float32(x.shape[0])
    return loss, grad.astype(np.float32)


def _collections(built: Any) -> list[Any]:
    return list(built) if isinstance(built, tuple) else [built]


def _timed(run: Callable[[], Any], repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return seconds


def run_dask_rows(repeats: int = 3, shape: tuple[int, int] = SHAPE, stream: Any = None) -> str:
    """Runs the rows on a fresh LocalCluster (2 processes, 1 thread each); returns a markdown
    section."""
    import sys

    import dask
    import dask.array as da
    from distributed import Client, LocalCluster, wait

    import logitloss
    import logitloss.dask as ld

    stream = stream or sys.stderr
    rows: list[DaskRow] = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit=None) as cluster, Client(cluster) as client:
        chunks = (shape[0], -(-shape[1] // CLASS_CHUNKS))
        x = da.random.default_rng(0).standard_normal(shape, chunks=chunks, dtype=np.float32).persist()
        wait(x)
        target = np.random.default_rng(1).integers(0, shape[1], shape[0])

        def on_cluster(*collections: Any) -> None:
            wait(client.persist(list(collections)))

        variants = [
            ("logitloss.dask", "forward", lambda a: ld.cross_entropy(a, target)),
            ("logitloss.dask", "fwd+bwd", lambda a: ld.cross_entropy(a, target, return_grad=True)),
            ("two-pass Dask (max, then exp-sum)", "forward", lambda a: two_pass_cross_entropy(a, target, False)),
            ("two-pass Dask (max, then exp-sum)", "fwd+bwd", lambda a: two_pass_cross_entropy(a, target, True)),
        ]
        # Bytes read are counted on the same graph over a lazy stand-in with the same chunks (the
        # persisted array's chunks are futures inside the tasks, not graph keys).
        stand_in = da.zeros(shape, chunks=chunks, dtype=np.float32)
        for variant, direction, build in variants:
            stream.write(f"dask row: {variant} {direction}\n")
            read = input_bytes_read(_collections(build(stand_in)), stand_in)
            rows.append(DaskRow(variant, direction, _timed(lambda: on_cluster(*_collections(build(x))), repeats), read))
        x_numpy = x.compute()
        client.cancel(x)
    del x
    for direction, return_grad in (("forward", False), ("fwd+bwd", True)):
        stream.write(f"dask row: in-memory {direction}\n")
        rows.append(DaskRow("logitloss.cross_entropy in memory (1 process)", direction,
                            _timed(lambda: logitloss.cross_entropy(x_numpy, target, return_grad=return_grad), repeats),
                            x_numpy.nbytes))
    header = [
        f"## logitloss.dask: cross_entropy of {shape[0]} x {shape[1]} float32 ({x_numpy.nbytes / 1e9:.1f} GB), "
        f"{CLASS_CHUNKS} vocabulary chunks, LocalCluster of 2 worker processes (1 thread each)",
        "",
        "Logits persisted on the workers; results (loss, and the gradient for fwd+bwd) left on the workers. "
        "Bytes read: input chunks taken by the graph's tasks (the in-memory call reads the array once per call).",
        "",
        "| variant | direction | median s | range s | GB of logits read |",
        "|---|---|---|---|---|",
    ]
    return "\n".join(header + [row.markdown() for row in rows]) + "\n"
