"""Concurrency: many Python threads at once, thread counts changed (and targets switched) under
running calls, a fork after the pool started or while a kernel runs; every result bitwise equal
to the sequential one.

One workload (WORKLOAD) mixes calls big enough to run on the pool with the GIL released and tiny
ones that spend their time in the bindings with the GIL held, over every public function.
Results are compared as SHA-256 digests of their bytes (dtype and shape included).
"""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import threading

import numpy as np
import pytest

import logitloss
from logitloss.testing.inputs import logits

from .helpers.isas import SUPPORTED_ISAS

BIG = logits((32, 16384), np.float32, seed=80)  # 512 Ki elements: 8 work units for the pool
BIG_TARGET = np.random.default_rng(81).integers(0, 16384, 32)
BIG_WEIGHT = np.linspace(0.5, 2.0, 16384, dtype=np.float32)
BIG_UPSTREAM = logits(BIG.shape, np.float32, seed=82, spread=1.0)
BIG_SOFTMAX = logitloss.softmax(BIG, axis=-1)
KDIM = logits((4, 64, 2048), np.float64, seed=83)  # class axis 1 is strided: column kernels
KDIM_TARGET = np.random.default_rng(84).integers(0, 64, (4, 2048))
SMALL = logits((4, 10), np.float64, seed=85)
SMALL_TARGET = np.array([0, 9, 3, 3])


def _cross_entropy_into_buffer():
    grad = np.empty_like(BIG)
    loss, _ = logitloss.cross_entropy(BIG, BIG_TARGET, BIG_WEIGHT, label_smoothing=0.1, grad_out=grad)
    return loss, grad


def _log_softmax_into_buffer():
    out = np.empty_like(BIG)
    return logitloss.log_softmax(BIG, axis=-1, out=out)


WORKLOAD = {
    "logsumexp_grad": lambda: logitloss.logsumexp(BIG, axis=-1, return_grad=True),
    "logsumexp_axis0": lambda: logitloss.logsumexp(BIG, axis=0),
    "logsumexp_b_sign": lambda: logitloss.logsumexp(BIG, axis=-1, b=BIG_UPSTREAM, return_sign=True),
    "softmax": lambda: logitloss.softmax(BIG, axis=-1),
    "log_softmax_out": _log_softmax_into_buffer,
    "logsumexp_backward": lambda: logitloss.logsumexp_backward(BIG_UPSTREAM[:, 0], BIG, axis=-1),
    "softmax_backward": lambda: logitloss.softmax_backward(BIG_UPSTREAM, BIG_SOFTMAX, axis=-1),
    "log_softmax_backward": lambda: logitloss.log_softmax_backward(BIG_UPSTREAM, np.log(BIG_SOFTMAX), axis=-1),
    "cross_entropy_grad_out": _cross_entropy_into_buffer,
    "cross_entropy_kdim": lambda: logitloss.cross_entropy(KDIM, KDIM_TARGET, reduction="none", return_grad=True),
    "cross_entropy_backward": lambda: logitloss.cross_entropy_backward(np.float32(0.5), BIG, BIG_TARGET),
    "small_logsumexp": lambda: logitloss.logsumexp(SMALL, axis=1, return_grad=True),
    "small_softmax": lambda: logitloss.softmax(SMALL),
    "small_cross_entropy": lambda: logitloss.cross_entropy(SMALL, SMALL_TARGET, return_grad=True),
}


def digest(result):
    parts = result if isinstance(result, tuple) else (result,)
    h = hashlib.sha256()
    for part in parts:
        part = np.asarray(part)
        h.update(f"{part.dtype.str}{part.shape}".encode())
        h.update(np.ascontiguousarray(part).tobytes())
    return h.hexdigest()


def run_workload(order=None):
    names = order or list(WORKLOAD)
    return {name: digest(WORKLOAD[name]()) for name in names}


def sequential_digests():
    return run_workload()


def run_in_threads(count, rounds, during=None):
    """Run the workload `rounds` times in each of `count` Python threads started together (each in
    its own order), with `during()` called repeatedly from one more thread until they are done.
    Returns every thread's digests; re-raises the first exception any thread hit."""
    barrier = threading.Barrier(count + (during is not None))
    finished = threading.Event()
    results, errors = [None] * count, []

    def worker(index):
        try:
            order = list(WORKLOAD)
            np.random.default_rng(index).shuffle(order)
            barrier.wait()
            results[index] = [run_workload(order) for _ in range(rounds)]
        except BaseException as error:  # noqa: BLE001 (reported by the main thread)
            errors.append(error)

    def meddler():
        try:
            barrier.wait()
            while not finished.is_set():
                during()
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    extra = [threading.Thread(target=meddler)] if during else []
    for thread in threads + extra:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    finished.set()
    for thread in extra:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads + extra), "a thread did not finish in 120 s (deadlock?)"
    if errors:
        raise errors[0]
    return [round_digests for per_thread in results for round_digests in per_thread]


def assert_all_equal(expected, observed, what):
    for k, digests in enumerate(observed):
        differing = [name for name in expected if digests[name] != expected[name]]
        assert not differing, f"{what}: run {k} differs from the sequential results in {differing}"


def test_many_python_threads_match_sequential_calls(restore_threads):
    logitloss.set_num_threads(2)
    expected = sequential_digests()
    assert_all_equal(expected, run_in_threads(count=8, rounds=2), "8 Python threads")


def test_set_num_threads_while_other_threads_compute(restore_threads):
    expected = sequential_digests()
    counts = itertools.cycle([1, 2, 3, 8, 2, 1, 4])
    observed = run_in_threads(count=4, rounds=2, during=lambda: logitloss.set_num_threads(next(counts)))
    assert_all_equal(expected, observed, "set_num_threads changing")


def test_use_isa_while_other_threads_compute():
    """A switch takes effect between calls: each call's results are those of one target."""
    per_isa = {}
    for name in SUPPORTED_ISAS:
        with logitloss.use_isa(name):
            per_isa[name] = sequential_digests()
    isas = itertools.cycle(SUPPORTED_ISAS)

    def switch():
        with logitloss.use_isa(next(isas)):
            threading.Event().wait(0.001)

    before = logitloss.get_isa()
    observed = run_in_threads(count=3, rounds=2, during=switch)
    assert logitloss.get_isa() == before
    for k, digests in enumerate(observed):
        for call, value in digests.items():
            assert value in {per_isa[name][call] for name in SUPPORTED_ISAS}, f"run {k}: {call} matches no target"


def test_thread_counts_and_repeated_runs_bitwise_identical(restore_threads):
    logitloss.set_num_threads(1)
    expected = sequential_digests()
    for count in (1, 2, 3, 8):
        logitloss.set_num_threads(count)
        assert_all_equal(expected, [run_workload(), run_workload()], f"{count} threads")


# ---- fork --------------------------------------------------------------------------------------


def _child_digests(queue):
    logitloss.set_num_threads(2)  # the child's own pool
    queue.put(run_workload())


def digests_from_forked_child():
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_digests, args=(queue,))
    child.start()
    try:
        digests = queue.get(timeout=60)
    except Exception:
        child.kill()
        child.join()
        pytest.fail("the forked child did not answer within 60 s (deadlocked thread pool?)")
    child.join(timeout=60)
    assert child.exitcode == 0
    return digests


# Python 3.12+ warns about fork() in a process with threads (the pool's): that is what is tested.
fork_with_threads = pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")


@fork_with_threads
def test_fork_after_pool_started(restore_threads):
    """A child forked after the pool ran computes, on threads of its own, what the parent does."""
    logitloss.set_num_threads(2)
    expected = sequential_digests()  # the pool is up now
    assert_all_equal(expected, [digests_from_forked_child()], "forked child")
    assert_all_equal(expected, [run_workload()], "parent after the fork")


@fork_with_threads
def test_fork_while_a_kernel_runs_in_another_thread(restore_threads):
    """The pool may be mid-call (its locks held, its workers busy) at the fork: the child must not
    inherit that state."""
    logitloss.set_num_threads(2)
    expected = sequential_digests()
    stop = threading.Event()

    def keep_pool_busy():
        while not stop.is_set():
            logitloss.logsumexp(BIG, axis=-1, return_grad=True)

    busy = threading.Thread(target=keep_pool_busy)
    busy.start()
    try:
        children = [digests_from_forked_child() for _ in range(3)]
    finally:
        stop.set()
        busy.join(timeout=60)
    assert_all_equal(expected, children, "child forked mid-call")
