"""cross_entropy's options against the exact reference and torch, every ISA: every integer target dtype,
the denominators of each reduction, label smoothing and ignored classes, tiny and huge weights, empty batches and
zero classes, all-ignored rows, one class, probability targets that do not sum to one.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import logitloss
from logitloss.testing.cross_entropy import REDUCTIONS, cross_entropy as exact_cross_entropy
from logitloss.testing.inputs import TARGET_DTYPES, class_weights, logits, probability_targets
from logitloss.testing.tolerances import GRADIENT

from .helpers.assertions import same_bits
from .helpers.cross_entropy_checks import (
    KINDS,
    check_cross_entropy,
    grad_tolerance,
    kwargs_of,
    loss_tolerance,
    make_targets,
)
from .helpers.loss_checks import assert_close_to_torch, assert_no_flush_to_zero, check_return_kind
from .helpers.marks import dtype_id, dtypes
from .helpers.torch_calls import torch_cross_entropy

inf = np.inf
nan = np.nan

# torch on one thread while this module runs (see conftest.torch_single_threaded)
pytestmark = pytest.mark.usefixtures("torch_single_threaded")


# ---- targets, weights, reductions, shapes -----------------------------------------------------------


@pytest.mark.parametrize("tdtype", TARGET_DTYPES, ids=dtype_id)
def test_every_integer_target_dtype(isa, tdtype, torch):
    """logitloss accepts every integer target dtype (a documented superset of torch's int64/uint8)."""
    x = logits((6, 9), np.float32, seed=3)
    t64 = np.array([0, 8, 3, 3, 1, 7])
    t = t64.astype(tdtype)
    for reduction in REDUCTIONS:
        ours, grad = logitloss.cross_entropy(x, t, reduction=reduction, return_grad=True)
        ref, ref_grad = logitloss.cross_entropy(x, t64, reduction=reduction, return_grad=True)
        assert same_bits(ours, ref) and same_bits(grad, ref_grad), f"{dtype_id(tdtype)} {reduction}"
    if np.iinfo(tdtype).min < 0:
        t = np.array([0, -100, 3, -100, 1, 7]).astype(tdtype)
        check_cross_entropy(x, t, reduction="mean", what=f"{dtype_id(tdtype)} with -100")
        check_cross_entropy(x, t, reduction="none", what=f"{dtype_id(tdtype)} with -100")
    t = np.array([0, 5, 3, 5, 1, 7]).astype(tdtype)  # ignore_index a class present in the targets
    check_cross_entropy(x, t, ignore_index=5, reduction="mean", what=f"{dtype_id(tdtype)} ignore 5")
    check_cross_entropy(x, t, ignore_index=5, reduction="none", label_smoothing=0.1, what=f"{dtype_id(tdtype)} ls")
    # a 0-d target for a 1-D input, in this dtype
    check_cross_entropy(x[0], np.asarray(8).astype(tdtype), reduction="none", what=f"{dtype_id(tdtype)} 0-d")


@dtypes
@pytest.mark.parametrize("kind", KINDS)
def test_denominators(isa, dtype, kind):
    """mean = sum / (sum of w[target] over kept positions) for index targets, / positions for
    probability targets (weights never in that denominator), with and without smoothing."""
    x = logits((8, 5), dtype, seed=4)
    w = np.array([0.5, 2.0, 1.0, 0.25, 4.0], dtype=dtype)
    t = np.array([0, 1, 2, 3, 4, 1, -100, 2]) if kind == "index" else probability_targets(x.shape, dtype, 5)
    for smoothing in (0.0, 0.3):
        kw = dict(weight=w, label_smoothing=smoothing)
        s = float(logitloss.cross_entropy(x, t, reduction="sum", **kw))
        m, g_mean = logitloss.cross_entropy(x, t, reduction="mean", return_grad=True, **kw)
        _, g_sum = logitloss.cross_entropy(x, t, reduction="sum", return_grad=True, **kw)
        den = float(w[[0, 1, 2, 3, 4, 1, 2]].astype(np.float64).sum()) if kind == "index" else 8.0
        exact = exact_cross_entropy(x, t, reduction="mean", **kw)
        exact_s = exact_cross_entropy(x, t, reduction="sum", **kw)
        assert exact.denominator == den
        tol = loss_tolerance(exact) + loss_tolerance(exact_s) / den
        assert abs(float(m) - s / den) <= tol, f"mean {m!r} vs sum / {den} = {s / den!r}"
        tol_g = 2 * grad_tolerance(exact_s) / den
        assert np.all(np.abs(g_mean.astype(np.float64) - g_sum.astype(np.float64) / den) <= tol_g)
        check_cross_entropy(x, t, reduction="mean", **kw, what=f"{kind} ls={smoothing}")


@dtypes
def test_label_smoothing_bounds_and_ignored_class_weight(isa, dtype, torch):
    """label_smoothing 0 and 1 are accepted (1: uniform targets); with smoothing the weight of the
    ignored class still enters the smoothing term (a nan there makes the loss nan, as torch),
    without smoothing it is never read."""
    x = logits((6, 5), dtype, seed=6)
    t = np.array([0, 2, 2, 4, 1, 2])
    w = class_weights(5, dtype, 7)
    for smoothing in (0.0, 1.0, 0.5):
        for kind_t in (t, probability_targets(x.shape, dtype, 8)):
            ii = 2 if kind_t is t else -100
            for reduction in REDUCTIONS:
                kwargs = kwargs_of(w, ii, reduction, smoothing)
                loss, grad, exact = check_cross_entropy(x, kind_t, **kwargs, what=f"ls={smoothing} {reduction}")
                tl, tg = torch_cross_entropy(torch, x, kind_t, **kwargs)
                assert_close_to_torch(loss, tl, exact, what=f"ls={smoothing} {reduction}")
                assert_close_to_torch(grad, tg, exact, direction=GRADIENT, what=f"ls={smoothing} {reduction}")
    w_nan = w.copy()
    w_nan[2] = nan
    plain = logitloss.cross_entropy(x, t, weight=w_nan, ignore_index=2)
    assert np.isfinite(plain), f"weight[ignore_index] read without smoothing: {plain!r}"
    expected = logitloss.cross_entropy(x, t, weight=w, ignore_index=2)
    assert same_bits(plain, expected)
    smoothed = logitloss.cross_entropy(x, t, weight=w_nan, ignore_index=2, label_smoothing=0.1)
    assert np.isnan(smoothed), f"nan weight of the ignored class with smoothing: {smoothed!r} (torch: nan)"


# powers of two: the exact loss and gradient scale exactly; tiny enough that a kernel dropping
# "negligible" terms by an absolute threshold shows, large enough to stay normal
WEIGHT_SCALES = {
    np.dtype(np.float16): (2.0**-10, 2.0**4),
    np.dtype(np.float32): (2.0**-100, 2.0**60),
    np.dtype(np.float64): (2.0**-700, 2.0**500),
}


@dtypes
@pytest.mark.parametrize("kind", KINDS)
def test_tiny_and_huge_weights(isa, dtype, kind):
    """Weights far from 1 scale the loss and every gradient element; none may be dropped."""
    x = logits((5, 19), dtype, seed=15)
    t = make_targets(kind, x.shape, dtype, 16)
    base = class_weights(19, np.float64, 17)
    for scale in WEIGHT_SCALES[np.dtype(dtype)]:
        w = (base * scale).astype(dtype)
        for smoothing in (0.0, 0.1):
            for reduction in REDUCTIONS:
                check_cross_entropy(
                    x, t, weight=w, reduction=reduction, label_smoothing=smoothing, what=f"w * {scale} {reduction}"
                )
        _, grad, exact = check_cross_entropy(x, t, weight=w, reduction="none", what=f"w * {scale}")
        assert_no_flush_to_zero(grad, exact.grad + exact.grad_lo, dtype, f"weights * {scale}: gradient")


@dtypes
@pytest.mark.parametrize("kind", KINDS)
def test_empty_batch(isa, dtype, kind):
    x = np.zeros((0, 5), dtype=dtype)
    t = np.zeros(0, dtype=np.int64) if kind == "index" else np.zeros((0, 5), dtype=dtype)
    loss, grad = logitloss.cross_entropy(x, t, reduction="none", return_grad=True)
    assert isinstance(loss, np.ndarray) and loss.shape == (0,) and loss.dtype == dtype
    assert grad.shape == (0, 5) and grad.dtype == dtype
    m, grad = logitloss.cross_entropy(x, t, reduction="mean", return_grad=True)
    check_return_kind(m, dtype, "mean", ())
    assert np.isnan(m), f"empty mean: {m!r}"
    assert grad.shape == (0, 5)
    s = logitloss.cross_entropy(x, t, reduction="sum")
    check_return_kind(s, dtype, "sum", ())
    assert s == 0, f"empty sum: {s!r}"
    k = np.zeros((2, 5, 0), dtype=dtype)  # K-dim with no positions
    tk = np.zeros((2, 0), dtype=np.int64) if kind == "index" else np.zeros((2, 5, 0), dtype=dtype)
    assert logitloss.cross_entropy(k, tk, reduction="none").shape == (2, 0)
    assert np.isnan(logitloss.cross_entropy(k, tk, reduction="mean"))
    assert logitloss.cross_entropy_backward(dtype(1), k, tk, reduction="sum").shape == (2, 5, 0)


ZERO_CLASS_SHAPES = [(3, 0), (0, 0), (2, 0, 4), (2, 0, 9), (0,)]


def same_values(x, y):
    """Same dtype, shape and values, the sign of zero included (any nan matches any nan)."""
    x, y = np.asarray(x), np.asarray(y)
    signs = np.where(np.isnan(x), False, np.signbit(x)), np.where(np.isnan(y), False, np.signbit(y))
    return (x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y, equal_nan=True)
            and np.array_equal(*signs))


@dtypes
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", ZERO_CLASS_SHAPES, ids=str)
def test_zero_classes_probability_targets_match_torch(isa, dtype, shape, reduction, smoothing, torch):
    """No classes: every position's loss is an empty sum, negated (torch: -0.0), the mean is nan
    (numel / C = 0 / 0), the gradient empty; these were nan (the statistics of an empty row)."""
    x = np.zeros(shape, dtype=dtype)
    for weight in (None, np.ones(0, dtype=dtype)):
        kwargs = dict(reduction=reduction, label_smoothing=smoothing)
        xt = torch.from_numpy(x.astype(np.float32)).requires_grad_(True)
        expected = torch.nn.functional.cross_entropy(
            xt, torch.from_numpy(x.astype(np.float32)), weight=None if weight is None else torch.ones(0), **kwargs)
        expected.backward(torch.ones_like(expected))
        expected = expected.detach().numpy()
        loss, grad = logitloss.cross_entropy(x, x.copy(), weight=weight, return_grad=True, **kwargs)
        loss = np.asarray(loss)
        what = f"{shape} {reduction} smoothing={smoothing} weight={weight is not None}"
        assert loss.shape == expected.shape and loss.dtype == dtype, (what, loss.shape, loss.dtype)
        assert same_values(loss, expected.astype(dtype)), (what, loss, expected)  # -0.0 / nan as torch
        assert grad.shape == shape and grad.dtype == dtype, what
        upstream = np.ones(loss.shape, dtype=dtype) if reduction == "none" else dtype(1)
        assert logitloss.cross_entropy_backward(upstream, x, x.copy(), weight=weight, **kwargs).shape == shape


@dtypes
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_zero_classes_index_targets_match_torch(isa, dtype, reduction, torch):
    """No classes, every target ignored (any other index is out of range): 0 losses, nan mean; with
    label smoothing torch's e / C is inf and 0 * inf makes every loss nan."""
    for shape, smoothing in itertools.product([(3, 0), (0, 0)], [0.0, 0.2]):
        x = np.zeros(shape, dtype=dtype)
        t = np.full(shape[:1], -100, dtype=np.int64)
        kwargs = dict(reduction=reduction, label_smoothing=smoothing)
        expected = torch.nn.functional.cross_entropy(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(t), **kwargs)
        loss, grad = logitloss.cross_entropy(x, t, return_grad=True, **kwargs)
        what = f"{shape} {reduction} smoothing={smoothing}"
        assert same_values(np.asarray(loss), expected.numpy().astype(dtype)), (what, loss, expected)
        assert grad.shape == shape, what
        if shape[0]:
            with pytest.raises(IndexError, match="out of bounds"):
                logitloss.cross_entropy(x, np.zeros(shape[:1], dtype=np.int64), **kwargs)


@dtypes
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_zero_loss_sign_matches_torch(isa, dtype, reduction, torch):
    """torch negates a sum of log-probabilities: an exactly zero loss is -0.0 per position and for
    probability targets in every reduction; index-target sums and means start from +0.0."""
    x = np.zeros((2, 1, 9), dtype=dtype)  # one class: every log-probability is exactly 0
    for target in (np.ones_like(x), np.zeros_like(x), np.zeros((2, 9), dtype=np.int64)):
        expected = torch.nn.functional.cross_entropy(
            torch.from_numpy(x.astype(np.float32)), torch.from_numpy(target if target.dtype.kind == "i" else target.astype(np.float32)),
            reduction=reduction)
        loss = np.asarray(logitloss.cross_entropy(x, target, reduction=reduction))
        assert same_values(loss, expected.numpy().astype(dtype)), (target.dtype, loss, expected)
    x = np.zeros((3, 4), dtype=dtype)  # probability targets all zero: 0 loss
    expected = torch.nn.functional.cross_entropy(torch.zeros(3, 4), torch.zeros(3, 4), reduction=reduction)
    assert same_values(np.asarray(logitloss.cross_entropy(x, np.zeros_like(x), reduction=reduction)),
                     expected.numpy().astype(dtype))


@dtypes
def test_all_ignored(isa, dtype):
    """mean over nothing: nan loss, all-zero gradient; sum 0; none zeros (also with smoothing)."""
    x = logits((4, 6, 3), dtype, seed=9)
    for ii, t in ((-100, np.full((4, 3), -100)), (3, np.full((4, 3), 3, dtype=np.uint8))):
        for smoothing in (0.0, 0.2):
            w = class_weights(6, dtype, 10)
            m, g = logitloss.cross_entropy(x, t, weight=w, ignore_index=ii, label_smoothing=smoothing, return_grad=True)
            assert np.isnan(m), f"all ignored mean: {m!r}"
            assert (g == 0).all(), f"all ignored gradient {g}"
            kw = dict(ignore_index=ii, label_smoothing=smoothing, return_grad=True)
            s, g = logitloss.cross_entropy(x, t, reduction="sum", **kw)
            assert s == 0 and (g == 0).all()
            n, g = logitloss.cross_entropy(x, t, reduction="none", **kw)
            assert n.shape == (4, 3) and (n == 0).all() and (g == 0).all()
            back = logitloss.cross_entropy_backward(dtype(1), x, t, ignore_index=ii, label_smoothing=smoothing)
            assert (back == 0).all()


@dtypes
def test_single_class(isa, dtype):
    """C = 1: p = 1, the loss is 0 and the gradient 0 (index targets, with smoothing too)."""
    x = logits((4, 1), dtype, seed=12)
    t = np.zeros(4, dtype=np.int64)
    for smoothing in (0.0, 0.5):
        for reduction in REDUCTIONS:
            loss, grad, _ = check_cross_entropy(x, t, reduction=reduction, label_smoothing=smoothing)
            assert (np.asarray(loss) == 0).all() and (grad == 0).all(), f"C=1 {reduction}: {loss!r} {grad}"


@dtypes
def test_probability_targets_not_summing_to_one(isa, dtype, torch):
    """Unnormalized probability targets: the gradient is p * sum(w y) - w y, not p - y."""
    x = logits((5, 8), dtype, seed=13)
    y = np.random.default_rng(14).uniform(0.0, 0.6, (5, 8)).astype(dtype)
    w = class_weights(8, dtype, 15)
    for weight in (None, w):
        for reduction in REDUCTIONS:
            kwargs = kwargs_of(weight, -100, reduction, 0.0)
            loss, grad, exact = check_cross_entropy(x, y, **kwargs, what=f"unnormalized {reduction}")
            tl, tg = torch_cross_entropy(torch, x, y, **kwargs)
            assert_close_to_torch(loss, tl, exact, what="unnormalized")
            assert_close_to_torch(grad, tg, exact, direction=GRADIENT, what="unnormalized")
