"""Output reuse (csrc/bindings/output_buffers.h): a result of 32 MiB or more is placed in the memory
of a dropped result instead of fresh pages.

What must hold: the values are the same bits as with reuse off (a reused buffer is also written
with streaming stores, which fresh pages are not), even when the dropped result's memory was
overwritten with nan first; memory that any array, view, memoryview, DLPack or torch tensor still
refers to is never handed out again; at most two dropped buffers are kept; reuse off keeps no more
and ``release_output_buffers()`` frees them. (LOGITLOSS_REUSE_OUTPUTS at import: test_config.py.)
"""

from __future__ import annotations

import gc
import threading
import tracemalloc

import numpy as np
import pytest

import logitloss
from logitloss import _core
from .helpers.libraries import require

REUSABLE_BYTES = 32 * 2**20
ROWS = {np.float32: 1024, np.float64: 520}  # x 8200 columns: just over 32 MiB
COLUMNS = 8200


def owned_by_numpy(a):
    """Whether a's memory belongs to an ndarray (NumPy's allocation), not to a reuse capsule."""
    while not a.flags.owndata:
        a = a.base
        if not isinstance(a, np.ndarray):
            return False
    return True


def poison(result):
    """Overwrites a result's memory with nan bits: whatever a later call leaves unwritten shows."""
    np.asarray(result).reshape(-1).view(np.uint8).fill(0xFF)


def idle_buffers():
    config = _core._config()
    return config["idle_buffers"], config["idle_buffer_bytes"]


@pytest.fixture(autouse=True)
def reuse_on():
    """Every test starts with reuse on and no idle buffer, and leaves it that way."""
    logitloss.set_output_reuse(True)
    logitloss.release_output_buffers()
    yield
    logitloss.set_output_reuse(True)
    gc.collect()
    logitloss.release_output_buffers()


def logits(dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((ROWS[dtype], COLUMNS)) * 4).astype(dtype)
    x[1, :3000] = -np.inf  # masked chunks
    x[2] = -np.inf  # nothing but -inf
    x[3, 5] = np.nan
    x[4, 7] = 1e4
    assert x.nbytes >= REUSABLE_BYTES
    return x


def softmax_backward_args(x):
    y = logitloss.softmax(x, axis=-1)
    return np.random.default_rng(1).standard_normal(x.shape).astype(x.dtype), y.copy()


# Every way a large array comes out of logitloss: name -> call(x) returning the large result.
CALLS = {
    "softmax": lambda x: logitloss.softmax(x, axis=-1),
    "log_softmax": lambda x: logitloss.log_softmax(x, axis=-1),
    "softmax axis 0": lambda x: logitloss.softmax(x, axis=0),
    "softmax of a column slice": lambda x: logitloss.softmax(x[:, 8:], axis=-1),  # rows apart, axes in C order
    "logsumexp grad": lambda x: logitloss.logsumexp(x, axis=-1, return_grad=True)[1],
    "logsumexp_backward": lambda x: logitloss.logsumexp_backward(np.ones(len(x), x.dtype), x, axis=-1),
    "softmax_backward": lambda x: logitloss.softmax_backward(*softmax_backward_args(x), axis=-1),
    "log_softmax_backward": lambda x: logitloss.log_softmax_backward(*softmax_backward_args(x), axis=-1),
    "cross_entropy grad": lambda x: logitloss.cross_entropy(
        x, np.arange(len(x)) % x.shape[1], label_smoothing=0.1, return_grad=True)[1],
    "cross_entropy_backward": lambda x: logitloss.cross_entropy_backward(
        np.asarray(1.0, x.dtype), x, np.arange(len(x)) % x.shape[1]),
    "bce grad": lambda x: logitloss.binary_cross_entropy_with_logits(x, np.full_like(x, 0.25), return_grad=True)[1],
    "bce reduction=none": lambda x: logitloss.binary_cross_entropy_with_logits(
        np.nan_to_num(x), np.full_like(x, 0.25), reduction="none"),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(CALLS))
def test_reused_results_are_the_same_bits(name, dtype):
    x = logits(dtype)
    call = CALLS[name]
    logitloss.set_output_reuse(False)
    expected = call(x)
    assert owned_by_numpy(expected)
    logitloss.set_output_reuse(True)
    first = call(x)
    assert not owned_by_numpy(first)
    address = first.ctypes.data
    assert np.array_equal(first, expected, equal_nan=True)
    poison(first)
    del first
    gc.collect()
    assert idle_buffers()[0] >= 1
    again = call(x)
    assert again.ctypes.data == address, "the dropped result's memory was not reused"
    assert np.array_equal(again, expected, equal_nan=True)
    assert again.flags.writeable and again.flags.c_contiguous and again.ctypes.data % 64 == 0


def test_float16_results_reuse_their_float32_temporary():
    x = logits(np.float32).astype(np.float16)  # 16 MiB of float16, computed in 32 MiB of float32
    expected = logitloss.softmax(x, axis=-1)
    assert expected.dtype == np.float16
    assert idle_buffers()[0] == 1  # the float32 result, dropped once cast
    assert np.array_equal(logitloss.softmax(x, axis=-1), expected, equal_nan=True)
    assert idle_buffers()[0] == 1


def test_grad_out_of_a_narrower_dtype_reuses_its_temporary():
    x = logits(np.float32).astype(np.float16)
    y = np.arange(len(x)) % x.shape[1]
    logitloss.set_output_reuse(False)
    _, expected = logitloss.cross_entropy(x, y, return_grad=True)
    logitloss.set_output_reuse(True)
    grad = np.empty_like(x)
    for _ in range(2):
        logitloss.cross_entropy(x, y, grad_out=grad)
        assert idle_buffers()[0] == 1  # the float32 gradient, copied into grad and dropped
        assert np.array_equal(grad, expected, equal_nan=True)


def test_results_laid_out_like_f_ordered_inputs_stay_numpys():
    x = np.asfortranarray(logits(np.float32))
    r = logitloss.softmax(x, axis=-1)
    assert r.flags.f_contiguous and owned_by_numpy(r)


def in_object_array(r):
    holder = np.empty(1, dtype=object)
    holder[0] = r
    return holder


def torch_tensor(r):
    return require("torch").from_numpy(r)


def innermost_base(r):
    """The capsule at the end of a result's base chain."""
    while isinstance(r, np.ndarray):
        r = r.base
    return r


class Subclass(np.ndarray):
    pass


# What may keep a result's memory alive: name -> (make the holder from the result, the holder's
# memory as an ndarray, or None where it has none).
HOLDERS = {
    "the array": (lambda r: r, lambda h: h),
    "a slice": (lambda r: r[1:], lambda h: h),
    "a view of a view": (lambda r: r[::2][1:].T, lambda h: h),
    "a reshape": (lambda r: r.reshape(-1), lambda h: h),
    "a subclass view": (lambda r: r.view(Subclass), np.asarray),
    "as_strided": (lambda r: np.lib.stride_tricks.as_strided(r[5:], shape=(10, 10), strides=(8, 4)), lambda h: h),
    "a memoryview": (memoryview, np.asarray),
    "np.frombuffer": (lambda r: np.frombuffer(r, dtype=np.float32), lambda h: h),
    "np.from_dlpack": (lambda r: np.from_dlpack(r), lambda h: h),
    "an object array": (in_object_array, lambda h: h[0]),
    "torch.from_numpy": (torch_tensor, lambda t: t.numpy()),
    "the capsule": (innermost_base, None),
}


@pytest.mark.parametrize("holder", list(HOLDERS))
def test_memory_still_referenced_is_never_reused(holder):
    make, as_array = HOLDERS[holder]
    x = logits(np.float32)
    result = logitloss.softmax(x, axis=-1)
    address = result.ctypes.data
    expected = make(result.copy()) if as_array is not None else None
    kept = make(result)
    del result
    gc.collect()
    others = [logitloss.softmax(x * 0.5, axis=-1) for _ in range(3)]  # each takes any idle buffer that fits
    assert all(other.ctypes.data != address for other in others)
    if as_array is not None:
        memory = as_array(kept)
        for other in others:
            assert not np.shares_memory(other, memory)
        assert np.array_equal(memory, as_array(expected), equal_nan=True)


def test_buffers_turn_idle_when_the_last_view_goes():
    x = logits(np.float32)
    result = logitloss.softmax(x, axis=-1)
    view = result[10:20]
    del result
    gc.collect()
    assert idle_buffers()[0] == 0
    del view
    gc.collect()
    count, size = idle_buffers()
    assert count == 1 and size >= x.nbytes


def test_at_most_two_idle_buffers_and_release():
    x = logits(np.float32)
    results = [logitloss.softmax(x, axis=-1) for _ in range(4)]
    assert len({r.ctypes.data for r in results}) == 4
    del results
    gc.collect()
    count, size = idle_buffers()
    assert count == 2 and 2 * x.nbytes <= size <= 2 * (x.nbytes + 2 * 2**20)
    assert logitloss.release_output_buffers() == size
    assert idle_buffers() == (0, 0)
    assert logitloss.release_output_buffers() == 0


def test_a_loop_that_rebinds_its_result_uses_two_buffers():
    """p = softmax(x) in a loop: the previous p is alive during the call, so two buffers take turns."""
    x = logits(np.float32)
    tracemalloc.start()
    try:
        p = None
        addresses = set()
        for _ in range(8):
            p = logitloss.softmax(x, axis=-1)
            addresses.add(p.ctypes.data)
        traced, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(addresses) == 2
    assert traced <= 2 * (x.nbytes + 4 * 2**20), f"{traced / 2**20:.0f} MiB held by tracemalloc's count"
    del p


def test_only_close_fits_are_reused():
    """An idle buffer serves results at most an eighth smaller than itself: no small result pins a big one."""
    big = np.random.default_rng(0).standard_normal((1600, COLUMNS)).astype(np.float32)  # 50 MiB
    address = logitloss.softmax(big, axis=-1).ctypes.data  # dropped at once: idle
    smaller = logitloss.softmax(big[:1024], axis=-1)  # 32 MiB: would leave 18 MiB of it unused
    assert smaller.ctypes.data != address
    close = logitloss.softmax(big[:1500], axis=-1)  # 47 MiB
    assert close.ctypes.data == address


def test_small_results_are_numpys_own():
    x = logits(np.float32)[:100]
    r = logitloss.softmax(x, axis=-1)
    assert owned_by_numpy(r)
    del r
    assert idle_buffers() == (0, 0)


def test_reuse_off_stops_reuse_and_keeps_no_more_buffers():
    x = logits(np.float32)
    kept = logitloss.softmax(x, axis=-1)
    idle_address = logitloss.softmax(x, axis=-1).ctypes.data  # dropped: idle
    assert idle_buffers()[0] == 1
    logitloss.set_output_reuse(False)
    assert not logitloss.get_output_reuse()
    r = logitloss.softmax(x, axis=-1)
    assert owned_by_numpy(r)
    del kept, r  # the buffer in use when reuse was turned off is freed, not kept
    gc.collect()
    assert idle_buffers()[0] == 1  # the one idle before stays, unused, until released or reuse is back on
    logitloss.set_output_reuse(True)
    assert logitloss.softmax(x, axis=-1).ctypes.data == idle_address


def test_set_output_reuse_takes_a_bool():
    for bad in (1, 0, "yes", None):
        with pytest.raises(TypeError, match="enabled"):
            logitloss.set_output_reuse(bad)
    assert logitloss.get_output_reuse()


def test_concurrent_callers_never_share_a_buffer(restore_threads):
    """Threads calling at once (the GIL is released in the kernels) each get their own memory."""
    inputs = [logits(np.float32, seed) for seed in range(3)]
    logitloss.set_output_reuse(False)
    expected = [logitloss.softmax(x, axis=-1) for x in inputs]
    logitloss.set_output_reuse(True)
    logitloss.set_num_threads(1)
    failures = []
    current = [None] * len(inputs)  # each thread's latest result, alive while the others run

    def work(i):
        for _ in range(6):
            r = logitloss.softmax(inputs[i], axis=-1)
            if not np.array_equal(r, expected[i], equal_nan=True):
                failures.append(f"thread {i}: wrong values")
            for j, other in enumerate(list(current)):
                if j != i and other is not None and np.shares_memory(r, other):
                    failures.append(f"thread {i}: memory of thread {j}'s live result")
            current[i] = r

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
