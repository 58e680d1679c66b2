"""Bad input to binary_cross_entropy_with_logits and its backward: the right exception type and a message naming
the argument, for every call of the table, on every SIMD target.

``CASES`` is one table of bad calls (``tests/helpers/bad_calls.py``): each a small valid call with one thing
wrong, the exact exception type it must raise (TypeError or ValueError) and a regex its message must match (the
argument as the messages quote it: `weight` is not found inside `pos_weight`, nor `grad_out` inside
`grad_output`).  After the table: what a table cannot say (a message naming only the offending operand, the
result dtype of grad_out, arguments left alone) and failed calls leaving nothing behind.
"""

from __future__ import annotations

import re
from functools import partial

import numpy as np
import pytest

import logitloss
from logitloss.testing.inputs import binary_targets, logits, positive_weights

from .helpers.bad_calls import arg, bad, check_raises, expand, read_only

bce = logitloss.binary_cross_entropy_with_logits
bce_backward = logitloss.binary_cross_entropy_with_logits_backward

# Valid arguments the bad calls start from (never written to: calls that need a buffer make one).
X = logits((3, 5), np.float32, seed=0)
Y = binary_targets((3, 5), np.float32, 1)
X0 = np.array(0.5, np.float32)  # a 0-d input


def every_call(x, target, **kwargs):
    """The forward (with and without return_grad, with a float32 grad_out when the input is
    float32) and the backward, with the same arguments."""
    reduction = kwargs.get("reduction", "mean")
    upstream = np.ones(np.shape(x), np.float32) if reduction == "none" else np.float32(1.0)
    calls = {
        "forward": lambda: bce(x, target, **kwargs),
        "forward return_grad": lambda: bce(x, target, return_grad=True, **kwargs),
        "backward": lambda: bce_backward(upstream, x, target, **kwargs),
    }
    if np.asarray(x).dtype == np.float32:
        calls["forward grad_out"] = lambda: bce(x, target, grad_out=np.empty(np.shape(x), np.float32), **kwargs)
    return calls


def dtype_name(dtype):
    return np.dtype(dtype).name


NON_REAL = (np.complex64, np.complex128, object, np.str_)

# ---- input ---------------------------------------------------------------------------------------

# Integer and bool logits: TypeError naming input (whatever the target).
INPUT_CASES = []
for dtype in (np.int8, np.int32, np.int64, np.uint8, np.uint64, np.bool_):
    x = (X > 0).astype(dtype)
    INPUT_CASES += expand(f"input-{dtype_name(dtype)}", every_call(x, Y), TypeError, arg("input"))
    INPUT_CASES += expand(f"input-{dtype_name(dtype)}-integer-target", every_call(x, (Y > 0.5).astype(dtype)),
                          TypeError, arg("input"))
for dtype in (*NON_REAL, np.bytes_):
    INPUT_CASES += expand(f"input-{dtype_name(dtype)}", every_call(X.astype(dtype), Y), TypeError, arg("input"))

# ---- target --------------------------------------------------------------------------------------

# The target must have the input's shape exactly: broadcasting ones too (torch: "Target size must be the same as
# input size").
TARGET_CASES = []
for shape in [(3, 4), (3, 6), (5,), (1, 5), (3, 1), (), (5, 3), (3, 5, 1), (1, 3, 5), (15,), (0,)]:
    target = np.full(shape, 0.5, np.float32)
    TARGET_CASES += expand(f"target-shape-{shape}", every_call(X, target), ValueError, arg("target"))
    TARGET_CASES += expand(f"target-shape-{shape}-none", every_call(X, target, reduction="none"), ValueError,
                           arg("target"))
TARGET_CASES += expand("target-shape-0d-input", every_call(X0, np.array([1.0], np.float32)), ValueError,
                       arg("target"))
TARGET_CASES += expand("target-shape-0d-target", every_call(X0[None], np.array(1.0, np.float32)), ValueError,
                       arg("target"))
for dtype in NON_REAL:
    TARGET_CASES += expand(f"target-{dtype_name(dtype)}", every_call(X, Y.astype(dtype)), TypeError, arg("target"))

# ---- weight and pos_weight -----------------------------------------------------------------------

# weight / pos_weight broadcast *to* the input's shape: a shape that does not broadcast, or that would enlarge
# the result, is a ValueError naming that argument.
BAD_OPERAND_SHAPES = {
    "no_broadcast_last": (3,),
    "no_broadcast_column": (5, 1),
    "wrong_rows": (2, 5),
    "empty": (0,),
    "enlarges_leading": (2, 3, 5),
    "enlarges_ndim": (1, 3, 5),
    "enlarges_both": (3, 3, 1),
}
OPERAND_CASES = []
for name in ("weight", "pos_weight"):
    for shape_name, shape in BAD_OPERAND_SHAPES.items():
        for reduction in ("mean", "none"):
            calls = every_call(X, Y, reduction=reduction, **{name: np.ones(shape, np.float32)})
            OPERAND_CASES += expand(f"{name}-shape-{shape_name}-{reduction}", calls, ValueError, arg(name))
    calls = every_call(X0, np.array(1.0, np.float32), **{name: np.ones(1, np.float32)})
    OPERAND_CASES += expand(f"{name}-enlarging-0d-input", calls, ValueError, arg(name))
    for dtype in NON_REAL:
        calls = every_call(X, Y, **{name: positive_weights((5,), np.float32, 2).astype(dtype)})
        OPERAND_CASES += expand(f"{name}-{dtype_name(dtype)}", calls, TypeError, arg(name))

# ---- reduction -----------------------------------------------------------------------------------

REDUCTION_CASES = []
for reduction in ("avg", "MEAN", "elementwise_mean", "batchmean", "", " mean"):
    REDUCTION_CASES += expand(f"reduction-{reduction!r}", every_call(X, Y, reduction=reduction), ValueError,
                              arg("reduction"))
for reduction in (None, 1, b"mean", ["mean"]):
    REDUCTION_CASES += expand(f"reduction-{reduction!r}", every_call(X, Y, reduction=reduction), TypeError,
                              arg("reduction"))

# ---- grad_out ------------------------------------------------------------------------------------


def read_only_input_as_grad_out():
    frozen = X.copy()
    frozen.flags.writeable = False
    return bce(frozen, Y, grad_out=frozen)


GRAD_OUT_CASES = [
    *[bad(f"grad_out-shape-{shape}", ValueError, arg("grad_out"),
          partial(bce, X, Y, grad_out=np.empty(shape, np.float32)))
      for shape in [(3, 4), (15,), (5, 3), (1, 3, 5), ()]],
    # grad_out must have the result dtype: the input's, or float64 for float32 logits with float64 targets
    *[bad(f"grad_out-dtype-{dtype_name(dtype)}", TypeError, arg("grad_out"),
          partial(bce, X, Y, grad_out=np.empty((3, 5), dtype)))
      for dtype in (np.float64, np.float16, np.int32, np.complex64)],
    bad("grad_out-float32-for-float64-result", TypeError, arg("grad_out"),
        partial(bce, X, Y.astype(np.float64), grad_out=np.empty((3, 5), np.float32))),
    bad("grad_out-list", TypeError, arg("grad_out"), partial(bce, X, Y, grad_out=np.zeros((3, 5)).tolist())),
    bad("grad_out-read-only", ValueError, arg("grad_out"),
        partial(bce, X, Y, grad_out=read_only(np.empty((3, 5), np.float32)))),
    bad("grad_out-read-only-input-itself", ValueError, arg("grad_out"), read_only_input_as_grad_out),
]

# ---- grad_output (the backward's upstream) -------------------------------------------------------

GRAD_OUTPUT_CASES = [
    # 'none': grad_output broadcasts to the input's shape, never enlarging it
    *[bad(f"grad_output-shape-{shape}-none", ValueError, arg("grad_output"),
          partial(bce_backward, np.ones(shape, np.float32), X, Y, reduction="none"))
      for shape in [(4,), (3, 4), (5, 3), (2, 3, 5), (1, 3, 5), (0,)]],
    # 'mean' / 'sum': grad_output is a scalar (size 1, at most 1-D)
    *[bad(f"grad_output-not-scalar-{shape}-{reduction}", ValueError, arg("grad_output"),
          partial(bce_backward, np.ones(shape, np.float32), X, Y, reduction=reduction))
      for reduction in ("mean", "sum") for shape in [(2,), (1, 1), (3, 5), (0,)]],
    *[bad(f"grad_output-{dtype_name(dtype)}-{reduction}", TypeError, arg("grad_output"),
          partial(bce_backward, np.ones(shape).astype(dtype), X, Y, reduction=reduction))
      for dtype in (np.complex64, object, np.str_) for reduction, shape in (("none", (3, 5)), ("mean", ()))],
]

CASES = INPUT_CASES + TARGET_CASES + OPERAND_CASES + REDUCTION_CASES + GRAD_OUT_CASES + GRAD_OUTPUT_CASES


@pytest.mark.parametrize("error,match,call", CASES)
def test_bad_input(isa, error, match, call):
    check_raises(error, match, call)


# ---- what a table cannot say ---------------------------------------------------------------------


@pytest.mark.parametrize("shape", list(BAD_OPERAND_SHAPES.values()), ids=list(BAD_OPERAND_SHAPES))
@pytest.mark.parametrize("name", ["weight", "pos_weight"])
def test_operand_error_names_only_that_operand(isa, name, shape):
    other = "pos_weight" if name == "weight" else "weight"
    with pytest.raises(ValueError) as info:
        bce(X, Y, **{name: np.ones(shape, np.float32)})
    assert not re.search(rf"\b{other}\b", str(info.value)), f"the message names {other}: {info.value}"


def test_grad_out_dtype_leaves_the_input_alone(isa):
    """grad_out=input is an error where the result dtype is not the input's (float32 logits, float64 targets):
    the input stays as it was, and a grad_out of the result dtype is fine."""
    y64 = Y.astype(np.float64)
    x = X.copy()
    with pytest.raises(TypeError, match=arg("grad_out")):
        bce(x, y64, grad_out=x)
    assert np.array_equal(x, X), "input modified by a call that raised"
    result = bce(X, y64, grad_out=np.empty((3, 5), np.float64))
    assert result[1].dtype == np.float64


def test_read_only_input_is_fine(isa):
    frozen_input = X.copy()
    frozen_input.flags.writeable = False
    assert bce(frozen_input, Y) == bce(X, Y)


def test_grad_out_overlapping_input(isa):
    """grad_out may be the input itself (opt-in, in place); any other overlap would read
    already-overwritten logits: ValueError naming grad_out, the input untouched."""
    buffer = np.concatenate([X.reshape(-1), np.zeros(5, np.float32)])
    x = buffer[:15].reshape(3, 5)
    saved = x.copy()
    for name, out in {
        "reversed": x[::-1],
        "shifted": buffer[5:20].reshape(3, 5),
        "columns_reversed": x[:, ::-1],
    }.items():
        assert np.shares_memory(out, x) and out is not x
        with pytest.raises(ValueError, match=arg("grad_out")):
            bce(x, Y, grad_out=out)
        assert np.array_equal(x, saved), f"{name}: input modified by a call that raised"


# ---- no state left behind ------------------------------------------------------------------------


def test_errors_leave_no_state(isa):
    """A failed call changes nothing: not the input (even with grad_out=input), not later
    results, not the ISA."""
    x = logits((4, 33), np.float32, seed=3)
    y = binary_targets(x.shape, np.float32, 4)
    saved = x.copy()
    before = bce(x, y, pos_weight=np.ones(33, np.float32), return_grad=True)
    with pytest.raises(ValueError):
        bce(x, y, pos_weight=np.ones(32, np.float32), grad_out=x)
    with pytest.raises(ValueError):
        bce(x, y, weight=np.ones((2, 4, 33), np.float32), grad_out=x)
    with pytest.raises(ValueError):
        bce(x, y[:3], grad_out=x)
    assert np.array_equal(x, saved), "input modified by a call that raised"
    assert logitloss.get_isa() == isa
    after = bce(x, y, pos_weight=np.ones(33, np.float32), return_grad=True)
    assert after[0] == before[0] and np.array_equal(after[1], before[1])
