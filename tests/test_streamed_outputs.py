"""Outputs large enough to be streamed past the caches (non-temporal stores).

A caller's output buffer (softmax / log_softmax `out=`, cross_entropy `grad_out=`) of at least
32 MiB whose rows are contiguous and at least 2 KiB is written with streaming stores, and
softmax-like rows stage their terms in a thread-local buffer first (row_access.h,
``stream_output``); fresh outputs are not streamed, results in a dropped result's reused memory
are (output_buffers.h). The values must not change: every result here
is compared bitwise with the same rows computed in slices of 64 rows (2 MiB: not streamed), and a
sample of rows with the exact reference. NumPy's large arrays start 16 bytes past a 64-byte
boundary; the buffers here start 0 or 4 bytes past one, so the streamed loop meets an aligned
row start, and heads of every length as the rows' offsets advance.
"""

from __future__ import annotations

import numpy as np
import pytest

import logitloss
from logitloss.testing.inputs import empty_at_offset
from logitloss.testing.softmax_family import softmax as exact_softmax

from .helpers.assertions import assert_close_to_exact

STREAMED_BYTES = 32 * 2**20
SLICE_ROWS = 64


def big_logits(dtype, seed=0):
    """Rows of 8200 float32 (6000 float64) logits, more than 32 MiB in all, with the hard cases:
    -inf masks over whole chunks, a row with its max in its last chunk, huge and tiny logits,
    and rows with a nan, an inf or nothing but -inf."""
    columns = 8200 if dtype == np.float32 else 6000
    rows = STREAMED_BYTES // (columns * np.dtype(dtype).itemsize) + 16
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, columns)) * 4).astype(dtype)
    x[1, :3000] = -np.inf  # leading masked chunks: their reference max is -inf
    x[2, 2000:5000] = -np.inf  # masked chunks after finite ones
    x[3, -1] = 80.0  # the row's max arrives in its last chunk: earlier chunks are rescaled
    x[4] = np.linspace(-50, 50, columns, dtype=dtype)  # the max rises in every chunk
    x[5, 7] = 1e4
    x[6] = -3e38
    x[8, 5] = np.nan  # rows taking SciPy's edge-case rules, between regular ones
    x[9] = -np.inf
    x[10, 3] = np.inf
    x[-1, 0] = np.nan  # the last row of the array
    return x


def in_slices(compute, *arrays):
    """compute(*row slices) over slices of SLICE_ROWS rows (each too small to be streamed)."""
    rows = arrays[0].shape[0]
    parts = [compute(*(a[i : i + SLICE_ROWS] for a in arrays)) for i in range(0, rows, SLICE_ROWS)]
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate(p) for p in zip(*parts))
    return np.concatenate(parts)


def assert_bitwise(streamed, sliced):
    assert streamed.dtype == sliced.dtype and streamed.shape == sliced.shape
    assert np.array_equal(streamed, sliced, equal_nan=True)


@pytest.fixture(scope="module", params=[np.float32, np.float64], ids=["float32", "float64"])
def logits(request):
    x = big_logits(request.param)
    assert x.nbytes >= STREAMED_BYTES
    return x


def new_result(call, memory):
    """call() with its (last) result in fresh pages ("fresh") or in the memory of a dropped one, overwritten
    with nan bits before it was dropped ("reused")."""
    logitloss.release_output_buffers()
    if memory == "fresh":
        return call()
    dropped = call()
    dropped_memory = dropped[-1] if isinstance(dropped, tuple) else dropped
    address = dropped_memory.ctypes.data
    dropped_memory.reshape(-1).view(np.uint8).fill(0xFF)
    del dropped, dropped_memory
    result = call()
    assert (result[-1] if isinstance(result, tuple) else result).ctypes.data == address, "not reused"
    return result


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("output", ["fresh", "reused", 0, 4], ids=["fresh", "reused", "aligned", "offset4"])
def test_softmax_family_streamed(isa, logits, log, output):
    f = logitloss.log_softmax if log else logitloss.softmax
    if isinstance(output, str):
        streamed = new_result(lambda: f(logits, axis=-1), output)
    else:
        streamed = f(logits, axis=-1, out=empty_at_offset(logits.shape, logits.dtype, output))  # output: its offset
    assert_bitwise(streamed, in_slices(lambda x: f(x, axis=-1), logits))
    rows = [0, 1, 2, 3, 4, 5, 6, len(logits) - 2]
    exact = exact_softmax(logits[rows], axis=-1)
    if log:
        assert_close_to_exact(streamed[rows], exact.log_softmax, exact.dtype, exact.log_softmax_scale,
                              lo=exact.log_softmax_lo, what="streamed log_softmax")
    else:
        assert_close_to_exact(streamed[rows], exact.softmax, exact.dtype, exact.softmax_scale, lo=exact.softmax_lo,
                              what="streamed softmax")


@pytest.mark.parametrize("output", ["fresh", "reused", 0, 4], ids=["fresh", "reused", "aligned", "offset4"])
@pytest.mark.parametrize("targets", ["index", "probabilities"])
def test_cross_entropy_gradient_streamed(isa, logits, targets, output):
    rng = np.random.default_rng(1)
    n, c = logits.shape
    weight = rng.uniform(0.5, 2.0, c).astype(logits.dtype)
    if targets == "index":
        y = rng.integers(0, c, n)
        y[7] = -100  # ignored: its gradient row is zeros
    else:
        y = rng.dirichlet(np.ones(c), n).astype(logits.dtype)
    kwargs = dict(weight=weight, reduction="none", label_smoothing=0.1)
    if isinstance(output, str):
        loss, grad = new_result(lambda: logitloss.cross_entropy(logits, y, return_grad=True, **kwargs), output)
    else:
        out = empty_at_offset(logits.shape, logits.dtype, output)
        loss, grad = logitloss.cross_entropy(logits, y, grad_out=out, **kwargs)
        assert grad is out
    sliced_loss, sliced_grad = in_slices(lambda x, t: logitloss.cross_entropy(x, t, return_grad=True, **kwargs), logits, y)
    assert_bitwise(loss, sliced_loss)
    assert_bitwise(grad, sliced_grad)
    if targets == "index":
        assert not grad[7].any()
    # The gradient rows of regular rows sum to 0 (within the rounding of their C terms).
    regular = np.isfinite(loss)
    sums = grad[regular].astype(np.float64).sum(axis=1)
    scale = np.abs(grad[regular]).astype(np.float64).sum(axis=1)
    assert np.all(np.abs(sums) <= 64 * np.finfo(logits.dtype).eps * scale)


def test_streamed_outputs_do_not_depend_on_threads(isa, logits, restore_threads):
    results = []
    for threads in (1, 2):
        logitloss.set_num_threads(threads)
        outputs = (empty_at_offset(logits.shape, logits.dtype, 4), empty_at_offset(logits.shape, logits.dtype, 4))
        results.append((logitloss.softmax(logits, axis=-1, out=outputs[0]),
                        logitloss.log_softmax(logits, axis=-1, out=outputs[1])))
    for one, two in zip(*results):
        assert_bitwise(one, two)


def test_in_place_is_not_streamed_and_matches(isa, logits):
    """out=x (in place) keeps plain stores; the values are the same as a separate output's."""
    expected = logitloss.softmax(logits, axis=-1)
    x = logits.copy()
    assert logitloss.softmax(x, axis=-1, out=x) is x
    assert_bitwise(x, expected)
