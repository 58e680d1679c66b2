"""Bad input to the configuration functions (set_num_threads, use_isa): the right exception type and a
message naming the argument; huge thread counts capped, not refused; failed calls leave the configuration alone.
Laid out as the families' ``test_*_errors.py``: a table of bad calls (``tests/helpers/bad_calls.py``), then what a
table cannot say.
"""

from __future__ import annotations

from fractions import Fraction
from functools import partial

import numpy as np
import pytest

import logitloss
from logitloss.testing.inputs import logits

from .helpers.assertions import same_bits
from .helpers.bad_calls import arg, bad, check_raises
from .helpers.isas import KNOWN_ISAS, SUPPORTED_ISAS


def enter_use_isa(name):
    with logitloss.use_isa(name):
        pass


CONFIG_CASES = [
    *[bad(f"set_num_threads-{n!r}", ValueError, arg("n") + ".*>= 1", partial(logitloss.set_num_threads, n))
      for n in (0, -1, -(2**31), -(2**70), np.int64(0), np.uint8(0))],
    *[bad(f"set_num_threads-{n!r}", TypeError, arg("n") + ".*integer", partial(logitloss.set_num_threads, n))
      for n in (1.5, 2.0, np.float64(2.0), "2", None, True, False, np.True_, np.array([1, 2]), 1 + 0j,
                Fraction(2, 1))],
    *[bad(f"use_isa-{name!r}", ValueError, arg("name") + f".*'{name}'", partial(enter_use_isa, name))
      for name in ("sse9", "", "AVX2", *sorted(set(KNOWN_ISAS) - set(SUPPORTED_ISAS)))],
    *[bad(f"use_isa-{name!r}", TypeError, arg("name"), partial(enter_use_isa, name)) for name in (None, 3, b"avx2")],
]


@pytest.mark.parametrize("error,match,call", CONFIG_CASES)
def test_bad_input(restore_threads, error, match, call):
    check_raises(error, match, call)


MAX_THREADS = 1024  # documented: set_num_threads caps larger counts here


@pytest.mark.parametrize("n", [MAX_THREADS, MAX_THREADS + 1, 10**6, 2**31, 2**63, 2**70, 10**100])
def test_set_num_threads_caps_huge_counts(n, restore_threads):
    """torch accepts any positive count; logitloss caps it at 1024 (each thread costs a stack and
    a start), so a huge request neither fails nor tries to start millions of threads."""
    logitloss.set_num_threads(n)
    assert logitloss.get_num_threads() == MAX_THREADS
    x = logits((64, 40_000), np.float32, seed=4)  # enough work for many threads
    got = logitloss.logsumexp(x, axis=-1)
    logitloss.set_num_threads(1)
    assert same_bits(got, logitloss.logsumexp(x, axis=-1))


@pytest.mark.parametrize("n", [1, 2, 3, np.int32(2), np.uint64(3), MAX_THREADS - 1])
def test_set_num_threads_accepts_integers(n, restore_threads):
    logitloss.set_num_threads(n)
    assert logitloss.get_num_threads() == int(n) and type(logitloss.get_num_threads()) is int


def test_errors_leave_no_state(isa, restore_threads):
    """A failed configuration call changes nothing: not the ISA, not the thread count, not later results."""
    x = logits((4, 33), np.float32, seed=3)
    before = logitloss.logsumexp(x, axis=-1)
    threads = logitloss.get_num_threads()
    for error, call in (
        (ValueError, lambda: logitloss.set_num_threads(0)),
        (ValueError, lambda: enter_use_isa("sse9")),
    ):
        with pytest.raises(error):
            call()
    assert logitloss.get_isa() == isa and logitloss.get_num_threads() == threads
    assert same_bits(logitloss.logsumexp(x, axis=-1), before)
