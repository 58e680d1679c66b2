"""Bad input to the softmax family (logsumexp, softmax, log_softmax and their backward functions): the right
exception type and a message naming the argument, for every call of the table, on every SIMD target.

``CASES`` is one table of bad calls (``tests/helpers/bad_calls.py``): each a small valid call with one thing
wrong, the exact exception type it must raise (TypeError, ValueError or numpy's AxisError) and a regex its
message must match.  After the table: failed calls leave nothing behind.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

import logitloss
from logitloss.testing.inputs import logits

from .helpers.assertions import same_bits
from .helpers.bad_calls import arg, array_argument_cases, bad, check_raises, element0, expand, fresh, overlap, read_only

AxisError = np.exceptions.AxisError

# Valid arguments the bad calls start from (never written to: calls that need a buffer make one).
X = logits((3, 4), np.float64, seed=0)  # the softmax family's input
XF = logits((3, 4), np.float32, seed=1)  # a float32 input
G = np.ones((3, 4))  # an upstream gradient of X's shape
P = np.full((3, 4), 0.25)  # a softmax output over the last axis

lse, lse_backward = logitloss.logsumexp, logitloss.logsumexp_backward
softmax, log_softmax = logitloss.softmax, logitloss.log_softmax
backward = {"softmax_backward": logitloss.softmax_backward, "log_softmax_backward": logitloss.log_softmax_backward}


def family_calls(axis):
    """Every softmax-family function called with `axis` (and otherwise valid arguments)."""
    per_row = np.ones(3)
    return {
        "logsumexp": lambda: logitloss.logsumexp(X, axis=axis),
        "logsumexp_b": lambda: logitloss.logsumexp(X, axis=axis, b=G),
        "softmax": lambda: logitloss.softmax(X, axis=axis),
        "log_softmax": lambda: logitloss.log_softmax(X, axis=axis),
        "logsumexp_backward": lambda: logitloss.logsumexp_backward(per_row, X, axis=axis),
        "softmax_backward": lambda: logitloss.softmax_backward(G, P, axis=axis),
        "log_softmax_backward": lambda: logitloss.log_softmax_backward(G, np.log(P), axis=axis),
    }


# ---- axes --------------------------------------------------------------------------------------

AXIS_CASES = []
for axis in (2, -3, (0, 2), (5,), (-3, 1), 2**70):
    AXIS_CASES += expand(f"axis-out-of-range-{axis!r}", family_calls(axis), AxisError, r"\baxis\b")
for axis in ((0, 0), (1, -1), (-2, 0, 1)):
    AXIS_CASES += expand(f"axis-repeated-{axis!r}", family_calls(axis), ValueError, arg("axis") + " has a repeated")
for axis in (1.0, "0", True, (0, 1.0), np.array([0, 1])):
    AXIS_CASES += expand(f"axis-not-integer-{axis!r}", family_calls(axis), TypeError, arg("axis"))

# ---- dtypes: every array argument given each dtype that makes no sense there, and a ragged list -----

DTYPE_CASES = array_argument_cases({
    "logsumexp-a": ("a", lse),
    "logsumexp-b": ("b", lambda v: lse(np.ones(3), b=v)),
    "softmax-x": ("x", softmax),
    "log_softmax-x": ("x", log_softmax),
    "logsumexp_backward-grad_output": ("grad_output", lambda v: lse_backward(v, np.ones(3))),
    "logsumexp_backward-a": ("a", lambda v: lse_backward(1.0, v)),
    "logsumexp_backward-b": ("b", lambda v: lse_backward(1.0, np.ones(3), b=v)),
    "logsumexp_backward-result": ("result", lambda v: lse_backward(1.0, np.ones(3), result=element0(v))),
    **{f"{name}-grad_output": ("grad_output", partial(lambda f, v: f(v, np.ones(3)), f))
       for name, f in backward.items()},
    **{f"{name}-output": ("output", partial(lambda f, v: f(np.ones(3), v), f)) for name, f in backward.items()},
}, takes_element_0=("logsumexp_backward-result",))
DTYPE_CASES.append(bad("complex-names-the-dtype", TypeError, "complex", partial(softmax, [1 + 2j, 3.0])))

# ---- flags ---------------------------------------------------------------------------------------

FLAG_CASES = [
    bad(f"logsumexp-{flag}-{value!r}", TypeError, arg(flag), partial(lse, X, **{flag: value}))
    for flag in ("keepdims", "return_sign", "return_grad")
    for value in ("yes", np.array([1, 2]))
]
FLAG_CASES.append(bad("logsumexp_backward-keepdims", TypeError, arg("keepdims"),
                      partial(lse_backward, np.ones(3), X, keepdims="yes")))

# ---- shapes --------------------------------------------------------------------------------------

SHAPE_CASES = [
    bad("b-does-not-broadcast", ValueError, arg("b"), partial(lse, X, b=np.ones(3))),
    bad("b-does-not-broadcast-3d", ValueError, arg("b"), partial(lse, X, axis=-1, b=np.ones((2, 3, 5)))),
    bad("logsumexp_backward-b-does-not-broadcast", ValueError, arg("b"),
        partial(lse_backward, np.ones(3), X, axis=1, b=np.ones(5))),
    bad("logsumexp_backward-grad_output-shape", ValueError, arg("grad_output"),
        partial(lse_backward, np.ones(4), X, axis=-1)),
    bad("logsumexp_backward-grad_output-keepdims-shape", ValueError, arg("grad_output"),
        partial(lse_backward, np.ones((3, 1, 1)), X, axis=-1, keepdims=True)),
    bad("logsumexp_backward-result-shape", ValueError, arg("result"),
        partial(lse_backward, np.ones(3), X, axis=-1, result=np.zeros(4))),
]
SHAPE_CASES += [
    bad(f"{name}-grad_output-{shape}", ValueError, arg("grad_output") + ".*" + arg("output"),
        partial(func, np.ones(shape), P, axis=-1))
    for name, func in backward.items()
    for shape in ((3, 5), (4, 3), (12,))
]
SHAPE_CASES += [
    bad(f"{func.__name__}-zero-length-axis-{shape}-{axis}", ValueError, arg("x") + " has length 0 along",
        partial(func, np.zeros(shape), axis=axis))
    for func in (softmax, log_softmax)
    for shape, axis in (((0,), None), ((0,), 0), ((2, 0), 1), ((2, 0), (0, 1)), ((3, 0, 2), 1))
]


# ---- out= -----------------------------------------------------------------------------------------


def shifted_out(func):
    """`out` one element past `x` in the same buffer: every write lands on an unread input."""
    buffer = np.arange(10.0)
    return func(buffer[:9], out=buffer[1:])


def transposed_out(func):
    square = np.arange(16.0).reshape(4, 4)
    return func(square.T, axis=1, out=square)


OUT_CASES = []
for func in (softmax, log_softmax):
    name = func.__name__
    OUT_CASES += [
        bad(f"{name}-out-shape-{shape}", ValueError, arg("out") + " has shape", partial(func, X, out=fresh(shape)))
        for shape in ((3, 5), (4, 3), (12,), (1, 3, 4))
    ]
    OUT_CASES += [
        bad(f"{name}-out-dtype-{np.dtype(dt).name}", TypeError, arg("out") + " has dtype",
            partial(func, X, out=fresh(dtype=dt)))
        for dt in (np.float32, np.float16, np.int64)
    ]
    OUT_CASES += [
        bad(f"{name}-out-float64-for-float32", TypeError, arg("out"), partial(func, XF, out=fresh())),
        bad(f"{name}-out-read-only", ValueError, arg("out") + " is read-only",
            partial(func, X, out=read_only(fresh()))),
        bad(f"{name}-out-read-only-input-itself", ValueError, arg("out") + " is read-only",
            partial(func, read_only(X), out=read_only(X))),
        bad(f"{name}-out-list", TypeError, arg("out"), partial(func, X, out=[[0.0] * 4] * 3)),
        bad(f"{name}-out-0d-for-1d", ValueError, arg("out"), partial(func, np.float64(1), out=fresh((1,)))),
        bad(f"{name}-out-shifted-overlap", ValueError, overlap("out", "x"), partial(shifted_out, func)),
        bad(f"{name}-out-transposed-alias", ValueError, overlap("out", "x"), partial(transposed_out, func)),
    ]

CASES = AXIS_CASES + DTYPE_CASES + FLAG_CASES + SHAPE_CASES + OUT_CASES


@pytest.mark.parametrize("error,match,call", CASES)
def test_bad_input(isa, error, match, call):
    check_raises(error, match, call)


# ---- no state left behind ------------------------------------------------------------------------


def test_errors_leave_no_state(isa):
    """A failed call changes nothing: not the arguments, not later results, not the ISA."""
    x = logits((4, 33), np.float32, seed=3)
    saved = x.copy()
    before = logitloss.logsumexp(x, axis=-1)
    for error, call in (
        (AxisError, lambda: logitloss.logsumexp(x, axis=3)),
        (TypeError, lambda: logitloss.softmax(x.astype(np.complex64))),
        (ValueError, lambda: logitloss.softmax(x[:, :32], out=x[:, 1:])),
    ):
        with pytest.raises(error):
            call()
    assert np.array_equal(x, saved), "an argument was modified by a call that raised"
    assert logitloss.get_isa() == isa
    assert same_bits(logitloss.logsumexp(x, axis=-1), before)
