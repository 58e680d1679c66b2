"""logsumexp's gradient when `b` broadcasts `a` to a larger shape: d result / d a has a's shape, the
contributions of the broadcast copies summed (torch's autograd does the same for any broadcast input).

Every broadcasting pattern of `a` against `b` (leading axes added, length-1 axes stretched on either
side, a 0-d `a`, none), with axis None / int / tuple and keepdims, positive and negative `b`
(return_sign), for `return_grad` and `logsumexp_backward`: against the exact reference
(``logitloss.testing.softmax_family``, which sums its exact per-term gradients error-free) within the
gradient bound, and against torch float64 autograd of ``log|sum(b * exp(a))|``.
"""

from __future__ import annotations

import numpy as np
import pytest

import logitloss
from logitloss.testing.softmax_family import logsumexp as exact_logsumexp
from logitloss.testing.tolerances import EPS, GRADIENT, tolerance

from .helpers.assertions import assert_close_to_exact
from .helpers.marks import dtype_id, dtypes
from .helpers.softmax_family_checks import check_logsumexp

# (a's shape, b's shape): every way `b` can broadcast `a`, and the control where it does not.
PATTERNS = [
    ((2, 1), (3,)),  # a's length-1 axis stretched (the issue's example)
    ((3,), (4, 3)),  # a leading axis added
    ((), (5,)),  # 0-d a
    ((), (2, 3)),
    ((1,), (4,)),  # 1-d a of length 1
    ((1, 3), (2, 1)),  # both stretched
    ((4, 1, 3), (2, 1)),  # a's middle axis stretched, b's leading and last
    ((1, 1), (3, 4)),  # every axis of a stretched
    ((2, 3, 4), (3, 1)),  # b broadcast, a not: the gradient keeps the full shape
    ((2, 3), (2, 3)),  # no broadcasting
]


def _axes(ndim):
    """axis arguments valid for `ndim` dimensions: None, each int, each pair as a tuple, ()."""
    yield None
    for i in range(ndim):
        yield i
    if ndim >= 2:
        yield (0, ndim - 1)
        yield (-1,)
        yield ()


def _cases(dtype, negative):
    rng = np.random.default_rng(18)
    for a_shape, b_shape in PATTERNS:
        a = rng.uniform(-3.0, 3.0, a_shape).astype(dtype)
        b = rng.uniform(0.25, 2.0, b_shape)
        if negative:
            b *= np.where(rng.random(b_shape) < 0.4, -1.0, 1.0)
        b = np.asarray(b).astype(dtype)
        ndim = len(np.broadcast_shapes(a_shape, b_shape))
        for axis in _axes(ndim):
            for keepdims in (False, True):
                yield a, b, axis, keepdims


def _case_id(a, b, axis, keepdims):
    return f"a{a.shape} b{b.shape} axis={axis} keepdims={keepdims}"


@dtypes
@pytest.mark.parametrize("negative", [False, True], ids=["b>0", "b<0 return_sign"])
def test_return_grad_has_the_shape_of_a(isa, dtype, negative):
    for a, b, axis, keepdims in _cases(dtype, negative):
        result, _ = check_logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=negative,
                                    what=_case_id(a, b, axis, keepdims))
        assert np.asarray(result[-1]).shape == a.shape


@dtypes
def test_logsumexp_backward_has_the_shape_of_a(isa, dtype):
    rng = np.random.default_rng(7)
    for a, b, axis, keepdims in _cases(dtype, negative=False):
        what = f"logsumexp_backward {_case_id(a, b, axis, keepdims)}"
        forward = logitloss.logsumexp(a, axis=axis, b=b, keepdims=keepdims)
        g = rng.uniform(-2.0, 2.0, np.shape(forward)).astype(dtype)
        exact = exact_logsumexp(a, axis=axis, b=b, keepdims=keepdims, grad_output=g)
        # result= makes the gradient exactly as accurate as the given result: give it a float64 one
        # (a float16 forward result alone is off by its own rounding, 1e-3 relative).
        forward64 = logitloss.logsumexp(a.astype(np.float64), axis=axis, b=b.astype(np.float64), keepdims=keepdims)
        for result in (None, forward64):
            got = logitloss.logsumexp_backward(g, a, axis=axis, b=b, keepdims=keepdims, result=result)
            assert_close_to_exact(got, exact.grad, dtype, exact.grad_scale, lo=exact.grad_lo, direction=GRADIENT,
                                  what=f"{what} result={result is not None}")


def _torch_gradient(torch, a, b, axis, keepdims, g):
    """d/da of sum(g * log|sum(b * exp(a))|) by torch float64 autograd (a broadcast by torch itself)."""
    ta = torch.tensor(a.astype(np.float64), requires_grad=True)
    tb = torch.tensor(b.astype(np.float64))
    full = torch.broadcast_tensors(ta, tb)
    dims = tuple(range(full[0].ndim)) if axis is None else axis
    dims = dims if isinstance(dims, tuple) else (dims,)
    terms = full[1] * torch.exp(full[0] - full[0].detach().max())  # moderate a: the shift is safe
    total = terms.sum(dim=dims, keepdim=keepdims) if dims else terms
    out = torch.log(torch.abs(total)) + full[0].detach().max()
    (out * torch.tensor(np.asarray(g, dtype=np.float64))).sum().backward()
    return ta.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
@pytest.mark.parametrize("negative", [False, True], ids=["b>0", "b<0 return_sign"])
def test_parity_with_torch_autograd(isa, dtype, negative, torch):
    """Ours within the gradient bound of the exact reference, torch (float64) within a few float64 eps
    of the sum of the terms' magnitudes of it: the two agree, shapes included."""
    rng = np.random.default_rng(3)
    for a, b, axis, keepdims in _cases(dtype, negative):
        what = _case_id(a, b, axis, keepdims)
        *_, grad = logitloss.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=True, return_grad=True)
        value = logitloss.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=True)[0]
        g = rng.uniform(0.5, 2.0, np.shape(value))
        theirs = _torch_gradient(torch, a, b, axis, keepdims, np.ones_like(g))
        exact = exact_logsumexp(a, axis=axis, b=b, keepdims=keepdims)
        assert theirs.shape == grad.shape == a.shape, what
        torch_tol = 64 * EPS[np.dtype(np.float64)] * exact.grad_scale
        ours_tol = tolerance(dtype, exact.grad, exact.grad_scale, GRADIENT)
        np.testing.assert_array_less(np.abs(grad.astype(np.float64) - theirs), ours_tol + torch_tol + 1e-300,
                                     err_msg=what)
        # and with an upstream gradient, against logsumexp_backward (log|s| with its sign: b < 0 too)
        theirs = _torch_gradient(torch, a, b, axis, keepdims, g)
        exact = exact_logsumexp(a, axis=axis, b=b, keepdims=keepdims, grad_output=g)
        if not negative:
            ours = logitloss.logsumexp_backward(g.astype(dtype), a, axis=axis, b=b, keepdims=keepdims)
            ours_tol = tolerance(dtype, exact.grad, exact.grad_scale, GRADIENT)
            np.testing.assert_array_less(np.abs(ours.astype(np.float64) - theirs),
                                         ours_tol + 64 * EPS[np.dtype(np.float64)] * exact.grad_scale + 1e-300,
                                         err_msg=f"backward {what}")
        np.testing.assert_array_less(np.abs(exact.grad - theirs), 64 * EPS[np.dtype(np.float64)] * exact.grad_scale
                                     + 1e-300, err_msg=f"reference vs torch {what}")


def test_the_issue_example():
    """The report's call: a (2, 1) against b (3,) gave a (2, 3) gradient."""
    a = np.array([[1.0], [2.0]])
    b = np.array([91.8, -27.0, -58.5])
    value, sign, grad = logitloss.logsumexp(a, b=b, return_grad=True, return_sign=True)
    assert grad.shape == (2, 1)
    # d log|s| / d a_i = exp(a_i) sum_j b_j / s with s = sum_i exp(a_i) sum_j b_j: [e, e^2] / (e + e^2)
    e = np.exp(1.0)
    np.testing.assert_allclose(grad.ravel(), [e / (e + e * e), e * e / (e + e * e)], rtol=1e-14)
    assert sign == 1.0
