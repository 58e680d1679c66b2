"""Inputs that look odd but are valid, for every public function, on every SIMD target: read-only,
misaligned, negative- and zero-stride views (the same results as contiguous copies), bool and integer inputs
(computed in float64), NumPy integers for integer arguments, negative ignore_index, exact in-place aliases, a
narrow ``out=`` rounding without warnings."""

from __future__ import annotations

import numpy as np
import pytest

import logitloss
from logitloss.testing.inputs import logits, misaligned_copy, negative_stride_view

from .helpers.assertions import same_bits
from .helpers.bad_calls import read_only

X = logits((3, 4), np.float64, seed=0)  # a softmax-family input
XF = logits((3, 4), np.float32, seed=1)  # cross-entropy logits, (N, C) = (3, 4)
T = np.array([0, 3, 1])  # class-index targets
Y = np.full((3, 4), 0.25, np.float32)  # probability targets


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
