"""Bad input to the logsumexp / softmax family: clear errors of the right type, naming the argument."""

from __future__ import annotations

import numpy as np
import pytest
from inputs import logits

import logitloss

AxisError = np.exceptions.AxisError

X = logits((3, 4), np.float64, seed=0)
G = np.ones((3, 4))
P = np.full((3, 4), 0.25)  # a valid softmax output over the last axis


def forward_calls(x, axis):
    return {
        "logsumexp": lambda: logitloss.logsumexp(x, axis=axis),
        "logsumexp_b": lambda: logitloss.logsumexp(x, axis=axis, b=np.ones_like(x, dtype=np.float64)),
        "softmax": lambda: logitloss.softmax(x, axis=axis),
        "log_softmax": lambda: logitloss.log_softmax(x, axis=axis),
    }


def backward_calls(axis):
    g_reduced = np.ones(3)
    return {
        "logsumexp_backward": lambda: logitloss.logsumexp_backward(g_reduced, X, axis=axis),
        "softmax_backward": lambda: logitloss.softmax_backward(G, P, axis=axis),
        "log_softmax_backward": lambda: logitloss.log_softmax_backward(G, np.log(P), axis=axis),
    }


def all_calls(axis):
    return {**forward_calls(X, axis), **backward_calls(axis)}


@pytest.mark.parametrize("axis", [2, -3, (0, 2), (5,), (-3, 1)], ids=repr)
def test_axis_out_of_range(isa, axis):
    for name, call in all_calls(axis).items():
        with pytest.raises(AxisError) as info:
            call()
        assert "axis" in str(info.value), f"{name}: {info.value}"


@pytest.mark.parametrize("axis", [(0, 0), (1, -1), (-2, 0, 1)], ids=repr)
def test_repeated_axis(isa, axis):
    for name, call in all_calls(axis).items():
        with pytest.raises(ValueError) as info:
            call()
        assert "axis" in str(info.value).lower(), f"{name}: {info.value}"


@pytest.mark.parametrize("axis", [1.0, "0"], ids=repr)
def test_axis_of_wrong_type(isa, axis):
    for name, call in forward_calls(X, axis).items():
        with pytest.raises(TypeError):
            call()


def test_numpy_integer_axes_accepted(isa):
    expected = logitloss.logsumexp(X, axis=1)
    assert np.array_equal(logitloss.logsumexp(X, axis=np.int64(1)), expected)
    assert np.array_equal(logitloss.logsumexp(X, axis=(np.int32(1),)), expected)
    assert np.array_equal(logitloss.softmax(X, axis=np.intp(-1)), logitloss.softmax(X, axis=-1))


@pytest.mark.parametrize(
    "bad",
    [
        np.ones((3, 4), dtype=np.complex128),
        np.ones((3, 4), dtype=np.complex64),
        np.array([[1.0, 2.0]], dtype=object),
        np.array([["a", "b"]]),
        np.array([[b"a", b"b"]]),
        np.array([["2020-01-01"]], dtype="datetime64[D]"),
    ],
    ids=["complex128", "complex64", "object", "str", "bytes", "datetime64"],
)
def test_non_real_input(isa, bad):
    for name, call in forward_calls(bad, -1).items():
        with pytest.raises(TypeError) as info:
            call()
        assert str(info.value), f"{name}: empty message"
    same_shape = np.ones(bad.shape)
    for name, call in {
        "b": lambda: logitloss.logsumexp(same_shape, b=bad),
        "softmax_backward grad_output": lambda: logitloss.softmax_backward(bad, same_shape),
        "softmax_backward output": lambda: logitloss.softmax_backward(same_shape, bad),
        "log_softmax_backward grad_output": lambda: logitloss.log_softmax_backward(bad, same_shape),
        "log_softmax_backward output": lambda: logitloss.log_softmax_backward(same_shape, bad),
        "logsumexp_backward a": lambda: logitloss.logsumexp_backward(1.0, bad),
    }.items():
        with pytest.raises(TypeError):
            call()


def test_complex_error_names_the_dtype(isa):
    with pytest.raises(TypeError, match="complex"):
        logitloss.logsumexp(np.ones(3, dtype=np.complex128))
    with pytest.raises(TypeError, match="complex"):
        logitloss.softmax([1 + 2j, 3.0])
    with pytest.raises(TypeError, match=r"\bb\b"):
        logitloss.logsumexp(np.ones(3), b=np.ones(3, dtype=np.complex128))


def test_b_must_broadcast(isa):
    with pytest.raises(ValueError):
        logitloss.logsumexp(np.ones((3, 4)), b=np.ones(3))
    with pytest.raises(ValueError):
        logitloss.logsumexp(np.ones((3, 4)), axis=-1, b=np.ones((2, 3, 5)))


def test_backward_shape_mismatch(isa):
    a = logits((3, 4), np.float32, seed=1)
    with pytest.raises(ValueError, match="grad_output"):
        logitloss.logsumexp_backward(np.ones(4, np.float32), a, axis=-1)  # result shape is (3,)
    with pytest.raises(ValueError, match="grad_output"):
        logitloss.logsumexp_backward(np.ones((3, 1, 1), np.float32), a, axis=-1, keepdims=True)
    with pytest.raises(ValueError, match="result"):
        logitloss.logsumexp_backward(np.ones(3, np.float32), a, axis=-1, result=np.zeros(4, np.float32))
    p = logitloss.softmax(a, axis=-1)
    for func in (logitloss.softmax_backward, logitloss.log_softmax_backward):
        with pytest.raises(ValueError):
            func(np.ones((3, 5), np.float32), p, axis=-1)
        with pytest.raises(ValueError):
            func(np.ones((4, 3), np.float32), p, axis=-1)


def test_out_errors_name_out(isa):
    x = logits((2, 5), np.float32, seed=2)
    for func in (logitloss.softmax, logitloss.log_softmax):
        with pytest.raises(ValueError, match="out"):
            func(x, axis=-1, out=np.empty((2, 4), np.float32))
        with pytest.raises(TypeError, match="out"):
            func(x, axis=-1, out=np.empty((2, 5), np.float64))
        read_only = np.empty((2, 5), np.float32)
        read_only.flags.writeable = False
        with pytest.raises(ValueError, match="out"):
            func(x, axis=-1, out=read_only)


def test_errors_leave_no_state(isa):
    """A failed call does not change later results (no half-written thread state, ISA kept)."""
    a = logits((4, 33), np.float32, seed=3)
    before = logitloss.logsumexp(a, axis=-1)
    with pytest.raises(AxisError):
        logitloss.logsumexp(a, axis=3)
    with pytest.raises(TypeError):
        logitloss.softmax(a.astype(np.complex64))
    assert logitloss.get_isa() == isa
    assert np.array_equal(logitloss.logsumexp(a, axis=-1), before)
