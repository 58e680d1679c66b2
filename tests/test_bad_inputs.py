"""Bad input to every public function: the right exception type, and a message naming the argument.

``CASES`` is one table of bad calls. Each is a small valid call with one thing wrong, the exact
exception type it must raise (TypeError, ValueError, IndexError or numpy's AxisError) and a regex
its message must match: the offending argument's name (and the offending value where that is the
point, e.g. an out-of-range class index). After the table: inputs that look odd but are valid
(read-only, negative and zero strides, bool, NumPy integers, exact in-place aliases) and must work,
and failed calls that must leave nothing behind.
"""

from __future__ import annotations

from fractions import Fraction
from functools import partial

import numpy as np
import pytest
from checks import same_bits
from conftest import KNOWN_ISAS, SUPPORTED_ISAS
from inputs import logits, misaligned_copy, negative_stride_view

import logitloss

AxisError = np.exceptions.AxisError

# Valid arguments the bad calls start from (never written to: calls that need a buffer make one).
X = logits((3, 4), np.float64, seed=0)  # the softmax family's input
G = np.ones((3, 4))  # an upstream gradient of X's shape
P = np.full((3, 4), 0.25)  # a softmax output over the last axis
XF = logits((3, 4), np.float32, seed=1)  # cross-entropy logits, (N, C) = (3, 4)
T = np.array([0, 3, 1])  # class-index targets
Y = np.full((3, 4), 0.25, np.float32)  # probability targets


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


def expand(prefix, calls, error, match):
    return [bad(f"{prefix}-{name}", error, match, call) for name, call in calls.items()]


def enter_use_isa(name):
    with logitloss.use_isa(name):
        pass


def fresh(shape=(3, 4), dtype=np.float64):
    return np.zeros(shape, dtype)


def read_only(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


# ---- the table ---------------------------------------------------------------------------------

lse, softmax, log_softmax = logitloss.logsumexp, logitloss.softmax, logitloss.log_softmax
lse_backward, cross_entropy = logitloss.logsumexp_backward, logitloss.cross_entropy
backward = {"softmax_backward": logitloss.softmax_backward, "log_softmax_backward": logitloss.log_softmax_backward}

AXIS_CASES = []
for axis in (2, -3, (0, 2), (5,), (-3, 1), 2**70):
    AXIS_CASES += expand(f"axis-out-of-range-{axis!r}", family_calls(axis), AxisError, r"\baxis\b")
for axis in ((0, 0), (1, -1), (-2, 0, 1)):
    AXIS_CASES += expand(f"axis-repeated-{axis!r}", family_calls(axis), ValueError, arg("axis") + " has a repeated")
for axis in (1.0, "0", True, (0, 1.0), np.array([0, 1])):
    AXIS_CASES += expand(f"axis-not-integer-{axis!r}", family_calls(axis), TypeError, arg("axis"))

# Every array argument of every function (name, call taking the argument), given each dtype that
# makes no sense there, and a ragged list.
F32_VECTOR = np.zeros(3, np.float32)
ARRAY_ARGUMENTS = {
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
    "cross_entropy-input": ("input", lambda v: cross_entropy(v, np.array(0))),
    "cross_entropy-target": ("target", lambda v: cross_entropy(F32_VECTOR, element0(v))),
    "cross_entropy-weight": ("weight", lambda v: cross_entropy(F32_VECTOR, np.array(0), v)),
    "cross_entropy_backward-grad_output": (
        "grad_output", lambda v: logitloss.cross_entropy_backward(element0(v), F32_VECTOR, np.array(0))),
}
TAKES_ELEMENT_0 = ("logsumexp_backward-result", "cross_entropy-target", "cross_entropy_backward-grad_output")
DTYPE_CASES = [
    bad(f"{where}-{dtype}", TypeError, arg(name), partial(call, value))
    for where, (name, call) in ARRAY_ARGUMENTS.items()
    for dtype, value in non_real(3).items()
]
DTYPE_CASES += [
    bad(f"{where}-ragged-list", ValueError, arg(name), partial(call, RAGGED))
    for where, (name, call) in ARRAY_ARGUMENTS.items()
    if where not in TAKES_ELEMENT_0
]
DTYPE_CASES.append(bad("complex-names-the-dtype", TypeError, "complex", partial(softmax, [1 + 2j, 3.0])))
DTYPE_CASES += [
    bad(f"cross_entropy-logits-{np.dtype(dt).name}", TypeError, arg("input") + " must hold floating",
        partial(cross_entropy, XF.astype(dt), T))
    for dt in (np.int64, np.int8, np.uint16, np.bool_)
]

FLAG_CASES = [
    bad(f"logsumexp-{flag}-{value!r}", TypeError, arg(flag), partial(lse, X, **{flag: value}))
    for flag in ("keepdims", "return_sign", "return_grad")
    for value in ("yes", np.array([1, 2]))
]
FLAG_CASES += [
    bad("logsumexp_backward-keepdims", TypeError, arg("keepdims"),
        partial(lse_backward, np.ones(3), X, keepdims="yes")),
    bad("cross_entropy-return_grad", TypeError, arg("return_grad"), partial(cross_entropy, XF, T, return_grad="yes")),
]

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

X3 = logits((2, 4, 3), np.float32, seed=2)  # (N, C, d1)
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

WEIGHT_CASES = []
for name, shape in {"short": (3,), "long": (5,), "row": (1, 4), "column": (4, 1), "scalar": (), "empty": (0,)}.items():
    weight = np.ones(shape, np.float32)
    for kind, target in (("index", T), ("probability", Y)):
        calls = cross_entropy_calls(XF, target, weight=weight)
        WEIGHT_CASES += expand(f"weight-shape-{name}-{kind}", calls, ValueError, arg("weight"))
for name, weight in {"int64": np.ones(4, np.int64), "bool": np.ones(4, bool), "list-of-ints": [1, 1, 1, 1]}.items():
    WEIGHT_CASES += expand(f"weight-dtype-{name}", cross_entropy_calls(XF, T, weight=weight), TypeError, arg("weight"))

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

CASES = (AXIS_CASES + DTYPE_CASES + FLAG_CASES + SHAPE_CASES + OUT_CASES + TARGET_CASES + WEIGHT_CASES + OPTION_CASES
         + GRAD_OUT_CASES + CONFIG_CASES)


def check_raises(error, match, call):
    with pytest.raises(error, match=match) as info:
        call()
    assert type(info.value) is error, f"raised {type(info.value).__name__}({info.value}), expected {error.__name__}"


@pytest.mark.parametrize("error,match,call", CASES)
def test_bad_input(restore_threads, error, match, call):
    """Validation runs before any kernel, on the default (best) target."""
    check_raises(error, match, call)


@pytest.mark.parametrize("error,match,call", [case for case in TARGET_CASES if case.values[0] is IndexError])
def test_out_of_range_target_on_every_isa(isa, error, match, call):
    """Class indices are range-checked in the pass over the logits: on every target."""
    check_raises(error, match, call)


# ---- odd but valid inputs ----------------------------------------------------------------------


def odd_layouts(base):
    """Views of a 2-D ``base`` (the (N, C) axes of every function below), none of them a writable
    aligned contiguous array: read-only, misaligned, every stride negative, zero strides between
    rows, zero strides along the reduced (last) axis, and negative row strides with zero element
    strides."""
    return {
        "read_only": read_only(base),
        "misaligned": misaligned_copy(base),
        "negative_strides": negative_stride_view(negative_stride_view(base).copy()),
        "zero_row_stride": np.broadcast_to(base[:1], base.shape),
        "zero_element_stride": np.broadcast_to(base[:, :1], base.shape),
        "negative_and_zero": np.broadcast_to(base[::-1, :1], base.shape),
    }


def odd_layout_results(x, g, p, t, w, y):
    """Every public function on these arguments (the per-row gradient is g[:, 0])."""
    return {
        "logsumexp": logitloss.logsumexp(x, axis=-1, return_grad=True),
        "logsumexp_axis0_b": logitloss.logsumexp(x, axis=0, b=g, return_grad=True),
        "logsumexp_all": logitloss.logsumexp(x),
        "softmax": logitloss.softmax(x, axis=-1),
        "log_softmax_axis0": logitloss.log_softmax(x, axis=0),
        "logsumexp_backward": logitloss.logsumexp_backward(g[:, 0], x, axis=-1, b=g),
        "softmax_backward": logitloss.softmax_backward(g, p, axis=-1),
        "log_softmax_backward": logitloss.log_softmax_backward(g, np.log(p), axis=-1),
        "cross_entropy_index": logitloss.cross_entropy(
            x, t, w, reduction="none", label_smoothing=0.1, return_grad=True),
        "cross_entropy_probability": logitloss.cross_entropy(x, y, w, return_grad=True),
        "cross_entropy_backward": logitloss.cross_entropy_backward(g[:, 0], x, t, w, reduction="none"),
    }


@pytest.mark.parametrize("layout", list(odd_layouts(np.zeros((1, 1)))))
def test_read_only_and_negative_or_zero_strides_work(isa, layout):
    """Every function reads every argument in place, in any layout: the same results as on
    contiguous writable copies (within rounding: row and column kernels may sum in another order)."""
    shape = (5, 37)
    bases = {
        "x": logits(shape, np.float64, seed=10),
        "g": logits(shape, np.float64, seed=11, spread=1.0, offset=1.0),
        "p": logitloss.softmax(logits(shape, np.float64, seed=12), axis=-1),
        "y": logitloss.softmax(logits(shape, np.float64, seed=13), axis=-1),
    }
    views = {name: odd_layouts(base)[layout] for name, base in bases.items()}
    t = np.array([0, 36, 5, 17, 2])
    w = np.linspace(0.5, 2.0, shape[1])
    odd_vector = {"read_only": read_only, "misaligned": misaligned_copy}.get(
        layout, lambda v: negative_stride_view(v[::-1].copy()))
    odd_t, odd_w = odd_vector(t), odd_vector(w)  # the weight is indexed directly: misaligned once crashed UBSan
    got = odd_layout_results(views["x"], views["g"], views["p"], odd_t, odd_w, views["y"])
    copies = {name: np.ascontiguousarray(view) for name, view in views.items()}
    expected = odd_layout_results(copies["x"], copies["g"], copies["p"], t, w, copies["y"])
    as_tuple = lambda result: result if isinstance(result, tuple) else (result,)  # noqa: E731
    for name in expected:
        for got_part, expected_part in zip(as_tuple(got[name]), as_tuple(expected[name]), strict=True):
            np.testing.assert_allclose(got_part, expected_part, rtol=1e-13, atol=1e-300, err_msg=f"{name} {layout}")


def test_bool_and_integer_inputs_where_allowed(isa):
    """bool and integer arrays compute in float64 (SciPy's rule): bitwise the float64 results."""
    rng = np.random.default_rng(20)
    mask = rng.random((4, 9)) < 0.5
    counts = rng.integers(-3, 4, (4, 9)).astype(np.int16)
    x = logits(mask.shape, np.float64, seed=21)
    p = logitloss.softmax(x, axis=1)
    for a in (mask, counts):
        f = a.astype(np.float64)
        got = logitloss.logsumexp(a, axis=1, return_grad=True)
        expected = logitloss.logsumexp(f, axis=1, return_grad=True)
        assert same_bits(got[0], expected[0]) and same_bits(got[1], expected[1])
        assert same_bits(logitloss.softmax(a, axis=0), logitloss.softmax(f, axis=0))
        assert same_bits(logitloss.log_softmax(a), logitloss.log_softmax(f))
        assert same_bits(logitloss.logsumexp(x, axis=1, b=a), logitloss.logsumexp(x, axis=1, b=f))
        assert same_bits(logitloss.logsumexp_backward(a[:, 0], x, axis=1, b=a),
                         logitloss.logsumexp_backward(f[:, 0], x, axis=1, b=f))
        assert same_bits(logitloss.softmax_backward(a, p, axis=1), logitloss.softmax_backward(f, p, axis=1))
        assert same_bits(logitloss.log_softmax_backward(a, np.log(p), axis=1),
                         logitloss.log_softmax_backward(f, np.log(p), axis=1))


def test_numpy_integers_accepted(isa):
    expected = logitloss.logsumexp(X, axis=1)
    assert np.array_equal(logitloss.logsumexp(X, axis=np.int64(1)), expected)
    assert np.array_equal(logitloss.logsumexp(X, axis=(np.int32(1),)), expected)
    assert np.array_equal(logitloss.logsumexp(X, axis=[1]), expected)
    assert np.array_equal(logitloss.softmax(X, axis=np.intp(-1)), logitloss.softmax(X, axis=-1))
    loss = logitloss.cross_entropy(XF, T, ignore_index=3)
    for ignore_index in (np.int64(3), np.int32(3), np.uint8(3)):
        assert logitloss.cross_entropy(XF, T, ignore_index=ignore_index) == loss
    assert logitloss.cross_entropy(XF, T, label_smoothing=np.float32(0.25)) == logitloss.cross_entropy(
        XF, T, label_smoothing=0.25)


def test_negative_ignore_index(isa):
    """A negative class index is fine where it is the ignore_index; a negative ignore_index is fine
    with probability targets."""
    assert np.isfinite(logitloss.cross_entropy(XF, np.array([0, -1, 1]), ignore_index=-1))
    for ignore_index in (-1, -100, -(2**63)):
        assert np.isfinite(logitloss.cross_entropy(XF, Y, ignore_index=ignore_index))


def test_exact_in_place_aliases_work(isa):
    """`out` / `grad_out` laid out exactly as the input (the object itself or an identical view)."""
    for func in (logitloss.softmax, logitloss.log_softmax):
        for make_alias in (lambda x: x, lambda x: x[...], lambda x: x.view()):
            x = np.asfortranarray(X)
            expected = func(x.copy(order="K"), axis=0)
            alias = make_alias(x)
            assert func(x, axis=0, out=alias) is alias
            assert same_bits(x, expected), func.__name__
    expected = logitloss.cross_entropy(XF, T, return_grad=True)
    for make_alias in (lambda x: x, lambda x: x[:, :]):
        x = XF.copy()
        loss, grad = logitloss.cross_entropy(x, T, grad_out=make_alias(x))
        assert loss == expected[0] and same_bits(grad, expected[1]) and same_bits(x, expected[1])


def test_narrow_out_rounds_without_warnings(isa):
    """A float16 out= gets what the float16 result is: values beyond its range round to -inf
    without NumPy's overflow warning (an error in this suite; found by the fuzzer)."""
    x = np.array([0.0, -60000.0, 60000.0], np.float16)
    out = np.empty(3, np.float16)
    assert logitloss.log_softmax(x, out=out) is out
    assert same_bits(out, logitloss.log_softmax(x)) and out[1] == -np.inf


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
    """A failed call changes nothing: not the arguments, not later results, not the ISA or threads."""
    x = logits((4, 33), np.float32, seed=3)
    t = np.array([0, 5, 32, 7])
    saved = x.copy()
    before = (logitloss.logsumexp(x, axis=-1), logitloss.cross_entropy(x, t, return_grad=True))
    threads = logitloss.get_num_threads()
    for error, call in (
        (IndexError, lambda: logitloss.cross_entropy(x, np.array([0, 5, 33, 7]), grad_out=x)),
        (ValueError, lambda: logitloss.cross_entropy(x, t, label_smoothing=-1.0)),
        (ValueError, lambda: logitloss.cross_entropy(x, t, weight=np.ones(3, np.float32))),
        (AxisError, lambda: logitloss.logsumexp(x, axis=3)),
        (TypeError, lambda: logitloss.softmax(x.astype(np.complex64))),
        (ValueError, lambda: logitloss.softmax(x[:, :32], out=x[:, 1:])),
        (ValueError, lambda: logitloss.set_num_threads(0)),
        (ValueError, lambda: enter_use_isa("sse9")),
    ):
        with pytest.raises(error):
            call()
    assert np.array_equal(x, saved), "an argument was modified by a call that raised"
    assert logitloss.get_isa() == isa and logitloss.get_num_threads() == threads
    after = (logitloss.logsumexp(x, axis=-1), logitloss.cross_entropy(x, t, return_grad=True))
    assert same_bits(after[0], before[0])
    assert after[1][0] == before[1][0] and same_bits(after[1][1], before[1][1])
