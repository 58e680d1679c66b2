"""Bad input to cross_entropy and cross_entropy_backward: the right exception type and a message naming the
argument, for every call of the table, on every SIMD target (class indices are range-checked in the pass over the
logits, so an out-of-range target is found by every target's kernel).

``CASES`` is one table of bad calls (``tests/helpers/bad_calls.py``): each a small valid call with one thing
wrong, the exact exception type it must raise (TypeError, ValueError or IndexError) and a regex its message must
match, with the offending value where that is the point (an out-of-range class index).  After the table: failed
calls leave nothing behind.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

import logitloss
from logitloss.testing.inputs import logits

from .helpers.assertions import same_bits
from .helpers.bad_calls import arg, array_argument_cases, bad, check_raises, element0, expand, fresh, overlap, read_only

# Valid arguments the bad calls start from (never written to: calls that need a buffer make one).
XF = logits((3, 4), np.float32, seed=1)  # logits, (N, C) = (3, 4)
T = np.array([0, 3, 1])  # class-index targets
Y = np.full((3, 4), 0.25, np.float32)  # probability targets
X3 = logits((2, 4, 3), np.float32, seed=2)  # (N, C, d1)
F32_VECTOR = np.zeros(3, np.float32)

cross_entropy = logitloss.cross_entropy


def cross_entropy_calls(x, target, **kwargs):
    """The forward call, with return_grad, and the backward call, with the same arguments."""
    if kwargs.get("reduction") == "none":
        upstream = np.ones((np.shape(x)[0],) + np.shape(x)[2:] if np.ndim(x) > 1 else (), np.float32)
    else:
        upstream = np.float32(1.0)
    return {
        "cross_entropy": lambda: logitloss.cross_entropy(x, target, **kwargs),
        "return_grad": lambda: logitloss.cross_entropy(x, target, return_grad=True, **kwargs),
        "backward": lambda: logitloss.cross_entropy_backward(upstream, x, target, **kwargs),
    }


# ---- dtypes: every array argument given each dtype that makes no sense there, and a ragged list -----

DTYPE_CASES = array_argument_cases({
    "cross_entropy-input": ("input", lambda v: cross_entropy(v, np.array(0))),
    "cross_entropy-target": ("target", lambda v: cross_entropy(F32_VECTOR, element0(v))),
    "cross_entropy-weight": ("weight", lambda v: cross_entropy(F32_VECTOR, np.array(0), v)),
    "cross_entropy_backward-grad_output": (
        "grad_output", lambda v: logitloss.cross_entropy_backward(element0(v), F32_VECTOR, np.array(0))),
}, takes_element_0=("cross_entropy-target", "cross_entropy_backward-grad_output"))
DTYPE_CASES += [
    bad(f"cross_entropy-logits-{np.dtype(dt).name}", TypeError, arg("input") + " must hold floating",
        partial(cross_entropy, XF.astype(dt), T))
    for dt in (np.int64, np.int8, np.uint16, np.bool_)
]
DTYPE_CASES.append(bad("cross_entropy-return_grad", TypeError, arg("return_grad"),
                       partial(cross_entropy, XF, T, return_grad="yes")))

# ---- targets -------------------------------------------------------------------------------------

TARGET_CASES = []
for name, x, target in (
    ("short", XF, [0, 1]),
    ("long", XF, [0, 1, 2, 3]),
    ("column", XF, [[0], [1], [2]]),
    ("0-d", XF, 1),
    ("float-wrong-shape", XF, np.zeros((3, 5), np.float32)),
    ("kdim-(N,C)", X3, np.zeros((2, 4), np.int64)),
    ("kdim-(d1,N)", X3, np.zeros((3, 2), np.int64)),
    ("1d-input", XF[0], [1]),
):
    TARGET_CASES += expand(f"target-shape-{name}", cross_entropy_calls(x, np.array(target)), ValueError, arg("target"))
for dt in (np.float32, np.float64, np.float16, np.bool_):
    TARGET_CASES += expand(f"target-index-{np.dtype(dt).name}", cross_entropy_calls(XF, T.astype(dt)),
                           TypeError, arg("target") + " holds class indices")
for dt in (np.int64, np.int32, np.uint8):
    TARGET_CASES += expand(f"target-probability-{np.dtype(dt).name}", cross_entropy_calls(XF, np.zeros((3, 4), dt)),
                           TypeError, arg("target") + " has the input's shape")


def out_of_range(value):
    return arg("target") + f": Target {value} is out of bounds"


for target, value in (([0, 4, 1], 4), ([0, 1, 5], 5), ([0, -3, 1], -3), ([-1, 0, 1], -1), ([0, 2**40, 1], 2**40),
                      ([-(2**62), 0, 1], -(2**62))):
    for reduction in ("mean", "none"):
        calls = cross_entropy_calls(XF, np.array(target), reduction=reduction)
        TARGET_CASES += expand(f"target-out-of-range-{value}-{reduction}", calls, IndexError, out_of_range(value))
for dt in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.uint64):
    calls = cross_entropy_calls(XF, np.array([0, 7, 1], dt))
    TARGET_CASES += expand(f"target-out-of-range-{np.dtype(dt).name}", calls, IndexError, out_of_range(7))
for name, x, target, ignore_index, value in (
    ("int8-minus-100-not-ignored", XF, np.array([0, -100, 1], np.int8), 2, -100),
    ("minus-100-with-other-ignore_index", XF, np.array([0, -100, 1]), -1, -100),
    ("negative-not-ignore_index", XF, np.array([0, -2, 1]), -1, -2),
    ("1d-input", XF[0], np.array(9), -100, 9),
    ("kdim", X3, np.array([[0, 1, 2], [3, 4, 0]]), -100, 4),
    ("zero-classes", np.zeros((3, 0), np.float32), np.zeros(3, np.int64), -100, 0),
):
    calls = cross_entropy_calls(x, target, ignore_index=ignore_index)
    TARGET_CASES += expand(f"target-out-of-range-{name}", calls, IndexError, out_of_range(value))
# uint64 indices above 2^63 - 1 wrapped to negative int64: 2^64 - 100 became -100 (the default
# ignore_index) and was silently ignored.
for value in (2**64 - 100, 2**64 - 1, 2**63):
    for reduction in ("mean", "none"):
        calls = cross_entropy_calls(XF, np.array([0, value, 1], np.uint64), reduction=reduction)
        TARGET_CASES += expand(f"target-out-of-range-uint64-{value}-{reduction}", calls, IndexError, out_of_range(value))

# ---- weights -------------------------------------------------------------------------------------

WEIGHT_CASES = []
for name, shape in {"short": (3,), "long": (5,), "row": (1, 4), "column": (4, 1), "scalar": (), "empty": (0,)}.items():
    weight = np.ones(shape, np.float32)
    for kind, target in (("index", T), ("probability", Y)):
        calls = cross_entropy_calls(XF, target, weight=weight)
        WEIGHT_CASES += expand(f"weight-shape-{name}-{kind}", calls, ValueError, arg("weight"))
for name, weight in {"int64": np.ones(4, np.int64), "bool": np.ones(4, bool), "list-of-ints": [1, 1, 1, 1]}.items():
    WEIGHT_CASES += expand(f"weight-dtype-{name}", cross_entropy_calls(XF, T, weight=weight), TypeError, arg("weight"))

# ---- options: reduction, label_smoothing, ignore_index, input shape --------------------------------

OPTION_CASES = []
for reduction in ("avg", "MEAN", "elementwise_mean", ""):
    calls = cross_entropy_calls(XF, T, reduction=reduction)
    OPTION_CASES += expand(f"reduction-{reduction!r}", calls, ValueError, arg("reduction"))
for reduction in (None, 1, b"mean"):
    calls = cross_entropy_calls(XF, T, reduction=reduction)
    OPTION_CASES += expand(f"reduction-{reduction!r}", calls, TypeError, arg("reduction"))
for smoothing in (-0.1, -1e-30, 1.0000001, 2.0, float("nan"), float("inf"), -float("inf")):
    for kind, target in (("index", T), ("probability", Y)):
        calls = cross_entropy_calls(XF, target, label_smoothing=smoothing)
        OPTION_CASES += expand(f"label_smoothing-{smoothing!r}-{kind}", calls, ValueError,
                               arg("label_smoothing") + r" must be in \[0, 1\]")
for smoothing in ("0.1", None, True, np.array([0.1, 0.2]), 0.1 + 0j):
    calls = cross_entropy_calls(XF, T, label_smoothing=smoothing)
    OPTION_CASES += expand(f"label_smoothing-{smoothing!r}", calls, TypeError, arg("label_smoothing"))
for ignore_index in (1.5, 2.0, "1", None, np.float64(1.0), True, np.array([1, 2])):
    calls = cross_entropy_calls(XF, T, ignore_index=ignore_index)
    OPTION_CASES += expand(f"ignore_index-{ignore_index!r}", calls, TypeError, arg("ignore_index"))
calls = cross_entropy_calls(XF, T, ignore_index=2**70)
OPTION_CASES += expand("ignore_index-beyond-int64", calls, ValueError, arg("ignore_index"))
for ignore_index in (0, 1, 3, 100):  # torch: "ignore_index is not supported for floating point target"
    calls = cross_entropy_calls(XF, Y, ignore_index=ignore_index)
    OPTION_CASES += expand(f"ignore_index-{ignore_index}-probability", calls, ValueError, arg("ignore_index"))
for name, x in (("scalar", np.float32(1.5)), ("0-d-array", np.array(1.5, np.float32))):
    OPTION_CASES += expand(f"input-{name}", cross_entropy_calls(x, np.array(0)), ValueError, arg("input"))


# ---- grad_out and the backward's upstream ---------------------------------------------------------


def grad_out_overlapping_input():
    buffer = np.zeros((3, 5), np.float32)
    return cross_entropy(buffer[:, :4], T, grad_out=buffer[:, 1:])


def grad_out_is_target():
    target = Y.copy()
    return cross_entropy(XF, target, grad_out=target)


def grad_out_overlapping_weight():
    buffer = np.ones((4, 4), np.float32)
    return cross_entropy(np.zeros((4, 4), np.float32), np.arange(4), weight=buffer[0], grad_out=buffer)


GRAD_OUT_CASES = [
    *[bad(f"grad_out-shape-{shape}", ValueError, arg("grad_out") + " has shape",
          partial(cross_entropy, XF, T, grad_out=fresh(shape, np.float32)))
      for shape in ((3, 5), (4, 3), (12,))],
    *[bad(f"grad_out-dtype-{np.dtype(dt).name}", TypeError, arg("grad_out") + " has dtype",
          partial(cross_entropy, XF, T, grad_out=fresh(dtype=dt)))
      for dt in (np.float64, np.float16, np.int32)],
    bad("grad_out-read-only", ValueError, arg("grad_out") + " is read-only",
        partial(cross_entropy, XF, T, grad_out=read_only(fresh(dtype=np.float32)))),
    bad("grad_out-read-only-input-itself", ValueError, arg("grad_out") + " is read-only",
        partial(cross_entropy, read_only(XF), T, grad_out=read_only(XF))),
    bad("grad_out-list", TypeError, arg("grad_out"), partial(cross_entropy, XF, T, grad_out=[[0.0] * 4] * 3)),
    bad("grad_out-overlaps-input", ValueError, overlap("grad_out", "input"), grad_out_overlapping_input),
    bad("grad_out-is-target", ValueError, overlap("grad_out", "target"), grad_out_is_target),
    bad("grad_out-overlaps-weight", ValueError, overlap("grad_out", "weight"), grad_out_overlapping_weight),
]
GRAD_OUT_CASES += [
    bad(f"cross_entropy_backward-grad_output-{shape}-{reduction}", ValueError, arg("grad_output"),
        partial(logitloss.cross_entropy_backward, np.ones(shape, np.float32), XF, T, reduction=reduction))
    for shape, reduction in (((4,), "none"), ((3, 1), "none"), ((), "none"), ((3,), "mean"), ((3,), "sum"),
                             ((1, 1), "sum"))
]

CASES = DTYPE_CASES + TARGET_CASES + WEIGHT_CASES + OPTION_CASES + GRAD_OUT_CASES


@pytest.mark.parametrize("error,match,call", CASES)
def test_bad_input(isa, error, match, call):
    check_raises(error, match, call)


# ---- no state left behind ------------------------------------------------------------------------


def test_errors_leave_no_state(isa):
    """A failed call changes nothing: not the arguments (not even with grad_out=input), not later results, not
    the ISA."""
    x = logits((4, 33), np.float32, seed=3)
    t = np.array([0, 5, 32, 7])
    saved = x.copy()
    before = logitloss.cross_entropy(x, t, return_grad=True)
    for error, call in (
        (IndexError, lambda: logitloss.cross_entropy(x, np.array([0, 5, 33, 7]), grad_out=x)),
        (ValueError, lambda: logitloss.cross_entropy(x, t, label_smoothing=-1.0)),
        (ValueError, lambda: logitloss.cross_entropy(x, t, weight=np.ones(3, np.float32))),
    ):
        with pytest.raises(error):
            call()
    assert np.array_equal(x, saved), "an argument was modified by a call that raised"
    assert logitloss.get_isa() == isa
    after = logitloss.cross_entropy(x, t, return_grad=True)
    assert after[0] == before[0] and same_bits(after[1], before[1])
