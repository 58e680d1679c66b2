"""binary_cross_entropy_with_logits / _backward: against the exact reference and torch autograd,
every ISA.

Every numeric check uses ``logitloss.testing.binary_cross_entropy``: the loss within 4 eps relative (in the
spec's domain y in [0, 1], w, pw >= 0; one subnormal ulp below the normal range, never flushed to
0), the gradient within 8 eps of the magnitude of its terms (plain relative at y in {0, 1}); torch
parity allows torch's own (larger) error on top and skips the documented divergences (infinite
logits, tiny losses torch rounds to 0).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import logitloss
from logitloss.testing.binary_cross_entropy import (
    REDUCTIONS,
    binary_cross_entropy as exact_binary_cross_entropy,
    result_dtype as result_dtype_of,
)
from logitloss.testing.inputs import (
    VECTOR_WIDTH_SIZES,
    big_endian_copy,
    binary_targets,
    logits,
    misaligned_copy,
    negative_stride_view,
    positive_weights,
    upstream as upstream_gradient,
)
from logitloss.testing.tolerances import EPS, GRADIENT, SMALLEST_SUBNORMAL

from .helpers.assertions import assert_unchanged, same_bits, snapshot
from .helpers.binary_cross_entropy_checks import assert_grad_close, assert_loss_close, check_binary_cross_entropy
from .helpers.loss_checks import assert_close_to_torch, check_return_kind
from .helpers.marks import dtype_id, dtypes
from .helpers.torch_calls import torch_binary_cross_entropy

inf = np.inf
nan = np.nan
bce = logitloss.binary_cross_entropy_with_logits
bce_backward = logitloss.binary_cross_entropy_with_logits_backward

# (input dtype, target dtype): the three float dtypes, and float32 logits with float64 targets
# (the result, and so the gradient, is float64; torch computes its log_sigmoid in float32).
DTYPE_PAIRS = [(np.float16, np.float16), (np.float32, np.float32), (np.float64, np.float64), (np.float32, np.float64)]
dtype_pairs = pytest.mark.parametrize(
    "x_dtype,y_dtype", DTYPE_PAIRS, ids=[f"{dtype_id(a)}-{dtype_id(b)}" for a, b in DTYPE_PAIRS]
)


def operand_shapes(shape):
    """The weight and pos_weight shapes that broadcast to ``shape`` (None: not given): a scalar,
    the last axis (a pos_weight of shape (C,)), a column, a leading-ones row, the full shape."""
    last = tuple(shape[-1:])
    weights = [None, (), last, tuple(shape)]
    pos_weights = [None, last, tuple(shape)]
    if len(shape) >= 2:
        weights.append(tuple(shape[:-1]) + (1,))
        pos_weights.append((1,) * (len(shape) - 1) + last)
    return list(dict.fromkeys(weights)), list(dict.fromkeys(pos_weights))  # 1-D: last == shape


def operand(op_shape, dtype, seed):
    return None if op_shape is None else positive_weights(op_shape, dtype, seed)


# ---- 1. the feature matrix against torch and the exact reference ------------------------------

MATRIX_SHAPES = [(5,), (3, 7), (2, 3, 17), (4, 1000)]


@pytest.mark.parametrize("shape", MATRIX_SHAPES, ids=str)
@dtype_pairs
def test_matches_torch(isa, x_dtype, y_dtype, shape, torch):
    """weight x pos_weight x reduction, each operand in every broadcast shape: loss and gradient
    against the exact reference and against torch autograd; the plain call gives return_grad's loss."""
    seed = 100 + sum(shape) + len(shape)
    x = logits(shape, x_dtype, seed=seed, spread=3.0)
    y = binary_targets(shape, y_dtype, seed + 1)
    weight_shapes, pos_weight_shapes = operand_shapes(shape)
    for k, w_shape in enumerate(weight_shapes):
        for j, pw_shape in enumerate(pos_weight_shapes):
            w = operand(w_shape, x_dtype, seed + 10 + k)
            pw = operand(pw_shape, x_dtype, seed + 20 + j)
            before = snapshot(x, y, w, pw)
            for reduction in REDUCTIONS:
                what = f"weight {w_shape} pos_weight {pw_shape} {reduction}"
                kwargs = dict(weight=w, reduction=reduction, pos_weight=pw)
                loss, grad, exact = check_binary_cross_entropy(x, y, **kwargs, what=what)
                theirs_loss, theirs_grad = torch_binary_cross_entropy(torch, x, y, **kwargs)
                assert_close_to_torch(loss, theirs_loss, exact, what=f"{what} loss")
                assert_close_to_torch(grad, theirs_grad, exact, direction=GRADIENT, what=f"{what} gradient")
                plain = bce(x, y, **kwargs)
                assert not isinstance(plain, tuple), "return_grad defaults to False"
                check_return_kind(plain, exact.dtype, reduction, exact.loss.shape, f"{what} (no return_grad)")
                assert same_bits(plain, loss), f"{what}: the loss differs with return_grad=True"
            assert_unchanged(before, (x, y, w, pw), f"weight {w_shape} pos_weight {pw_shape}")


# ---- 2. the backward function -------------------------------------------------------------------

BACKWARD_SHAPES = [(), (3, 7), (2, 3, 17), (4, 1000)]


@pytest.mark.parametrize("shape", BACKWARD_SHAPES, ids=str)
@dtype_pairs
def test_backward_matches_torch(isa, x_dtype, y_dtype, shape, torch):
    """A random upstream of the loss's shape ('none'; also one broadcasting along the last axis)
    and a scalar upstream ('mean', 'sum'), against the exact reference and torch autograd."""
    seed = 300 + sum(shape)
    x = logits(shape, x_dtype, seed=seed, spread=3.0)
    y = binary_targets(shape, y_dtype, seed + 1)
    result = result_dtype_of(x, y)
    last = tuple(shape[-1:])
    for w_shape, pw_shape in ((None, None), (last, None), (None, last), (shape, last)):
        w = operand(w_shape, x_dtype, seed + 2)
        pw = operand(pw_shape, x_dtype, seed + 3)
        before = snapshot(x, y, w, pw)
        upstreams = [
            ("none", upstream_gradient(shape, result, seed + 4)),
            ("none", upstream_gradient(last, result, seed + 5)),
            ("mean", result.type(-1.75)),
            ("sum", result.type(0.625)),
        ]
        for reduction, g in upstreams:
            kwargs = dict(weight=w, reduction=reduction, pos_weight=pw)
            what = f"backward weight {w_shape} pos_weight {pw_shape} {reduction} upstream {np.shape(g)}"
            ours = bce_backward(g, x, y, **kwargs)
            assert isinstance(ours, np.ndarray) and ours.shape == shape, (
                f"{what}: {type(ours).__name__} {np.shape(ours)}"
            )
            assert ours.dtype == result, f"{what}: dtype {ours.dtype}, expected {result}"
            exact = exact_binary_cross_entropy(x, y, **kwargs, grad_output=g)
            assert_grad_close(ours, exact, what=what)
            _, theirs = torch_binary_cross_entropy(torch, x, y, **kwargs, grad_output=g)
            assert_close_to_torch(ours, theirs, exact, direction=GRADIENT, what=what)
        assert_unchanged(before, (x, y, w, pw), "backward")


@dtypes
def test_backward_upstream_forms(isa, dtype):
    """A scalar upstream may be a Python float, a NumPy scalar, a 0-d or a size-1 1-D array;
    upstream 1 gives return_grad's gradient; upstream 0 gives zeros."""
    x = logits((5, 33), dtype, seed=7)
    y = binary_targets(x.shape, dtype, 8)
    pw = positive_weights((33,), dtype, 9)
    for reduction in ("mean", "sum"):
        kwargs = dict(reduction=reduction, pos_weight=pw)
        exact = exact_binary_cross_entropy(x, y, **kwargs, grad_output=2.5)
        for g in (2.5, dtype(2.5), np.array(2.5, dtype=dtype), np.array(2.5), np.array([2.5], dtype=dtype)):
            got = bce_backward(g, x, y, **kwargs)
            assert_grad_close(got, exact, what=f"{reduction} upstream {type(g).__name__} {np.shape(g)}")
        _, grad = bce(x, y, **kwargs, return_grad=True)
        unit = bce_backward(1.0, x, y, **kwargs)
        assert_grad_close(unit, exact_binary_cross_entropy(x, y, **kwargs), what=f"{reduction} upstream 1")
        assert_grad_close(grad, exact_binary_cross_entropy(x, y, **kwargs), what=f"{reduction} return_grad")
        zero = bce_backward(0.0, x, y, **kwargs)
        assert (zero == 0).all(), f"{reduction}: upstream 0 gave {zero[zero != 0][:5]}"


# upstream magnitudes (powers of two) far from 1: loss scaling, tiny learning signals
UPSTREAM_SCALES = {
    np.dtype(np.float16): (2.0**-8, 2.0**8),
    np.dtype(np.float32): (2.0**-60, 2.0**-100, 2.0**60),
    np.dtype(np.float64): (2.0**-300, 2.0**-700, 2.0**300),
}


@dtypes
def test_backward_upstream_magnitudes(isa, dtype):
    """The gradient is linear in the upstream gradient: tiny and huge upstreams scale every
    element, none dropped (the upstream is not folded into a 1 / n that underflows)."""
    x = logits((4, 23), dtype, seed=17)
    y = binary_targets(x.shape, dtype, 18)
    pw = positive_weights((23,), dtype, 19)
    scales = UPSTREAM_SCALES[np.dtype(dtype)]
    for scale in scales:
        for reduction in ("mean", "sum"):
            g = dtype(scale)
            exact = exact_binary_cross_entropy(x, y, reduction=reduction, pos_weight=pw, grad_output=g)
            assert_grad_close(
                bce_backward(g, x, y, reduction=reduction, pos_weight=pw), exact, what=f"{scale} {reduction}"
            )
    g = np.array([scales[0], 1.0, scales[-1], -scales[0]]).astype(dtype)[:, None]
    exact = exact_binary_cross_entropy(x, y, reduction="none", pos_weight=pw, grad_output=g)
    assert_grad_close(bce_backward(g, x, y, reduction="none", pos_weight=pw), exact, what="per-row upstream magnitudes")


# ---- 3. adversarial values against the exact reference ------------------------------------------

HUGE = {np.dtype(np.float16): 6e4, np.dtype(np.float32): 3e38, np.dtype(np.float64): 3e38}
ADVERSARIAL_TARGETS = (0.0, 0.25, 1.0)
ADVERSARIAL_POS_WEIGHTS = (None, 0.5, 3.0)


def adversarial_logits(dtype):
    """+-1e4, +-huge (3e38; 6e4 in float16), +-88.8, +-40, 0, +-inf, nan (1e308 too in float64)."""
    big = [1e4, HUGE[np.dtype(dtype)], 88.8, 40.0] + ([1e308] if dtype == np.float64 else [])
    values = [s * v for v in big for s in (1.0, -1.0)] + [0.0, inf, -inf, nan]
    return np.array(values).astype(dtype)


def adversarial_grid(dtype):
    """Every logit against every target: x of shape (len(values), 3), y per column."""
    x = np.repeat(adversarial_logits(dtype)[:, None], len(ADVERSARIAL_TARGETS), axis=1)
    y = np.broadcast_to(np.array(ADVERSARIAL_TARGETS, dtype=dtype), x.shape).copy()
    return x, y


@dtypes
@pytest.mark.parametrize("pos_weight", ADVERSARIAL_POS_WEIGHTS, ids=repr)
def test_adversarial_values(isa, dtype, pos_weight):
    """Loss and gradient of every adversarial logit with y in {0, 0.25, 1}: exact (limits at
    +-inf, nan only where x is nan), and the reductions over the rows without nan."""
    x, y = adversarial_grid(dtype)
    pw = None if pos_weight is None else dtype(pos_weight)
    loss, grad, exact = check_binary_cross_entropy(x, y, reduction="none", pos_weight=pw, what="adversarial")
    finite_x = ~np.isnan(x)
    assert np.isfinite(grad[finite_x]).all(), f"non-finite gradient at {x[~np.isfinite(grad) & finite_x]}"
    assert np.isnan(loss[~finite_x]).all() and np.isnan(grad[~finite_x]).all(), "nan logits must give nan"
    keep = ~np.isnan(x).any(axis=1)
    for reduction in ("mean", "sum"):
        check_binary_cross_entropy(
            x[keep], y[keep], reduction=reduction, pos_weight=pw, what=f"adversarial {reduction}"
        )
        total = bce(x, y, reduction=reduction, pos_weight=pw)
        assert np.isnan(total), f"{reduction} with a nan logit: {total!r}"


@dtypes
def test_infinite_logits_take_the_limit(isa, dtype):
    """The documented divergence from torch (which gives nan): x = +inf, y = 1 -> 0;
    x = -inf, y = 0 -> 0; x = -inf, y in (0, 1] -> +inf; x = +inf, y in [0, 1) -> +inf.
    The gradient is the limit of ((1 - y) sigmoid(x) - pw y sigmoid(-x)) w."""
    x = np.array([inf, -inf, -inf, -inf, inf, inf]).astype(dtype)
    y = np.array([1.0, 0.0, 0.25, 1.0, 0.0, 0.25]).astype(dtype)
    for pos_weight, pw_value in ((None, 1.0), (dtype(3.0), 3.0)):
        loss, grad = bce(x, y, reduction="none", pos_weight=pos_weight, return_grad=True)
        expected_loss = [0.0, 0.0, inf, inf, inf, inf]
        expected_grad = [0.0, 0.0, -0.25 * pw_value, -pw_value, 1.0, 0.75]
        np.testing.assert_array_equal(loss, np.array(expected_loss, dtype=dtype), err_msg=f"pos_weight {pos_weight}")
        np.testing.assert_array_equal(grad, np.array(expected_grad, dtype=dtype), err_msg=f"pos_weight {pos_weight}")
    assert bce(x[:2], y[:2], reduction="sum") == 0 and bce(x[:2], y[:2]) == 0
    assert bce(x, y, reduction="mean") == inf


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
def test_spec_examples(isa, dtype):
    """x = -40, y = 0: 4.248e-18 (torch: 0); x = 20, y = 1: gradient -2.06e-9 (torch: 0 in
    float32); x = -88.8, y = 0: 2.72e-39 (float32: subnormal, one subnormal ulp, never 0)."""
    loss, grad = bce(np.array([-40.0, 20.0], dtype), np.array([0.0, 1.0], dtype), reduction="none", return_grad=True)
    expected = math.log1p(math.exp(-40.0))
    assert abs(float(loss[0]) - expected) <= 4 * EPS[np.dtype(dtype)] * expected, f"x=-40, y=0: {loss[0]!r}"
    assert abs(float(grad[0]) - expected) <= 8 * EPS[np.dtype(dtype)] * expected, f"x=-40, y=0 gradient {grad[0]!r}"
    sigmoid_m20 = math.exp(-20.0) / (1.0 + math.exp(-20.0))
    assert abs(float(grad[1]) + sigmoid_m20) <= 8 * EPS[np.dtype(dtype)] * sigmoid_m20, (
        f"x=20, y=1 gradient {grad[1]!r}"
    )
    tiny = bce(np.array([-88.8], dtype), np.array([0.0], dtype), reduction="sum")
    exact = float(exact_binary_cross_entropy(np.array([-88.8], dtype), np.array([0.0], dtype), reduction="sum").loss)
    assert tiny != 0 and abs(float(tiny) - exact) <= max(
        SMALLEST_SUBNORMAL[np.dtype(dtype)], 4 * EPS[np.dtype(dtype)] * exact
    ), f"x=-88.8, y=0: {tiny!r}, exact {exact!r}"


@dtypes
def test_gradient_exact_at_zero(isa, dtype):
    """At x = 0 the gradient (1 - y) / 2 - pw y / 2 is exact: -0.5 for y = 1 (every reduction's
    scale a power of two here, so exact there too)."""
    y = np.array([1.0, 0.0, 0.25, 1.0]).astype(dtype)
    x = np.zeros(4, dtype=dtype)
    for pos_weight in (None, 0.5, 3.0):
        pw = 1.0 if pos_weight is None else pos_weight
        expected = np.array([0.5 * (1 - v) - 0.5 * pw * v for v in y.astype(np.float64)])
        pw_arg = None if pos_weight is None else dtype(pos_weight)
        _, grad = bce(x, y, reduction="none", pos_weight=pw_arg, return_grad=True)
        np.testing.assert_array_equal(grad, expected.astype(dtype), err_msg=f"none, pos_weight {pos_weight}")
        _, grad = bce(x, y, reduction="mean", pos_weight=pw_arg, return_grad=True)
        np.testing.assert_array_equal(grad, (expected / 4).astype(dtype), err_msg=f"mean, pos_weight {pos_weight}")
        grad = bce_backward(dtype(2.0), x, y, reduction="sum", pos_weight=pw_arg)
        np.testing.assert_array_equal(grad, (2 * expected).astype(dtype), err_msg=f"sum, pos_weight {pos_weight}")
    assert bce(x[:1], y[:1], reduction="none", return_grad=True)[1][0] == -0.5


# margins k: x = -k with y = 0 and x = k with y = 1 have the loss log1p(exp(-k)), from log 2 down
# through the subnormal range to 0 (float16 is computed in float32, its losses go subnormal at k ~ 10)
CONFIDENT_MARGINS = {
    np.dtype(np.float16): np.arange(0.0, 20.0, 0.25),
    np.dtype(np.float32): np.arange(0.0, 110.0, 0.5),
    np.dtype(np.float64): np.concatenate([np.arange(0.0, 60.0, 0.5), np.arange(700.0, 760.0, 1.0)]),
}


def confident_problem(dtype, subnormal):
    """x = -k, y = 0 and x = k, y = 1 for the margins whose loss is a normal number of the
    result dtype (``subnormal=False``) or lies below the normal range (``subnormal=True``)."""
    k = CONFIDENT_MARGINS[np.dtype(dtype)]
    limit = -math.log(float(np.finfo(dtype).smallest_normal))
    k = k[k > limit] if subnormal else k[k <= limit]
    x = np.concatenate([-k, k]).astype(dtype)
    y = np.concatenate([np.zeros_like(k), np.ones_like(k)]).astype(dtype)
    return x, y


def confident_weights(x, dtype):
    """(pos_weight, weight) pairs: none, pos_weight 3, both scalars, per-element weights."""
    return [(None, None), (dtype(3.0), None), (dtype(0.5), dtype(0.75)), (None, positive_weights(x.shape, dtype, 5))]


@dtypes
def test_confident_predictions(isa, dtype):
    """Correct confident predictions: tiny losses and gradients within 4 (8) eps relative wherever
    they are normal numbers, with pos_weight and weights; below the normal range (without
    weights) within one subnormal ulp and never 0 where they round to nonzero."""
    x, y = confident_problem(dtype, subnormal=False)
    for pw, w in confident_weights(x, dtype):
        what = f"confident pos_weight {pw} weight {None if w is None else np.shape(w)}"
        check_binary_cross_entropy(x, y, weight=w, pos_weight=pw, reduction="none", what=what)
        check_binary_cross_entropy(x, y, weight=w, pos_weight=pw, reduction="sum", what=f"{what} sum")
    x, y = confident_problem(dtype, subnormal=True)
    check_binary_cross_entropy(x, y, reduction="none", what="subnormal losses")


@dtypes
def test_subnormal_losses_with_weights(isa, dtype):
    """The spec's subnormal rule holds for y in [0, 1] and any non-negative weight and pos_weight:
    pw * log1p(e) must not be rounded to the subnormal grid before the product (pw = 3 turns a
    half-ulp error into 1.5 ulp, and a log1p(e) that rounds to 0 into a 0 where 3 log1p(e) does
    not), nor must the weighted loss be rounded twice."""
    x, y = confident_problem(dtype, subnormal=True)
    for pw, w in confident_weights(x, dtype)[1:]:
        what = f"subnormal losses pos_weight {pw} weight {None if w is None else np.shape(w)}"
        check_binary_cross_entropy(x, y, weight=w, pos_weight=pw, reduction="none", what=what)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
def test_no_intermediate_overflow(isa, dtype):
    """The spec: no inf where the exact loss is finite (y in [0, 1], w, pw >= 0).  Here
    pw * y * |x| (or (1 - y) |x|) overflows the dtype while w times it does not."""
    top = float(np.finfo(dtype).max)
    x = np.array([-0.5 * top, -0.75 * top, 0.75 * top, -0.4 * top]).astype(dtype)
    y = np.array([1.0, 0.5, 0.0, 0.75]).astype(dtype)
    pw = np.array([4.0, 4.0, 1.0, 8.0]).astype(dtype)
    w = np.array([0.125, 0.25, 1.0, 0.25]).astype(dtype)
    exact = exact_binary_cross_entropy(x, y, weight=w, pos_weight=pw, reduction="none")
    assert np.isfinite(exact.loss).all()  # 0.25 max, 0.375 max, 0.75 max, 0.6 max
    check_binary_cross_entropy(x, y, weight=w, pos_weight=pw, reduction="none", what="weighted overflowing terms")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
def test_tiny_factor_products(isa, dtype):
    """pw * y or w * y below the normal range (a subnormal pos_weight or target) times a huge |x|:
    the loss (w) pw y |x| is a normal number, so within 4 eps relative, which forming the product
    of the factors first loses (x = -3e38, y = 0.5, pw = 1e-45 in float32: 2.1e-7, not 0)."""
    tiny = float(np.finfo(dtype).smallest_subnormal)
    x = np.array([-3e38, -1e30, -704.0, -3e38, -704.0]).astype(dtype)
    y = np.array([0.5, 0.5, 0.5, 1001 * tiny, 1001 * tiny]).astype(dtype)
    pw = np.array([tiny, 3 * tiny, tiny, 1.75, 1.75]).astype(dtype)
    check_binary_cross_entropy(x, y, pos_weight=pw, reduction="none", what="tiny pos_weight * y")
    w = np.array(0.75, dtype=dtype)
    check_binary_cross_entropy(x[3:], y[3:], weight=w, reduction="none", what="weight * subnormal y")


@dtypes
def test_overflowing_reductions_are_silent(isa, dtype):
    """A sum beyond the dtype's range is inf -- its correct rounding -- without a RuntimeWarning;
    a mean back in range is finite (float64 too: its sum must not overflow on the way)."""
    top = float(np.finfo(dtype).max)
    x = np.array([0.6 * top, -0.6 * top, 0.0, 0.0]).astype(dtype)
    y = np.array([0.0, 1.0, 0.0, 1.0]).astype(dtype)  # losses 0.6 max, 0.6 max, log 2, log 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bce(x, y, reduction="sum") == inf
        assert np.isfinite(bce(x, y, reduction="none")).all()
        check_binary_cross_entropy(x, y, reduction="mean", what="mean of two 0.6 max losses")


def test_nan_propagates(isa):
    """A nan logit, target, weight or pos_weight gives nan where it enters (and a nan mean)."""
    x = logits((3, 5), np.float32, seed=3)
    y = np.full(x.shape, 0.5, np.float32)  # both terms present everywhere: pos_weight enters too
    operands = {"input": x, "target": y, "weight": positive_weights((5,), np.float32, 5)}
    operands["pos_weight"] = positive_weights((5,), np.float32, 6)
    for name in operands:
        args = {key: value.copy() for key, value in operands.items()}
        expected = np.zeros(x.shape, dtype=bool)
        if args[name].ndim == 2:
            args[name][1, 2] = nan
            expected[1, 2] = True
        else:  # a per-column operand: the whole column
            args[name][2] = nan
            expected[:, 2] = True
        loss, grad = bce(**args, reduction="none", return_grad=True)
        assert np.array_equal(np.isnan(loss), expected), (
            f"nan {name}: loss nan at {np.argwhere(np.isnan(loss)).tolist()}"
        )
        assert np.array_equal(np.isnan(grad), expected), (
            f"nan {name}: gradient nan at {np.argwhere(np.isnan(grad)).tolist()}"
        )
        assert np.isnan(bce(**args)), f"nan {name}: mean"


# ---- 4. sizes, empty and 0-d inputs -------------------------------------------------------------


@dtypes
@pytest.mark.parametrize("n", VECTOR_WIDTH_SIZES)
def test_vector_width_sizes(isa, dtype, n, torch):
    """Sizes around every vector width (masked tails) with both weights, against the exact
    reference and torch, every reduction."""
    x = logits((n,), dtype, seed=n, spread=4.0)
    y = binary_targets((n,), dtype, n + 1)
    w = positive_weights((n,), dtype, n + 2)
    pw = positive_weights((n,), dtype, n + 3)
    for reduction in REDUCTIONS:
        loss, grad, exact = check_binary_cross_entropy(
            x, y, weight=w, pos_weight=pw, reduction=reduction, what=f"n={n}"
        )
        theirs_loss, theirs_grad = torch_binary_cross_entropy(torch, x, y, weight=w, pos_weight=pw, reduction=reduction)
        assert_close_to_torch(loss, theirs_loss, exact, what=f"n={n} {reduction}")
        assert_close_to_torch(grad, theirs_grad, exact, direction=GRADIENT, what=f"n={n} {reduction} gradient")


def test_large_odd_size(isa):
    """1,000,003 elements (the threads' split and a masked tail), pos_weight scalar-shaped."""
    n = 1_000_003
    dtype = np.float32
    x = logits((n,), dtype, seed=11, spread=5.0)
    y = binary_targets((n,), dtype, 12)
    pw = positive_weights((1,), dtype, 13)
    for reduction in REDUCTIONS:
        check_binary_cross_entropy(x, y, pos_weight=pw, reduction=reduction, what=f"n={n} {reduction}")


@dtypes
@pytest.mark.parametrize("shape", [(0,), (0, 5), (3, 0), (2, 0, 4)], ids=str)
def test_empty(isa, dtype, shape, torch):
    """No elements: 'mean' nan (0 / 0) and 'sum' 0, as torch; 'none' and the gradient empty."""
    x = np.zeros(shape, dtype=dtype)
    y = np.zeros(shape, dtype=dtype)
    pw = positive_weights(shape[-1:], dtype, 1)
    loss, grad = bce(x, y, pos_weight=pw, reduction="none", return_grad=True)
    check_return_kind(loss, dtype, "none", shape)
    assert grad.shape == shape and grad.dtype == dtype
    m, grad = bce(x, y, pos_weight=pw, return_grad=True)
    check_return_kind(m, dtype, "mean", ())
    assert np.isnan(m), f"empty mean: {m!r}"
    assert grad.shape == shape and grad.dtype == dtype
    s = bce(x, y, pos_weight=pw, reduction="sum")
    check_return_kind(s, dtype, "sum", ())
    assert s == 0, f"empty sum: {s!r}"
    assert bce_backward(dtype(1), x, y, reduction="mean").shape == shape
    assert bce_backward(np.zeros(shape, dtype), x, y, reduction="none").shape == shape
    theirs_mean, _ = torch_binary_cross_entropy(torch, x, y, pos_weight=pw, reduction="mean")
    theirs_sum, _ = torch_binary_cross_entropy(torch, x, y, pos_weight=pw, reduction="sum")
    assert np.isnan(theirs_mean) and theirs_sum == 0  # the convention followed


@dtypes
def test_zero_dimensional(isa, dtype, torch):
    """A 0-d input and target: every reduction, the gradient 0-d, against the exact reference and torch."""
    for value, target in ((1.5, 0.25), (-3.0, 1.0), (0.0, 0.0)):
        x = np.array(value, dtype=dtype)
        y = np.array(target, dtype=dtype)
        for pw in (None, np.array(2.0, dtype=dtype)):
            for reduction in REDUCTIONS:
                loss, grad, exact = check_binary_cross_entropy(x, y, pos_weight=pw, reduction=reduction, what="0-d")
                theirs_loss, theirs_grad = torch_binary_cross_entropy(torch, x, y, pos_weight=pw, reduction=reduction)
                assert_close_to_torch(loss, theirs_loss, exact, what=f"0-d {reduction}")
                assert_close_to_torch(grad, theirs_grad, exact, direction=GRADIENT, what=f"0-d {reduction} gradient")
            g = bce_backward(dtype(3.0), x, y, pos_weight=pw, reduction="none")
            assert np.shape(g) == () and g.dtype == dtype
    assert float(bce(np.float32(0.0), np.float32(1.0), reduction="sum")) == pytest.approx(math.log(2.0), rel=1e-6)


# ---- 5. dtypes: result promotion, integer and bool targets, weights of any real dtype ------------

RESULT_DTYPES = [
    (np.float16, np.float16, np.float16),
    (np.float16, np.float32, np.float32),
    (np.float16, np.float64, np.float64),
    (np.float32, np.float16, np.float32),
    (np.float32, np.float64, np.float64),
    (np.float64, np.float32, np.float64),
    (np.float64, np.float16, np.float64),
    (np.float16, np.bool_, np.float16),
    (np.float32, np.bool_, np.float32),
    (np.float32, np.int64, np.float32),
    (np.float16, np.uint8, np.float16),
    (np.float64, np.int8, np.float64),
    (np.float32, np.uint64, np.float32),
]


@pytest.mark.parametrize(
    "x_dtype,y_dtype,expected", RESULT_DTYPES, ids=[f"{dtype_id(a)}-{dtype_id(b)}" for a, b, _ in RESULT_DTYPES]
)
def test_result_dtype(isa, x_dtype, y_dtype, expected, torch):
    """Floating targets promote with the input (torch's rule); integer and bool targets keep the
    input's dtype (torch rejects them: compared with the same values as floats)."""
    shape = (3, 19)
    x = logits(shape, x_dtype, seed=21)
    values = binary_targets(shape, np.float64, 22)
    y = (values > 0.5).astype(y_dtype) if not np.issubdtype(y_dtype, np.floating) else values.astype(y_dtype)
    w = positive_weights((19,), x_dtype, 23)
    for reduction in REDUCTIONS:
        loss, grad, exact = check_binary_cross_entropy(
            x, y, weight=w, pos_weight=w, reduction=reduction, what=reduction
        )
        assert exact.dtype == np.dtype(expected)
        theirs_loss, theirs_grad = torch_binary_cross_entropy(torch, x, y, weight=w, pos_weight=w, reduction=reduction)
        assert_close_to_torch(loss, theirs_loss, exact, what=f"{reduction} loss")
        assert_close_to_torch(grad, theirs_grad, exact, direction=GRADIENT, what=f"{reduction} gradient")
        assert bce_backward(expected(1), x, y, weight=w, pos_weight=w, reduction=reduction).dtype == expected


@pytest.mark.parametrize("target_dtype", [np.int64, np.int8, np.int32], ids=dtype_id)
def test_integer_targets_outside_unit_interval(isa, target_dtype, torch):
    """No range check on the target: y = 2 or -1 is computed with torch's formula."""
    x = logits((4, 9), np.float32, seed=31)
    y = np.random.default_rng(32).integers(-1, 3, x.shape).astype(target_dtype)
    for pw in (None, positive_weights((9,), np.float32, 33)):
        for reduction in REDUCTIONS:
            loss, grad, exact = check_binary_cross_entropy(x, y, pos_weight=pw, reduction=reduction, what="int targets")
            theirs_loss, theirs_grad = torch_binary_cross_entropy(torch, x, y, pos_weight=pw, reduction=reduction)
            assert_close_to_torch(loss, theirs_loss, exact, what=f"int targets {reduction}")
            assert_close_to_torch(
                grad, theirs_grad, exact, direction=GRADIENT, what=f"int targets {reduction} gradient"
            )


@pytest.mark.parametrize(
    "x_dtype,weight_dtype",
    [
        (np.float32, np.float64),
        (np.float32, np.int32),
        (np.float32, np.bool_),
        (np.float64, np.float16),
        (np.float16, np.float64),
        (np.float64, np.uint8),
        (np.float16, np.int64),
    ],
    ids=lambda d: dtype_id(d),
)
def test_weights_of_any_real_dtype(isa, x_dtype, weight_dtype):
    """weight and pos_weight in another real dtype than the input (values exact in the compute
    dtype): the same values as weights given in the input's dtype, within the tolerance."""
    x = logits((6, 11), x_dtype, seed=41)
    y = binary_targets(x.shape, x_dtype, 42)
    rng = np.random.default_rng(43)
    if weight_dtype == np.bool_:
        w = rng.random(11) < 0.6
        pw = rng.random((6, 1)) < 0.6
    else:
        w = rng.integers(0, 4, 11).astype(weight_dtype)
        pw = rng.integers(1, 5, (6, 1)).astype(weight_dtype)
        if np.issubdtype(weight_dtype, np.floating):
            w = (w / 4).astype(weight_dtype)  # quarters: exact in every float dtype
    for reduction in REDUCTIONS:
        check_binary_cross_entropy(x, y, weight=w, pos_weight=pw, reduction=reduction, what=f"{reduction}")


def test_float64_weights_rounded_once(isa):
    """Arbitrary float64 weights with float32 logits: still 4 eps relative to the exact loss with
    the float64 weights (rounding each weight to float32 once costs half an eps)."""
    x = logits((8, 65), np.float32, seed=44)
    y = binary_targets(x.shape, np.float32, 45)
    w = np.random.default_rng(46).uniform(0.1, 3.0, 65)
    pw = np.random.default_rng(47).uniform(0.1, 3.0, (8, 1))
    for reduction in REDUCTIONS:
        check_binary_cross_entropy(
            x, y, weight=w, pos_weight=pw, reduction=reduction, what=f"float64 weights {reduction}"
        )


# ---- 6. layouts: strides, zero strides, misaligned, big-endian -----------------------------------


def layouts(base):
    """Named views of a 2-D ``base`` with the same values in every layout."""
    wide = np.repeat(base, 2, axis=1)
    return {
        "contiguous": base,
        "transposed": np.ascontiguousarray(base.T).T,
        "column_step2": wide[:, ::2],
        "negative_strides": negative_stride_view(negative_stride_view(base).copy()),
        "row_step3": np.repeat(base, 3, axis=0)[::3],
        "misaligned": misaligned_copy(base),
        "big_endian": big_endian_copy(base),
    }


LAYOUTS = list(layouts(np.zeros((2, 2))))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64], ids=dtype_id)
def test_layouts(isa, dtype, layout):
    """Input, target, weight and pos_weight each in every layout: the contiguous call's results
    within the tolerance of the exact values, and the inputs untouched."""
    x = logits((7, 37), dtype, seed=51)
    y = binary_targets(x.shape, dtype, 52)
    w = positive_weights(x.shape, dtype, 53)
    pw = positive_weights((1, 37), dtype, 54)
    views = {name: layouts(a)[layout] for name, a in (("x", x), ("y", y), ("w", w), ("pw", pw))}
    before = snapshot(*views.values())
    for reduction in REDUCTIONS:
        exact = exact_binary_cross_entropy(x, y, weight=w, pos_weight=pw, reduction=reduction)
        for changed in views:  # one operand in this layout at a time, then all of them
            args = {"x": x, "y": y, "w": w, "pw": pw, changed: views[changed]}
            loss, grad = bce(
                args["x"], args["y"], weight=args["w"], pos_weight=args["pw"], reduction=reduction, return_grad=True
            )
            assert grad.dtype.isnative and np.asarray(loss).dtype.isnative, f"{layout} {changed}: non-native result"
            assert_loss_close(loss, exact, what=f"{layout} {changed} {reduction}")
            assert_grad_close(grad, exact, what=f"{layout} {changed} {reduction} gradient")
        loss, grad = bce(
            views["x"], views["y"], weight=views["w"], pos_weight=views["pw"], reduction=reduction, return_grad=True
        )
        assert_loss_close(loss, exact, what=f"{layout} all {reduction}")
        assert_grad_close(grad, exact, what=f"{layout} all {reduction} gradient")
    assert_unchanged(before, list(views.values()), layout)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
def test_zero_stride_operands(isa, dtype, torch):
    """np.broadcast_to views (zero strides, read-only) as input, target, weight and pos_weight."""
    row = logits((1, 45), dtype, seed=61)
    x = np.broadcast_to(row, (6, 45))
    y = np.broadcast_to(binary_targets((45,), dtype, 62), (6, 45))
    w = np.broadcast_to(positive_weights((6, 1), dtype, 63), (6, 45))
    pw = np.broadcast_to(positive_weights((), dtype, 64), (45,))
    assert x.strides[0] == 0 and y.strides[0] == 0 and w.strides[1] == 0 and pw.strides == (0,)
    for reduction in REDUCTIONS:
        loss, grad, exact = check_binary_cross_entropy(
            x, y, weight=w, pos_weight=pw, reduction=reduction, what="zero strides"
        )
        contiguous = bce(
            x.copy(), y.copy(), weight=w.copy(), pos_weight=pw.copy(), reduction=reduction, return_grad=True
        )
        assert_loss_close(contiguous[0], exact, what="copies")
        theirs_loss, theirs_grad = torch_binary_cross_entropy(torch, x, y, weight=w, pos_weight=pw, reduction=reduction)
        assert_close_to_torch(loss, theirs_loss, exact, what=f"zero strides {reduction}")
        assert_close_to_torch(grad, theirs_grad, exact, direction=GRADIENT, what=f"zero strides {reduction} gradient")
        grad_output = np.broadcast_to(upstream_gradient((45,), dtype, 65), x.shape) if reduction == "none" else dtype(1.5)
        got = bce_backward(grad_output, x, y, weight=w, pos_weight=pw, reduction=reduction)
        assert_grad_close(
            got, exact_binary_cross_entropy(x, y, w, reduction, pw, grad_output=grad_output), what="backward"
        )


def test_k_dimensional_layouts(isa):
    x = logits((3, 4, 5, 6), np.float32, seed=70)
    y = binary_targets(x.shape, np.float32, 71)
    pw = positive_weights((6,), np.float32, 72)
    w = positive_weights((4, 1, 1), np.float32, 73)
    for name, view in {
        "channels_last_storage": np.ascontiguousarray(np.moveaxis(x, 1, -1)).transpose(0, 3, 1, 2),
        "fortran": np.asfortranarray(x),
        "negative": negative_stride_view(negative_stride_view(x).copy()),
        "swapped_axes": np.ascontiguousarray(x.swapaxes(1, 3)).swapaxes(1, 3),
    }.items():
        assert np.array_equal(view, x)
        for reduction in REDUCTIONS:
            check_binary_cross_entropy(
                view, y, weight=w, pos_weight=pw, reduction=reduction, what=f"{name} {reduction}"
            )
        check_binary_cross_entropy(
            view, np.asfortranarray(y), weight=w, reduction="none", what=f"{name} F-order target"
        )


# ---- 7. the gradient against float64 finite differences of the loss -------------------------------


def test_gradient_matches_finite_differences(isa):
    """Central differences (h = 2^-20 relative) of our float64 loss agree with our gradient to
    1e-7 relative to the gradient's terms: elementwise from 'none' (each loss depends on its own
    logit only) for every element at once, and for 'mean' / 'sum' on a few coordinates."""
    x = logits((5, 13), np.float64, seed=80)
    y = binary_targets(x.shape, np.float64, 81)
    w = positive_weights((13,), np.float64, 82)
    pw = positive_weights((5, 1), np.float64, 83)
    kwargs = dict(weight=w, pos_weight=pw)
    h = (x + 2.0**-20 * np.maximum(1.0, np.abs(x))) - x  # steps exact in float64
    _, grad = bce(x, y, reduction="none", **kwargs, return_grad=True)
    fd = (bce(x + h, y, reduction="none", **kwargs) - bce(x - h, y, reduction="none", **kwargs)) / (2 * h)
    scale = np.abs(grad).max()
    assert np.abs(grad - fd).max() <= 1e-7 * scale, f"none: max |grad - fd| {np.abs(grad - fd).max():.3e}"
    for reduction in ("mean", "sum"):
        _, grad = bce(x, y, reduction=reduction, **kwargs, return_grad=True)
        for index in ((0, 0), (2, 7), (4, 12), (3, 1)):
            up, down = x.copy(), x.copy()
            up[index] += h[index]
            down[index] -= h[index]
            fd = (
                float(bce(up, y, reduction=reduction, **kwargs)) - float(bce(down, y, reduction=reduction, **kwargs))
            ) / (2 * h[index])
            assert abs(grad[index] - fd) <= 1e-7 * np.abs(grad).max(), (
                f"{reduction} at {index}: {grad[index]!r} vs fd {fd!r}"
            )


# ---- 8. return_grad / grad_out ---------------------------------------------------------------------


@dtype_pairs
@pytest.mark.parametrize("shape", [(5, 33), (2, 7, 3), (9,), ()], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_grad_out(isa, x_dtype, y_dtype, shape, reduction):
    """grad_out= implies return_grad and returns that very object with return_grad's values;
    grad_out=input (when it has the result dtype) works in place; the input is never modified
    otherwise."""
    x = logits(shape, x_dtype, seed=90)
    y = binary_targets(shape, y_dtype, 91)
    result_dtype = result_dtype_of(x, y)
    pw = positive_weights(shape[-1:], x_dtype, 92)
    kwargs = dict(reduction=reduction, pos_weight=pw)
    saved = x.copy()
    loss, grad = bce(x, y, **kwargs, return_grad=True)
    assert same_bits(x, saved), "input modified by return_grad=True"
    out = np.full(shape, 7.0, dtype=result_dtype)
    result = bce(x, y, **kwargs, grad_out=out)
    assert isinstance(result, tuple) and len(result) == 2, "grad_out= implies return_grad"
    assert result[1] is out, "grad_out= must return the same object"
    assert same_bits(out, grad) and same_bits(result[0], loss)
    assert same_bits(x, saved), "input modified by grad_out=<other array>"
    result = bce(x, y, **kwargs, return_grad=True, grad_out=np.full(shape, 7.0, dtype=result_dtype))
    assert same_bits(result[1], grad)
    if result_dtype != x.dtype:
        return  # grad_out=input is an error there (test_binary_cross_entropy_errors)
    inplace = x.copy()
    result = bce(inplace, y, **kwargs, grad_out=inplace)
    assert result[1] is inplace
    assert same_bits(inplace, grad), "grad_out=input differs from the out-of-place gradient"
    assert same_bits(result[0], loss), "the in-place call's loss differs"
    # in place on a view of a larger buffer (the buffer outside the view untouched)
    buffer = np.full((2,) + shape, 3.0, dtype=x_dtype)
    buffer[1] = x
    view = buffer[1:].reshape(shape)  # a view, also for shape ()
    result = bce(view, y, **kwargs, grad_out=view)
    assert result[1] is view and same_bits(view, grad) and (buffer[0] == 3.0).all()
    # backward never touches its input
    g = np.ones(shape, dtype=result_dtype) if reduction == "none" else result_dtype.type(1)
    bce_backward(g, x, y, **kwargs)
    assert same_bits(x, saved), "input modified by the backward"


def test_grad_out_in_place_strided(isa):
    """grad_out=input for a transposed and a negatively strided input: the out-of-place values."""
    base = logits((6, 21), np.float32, seed=93)
    y = binary_targets((21, 6), np.float32, 94)
    w = positive_weights((6,), np.float32, 95)
    for name, make in {
        "transposed": lambda: base.copy().T,
        "negative": lambda: negative_stride_view(base.T.copy()),
    }.items():
        x = make()
        _, grad = bce(x, y, weight=w, return_grad=True)
        result = bce(x, y, weight=w, grad_out=x)
        assert result[1] is x and np.array_equal(x, grad), f"{name}: in-place gradient differs"


def test_grad_out_other_layouts(isa):
    """A non-contiguous grad_out of the right shape and dtype is filled correctly or rejected
    with an error naming grad_out (never silently left unwritten)."""
    x = logits((4, 9), np.float32, seed=96)
    y = binary_targets(x.shape, np.float32, 97)
    _, grad = bce(x, y, return_grad=True)
    for out in (np.asfortranarray(np.zeros((4, 9), np.float32)), np.zeros((4, 18), np.float32)[:, ::2]):
        try:
            result = bce(x, y, grad_out=out)
        except (ValueError, TypeError) as exc:
            assert "grad_out" in str(exc)
            continue
        assert result[1] is out and np.array_equal(out, grad)


# ---- 9. threads ------------------------------------------------------------------------------------


def test_threads_bitwise_identical(isa, restore_threads):
    """Loss and gradient do not depend on the thread count (1 vs 2): a 1,000,000-element mean,
    reduction 'none', broadcast weights, and the backward."""
    n = 1_000_000
    x = logits((n,), np.float32, seed=64)
    y = binary_targets((n,), np.float32, 65)
    grid = x.reshape(1000, 1000)
    y_grid = y.reshape(1000, 1000)
    pw = positive_weights((1000,), np.float32, 66)
    w = positive_weights((1000, 1), np.float32, 67)
    upstream = upstream_gradient((1000, 1000), np.float32, 68)
    x64 = x.astype(np.float64)
    calls = [
        lambda: bce(x, y, return_grad=True),
        lambda: bce(x64, y, reduction="sum", return_grad=True),
        lambda: bce(x, y, reduction="none", return_grad=True),
        lambda: bce(grid, y_grid, weight=w, pos_weight=pw, return_grad=True),
        lambda: bce(grid, y_grid, weight=w, pos_weight=pw, reduction="none"),
        lambda: (bce_backward(np.float32(0.5), grid, y_grid, weight=w, pos_weight=pw),),
        lambda: (bce_backward(upstream, grid, y_grid, pos_weight=pw, reduction="none"),),
    ]
    results = {}
    for threads in (1, 2):
        logitloss.set_num_threads(threads)
        assert logitloss.get_num_threads() == threads
        results[threads] = [call() for call in calls]
    for k, (one, two) in enumerate(zip(results[1], results[2])):
        for a, b in zip(one if isinstance(one, tuple) else (one,), two if isinstance(two, tuple) else (two,)):
            assert same_bits(a, b), f"call {k} differs between 1 and 2 threads"
