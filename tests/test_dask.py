"""logitloss.dask on a dask.distributed LocalCluster of two worker processes, against the
in-memory functions on the same data: every chunking pattern (rows only, classes only, both,
uneven, one chunk), float16/32/64, every option, extreme rows, errors."""

from __future__ import annotations


import numpy as np
import pytest
from .helpers.libraries import require
from .helpers.dask_cluster import UNITS, WEIGHTED_UNITS, assert_matches, two_process_client

import logitloss

da = require("dask.array", module_level=True)
distributed = require("distributed", module_level=True)
import dask  # noqa: E402

import logitloss.dask as ld  # noqa: E402

DTYPES = [np.float16, np.float32, np.float64]
N, C = 23, 41
# (rows chunks, classes chunks): rows only, classes only, both, uneven, one chunk.
CHUNKINGS = {
    "rows": ((8, 8, 7), (C,)),
    "classes": ((N,), (14, 14, 13)),
    "both": ((12, 11), (10, 10, 10, 11)),
    "uneven": ((1, 15, 7), (1, 2, 30, 8)),
    "one": ((N,), (C,)),
}


@pytest.fixture(scope="module")
def client():
    with two_process_client() as client:
        yield client


def extreme_logits(dtype, seed=0):
    """Random rows plus the edge rows: all -inf, +inf, nan, +-3e38 (float16: its largest), a
    dominant logit (loss 4e-18), -inf masks, the max split across chunks, ties."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((N, C)) * 3).astype(dtype)
    big = np.float64(np.finfo(dtype).max) * 0.9 if dtype == np.float16 else 3e38
    x[1] = -np.inf
    x[2, 5] = np.inf
    x[3, 30] = np.nan
    x[4] = -40.0
    x[4, 0] = 0.0
    x[5] = big
    x[5, 1] = -big
    x[6, 20:] = -np.inf
    x[7] = 1.0  # ties everywhere
    x[8, ::7] = 9.0  # the max in every chunk
    x[9] = -big
    return x


def targets_in_every_chunk(rng, ignore_index=-100):
    t = rng.integers(0, C, N)
    t[:C // 3] = np.arange(0, C, 3)[: C // 3]  # targets at every class position, so in every chunk
    t[4] = 0
    t[10] = ignore_index
    return t


def chunked(x, chunking):
    return da.from_array(x, chunks=CHUNKINGS[chunking])


@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_softmax_log_softmax(client, chunking, dtype):
    x = extreme_logits(dtype)
    d = chunked(x, chunking)
    b = np.random.default_rng(1).standard_normal((N, C)).astype(dtype)
    b[::5] = np.abs(b[::5])
    b[:, 3] = 0
    calls = []
    for axis in (None, 0, 1, -1, (0, 1)):
        for keepdims in (False, True):
            calls.append((f"logsumexp axis={axis} keepdims={keepdims}", ld.logsumexp(d, axis=axis, keepdims=keepdims),
                          logitloss.logsumexp(x, axis=axis, keepdims=keepdims), False))
        value, sign = ld.logsumexp(d, axis=axis, b=da.from_array(b, chunks=d.chunks), return_sign=True)
        expected = logitloss.logsumexp(x, axis=axis, b=b, return_sign=True)
        calls += [(f"logsumexp b axis={axis}", value, expected[0], "b"), (f"sign axis={axis}", sign, expected[1], False)]
        calls.append((f"logsumexp b, no sign, axis={axis}", ld.logsumexp(d, axis=axis, b=b), logitloss.logsumexp(x, axis=axis, b=b), "b"))
    for axis in (1, 0, (0, 1)):
        calls.append((f"softmax axis={axis}", ld.softmax(d, axis=axis), logitloss.softmax(x, axis=axis), True))
        calls.append((f"log_softmax axis={axis}", ld.log_softmax(d, axis=axis), logitloss.log_softmax(x, axis=axis), False))
    results = dask.compute(*[c[1] for c in calls])
    for (what, lazy, expected, per_row), actual in zip(calls, results):
        # With b each chunk's value is rounded once before the merge: WEIGHTED_UNITS.
        units = WEIGHTED_UNITS if per_row == "b" else UNITS
        assert_matches(actual, expected, per_row=per_row is True, what=what, units=units)
        if np.ndim(expected) == x.ndim and lazy.ndim == x.ndim and lazy.shape == x.shape:
            assert lazy.chunks == d.chunks, what  # outputs chunked like the input


def test_logsumexp_keeps_tiny_results_across_chunks(client):
    # The dominant term in one chunk, the small one in another: still 4.25e-18 (not 0).
    x = da.from_array(np.array([0.0, -40.0]), chunks=1)
    assert ld.logsumexp(x).compute() == pytest.approx(4.248354255291589e-18, rel=1e-15)
    assert ld.log_softmax(x).compute()[0] == pytest.approx(-4.248354255291589e-18, rel=1e-15)
    f32 = da.from_array(np.array([40.0, 0.0], np.float32), chunks=1)
    loss = ld.cross_entropy(f32, np.array(0)).compute()
    assert loss.dtype == np.float32 and loss == logitloss.cross_entropy(np.array([40.0, 0.0], np.float32), np.array(0))


@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy(client, chunking, dtype):
    rng = np.random.default_rng(2)
    x = extreme_logits(dtype)
    d = chunked(x, chunking)
    t = targets_in_every_chunk(rng)
    t_ignored_class = t.copy()
    t_ignored_class[10:12] = 7
    w = rng.random(C).astype(dtype)
    probs = rng.random((N, C)).astype(dtype)
    probs /= probs.sum(axis=1, keepdims=True)
    cases = []
    for reduction in ("mean", "sum", "none"):
        for weight in (None, w):
            for smoothing in (0.0, 0.1):
                cases.append((t, dict(weight=weight, reduction=reduction, label_smoothing=smoothing)))
            cases.append((probs, dict(weight=weight, reduction=reduction, label_smoothing=0.2)))
        cases.append((t_ignored_class, dict(ignore_index=7, reduction=reduction, weight=w, label_smoothing=0.05)))
    calls = []
    for target, kwargs in cases:
        d_target = da.from_array(target, chunks=d.chunks if target.ndim == 2 else (d.chunks[0],))
        loss, grad = ld.cross_entropy(d, d_target, return_grad=True, **kwargs)
        expected_loss, expected_grad = logitloss.cross_entropy(x, target, return_grad=True, **kwargs)
        what = f"{'probabilities' if target.ndim == 2 else 'indices'} {kwargs if kwargs['weight'] is None else {**kwargs, 'weight': 'w'}}"
        calls += [(what + " loss", loss, expected_loss, False), (what + " grad", grad, expected_grad, True)]
        assert grad.chunks == d.chunks
        if kwargs["weight"] is not None:  # the forward-only graph (no gradient pass) too
            calls.append((what + " forward only", ld.cross_entropy(d, target, **kwargs), expected_loss, False))
    results = dask.compute(*[c[1] for c in calls])
    for (what, _, expected, per_row), actual in zip(calls, results):
        assert_matches(actual, expected, per_row=per_row, what=what)


def test_cross_entropy_finite_rows_mean(client):
    # Without the edge rows the mean is finite: the reduction over row chunks is checked too.
    rng = np.random.default_rng(3)
    for dtype in DTYPES:
        x = (rng.standard_normal((N, C)) * 4).astype(dtype)
        t = targets_in_every_chunk(rng)
        w = rng.random(C).astype(dtype)
        d = chunked(x, "uneven")
        for kwargs in (dict(), dict(weight=w, label_smoothing=0.3), dict(reduction="sum", weight=w)):
            loss, grad = dask.compute(*ld.cross_entropy(d, t, return_grad=True, **kwargs))
            expected_loss, expected_grad = logitloss.cross_entropy(x, t, return_grad=True, **kwargs)
            assert np.isfinite(expected_loss)
            assert_matches(loss, expected_loss, what=f"{dtype} {list(kwargs)}")
            assert_matches(grad, expected_grad, per_row=True, what=f"{dtype} {list(kwargs)} grad")


def test_cross_entropy_class_axis_one_of_many(client):
    # (N, C, d) logits: classes on axis 1, chunked, and a 1-d (C,) input with a 0-d target.
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, C, 5)).astype(np.float32)
    t = rng.integers(0, C, (6, 5))
    t[0, 0] = -100
    d = da.from_array(x, chunks=(3, 10, 2))
    target = da.from_array(t, chunks=(3, 2))
    for reduction in ("mean", "none"):
        loss, grad = dask.compute(*ld.cross_entropy(d, target, reduction=reduction, label_smoothing=0.1, return_grad=True))
        expected = logitloss.cross_entropy(x, t, reduction=reduction, label_smoothing=0.1, return_grad=True)
        assert_matches(loss, expected[0], what=reduction)
        assert_matches(np.moveaxis(grad, 1, -1), np.moveaxis(expected[1], 1, -1), per_row=True, what=reduction + " grad")
    row = x[0, :, 0]
    loss, grad = dask.compute(*ld.cross_entropy(da.from_array(row, chunks=9), np.array(5), return_grad=True))
    expected = logitloss.cross_entropy(row, np.array(5), return_grad=True)
    assert_matches(loss, expected[0])
    assert_matches(grad, expected[1], per_row=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy_with_logits(client, dtype):
    rng = np.random.default_rng(5)
    x = extreme_logits(dtype)
    y = (rng.random((N, C)) < 0.3).astype(dtype)
    w = rng.random((N, 1)).astype(dtype)
    pw = (rng.random(C) * 5).astype(dtype)
    calls = []
    for chunking in CHUNKINGS:
        d = chunked(x, chunking)
        target = da.from_array(y, chunks=d.chunks)
        for kwargs in (dict(), dict(weight=w, pos_weight=pw), dict(pos_weight=pw, reduction="sum"), dict(reduction="none", weight=w)):
            loss, grad = ld.binary_cross_entropy_with_logits(d, target, return_grad=True, **kwargs)
            expected = logitloss.binary_cross_entropy_with_logits(x, y, return_grad=True, **kwargs)
            what = f"{chunking} {list(kwargs)} {kwargs.get('reduction', 'mean')}"
            calls += [(what, loss, expected[0], False), (what + " grad", grad, expected[1], False)]
    results = dask.compute(*[c[1] for c in calls])
    for (what, _, expected, per_row), actual in zip(calls, results):
        assert_matches(actual, expected, per_row=per_row, what=what)


def test_results_are_lazy_dask_arrays(client):
    x = chunked(extreme_logits(np.float32), "both")
    t = np.zeros(N, np.int64)
    assert isinstance(ld.cross_entropy(x, t), da.Array) and ld.cross_entropy(x, t).shape == ()
    assert isinstance(ld.logsumexp(x), da.Array) and ld.logsumexp(x).ndim == 0
    loss, grad = ld.cross_entropy(x, t, reduction="none", return_grad=True)
    assert loss.shape == (N,) and grad.chunks == x.chunks


def test_numpy_inputs_are_wrapped(client):
    x = extreme_logits(np.float64)
    assert_matches(ld.logsumexp(x, axis=1).compute(), logitloss.logsumexp(x, axis=1))
    t = np.arange(N) % C
    assert_matches(ld.cross_entropy(x, t, reduction="none").compute(), logitloss.cross_entropy(x, t, reduction="none"))


def test_out_of_range_target_raises(client):
    x = chunked(extreme_logits(np.float32), "classes")
    for bad in (C, -1, 10**9):
        t = np.zeros(N, np.int64)
        t[13] = bad
        with pytest.raises(IndexError, match=f"Target {bad} is out of bounds"):
            ld.cross_entropy(x, t).compute()
        with pytest.raises(IndexError, match=f"Target {bad} is out of bounds"):
            dask.compute(*ld.cross_entropy(x, t, reduction="none", return_grad=True))


def test_misaligned_chunks_raise(client):
    x = chunked(extreme_logits(np.float32), "both")  # rows (12, 11)
    t = da.zeros(N, dtype=np.int64, chunks=(10, 13))
    with pytest.raises(ValueError, match="`target` is chunked as"):
        ld.cross_entropy(x, t)
    with pytest.raises(ValueError, match="`weight` is chunked as"):
        ld.cross_entropy(x, np.zeros(N, np.int64), weight=da.ones(C, chunks=C))
    with pytest.raises(ValueError, match="`target` is chunked as"):
        ld.binary_cross_entropy_with_logits(x, da.zeros((N, C), chunks=(N, C)))


def test_bad_arguments_raise_as_in_memory(client):
    x = chunked(extreme_logits(np.float32), "both")
    t = np.zeros(N, np.int64)
    with pytest.raises(ValueError, match="reduction"):
        ld.cross_entropy(x, t, reduction="max")
    with pytest.raises(ValueError, match="label_smoothing"):
        ld.cross_entropy(x, t, label_smoothing=1.5)
    with pytest.raises(TypeError):
        ld.cross_entropy(x, t.astype(np.float32))
    with pytest.raises(np.exceptions.AxisError if hasattr(np, "exceptions") else np.AxisError):
        ld.logsumexp(x, axis=2)
    with pytest.raises(ValueError, match="`target` has shape"):
        ld.cross_entropy(x, np.zeros(N + 1, np.int64))
    with pytest.raises(ValueError, match="does not broadcast"):
        ld.binary_cross_entropy_with_logits(x, np.zeros((N, C), np.float32), weight=np.ones(C + 1, np.float32))


def test_integer_and_bool_inputs_compute_in_float64(client):
    x = np.random.default_rng(6).integers(-5, 5, (N, C))
    d = da.from_array(x, chunks=(8, 10))
    results = dask.compute(ld.logsumexp(d, axis=1), ld.softmax(d > 0, axis=0), ld.log_softmax(d, axis=(0, 1)))
    assert_matches(results[0], logitloss.logsumexp(x, axis=1))
    assert_matches(results[1], logitloss.softmax(x > 0, axis=0), per_row=True)
    assert_matches(results[2], logitloss.log_softmax(x, axis=(0, 1)))


def test_cross_entropy_extreme_weights(client):
    # A mean over weights near the ends of float32 (its 1 / sum(w_y) beyond 2^64): the gradient's
    # target terms are formed in double, as the in-memory driver's rescaled weights give them.
    rng = np.random.default_rng(8)
    x = rng.standard_normal((N, C)).astype(np.float32)
    t = targets_in_every_chunk(rng)
    d = chunked(x, "both")
    for scale in (1e-38, 3e37):
        w = (rng.random(C) * scale + scale / 2).astype(np.float32)
        loss, grad = dask.compute(*ld.cross_entropy(d, t, w, label_smoothing=0.2, return_grad=True))
        expected = logitloss.cross_entropy(x, t, w, label_smoothing=0.2, return_grad=True)
        assert_matches(loss, expected[0], what=f"weights ~{scale}")
        assert_matches(grad, expected[1], per_row=True, what=f"weights ~{scale} grad")
