"""Bad input to cross_entropy / cross_entropy_backward: the right exception type, a message naming
the argument, and no state left behind."""

from __future__ import annotations

import numpy as np
import pytest
from inputs import logits

import logitloss

X = logits((3, 4), np.float32, seed=0)
T = np.array([0, 3, 1])
Y = np.full((3, 4), 0.25, dtype=np.float32)  # probability targets


def both(x, target, **kwargs):
    """The forward (with and without return_grad) and the backward call with the same arguments."""
    reduction = kwargs.get("reduction", "mean")
    if reduction == "none" and np.ndim(x) >= 1:
        shape = () if np.ndim(x) == 1 else (np.shape(x)[0],) + tuple(np.shape(x)[2:])
        g = np.ones(shape, dtype=np.float32)
    else:
        g = np.float32(1.0)
    return {
        "cross_entropy": lambda: logitloss.cross_entropy(x, target, **kwargs),
        "cross_entropy return_grad": lambda: logitloss.cross_entropy(x, target, return_grad=True, **kwargs),
        "cross_entropy_backward": lambda: logitloss.cross_entropy_backward(g, x, target, **kwargs),
    }


def expect(exc, word, calls):
    for name, call in calls.items():
        with pytest.raises(exc) as info:
            call()
        assert word in str(info.value), f"{name}: {type(info.value).__name__}({info.value}) does not name {word!r}"


@pytest.mark.parametrize(
    "target,exc",
    [
        (np.array([0, 1]), ValueError),
        (np.array([0, 1, 2, 3]), ValueError),
        (np.array([[0], [1], [2]]), ValueError),
        (np.array(1), ValueError),
        (np.zeros((3, 5), np.float32), (ValueError, TypeError)),  # neither probabilities nor classes
    ],
    ids=["short", "long", "column", "0-d", "float_wrong_shape"],
)
def test_target_shape_mismatch(isa, target, exc):
    expect(exc, "target", both(X, target))


def test_target_shape_mismatch_k_dimensional(isa):
    x = logits((2, 4, 3), np.float32, seed=1)
    expect(ValueError, "target", both(x, np.zeros((2, 4), np.int64)))  # (N, d1) is (2, 3)
    expect(ValueError, "target", both(x, np.zeros((3, 2), np.int64)))
    expect(ValueError, "target", both(x[:, :, 0][0], np.array([1])))  # 1-D input wants a 0-d target


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.bool_, np.complex64], ids=str)
def test_non_integer_index_target(isa, dtype):
    """Class-index targets (shape != input shape) must be integers."""
    expect((TypeError, ValueError), "target", both(X, np.array([0, 3, 1]).astype(dtype)))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8], ids=str)
def test_integer_probability_target(isa, dtype):
    """A target of the input's shape is a probability target: it must be floating (torch too)."""
    expect((TypeError, ValueError), "target", both(X, np.zeros((3, 4), dtype)))


@pytest.mark.parametrize(
    "target,bad",
    [
        ([0, 4, 1], 4),  # == C
        ([0, 1, 5], 5),
        ([0, -3, 1], -3),
        ([-1, 0, 1], -1),
        ([0, 2**40, 1], 2**40),
        ([-(2**62), 0, 1], -(2**62)),
    ],
    ids=["C", "C+1", "-3", "-1", "2**40", "-2**62"],
)
def test_out_of_range_target(isa, target, bad):
    """IndexError whose message contains the offending value (torch: "Target k is out of bounds.")."""
    expect(IndexError, str(bad), both(X, np.array(target, dtype=np.int64)))
    expect(IndexError, str(bad), both(X, np.array(target, dtype=np.int64), reduction="none"))


def test_out_of_range_target_every_dtype(isa):
    for dtype in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.uint64):
        expect(IndexError, "7", both(X, np.array([0, 7, 1], dtype=dtype)))
    expect(IndexError, "-100", both(X, np.array([0, -100, 1], dtype=np.int8), ignore_index=2))
    expect(IndexError, "9", both(X[0], np.array(9)))
    expect(IndexError, "4", both(logits((2, 4, 3), np.float32, seed=2), np.array([[0, 1, 2], [3, 4, 0]])))


def test_negative_target_other_than_ignore_index(isa):
    expect(IndexError, "-100", both(X, np.array([0, -100, 1]), ignore_index=-1))
    expect(IndexError, "-2", both(X, np.array([0, -2, 1]), ignore_index=-1))
    # the ignore_index itself is fine
    assert np.isfinite(logitloss.cross_entropy(X, np.array([0, -1, 1]), ignore_index=-1))


@pytest.mark.parametrize(
    "weight",
    [np.ones(3, np.float32), np.ones(5, np.float32), np.ones((1, 4), np.float32), np.ones((4, 1), np.float32),
     np.float32(1.0), np.ones(0, np.float32)],
    ids=["short", "long", "row", "column", "scalar", "empty"],
)
def test_weight_shape(isa, weight):
    expect(ValueError, "weight", both(X, T, weight=weight))
    expect(ValueError, "weight", both(X, Y, weight=weight))


def test_complex_weight(isa):
    expect(TypeError, "weight", both(X, T, weight=np.ones(4, np.complex64)))


@pytest.mark.parametrize("reduction", ["avg", "MEAN", "elementwise_mean", "", None, 1], ids=repr)
def test_unknown_reduction(isa, reduction):
    expect((ValueError, TypeError), "reduction", both(X, T, reduction=reduction))


@pytest.mark.parametrize("smoothing", [-0.1, -1e-30, 1.0000001, 2.0, float("nan"), float("inf")], ids=repr)
def test_label_smoothing_outside_unit_interval(isa, smoothing):
    """ValueError outside [0, 1] (torch accepts negative values: a documented divergence)."""
    expect(ValueError, "label_smoothing", both(X, T, label_smoothing=smoothing))
    expect(ValueError, "label_smoothing", both(X, Y, label_smoothing=smoothing))


def test_probability_target_with_ignore_index(isa):
    """torch: "ignore_index is not supported for floating point target"."""
    for ii in (0, 1, 3, 100):
        expect(ValueError, "ignore_index", both(X, Y, ignore_index=ii))
    assert np.isfinite(logitloss.cross_entropy(X, Y, ignore_index=-1))  # negative is fine
    assert np.isfinite(logitloss.cross_entropy(X, Y, ignore_index=-100))


@pytest.mark.parametrize("ignore_index", [1.5, 2.0, "1", None, np.float64(1.0)], ids=repr)
def test_non_integer_ignore_index(isa, ignore_index):
    expect((TypeError, ValueError), "ignore_index", both(X, T, ignore_index=ignore_index))


def test_numpy_integer_ignore_index_accepted(isa):
    expected = logitloss.cross_entropy(X, T, ignore_index=3)
    for ii in (np.int64(3), np.int32(3), np.uint8(3)):
        assert logitloss.cross_entropy(X, T, ignore_index=ii) == expected


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128], ids=str)
def test_complex_input(isa, dtype):
    expect(TypeError, "complex", both(X.astype(dtype), T))


def test_zero_dimensional_input(isa):
    expect(ValueError, "input", both(np.float32(1.5), np.array(0)))
    expect(ValueError, "input", both(np.array(1.5, dtype=np.float32), np.array(0)))


def test_grad_out_errors(isa):
    """A grad_out of the wrong shape, dtype, or read-only: an error naming grad_out."""
    for bad in (np.empty((3, 5), np.float32), np.empty((4, 3), np.float32), np.empty(12, np.float32)):
        with pytest.raises((ValueError, TypeError), match="grad_out"):
            logitloss.cross_entropy(X, T, grad_out=bad)
    for dtype in (np.float64, np.float16, np.int32):
        with pytest.raises((TypeError, ValueError), match="grad_out"):
            logitloss.cross_entropy(X, T, grad_out=np.empty((3, 4), dtype))
    read_only = np.empty((3, 4), np.float32)
    read_only.flags.writeable = False
    with pytest.raises((ValueError, TypeError), match="grad_out"):
        logitloss.cross_entropy(X, T, grad_out=read_only)
    frozen_input = X.copy()
    frozen_input.flags.writeable = False
    with pytest.raises((ValueError, TypeError), match="grad_out"):
        logitloss.cross_entropy(frozen_input, T, grad_out=frozen_input)
    assert logitloss.cross_entropy(frozen_input, T) == logitloss.cross_entropy(X, T)  # read-only input is fine


def test_grad_output_shape(isa):
    """cross_entropy_backward: grad_output has the loss's shape ('none') or is a scalar."""
    with pytest.raises(ValueError, match="grad_output"):
        logitloss.cross_entropy_backward(np.ones(4, np.float32), X, T, reduction="none")
    with pytest.raises(ValueError, match="grad_output"):
        logitloss.cross_entropy_backward(np.ones((3, 1), np.float32), X, T, reduction="none")
    for reduction in ("mean", "sum"):
        with pytest.raises(ValueError, match="grad_output"):
            logitloss.cross_entropy_backward(np.ones(3, np.float32), X, T, reduction=reduction)
    with pytest.raises(TypeError, match="grad_output"):
        logitloss.cross_entropy_backward(np.ones(3, np.complex64), X, T, reduction="none")


def test_errors_leave_no_state(isa):
    """A failed call changes nothing: not the input, not later results, not the ISA."""
    x = logits((4, 33), np.float32, seed=3)
    t = np.array([0, 5, 32, 7])
    saved = x.copy()
    before = logitloss.cross_entropy(x, t, return_grad=True)
    with pytest.raises(IndexError):
        logitloss.cross_entropy(x, np.array([0, 5, 33, 7]), grad_out=x)
    assert np.array_equal(x, saved), "input modified by a call that raised"
    with pytest.raises(ValueError):
        logitloss.cross_entropy(x, t, label_smoothing=-1.0)
    with pytest.raises(ValueError):
        logitloss.cross_entropy(x, t, weight=np.ones(3, np.float32))
    assert logitloss.get_isa() == isa
    after = logitloss.cross_entropy(x, t, return_grad=True)
    assert after[0] == before[0] and np.array_equal(after[1], before[1])
