"""A dask.distributed LocalCluster of two worker processes for the logitloss.dask tests, and the
comparison rule against the in-memory functions."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterator

import numpy as np


@contextlib.contextmanager
def two_process_client() -> Iterator[Any]:
    """A distributed Client on a LocalCluster of two worker processes (one thread each), closed on
    exit. Started with warnings silenced (distributed warns about ports and memory at start)."""
    import distributed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50
        )
        client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()

# logitloss.dask against the in-memory function on the same data (docs: README, "Scaling out with
# Dask"): nan / inf in the same places; finite values within UNITS eps of the result dtype,
# relative to the value (forward results) or to the largest magnitude in the row (softmax and
# gradients, whose small entries are differences of larger terms in both).
UNITS = 4
# logsumexp with `b`: each chunk's weighted value (float64) is rounded once more before the merge.
WEIGHTED_UNITS = 8


def assert_matches(actual, expected, *, per_row=False, what="", units=UNITS):
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    special = ~np.isfinite(e)
    assert np.array_equal(np.isnan(a), np.isnan(e)), f"{what}: nan at other places"
    assert np.array_equal(a[special & ~np.isnan(e)], e[special & ~np.isnan(e)]), f"{what}: inf differs"
    finite = ~special
    eps = float(np.finfo(expected.dtype).eps)
    if per_row and e.ndim >= 1 and e.size:
        with np.errstate(invalid="ignore"):
            scale = np.nanmax(np.where(finite, np.abs(e), 0.0), axis=-1, keepdims=True)
        scale = np.broadcast_to(scale, e.shape)
    else:
        scale = np.abs(e)
    bound = units * eps * scale + float(np.finfo(expected.dtype).smallest_subnormal)
    with np.errstate(invalid="ignore"):
        error = np.abs(a - e)
    bad = finite & ~(error <= bound)
    assert not bad.any(), (
        f"{what}: {bad.sum()} entries off, e.g. {a[bad][:3]} against {e[bad][:3]} (bound {bound[bad][:3]})"
    )
