"""Bad input to binary_cross_entropy_with_logits / _backward: the right exception type, a message
naming the argument, and no state left behind."""

from __future__ import annotations

import re

import numpy as np
import pytest
from inputs import logits
from reference_binary_cross_entropy import binary_targets, positive_weights

import logitloss

bce = logitloss.binary_cross_entropy_with_logits
bce_backward = logitloss.binary_cross_entropy_with_logits_backward

X = logits((3, 5), np.float32, seed=0)
Y = binary_targets((3, 5), np.float32, 1)

# The argument's name as a whole word: "weight" is not found inside "pos_weight", nor "grad_out"
# inside "grad_output".
NAMES = {
    name: re.compile(rf"\b{name}\b")
    for name in ("input", "target", "weight", "pos_weight", "reduction", "grad_out", "grad_output")
}


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


def expect(exc, name, calls):
    for what, call in calls.items():
        with pytest.raises(exc) as info:
            call()
        message = str(info.value)
        assert NAMES[name].search(message), f"{what}: {type(info.value).__name__}({message!r}) does not name {name!r}"


# ---- input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, np.uint64, np.bool_], ids=str)
def test_non_floating_input(isa, dtype):
    """Integer and bool logits: TypeError naming input (whatever the target)."""
    x = (X > 0).astype(dtype)
    expect(TypeError, "input", every_call(x, Y))
    expect(TypeError, "input", every_call(x, (Y > 0.5).astype(dtype)))


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128, object, np.str_, np.bytes_], ids=str)
def test_unsupported_input_dtype(isa, dtype):
    x = X.astype(dtype)
    expect(TypeError, "input", every_call(x, Y))


# ---- target -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape",
    [(3, 4), (3, 6), (5,), (1, 5), (3, 1), (), (5, 3), (3, 5, 1), (1, 3, 5), (15,), (0,)],
    ids=str,
)
def test_target_shape_mismatch(isa, shape):
    """The target must have the input's shape exactly: broadcasting ones too (torch: "Target size
    must be the same as input size")."""
    target = np.full(shape, 0.5, np.float32)
    expect(ValueError, "target", every_call(X, target))
    expect(ValueError, "target", every_call(X, target, reduction="none"))


def test_target_shape_mismatch_zero_dimensional_input(isa):
    x = np.array(0.5, np.float32)
    expect(ValueError, "target", every_call(x, np.array([1.0], np.float32)))
    expect(ValueError, "target", every_call(x[None], np.array(1.0, np.float32)))


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128, object, np.str_], ids=str)
def test_unsupported_target_dtype(isa, dtype):
    expect(TypeError, "target", every_call(X, Y.astype(dtype)))


# ---- weight and pos_weight --------------------------------------------------------------------

BAD_OPERAND_SHAPES = {
    "no_broadcast_last": (3,),
    "no_broadcast_column": (5, 1),
    "wrong_rows": (2, 5),
    "empty": (0,),
    "enlarges_leading": (2, 3, 5),
    "enlarges_ndim": (1, 3, 5),
    "enlarges_both": (3, 3, 1),
}


@pytest.mark.parametrize("shape", list(BAD_OPERAND_SHAPES.values()), ids=list(BAD_OPERAND_SHAPES))
@pytest.mark.parametrize("name", ["weight", "pos_weight"])
def test_operand_shape(isa, name, shape):
    """weight / pos_weight broadcast *to* the input's shape: a shape that does not broadcast, or
    that would enlarge the result, is a ValueError naming that argument (and not the other)."""
    bad = np.ones(shape, np.float32)
    for reduction in ("mean", "none"):
        expect(ValueError, name, every_call(X, Y, reduction=reduction, **{name: bad}))
    other = "pos_weight" if name == "weight" else "weight"
    with pytest.raises(ValueError) as info:
        bce(X, Y, **{name: bad})
    assert not NAMES[other].search(str(info.value)), f"the message names {other}: {info.value}"


@pytest.mark.parametrize("name", ["weight", "pos_weight"])
def test_operand_enlarging_zero_dimensional_input(isa, name):
    x = np.array(0.5, np.float32)
    expect(ValueError, name, every_call(x, np.array(1.0, np.float32), **{name: np.ones(1, np.float32)}))


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128, object, np.str_], ids=str)
@pytest.mark.parametrize("name", ["weight", "pos_weight"])
def test_unsupported_operand_dtype(isa, name, dtype):
    bad = positive_weights((5,), np.float32, 2).astype(dtype)
    expect(TypeError, name, every_call(X, Y, **{name: bad}))


# ---- reduction --------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["avg", "MEAN", "elementwise_mean", "batchmean", "", " mean"], ids=repr)
def test_unknown_reduction(isa, reduction):
    expect(ValueError, "reduction", every_call(X, Y, reduction=reduction))


@pytest.mark.parametrize("reduction", [None, 1, b"mean", ["mean"]], ids=repr)
def test_non_string_reduction(isa, reduction):
    expect(TypeError, "reduction", every_call(X, Y, reduction=reduction))


# ---- grad_out ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 4), (15,), (5, 3), (1, 3, 5), ()], ids=str)
def test_grad_out_shape(isa, shape):
    with pytest.raises(ValueError, match=NAMES["grad_out"]):
        bce(X, Y, grad_out=np.empty(shape, np.float32))


def test_grad_out_dtype(isa):
    """grad_out must have the result dtype: the input's, or float64 for float32 logits with float64
    targets (so grad_out=input is an error there)."""
    for dtype in (np.float64, np.float16, np.int32, np.complex64):
        with pytest.raises((TypeError, ValueError), match=NAMES["grad_out"]):
            bce(X, Y, grad_out=np.empty((3, 5), dtype))
    y64 = Y.astype(np.float64)
    with pytest.raises((TypeError, ValueError), match=NAMES["grad_out"]):
        bce(X, y64, grad_out=np.empty((3, 5), np.float32))
    x = X.copy()
    with pytest.raises((TypeError, ValueError), match=NAMES["grad_out"]):
        bce(x, y64, grad_out=x)
    assert np.array_equal(x, X), "input modified by a call that raised"
    result = bce(X, y64, grad_out=np.empty((3, 5), np.float64))  # the right one is fine
    assert result[1].dtype == np.float64


def test_grad_out_not_an_array(isa):
    with pytest.raises((TypeError, ValueError), match=NAMES["grad_out"]):
        bce(X, Y, grad_out=np.zeros((3, 5)).tolist())


def test_grad_out_read_only(isa):
    read_only = np.empty((3, 5), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match=NAMES["grad_out"]):
        bce(X, Y, grad_out=read_only)
    frozen_input = X.copy()
    frozen_input.flags.writeable = False
    with pytest.raises(ValueError, match=NAMES["grad_out"]):
        bce(frozen_input, Y, grad_out=frozen_input)
    assert bce(frozen_input, Y) == bce(X, Y)  # a read-only input is fine otherwise


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
        with pytest.raises(ValueError, match=NAMES["grad_out"]):
            bce(x, Y, grad_out=out)
        assert np.array_equal(x, saved), f"{name}: input modified by a call that raised"


# ---- grad_output (the backward's upstream) ---------------------------------------------------


@pytest.mark.parametrize("shape", [(4,), (3, 4), (5, 3), (2, 3, 5), (1, 3, 5), (0,)], ids=str)
def test_grad_output_shape_none(isa, shape):
    """'none': grad_output broadcasts to the input's shape, never enlarging it."""
    with pytest.raises(ValueError, match=NAMES["grad_output"]):
        bce_backward(np.ones(shape, np.float32), X, Y, reduction="none")


@pytest.mark.parametrize("shape", [(2,), (1, 1), (3, 5), (0,)], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_grad_output_not_scalar(isa, reduction, shape):
    """'mean' / 'sum': grad_output is a scalar (size 1, at most 1-D)."""
    with pytest.raises(ValueError, match=NAMES["grad_output"]):
        bce_backward(np.ones(shape, np.float32), X, Y, reduction=reduction)


@pytest.mark.parametrize("dtype", [np.complex64, object, np.str_], ids=str)
def test_grad_output_dtype(isa, dtype):
    for reduction, shape in (("none", (3, 5)), ("mean", ())):
        with pytest.raises(TypeError, match=NAMES["grad_output"]):
            bce_backward(np.ones(shape).astype(dtype), X, Y, reduction=reduction)


# ---- no state left behind ---------------------------------------------------------------------


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
