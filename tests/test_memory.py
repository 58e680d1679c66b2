"""Memory: repeated calls keep no arrays, buffers or references; the process exits cleanly.

Tens of thousands of small calls (every public function, and calls that raise) and a few dozen
calls on 4 MB arrays, measured after as many again: a leak of one small object per call shows in tracemalloc
(NumPy reports its data buffers to it), a leaked output buffer in the RSS, a leaked reference in
the arguments' reference counts. The sanitizer build's leak checker is run by hand (README).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

import logitloss
from logitloss.testing.inputs import logits

from .helpers.libraries import require
from .helpers.process_memory import resident_bytes, under_address_sanitizer

SMALL = logits((4, 10), np.float64, seed=90)
SMALL_F32 = SMALL.astype(np.float32)
SMALL_TARGET = np.array([0, 3, 9, 1])
SMALL_WEIGHT = np.linspace(0.5, 2.0, 10, dtype=np.float32)
SMALL_OUT = np.empty_like(SMALL)
SMALL_GRAD = np.empty_like(SMALL_F32)
SMALL_P = logitloss.softmax(SMALL, axis=1)


def _raises(call, error):
    try:
        call()
    except error:
        return
    raise AssertionError(f"expected {error.__name__}")


SMALL_CALLS = {
    "logsumexp": lambda: logitloss.logsumexp(SMALL, axis=1),
    "logsumexp_all_options": lambda: logitloss.logsumexp(
        SMALL, axis=1, b=SMALL_P, keepdims=True, return_sign=True, return_grad=True),
    "logsumexp_float16": lambda: logitloss.logsumexp(SMALL.astype(np.float16), axis=0, return_grad=True),
    "softmax_out": lambda: logitloss.softmax(SMALL, axis=1, out=SMALL_OUT),
    "log_softmax_list": lambda: logitloss.log_softmax([[1.0, 2.0], [3.0, 4.0]]),
    "logsumexp_backward": lambda: logitloss.logsumexp_backward(SMALL[:, 0], SMALL, axis=1, result=SMALL[:, 1]),
    "softmax_backward": lambda: logitloss.softmax_backward(SMALL, SMALL_P, axis=1),
    "log_softmax_backward_transposed": lambda: logitloss.log_softmax_backward(SMALL.T, SMALL_P.T, axis=0),
    "cross_entropy": lambda: logitloss.cross_entropy(
        SMALL_F32, SMALL_TARGET, SMALL_WEIGHT, label_smoothing=0.1, return_grad=True),
    "cross_entropy_grad_out": lambda: logitloss.cross_entropy(SMALL_F32, SMALL_TARGET, grad_out=SMALL_GRAD),
    "cross_entropy_probabilities_none": lambda: logitloss.cross_entropy(SMALL_F32, SMALL_P, reduction="none"),
    "cross_entropy_backward": lambda: logitloss.cross_entropy_backward(
        np.ones(4), SMALL, SMALL_TARGET, reduction="none"),
    # failures after the arguments were converted and outputs allocated
    "error_target_out_of_range": lambda: _raises(
        lambda: logitloss.cross_entropy(SMALL_F32, np.array([0, 3, 10, 1]), return_grad=True), IndexError),
    "error_axis": lambda: _raises(lambda: logitloss.logsumexp(SMALL, axis=(0, 5)), np.exceptions.AxisError),
    "error_out_overlap": lambda: _raises(lambda: logitloss.softmax(SMALL_OUT.T, out=SMALL_OUT), ValueError),
    "error_weight": lambda: _raises(lambda: logitloss.cross_entropy(SMALL_F32, SMALL_TARGET, SMALL_P), ValueError),
}

BIG = logits((256, 4096), np.float32, seed=91)  # 4 MB: a leaked result is plain in the RSS
BIG_TARGET = np.random.default_rng(92).integers(0, 4096, 256)

BIG_CALLS = {
    "logsumexp_grad": lambda: logitloss.logsumexp(BIG, axis=1, return_grad=True),
    "logsumexp_axis0_grad": lambda: logitloss.logsumexp(BIG, axis=0, return_grad=True),
    "softmax_strided": lambda: logitloss.softmax(BIG[:, ::2], axis=0),
    "log_softmax_backward": lambda: logitloss.log_softmax_backward(BIG, BIG, axis=1),
    "cross_entropy_grad": lambda: logitloss.cross_entropy(BIG, BIG_TARGET, return_grad=True),
    "cross_entropy_backward": lambda: logitloss.cross_entropy_backward(1.0, BIG, BIG_TARGET, label_smoothing=0.1),
}

MB = 2**20


def measure_growth(calls, repeats):
    """Run every call `repeats` times, twice over; return how much the RSS and the memory
    tracemalloc sees grew over the second time. (The first time fills what NumPy and Python cache
    for good: a few hundred small objects for the casts' error states, for example. A leak grows
    both times alike.)"""
    tracemalloc.start()
    try:
        for phase in ("warm-up", "measured"):
            rss_before, (traced_before, _) = resident_bytes(), tracemalloc.get_traced_memory()
            for _ in range(repeats):
                for call in calls.values():
                    call()
        rss_after, (traced_after, _) = resident_bytes(), tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return rss_after - rss_before, traced_after - traced_before


def test_many_small_calls_keep_nothing():
    repeats = 1500  # x 16 calls: 24 000 calls measured; one leaked 32-byte object per call is 750 kB
    rss_growth, traced_growth = measure_growth(SMALL_CALLS, repeats)
    calls = repeats * len(SMALL_CALLS)
    assert traced_growth < 64 * 1024, f"{traced_growth} bytes more allocated after {calls} calls"
    assert rss_growth < 2 * MB or under_address_sanitizer(), f"RSS grew by {rss_growth / MB:.1f} MB over {calls} calls"


def test_large_calls_keep_nothing():
    repeats = 6  # x 6 calls, most returning a 4 MB array
    rss_growth, traced_growth = measure_growth(BIG_CALLS, repeats)
    assert traced_growth < 1 * MB, f"{traced_growth / MB:.1f} MB more allocated"
    assert rss_growth < 8 * MB or under_address_sanitizer(), f"RSS grew by {rss_growth / MB:.1f} MB"


@pytest.mark.parametrize("name", list(SMALL_CALLS))
def test_calls_keep_no_references_to_arguments(name):
    arguments = (SMALL, SMALL_F32, SMALL_TARGET, SMALL_WEIGHT, SMALL_OUT, SMALL_GRAD, SMALL_P)
    call = SMALL_CALLS[name]
    call()
    before = [sys.getrefcount(a) for a in arguments]
    for _ in range(100):
        call()
    after = [sys.getrefcount(a) for a in arguments]
    assert after == before, f"{name}: reference counts {before} -> {after}"


def test_interpreter_exits_cleanly(tmp_path):
    """Nothing of the extension's is released after Python finalized. (A static py::module_ for
    NumPy was: its C++ destructor ran after Py_Finalize and crashed the process on exit, which
    importing hypothesis first made reliable.)"""
    require("hypothesis")
    script = tmp_path / "exit.py"
    script.write_text(textwrap.dedent("""
        import hypothesis
        import numpy as np
        import logitloss
        x = np.ones((3, 4))
        logitloss.logsumexp(x, axis=1, b=x)
        logitloss.softmax_backward(x, x)
        logitloss.softmax(x, out=np.empty_like(x))
        logitloss.cross_entropy(x, np.array([0, 1, 2]), return_grad=True)
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"exit status {proc.returncode}: {proc.stderr[-2000:]}"
