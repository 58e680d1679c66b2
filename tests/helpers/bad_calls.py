"""The bad-call tables of the ``test_*_errors.py`` files: each case a small valid call with one thing wrong, the
exact exception type it must raise and a regex its message must match (the offending argument's name, as the
messages quote it)."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest


def bad(name, error, match, call):
    return pytest.param(error, match, call, id=name)


def arg(name):
    """A regex for an argument's name as the messages quote it: `name`."""
    return f"`{name}`"


def overlap(out, other):
    return arg(out) + " overlaps " + arg(other)


def non_real(shape):
    """Arrays of dtypes no function accepts: complex, object, strings, datetimes, records."""
    zeros = np.zeros(shape)
    return {
        "complex128": zeros.astype(np.complex128),
        "complex64": zeros.astype(np.complex64),
        "object": zeros.astype(object),
        "str": zeros.astype("U3"),
        "bytes": zeros.astype("S3"),
        "datetime64": np.zeros(shape, "M8[D]"),
        "timedelta64": np.zeros(shape, "m8[s]"),
        "record": np.zeros(shape, [("v", "f8")]),
    }


RAGGED = [[1.0, 2.0], [3.0]]


def element0(v):
    """The first element of `v` as a 0-d array of its dtype (where the argument is a scalar)."""
    return v[:1].reshape(())


def expand(prefix, calls, error, match):
    return [bad(f"{prefix}-{name}", error, match, call) for name, call in calls.items()]


def fresh(shape=(3, 4), dtype=np.float64):
    return np.zeros(shape, dtype)


def read_only(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


def check_raises(error, match, call):
    with pytest.raises(error, match=match) as info:
        call()
    assert type(info.value) is error, f"raised {type(info.value).__name__}({info.value}), expected {error.__name__}"


def array_argument_cases(arguments, takes_element_0=()):
    """Bad calls of every array argument: ``arguments`` maps a case name to (the argument's name, a call
    taking the value), each given every dtype no function accepts (TypeError) and a ragged list (ValueError;
    not where the call passes only the value's first element on)."""
    cases = [
        bad(f"{where}-{dtype}", TypeError, arg(name), partial(call, value))
        for where, (name, call) in arguments.items()
        for dtype, value in non_real(3).items()
    ]
    cases += [
        bad(f"{where}-ragged-list", ValueError, arg(name), partial(call, RAGGED))
        for where, (name, call) in arguments.items()
        if where not in takes_element_0
    ]
    return cases
