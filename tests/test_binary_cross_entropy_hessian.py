"""binary_cross_entropy_with_logits(..., return_hessian=True): the elementwise second derivative against
the exact reference (logitloss.testing.hessian) and torch's float64 double backward, over weight x pos_weight
x reduction x dtype x ISA, extremes, and hessian_out's rules."""

from __future__ import annotations

import numpy as np
import pytest

import logitloss
from logitloss.testing.hessian import assert_hessian_close, binary_cross_entropy_hessian

from .helpers.loss_checks import check_hessian_out_forms

DTYPES = (np.float16, np.float32, np.float64)
REDUCTIONS = ("mean", "sum", "none")
SHAPES = {"odd": (37,), "matrix": (5, 33), "long": (2, 700)}


def _arguments(shape, dtype, weighted, pos_weighted, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 6).astype(dtype)
    y = rng.random(shape).astype(dtype)
    y.reshape(-1)[::4] = 1.0
    y.reshape(-1)[1::4] = 0.0
    kwargs = {}
    if weighted:
        kwargs["weight"] = rng.uniform(0.0, 2.0, shape).astype(dtype)
    if pos_weighted:
        kwargs["pos_weight"] = rng.uniform(0.5, 4.0, shape[-1:]).astype(dtype)  # broadcasts over the last axis
    return x, y, kwargs


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("pos_weighted", (False, True), ids=("", "pos_weight"))
@pytest.mark.parametrize("weighted", (False, True), ids=("", "weight"))
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_hessian_matches_exact_reference(isa, dtype, reduction, weighted, pos_weighted, shape):
    x, y, kwargs = _arguments(shape, dtype, weighted, pos_weighted)
    before = [x.copy(), y.copy()] + [v.copy() for v in kwargs.values()]
    loss, grad, hessian = logitloss.binary_cross_entropy_with_logits(x, y, reduction=reduction, return_hessian=True,
                                                                     **kwargs)
    assert hessian.shape == x.shape and hessian.dtype == x.dtype
    exact = binary_cross_entropy_hessian(x, y, reduction=reduction, **kwargs)
    assert_hessian_close(hessian, exact, dtype)
    loss_alone, grad_alone = logitloss.binary_cross_entropy_with_logits(x, y, reduction=reduction, return_grad=True,
                                                                       **kwargs)
    np.testing.assert_array_equal(loss, loss_alone)
    np.testing.assert_array_equal(grad, grad_alone)
    for array, copy in zip([x, y] + list(kwargs.values()), before):
        np.testing.assert_array_equal(array, copy)


@pytest.mark.parametrize("reduction", ("sum", "mean"))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_extremes(isa, dtype, reduction):
    """Large |x|: sigmoid (1 - sigmoid) without cancellation (e^-|x| relative, never 0 where it is a
    nonzero number of the dtype), +-inf: 0 (the limit), nan: nan."""
    info = np.finfo(dtype)
    values = [0.0, 1e-30, -1e-30, 5.0, -5.0, 20.0, -20.0, 40.0, -40.0, 60.0, -60.0, 87.0, -87.0, 95.0, -95.0,
              103.0, -103.0, 700.0, -700.0, 740.0, -740.0, 1e4, -1e4, float(info.max), -float(info.max), np.inf,
              -np.inf, np.nan]
    x = np.array(values).astype(dtype)
    for y_value in (0.0, 1.0, 0.25):
        y = np.full(x.shape, y_value, dtype)
        for kwargs in ({}, {"weight": np.full(x.shape, 3.0, dtype), "pos_weight": np.full(x.shape, 7.0, dtype)}):
            _, _, hessian = logitloss.binary_cross_entropy_with_logits(x, y, reduction=reduction,
                                                                       return_hessian=True, **kwargs)
            assert_hessian_close(hessian, binary_cross_entropy_hessian(x, y, reduction=reduction, **kwargs), dtype)


def test_tiny_values_stay_tiny(isa):
    x = np.array([-90.0, 90.0, -100.0, 100.0], np.float32)
    _, _, hessian = logitloss.binary_cross_entropy_with_logits(x, np.zeros(4, np.float32), reduction="sum",
                                                               return_hessian=True)
    assert np.all(hessian > 0)  # e^-90 ~ 8e-40 and e^-100 ~ 4e-44: float32 subnormals, not 0
    np.testing.assert_allclose(hessian, np.exp(-np.abs(x.astype(np.float64))), rtol=0.05)


@pytest.mark.parametrize("pos_weighted", (False, True))
@pytest.mark.parametrize("weighted", (False, True))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_torch_double_backward(isa, torch, reduction, weighted, pos_weighted):
    """Elementwise loss: the Hessian is diagonal, so the gradient of the summed gradient is its diagonal."""
    x, y, kwargs = _arguments((4, 9), np.float64, weighted, pos_weighted, seed=2)
    _, _, hessian = logitloss.binary_cross_entropy_with_logits(x, y, reduction=reduction, return_hessian=True,
                                                               **kwargs)
    z = torch.from_numpy(x).requires_grad_()
    options = {k: torch.from_numpy(v) for k, v in kwargs.items()}
    loss = torch.nn.functional.binary_cross_entropy_with_logits(z, torch.from_numpy(y), reduction=reduction,
                                                                **options).sum()
    (grad,) = torch.autograd.grad(loss, z, create_graph=True)
    (expected,) = torch.autograd.grad(grad.sum(), z)
    # torch forms sigmoid(x) (1 - sigmoid(x)): its 1 - s cancels for x >> 0, an error of a few eps of the
    # coefficient f w a rather than of the (smaller) value.
    factor = 1.0 / x.size if reduction == "mean" else 1.0
    coefficient = factor * kwargs.get("weight", 1.0) * ((1 - y) + kwargs.get("pos_weight", 1.0) * y)
    assert np.all(np.abs(hessian - expected.numpy()) <= 1e-13 * np.abs(hessian) + 8 * 2.0**-52 * coefficient)


def test_hessian_out_forms(isa):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    y = (rng.random((4, 6)) < 0.5).astype(np.float32)
    check_hessian_out_forms(lambda input, **options: logitloss.binary_cross_entropy_with_logits(input, y, **options), x)


X = np.zeros((3, 4), np.float32)
Y = np.ones((3, 4), np.float32)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"hessian_out": np.empty((3, 5), np.float32)}, ValueError, "hessian_out"),
        ({"hessian_out": np.empty((3, 4), np.float64)}, TypeError, "hessian_out"),
        ({"hessian_out": [[0.0] * 4] * 3}, TypeError, "hessian_out"),
        ({"hessian_out": X}, ValueError, "hessian_out"),
        ({"hessian_out": Y}, ValueError, "hessian_out"),
        ({"return_hessian": "yes"}, TypeError, "return_hessian"),
    ],
    ids=("shape", "dtype", "not-an-array", "aliases-input", "aliases-target", "flag"),
)
def test_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        logitloss.binary_cross_entropy_with_logits(X, Y, **kwargs)
    np.testing.assert_array_equal(X, 0)
    np.testing.assert_array_equal(Y, 1)


def test_hessian_out_read_only_and_grad_overlap():
    read_only = np.empty((3, 4), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="hessian_out"):
        logitloss.binary_cross_entropy_with_logits(X, Y, hessian_out=read_only)
    grad = np.empty((3, 4), np.float32)
    with pytest.raises(ValueError, match="hessian_out.*grad_out"):
        logitloss.binary_cross_entropy_with_logits(X, Y, grad_out=grad, hessian_out=grad)


def test_strided_and_broadcast_operands(isa):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((6, 40)) * 8).astype(np.float32)[:, ::2]
    y = (rng.random((6, 20)) < 0.3).astype(np.float32)
    weight = rng.uniform(0, 2, (6, 1)).astype(np.float32)  # broadcasts along the last axis
    pos_weight = np.float32(3.0)
    _, _, hessian = logitloss.binary_cross_entropy_with_logits(x, y, weight=weight, pos_weight=pos_weight,
                                                               return_hessian=True)
    exact = binary_cross_entropy_hessian(x, y, weight=weight, pos_weight=pos_weight)
    assert_hessian_close(hessian, exact, np.float32)
