"""cross_entropy / cross_entropy_backward against torch autograd and the exact reference, every ISA: the
feature matrix (index and probability targets, weights, ignore_index, label smoothing, every reduction and
shape), the backward function with upstream gradients of every form and magnitude, and the gradient against
float64 finite differences of the loss.

Numeric checks use ``logitloss.testing.cross_entropy``: the loss within 8 eps of its condition scale (plain 8 eps
relative where the row is well conditioned), the gradient within 8 eps normwise per row; torch parity allows
torch's own (larger) error on top (``docs/accuracy.md``).
"""

from __future__ import annotations


import numpy as np
import pytest

import logitloss
from logitloss.testing.cross_entropy import REDUCTIONS, cross_entropy as exact_cross_entropy
from logitloss.testing.inputs import class_weights, index_targets, logits, target_shape, upstream
from logitloss.testing.tolerances import GRADIENT

from .helpers.assertions import assert_unchanged, same_bits, snapshot
from .helpers.cross_entropy_checks import (
    KINDS,
    assert_grad_close,
    check_cross_entropy,
    grad_tolerance,
    kwargs_of,
    make_targets,
)
from .helpers.loss_checks import assert_close_to_torch, assert_no_flush_to_zero, check_return_kind
from .helpers.marks import dtypes, kinds
from .helpers.torch_calls import torch_cross_entropy


# torch on one thread while this module runs (see conftest.torch_single_threaded)
pytestmark = pytest.mark.usefixtures("torch_single_threaded")


# ---- 1. the feature matrix against torch and the exact reference ------------------------------

# C in {1, 7, 16, 33, 1000}; (N, C), K-dimensional (N, C, d1..dk) with the class axis 1, and 1-D (C,)
MATRIX_SHAPES = [(5, 1), (6, 7), (4, 16), (5, 33), (3, 1000), (2, 7, 3, 2), (2, 33, 4), (7,), (1000,)]
# (kind, weighted, ignore, label_smoothing); probability targets with ignore_index >= 0 are an error
MATRIX_COMBOS = [
    (kind, weighted, ignore, smoothing)
    for kind in KINDS
    for weighted in (False, True)
    for ignore in (("default", "class") if kind == "index" else ("default",))
    for smoothing in (0.0, 0.1)
]


def combo_id(combo):
    kind, weighted, ignore, smoothing = combo
    return f"{kind}-{'w' if weighted else 'now'}-ii_{ignore}-ls{smoothing}"


def matrix_case(shape, dtype, combo, seed):
    """The same logits for every combination (one reference core per shape and dtype); targets,
    and so their integer dtype (cycling through TARGET_DTYPES), vary with the combination."""
    kind, weighted, ignore, smoothing = combo
    C = shape[0] if len(shape) == 1 else shape[1]
    x = logits(shape, dtype, seed=seed, spread=3.0)
    ignore_index = -100 if ignore == "default" else 2 % C
    target = make_targets(kind, shape, dtype, seed + 1 + MATRIX_COMBOS.index(combo), ignore_index)
    if kind == "index" and len(shape) == 1 and ignore == "class":
        target = np.asarray(ignore_index).astype(target.dtype)  # the 1-D input's only position is ignored
    weight = class_weights(C, dtype, seed + 2) if weighted else None
    return x, target, weight, ignore_index, smoothing


@pytest.mark.parametrize("shape", MATRIX_SHAPES, ids=str)
@dtypes
def test_matches_torch(isa, dtype, shape, torch):
    seed = 1000 + sum(shape) + len(shape)
    for combo in MATRIX_COMBOS:
        x, target, weight, ignore_index, smoothing = matrix_case(shape, dtype, combo, seed)
        before = snapshot(x, target, weight)
        for reduction in REDUCTIONS:
            what = f"{combo_id(combo)} {reduction} target {target.dtype}"
            kwargs = kwargs_of(weight, ignore_index, reduction, smoothing)
            loss, grad, exact = check_cross_entropy(x, target, **kwargs, what=what)
            theirs_loss, theirs_grad = torch_cross_entropy(torch, x, target, **kwargs)
            assert_close_to_torch(loss, theirs_loss, exact, what=f"{what} loss")
            assert_close_to_torch(grad, theirs_grad, exact, direction=GRADIENT, what=f"{what} gradient")
            plain = logitloss.cross_entropy(x, target, **kwargs)
            check_return_kind(plain, dtype, reduction, exact.loss.shape, f"{what} (no return_grad)")
            assert same_bits(plain, loss), f"{what}: the loss differs with return_grad=True"
        assert_unchanged(before, (x, target, weight), combo_id(combo))


# ---- 2. cross_entropy_backward --------------------------------------------------------------------

BACKWARD_SHAPES = [(6, 7), (3, 1000), (2, 7, 3, 2), (7,)]


@pytest.mark.parametrize("shape", BACKWARD_SHAPES, ids=str)
@kinds
@dtypes
def test_backward_matches_torch(isa, dtype, kind, shape, torch):
    seed = 2000 + sum(shape)
    C = shape[0] if len(shape) == 1 else shape[1]
    x = logits(shape, dtype, seed=seed, spread=3.0)
    ignore_index = -100 if kind == "probability" else 1
    target = make_targets(kind, shape, dtype, seed + 1, ignore_index)
    for weighted, smoothing in ((False, 0.0), (True, 0.1), (True, 0.0)):
        weight = class_weights(C, dtype, seed + 2) if weighted else None
        before = snapshot(x, target, weight)
        for reduction in REDUCTIONS:
            if reduction == "none":
                g = upstream(target_shape(shape), dtype, seed + 3)
            else:
                g = dtype(-1.75)
            kwargs = kwargs_of(weight, ignore_index, reduction, smoothing)
            what = f"backward {kind} w={weighted} ls={smoothing} {reduction}"
            ours = logitloss.cross_entropy_backward(g, x, target, **kwargs)
            assert isinstance(ours, np.ndarray) and ours.shape == x.shape and ours.dtype == dtype, what
            exact = exact_cross_entropy(x, target, **kwargs, grad_output=g)
            assert_grad_close(ours, exact, what=what)
            _, theirs = torch_cross_entropy(torch, x, target, **kwargs, grad_output=g)
            assert_close_to_torch(ours, theirs, exact, direction=GRADIENT, what=what)
        assert_unchanged(before, (x, target, weight), "backward")


@dtypes
def test_backward_upstream_forms(isa, dtype):
    """A scalar upstream may be a Python float, a NumPy scalar or a 0-d array; upstream 1 gives
    return_grad's gradient (within the tolerance); upstream 0 gives zeros."""
    x = logits((5, 33), dtype, seed=7)
    t = index_targets(x.shape, 8, ignore_index=-100, dtype=np.int64)
    w = class_weights(33, dtype, 9)
    for reduction in ("mean", "sum"):
        kwargs = kwargs_of(w, -100, reduction, 0.1)
        exact = exact_cross_entropy(x, t, **kwargs, grad_output=2.5)
        for g in (2.5, dtype(2.5), np.array(2.5, dtype=dtype), np.array(2.5)):
            got = logitloss.cross_entropy_backward(g, x, t, **kwargs)
            assert_grad_close(got, exact, what=f"{reduction} upstream {type(g).__name__}")
        _, grad = logitloss.cross_entropy(x, t, **kwargs, return_grad=True)
        unit = logitloss.cross_entropy_backward(1.0, x, t, **kwargs)
        exact1 = exact_cross_entropy(x, t, **kwargs)
        assert_grad_close(unit, exact1, what=f"{reduction} upstream 1")
        tol = grad_tolerance(exact1)
        assert np.all(np.abs(unit.astype(np.float64) - grad.astype(np.float64)) <= 2 * tol)
        zero = logitloss.cross_entropy_backward(0.0, x, t, **kwargs)
        assert (zero == 0).all()
    g = np.ones(5, dtype=dtype)
    exact = exact_cross_entropy(x, t, **kwargs_of(w, -100, "none", 0.1), grad_output=g)
    assert_grad_close(logitloss.cross_entropy_backward(g, x, t, **kwargs_of(w, -100, "none", 0.1)), exact)


# upstream magnitudes (powers of two) far from 1: loss scaling in mixed precision, tiny learning signals
UPSTREAM_SCALES = {
    np.dtype(np.float16): (2.0**-8, 2.0**8),
    np.dtype(np.float32): (2.0**-60, 2.0**-100, 2.0**60),
    np.dtype(np.float64): (2.0**-300, 2.0**-700, 2.0**300),
}


@dtypes
@pytest.mark.parametrize("kind", KINDS)
def test_backward_upstream_magnitudes(isa, dtype, kind):
    """The gradient is linear in the upstream gradient: a tiny or huge upstream (scalar, or per
    row for 'none' with magnitudes spread over the range) scales every element, none dropped."""
    x = logits((4, 23), dtype, seed=17)
    t = make_targets(kind, x.shape, dtype, 18)
    w = class_weights(23, dtype, 19)
    scales = UPSTREAM_SCALES[np.dtype(dtype)]
    for scale in scales:
        for reduction, smoothing in (("mean", 0.0), ("sum", 0.1)):
            kwargs = kwargs_of(w, -100, reduction, smoothing)
            g = dtype(scale)
            exact = exact_cross_entropy(x, t, **kwargs, grad_output=g)
            got = logitloss.cross_entropy_backward(g, x, t, **kwargs)
            assert_grad_close(got, exact, what=f"upstream {scale} {reduction}")
            assert_no_flush_to_zero(got, exact.grad + exact.grad_lo, dtype, f"upstream {scale} {reduction}")
    g = np.array([scales[0], 1.0, scales[-1], -scales[0]]).astype(dtype)
    kwargs = kwargs_of(w, -100, "none", 0.1)
    exact = exact_cross_entropy(x, t, **kwargs, grad_output=g)
    got = logitloss.cross_entropy_backward(g, x, t, **kwargs)
    assert_grad_close(got, exact, what="per-row upstream magnitudes")
    assert_no_flush_to_zero(got, exact.grad + exact.grad_lo, dtype, "per-row upstream magnitudes")


# ---- 4. the gradient against float64 finite differences of the loss --------------------------------


def finite_difference_gradient(f, x, h_rel=2.0**-20):
    g = np.zeros_like(x, dtype=np.float64)
    flat = x.reshape(-1)
    for i in range(flat.size):
        h = h_rel * max(1.0, abs(flat[i]))
        up = flat.copy()
        down = flat.copy()
        up[i] += h
        down[i] -= h
        g.reshape(-1)[i] = (float(f(up.reshape(x.shape))) - float(f(down.reshape(x.shape)))) / (2 * h)
    return g


@pytest.mark.parametrize(
    "shape,kind,reduction",
    [
        ((4, 6), "index", "mean"),
        ((4, 6), "probability", "mean"),
        ((2, 5, 3), "index", "mean"),
        ((2, 5, 3), "probability", "sum"),
        ((5, 4), "index", "none"),
        ((6,), "index", "mean"),
    ],
    ids=str,
)
def test_gradient_matches_finite_differences(isa, shape, kind, reduction):
    """Central differences (h = 2^-20 relative) of our float64 loss agree with our gradient to
    1e-7 of the largest gradient entry (truncation ~h^2, cancellation ~eps/h: ~1e-10)."""
    x = logits(shape, np.float64, seed=80 + len(shape))
    C = shape[0] if len(shape) == 1 else shape[1]
    ii = 1 if kind == "index" and len(shape) > 1 else -100
    target = make_targets(kind, shape, np.float64, 81, ignore_index=ii)
    w = class_weights(C, np.float64, 82)
    kwargs = kwargs_of(w, ii, reduction, 0.15)

    def total(z):
        return np.sum(logitloss.cross_entropy(z, target, **kwargs), dtype=np.float64)

    _, grad = logitloss.cross_entropy(x, target, **kwargs, return_grad=True)
    fd = finite_difference_gradient(total, x)
    scale = np.abs(grad).max()
    worst = np.abs(grad - fd).max()
    assert worst <= 1e-7 * scale, f"max |grad - fd| = {worst:.3e}, max |grad| {scale:.3e}"
