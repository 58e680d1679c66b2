"""A worker process killed (SIGKILL) in the middle of a vocabulary-parallel cross_entropy costs
time, not data: Dask recomputes what the dead worker held from the graph, and the partial
statistics are pure functions of their chunks, so the result equals the in-memory one."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
from .helpers.libraries import require
from .helpers.dask_cluster import assert_matches, two_process_client

import logitloss

da = require("dask.array", module_level=True)
distributed = require("distributed", module_level=True)
import dask  # noqa: E402

import logitloss.dask as ld  # noqa: E402

ROWS, CLASSES = 64, 4096
ROW_CHUNK, CLASS_CHUNK = 32, 512
BLOCK_SECONDS = 0.25  # each chunk takes this long to "load", so the graph runs for seconds


def load_block(block_id, delay=True):
    """A chunk of logits as a pure function of its position (a stand-in for reading a shard)."""
    if delay:
        time.sleep(BLOCK_SECONDS)
    rng = np.random.default_rng(block_id)
    return (rng.standard_normal((ROW_CHUNK, CLASS_CHUNK)) * 4).astype(np.float32)


def logits():
    return da.map_blocks(
        lambda block_id=None: load_block(block_id),
        chunks=((ROW_CHUNK,) * (ROWS // ROW_CHUNK), (CLASS_CHUNK,) * (CLASSES // CLASS_CHUNK)),
        dtype=np.float32,
        meta=np.empty((0, 0), np.float32),
    )


def in_memory_logits():
    return np.block(
        [[load_block((i, j), delay=False) for j in range(CLASSES // CLASS_CHUNK)] for i in range(ROWS // ROW_CHUNK)]
    )


@pytest.fixture(scope="module")
def cluster():
    with two_process_client() as client:
        yield client


def kill_one_worker_when_busy(client, killed):
    """Waits until some task has finished (the graph is under way), then SIGKILLs one worker."""
    pids = client.run(os.getpid)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        processing = client.processing()
        if any(processing.values()):
            time.sleep(2 * BLOCK_SECONDS)
            address = next((a for a, tasks in client.processing().items() if tasks), next(iter(pids)))
            os.kill(pids[address], signal.SIGKILL)
            killed.append(pids[address])
            return
        time.sleep(0.02)


@pytest.mark.parametrize("return_grad", [False, True])
def test_worker_killed_mid_cross_entropy(cluster, return_grad):
    x_numpy = in_memory_logits()
    rng = np.random.default_rng(7)
    target = rng.integers(0, CLASSES, ROWS)
    weight = rng.random(CLASSES).astype(np.float32)
    expected = logitloss.cross_entropy(x_numpy, target, weight, label_smoothing=0.1, return_grad=return_grad)
    lazy = ld.cross_entropy(logits(), target, weight, label_smoothing=0.1, return_grad=return_grad)
    killed = []
    killer = threading.Thread(target=kill_one_worker_when_busy, args=(cluster, killed))
    killer.start()
    started = time.monotonic()
    result = dask.compute(*lazy) if return_grad else (lazy.compute(),)
    killer.join()
    elapsed = time.monotonic() - started
    assert killed, "no worker was killed"
    assert killed[0] not in cluster.run(os.getpid).values()  # the nanny started a new process
    expected = expected if return_grad else (expected,)
    assert_matches(result[0], expected[0], what="loss")
    if return_grad:
        assert_matches(result[1], expected[1], per_row=True, what="grad")
    assert elapsed < 60
