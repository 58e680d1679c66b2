"""cross_entropy / cross_entropy_backward: against the exact reference and torch autograd, every ISA.

Every numeric check uses ``reference_cross_entropy``: the loss within 8 eps of its condition scale
(plain 8 eps relative where the row is well conditioned; see that module), the gradient within
8 eps normwise per row; torch parity allows torch's own (larger) error on top.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import reference_cross_entropy as rce
from checks import assert_unchanged, same_bits, snapshot
from conftest import SUPPORTED_ISAS
from inputs import dtype_id, dtypes
from inputs import (
    FLOAT_DTYPES,
    SPIKE,
    VECTOR_WIDTH_SIZES,
    big_endian_copy,
    extreme_finite_rows,
    logits,
    masked_block_rows,
    misaligned_copy,
    negative_stride_view,
    spikes_across_chunks,
    tricky_rows,
)
from reference_cross_entropy import (
    LOSS_UNITS,
    REDUCTIONS,
    assert_close_to_torch,
    assert_grad_close,
    assert_loss_close,
    assert_relative,
    check_cross_entropy,
    check_return_kind,
    class_weights,
    grad_tolerance,
    index_targets,
    loss_tolerance,
    probability_targets,
    target_dtype_for,
    target_shape,
    torch_cross_entropy,
    upstream,
)
from tolerances import EPS, GRADIENT

import logitloss

inf = np.inf
nan = np.nan


@pytest.fixture(scope="module", autouse=True)
def torch_single_threaded():
    """torch on one thread while this module runs: its tiny-tensor calls are ~10x slower when its
    pool competes with ours for the cores (results do not depend on it)."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

KINDS = ("index", "probability")
kinds = pytest.mark.parametrize("kind", KINDS)


def kwargs_of(weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    return dict(weight=weight, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing)


def make_targets(kind, shape, dtype, seed, ignore_index=-100):
    if kind == "probability":
        return probability_targets(shape, dtype, seed)
    C = shape[0] if len(shape) == 1 else shape[1]
    tdtype = target_dtype_for(seed, C, ignore_index)
    if len(shape) == 1:  # a 0-d target
        return np.asarray(np.random.default_rng(seed).integers(0, C)).astype(tdtype)
    return index_targets(shape, seed, ignore_index=ignore_index, dtype=tdtype)


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
            exact = rce.cross_entropy(x, target, **kwargs, grad_output=g)
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
        exact = rce.cross_entropy(x, t, **kwargs, grad_output=2.5)
        for g in (2.5, dtype(2.5), np.array(2.5, dtype=dtype), np.array(2.5)):
            got = logitloss.cross_entropy_backward(g, x, t, **kwargs)
            assert_grad_close(got, exact, what=f"{reduction} upstream {type(g).__name__}")
        _, grad = logitloss.cross_entropy(x, t, **kwargs, return_grad=True)
        unit = logitloss.cross_entropy_backward(1.0, x, t, **kwargs)
        exact1 = rce.cross_entropy(x, t, **kwargs)
        assert_grad_close(unit, exact1, what=f"{reduction} upstream 1")
        tol = grad_tolerance(exact1)
        assert np.all(np.abs(unit.astype(np.float64) - grad.astype(np.float64)) <= 2 * tol)
        zero = logitloss.cross_entropy_backward(0.0, x, t, **kwargs)
        assert (zero == 0).all()
    g = np.ones(5, dtype=dtype)
    exact = rce.cross_entropy(x, t, **kwargs_of(w, -100, "none", 0.1), grad_output=g)
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
            exact = rce.cross_entropy(x, t, **kwargs, grad_output=g)
            got = logitloss.cross_entropy_backward(g, x, t, **kwargs)
            assert_grad_close(got, exact, what=f"upstream {scale} {reduction}")
            rce.assert_no_flush_to_zero(got, exact.grad + exact.grad_lo, dtype, f"upstream {scale} {reduction}")
    g = np.array([scales[0], 1.0, scales[-1], -scales[0]]).astype(dtype)
    kwargs = kwargs_of(w, -100, "none", 0.1)
    exact = rce.cross_entropy(x, t, **kwargs, grad_output=g)
    got = logitloss.cross_entropy_backward(g, x, t, **kwargs)
    assert_grad_close(got, exact, what="per-row upstream magnitudes")
    rce.assert_no_flush_to_zero(got, exact.grad + exact.grad_lo, dtype, "per-row upstream magnitudes")


# ---- 3. adversarial rows against the exact reference ---------------------------------------------

# margins k of a confident row [k, 0, ...]: the loss log1p((C-1) exp(-k)) from ~log C down through the
# subnormal range to 0 (float16 is computed in float32, its losses go subnormal from k ~ 10)
CONFIDENT_MARGINS = {
    np.dtype(np.float16): np.arange(0.0, 20.0, 0.25),
    np.dtype(np.float32): np.arange(0.0, 110.0, 0.5),
    np.dtype(np.float64): np.concatenate([np.arange(0.0, 60.0, 0.5), np.arange(700.0, 760.0, 1.0)]),
}


@dtypes
def test_two_class_confident_rows(isa, dtype):
    """[k, 0] with target 0: loss log1p(exp(-k)) (tiny, then subnormal, then 0) and target 1: loss
    k + log1p(exp(-k)).  The differences k - 0 are exact, so the loss must be within 8 eps
    *relative* (one subnormal ulp below the normal range, never 0 where it rounds to nonzero)."""
    k = CONFIDENT_MARGINS[np.dtype(dtype)]
    x = np.stack([k, np.zeros_like(k)], axis=1).astype(dtype)
    for target in (np.zeros(len(k), np.int64), np.ones(len(k), np.int64)):
        loss, grad, exact = check_cross_entropy(x, target, reduction="none", what=f"[k, 0] target {target[0]}")
        assert_relative(loss, exact.loss + exact.loss_lo, dtype, LOSS_UNITS, f"[k, 0] target {target[0]}")
        for reduction in ("mean", "sum"):
            check_cross_entropy(x, target, reduction=reduction, what=f"[k, 0] {reduction}")


def test_forty_zero_is_not_zero(isa):
    """The spec's example: logits [40, 0], target 0, float32: 4.248e-18 (torch returns 0)."""
    x = np.array([[40.0, 0.0]], dtype=np.float32)
    loss, grad = logitloss.cross_entropy(x, np.array([0]), reduction="none", return_grad=True)
    expected = math.log1p(math.exp(-40.0))  # 4.248354255291589e-18
    assert abs(float(loss[0]) - expected) <= 8 * EPS[np.dtype(np.float32)] * expected, loss
    p1 = math.exp(-40.0) / (1.0 + math.exp(-40.0))
    assert abs(float(grad[0, 1]) - p1) <= 8 * EPS[np.dtype(np.float32)] * p1, grad
    assert abs(float(grad[0, 0]) + p1) <= 8 * EPS[np.dtype(np.float32)] * p1, f"target gradient {grad[0, 0]!r}"
    loss = logitloss.cross_entropy(x.astype(np.float64)[0], np.array(0), reduction="sum")
    assert abs(float(loss) - expected) <= 8 * EPS[np.dtype(np.float64)] * expected, f"float64: {loss!r}"


def confident_rows(margins, C, dtype):
    rows = np.zeros((len(margins), C))
    rows[:, 0] = margins
    return rows.astype(dtype), np.zeros(len(margins), dtype=np.int32)


def normal_term_margins(dtype):
    """Margins k for which exp(-k) is a normal number of the compute dtype."""
    limit = -math.log(rce.SMALLEST_NORMAL[rce.COMPUTE_DTYPE[np.dtype(dtype)]])
    margins = CONFIDENT_MARGINS[np.dtype(dtype)]
    return margins[margins < limit]


@dtypes
@pytest.mark.parametrize("C", [3, 33, 1000])
def test_confident_wide_rows(isa, dtype, C):
    """One dominant logit k above C - 1 others (integers: exact differences, every exp(-k) a normal
    number): tiny losses within 8 eps relative, and the target gradient 1 - p_y computed without
    cancellation."""
    x, target = confident_rows(normal_term_margins(dtype)[::3], C, dtype)
    loss, _, exact = check_cross_entropy(x, target, reduction="none", what=f"confident C={C}")
    assert_relative(loss, exact.loss + exact.loss_lo, dtype, LOSS_UNITS, f"confident C={C}")
    w = class_weights(C, dtype, C)
    check_cross_entropy(x, target, weight=w, reduction="none", label_smoothing=0.05, what="confident smoothed")
    check_cross_entropy(x, target, weight=w, reduction="mean", what="confident weighted mean")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
@pytest.mark.parametrize("C", [3, 33])
def test_confident_rows_with_subnormal_terms(isa, dtype, C):
    """C - 1 terms exp(-k) below the normal range of the compute dtype: the spec's subnormal rule
    (within one subnormal ulp where the loss is subnormal, never 0 where it rounds to nonzero)
    holds for the *sum* of the terms, so they cannot each be rounded (or flushed) on their own.
    E.g. float32 [104, 0, 0]: each exp(-104) = 6.8e-46 rounds to 0, the loss 1.36e-45 to one
    subnormal ulp."""
    margins = CONFIDENT_MARGINS[np.dtype(dtype)]
    x, target = confident_rows(margins[margins >= normal_term_margins(dtype).max()], C, dtype)
    check_cross_entropy(x, target, reduction="none", what=f"confident C={C}, subnormal terms")


def extreme_targets(x):
    """Per row: the target at the row maximum, and one at a finite entry away from it."""
    at_max, away = [], []
    for row in x.astype(np.float64):
        finite = np.nonzero(np.isfinite(row))[0]
        top = int(np.argmax(np.where(np.isfinite(row), row, -inf))) if finite.size else 0
        at_max.append(top)
        others = [i for i in finite.tolist() if i != top]
        away.append(others[len(others) // 2] if others else top)
    return np.array(at_max), np.array(away)


def spread_fits(x, margin):
    """Rows whose every L - z_c (at most max - min + log n) stays below the dtype's max / margin."""
    with np.errstate(invalid="ignore", over="ignore"):
        x64 = x.astype(np.float64)
        finite = np.where(np.isfinite(x64), x64, np.nan)
        spread = np.nanmax(finite, axis=1, initial=-np.inf) - np.nanmin(finite, axis=1, initial=np.inf)
    return spread + np.log(x.shape[1]) < float(np.finfo(x.dtype).max) / margin


@dtypes
@pytest.mark.parametrize("n", [1, 2, 7, 16, 33, 129])
def test_extreme_finite_logits(isa, dtype, n):
    """+-1e4, +-huge (3e38 in float32), all at the dtype's max, -inf masks: no nan / inf where the
    exact loss is finite; a loss beyond the dtype's range is inf (its correct rounding)."""
    x = extreme_finite_rows(dtype, n)
    alive = ~np.isneginf(x).all(axis=1)  # a random mask may cover a whole short row: nan there
    w_up = (1.0 + np.random.default_rng(n).random(n)).astype(dtype)  # >= 1: no finite weighted loss
    # of an overflowing row; weights < 1 and smoothing on such rows: test_no_intermediate_overflow
    fits = spread_fits(x, 4.0 * n)
    for name, target in zip(("at max", "away"), extreme_targets(x)):
        for reduction in REDUCTIONS:
            loss, grad, exact = check_cross_entropy(x, target, reduction=reduction, what=f"extreme {name} {reduction}")
            if reduction == "none" or alive.all():
                assert np.isfinite(grad[alive]).all(), f"extreme {name} {reduction}: non-finite gradient {grad}"
        check_cross_entropy(x, target, weight=w_up, reduction="none", what=f"extreme {name} weighted")
        check_cross_entropy(x, target, weight=w_up, reduction="mean", what=f"extreme {name} weighted mean")
        w = class_weights(n, dtype, n)
        check_cross_entropy(
            x[fits], target[fits], weight=w, reduction="none", label_smoothing=0.2, what=f"extreme {name} smoothed"
        )


@pytest.mark.parametrize("dtype", [np.float16, np.float32], ids=dtype_id)
def test_no_intermediate_overflow(isa, dtype):
    """Rows whose L - z_c overflow the dtype while the (weighted, smoothed) loss does not: the spec
    promises no inf where the exact loss is finite, so (max - z_y) * w_y must not be formed as
    inf * w_y, nor sum_c w_c (L - z_c) before the eps / C factor."""
    huge = float(np.finfo(dtype).max) * 0.75
    x = np.array([[huge, -huge, 0.0, 1.0], [-huge, 0.5 * huge, huge, huge]]).astype(dtype)
    target = np.array([1, 0])
    w = np.array([0.25, 0.125, 0.5, 0.5], dtype=dtype)
    exact = rce.cross_entropy(x, target, weight=w, reduction="none")
    assert np.isfinite(exact.loss).all()  # 0.125 * 1.5 max, 0.25 * 1.5 max
    check_cross_entropy(x, target, weight=w, reduction="none", what="weighted overflowing rows")
    # 8 classes: the short-row kernel; 40 and 3000: the chunked one, whose target terms are taken in
    # its exp pass unless max - z_c could overflow (then in a pass of their own, redone in double)
    for width in (8, 40, 3000):
        x2 = np.zeros((1, width), dtype=dtype)
        x2[0, :3] = [huge, 0.0, -huge * 0.5]
        for w2 in (None, np.linspace(0.25, 1.0, width).astype(dtype)):
            exact = rce.cross_entropy(x2, np.array([0]), weight=w2, reduction="none", label_smoothing=0.01)
            assert np.isfinite(exact.loss).all()  # 0.01 / width * (sum of w_c (huge - z_c)) < max
            check_cross_entropy(x2, np.array([0]), weight=w2, reduction="none", label_smoothing=0.01,
                                what=f"smoothed overflowing row of {width} (weights: {w2 is not None})")
        # A small max, so max - z_c stays finite, but large weights: the terms w_c e / C (max - z_c)
        # overflow the dtype (so does the row's loss) although the mean (divided by w_y) does not.
        # torch returns inf there (the reference accepts it); logitloss sums the row in double.
        x3 = np.zeros((1, width), dtype=dtype)
        x3[0, 1::16] = -huge
        w3 = np.full(width, 1e3 if dtype == np.float32 else 30.0, dtype=dtype)
        for reduction in ("none", "mean"):
            check_cross_entropy(x3, np.array([0]), weight=w3, reduction=reduction, label_smoothing=0.5,
                                what=f"heavily weighted smoothed row of {width}, {reduction}")
        exact = rce.cross_entropy(x3, np.array([0]), weight=w3, reduction="mean", label_smoothing=0.5)
        mean = logitloss.cross_entropy(x3, np.array([0]), weight=w3, label_smoothing=0.5)
        assert np.isfinite(mean) and abs(float(mean) / float(exact.loss) - 1) < 8 * np.finfo(dtype).eps, (width, mean, exact.loss)


@pytest.mark.parametrize("dtype", [np.float16, np.float32], ids=dtype_id)
def test_overflowing_reductions_are_silent(isa, dtype):
    """A sum / mean beyond the dtype's range is inf -- its correct rounding -- without a
    RuntimeWarning (users run with warnings as errors, as this suite does); a mean back in range
    is finite."""
    top = float(np.finfo(dtype).max)
    one_row = np.array([[0.75 * top, -0.75 * top]]).astype(dtype)  # loss 1.5 max: inf
    two_rows = np.array([[0.0, 0.6 * top], [0.6 * top, 0.0]]).astype(dtype)  # 0.6 max each
    target = np.array([0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert logitloss.cross_entropy(one_row, target[1:], reduction="none")[0] == inf
        for reduction in ("sum", "mean"):
            assert logitloss.cross_entropy(one_row, target[1:], reduction=reduction) == inf, reduction
        assert logitloss.cross_entropy(two_rows, target, reduction="sum") == inf
        check_cross_entropy(two_rows, target, reduction="mean", what="mean of two 0.6 max rows")
        check_cross_entropy(two_rows, target, reduction="none", what="two 0.6 max rows")


@dtypes
def test_large_offsets(isa, dtype):
    """Rows near +-1e4 (+-1e3 in float16): L - z_y must not be computed as (max + log sum) - z_y.
    Half-integer offsets make every difference exact: plain 8 eps relative."""
    big = 1e3 if dtype == np.float16 else 1e4
    steps = np.array([0.0, -0.5, -1.0, -2.0, -3.5, -1.5, -8.0])
    x = np.stack([big + steps, -big + steps, big + steps[::-1]]).astype(dtype)
    for target in (np.array([0, 3, 6]), np.array([1, 0, 2])):
        loss, _, exact = check_cross_entropy(x, target, reduction="none", what="offset rows")
        assert_relative(loss, exact.loss + exact.loss_lo, dtype, LOSS_UNITS, "offset rows")
    rng_rows = (big + 3.0 * np.random.default_rng(5).standard_normal((4, 129))).astype(dtype)
    check_cross_entropy(rng_rows, np.array([0, 5, 64, 128]), reduction="none", what="random offset rows")
    check_cross_entropy(rng_rows, np.array([0, 5, 64, 128]), reduction="none", label_smoothing=0.3, what="smoothed")


@dtypes
def test_special_values(isa, dtype, torch):
    """torch's conventions: a -inf target logit gives loss +inf (finite gradient); an all -inf row,
    a +inf or a nan logit give nan (and a nan gradient row); masks elsewhere are fine."""
    n = 9
    x = logits((7, n), dtype, seed=11)
    x[0, [1, 4, 8]] = -inf  # mask, target 0 finite: finite loss
    x[1, 2] = -inf  # target 2 masked: +inf
    x[2, :] = -inf  # all masked: nan
    x[3, 5] = inf  # nan
    x[4, 6] = nan  # nan
    x[5, :] = -inf
    x[5, 3] = 1.0  # a single finite entry, target on it: loss 0, gradient 0
    target = np.array([0, 2, 0, 0, 6, 3, 4])
    x[6, 4] = -inf  # target masked, the rest of the row finite: +inf
    expected_loss = [False, inf, nan, nan, nan, False, inf]
    for smoothing in (0.0, 0.25):
        kwargs = kwargs_of(None, -100, "none", smoothing)
        loss, grad = logitloss.cross_entropy(x, target, **kwargs, return_grad=True)
        for r, e in enumerate(expected_loss):
            if e is False:
                if smoothing and np.isneginf(x[r]).any():
                    assert loss[r] == inf, f"row {r} (smoothing over a masked class): {loss[r]!r}"
                else:
                    assert np.isfinite(loss[r]), f"row {r}: {loss[r]!r}"
            elif np.isnan(e):
                assert np.isnan(loss[r]), f"row {r}: {loss[r]!r}, expected nan"
                assert np.isnan(grad[r]).all(), f"row {r}: gradient {grad[r]}, expected nan"
            else:
                assert loss[r] == inf, f"row {r}: {loss[r]!r}, expected inf"
        for r in (0, 1, 5, 6):
            assert np.isfinite(grad[r]).all(), f"row {r}: gradient {grad[r]} (smoothing {smoothing})"
        if not smoothing:
            assert loss[5] == 0 and (grad[5] == 0).all(), f"single finite entry: {loss[5]!r} {grad[5]}"
        theirs_loss, theirs_grad = torch_cross_entropy(torch, x, target, **kwargs)
        rce.check_special_values(loss.astype(np.float64), theirs_loss.astype(np.float64), "special values vs torch")
        rce.check_special_values(grad.astype(np.float64), theirs_grad.astype(np.float64), "special gradient vs torch")
        exact = rce.cross_entropy(x, target, **kwargs)
        assert_loss_close(loss, exact, what=f"special rows ls={smoothing}")
        assert_grad_close(grad, exact, what=f"special rows ls={smoothing}")
        for reduction in ("mean", "sum"):
            kwargs = kwargs_of(None, -100, reduction, smoothing)
            total, g = logitloss.cross_entropy(x, target, **kwargs, return_grad=True)
            assert np.isnan(total), f"{reduction}: {total!r} (nan rows present)"
            ok_rows = [0, 1, 5, 6]
            assert np.isfinite(g[ok_rows]).all(), f"{reduction}: gradient of the finite rows {g[ok_rows]}"
        # without the nan rows: inf (the -inf targets)
        keep = [0, 1, 5, 6]
        total = logitloss.cross_entropy(x[keep], target[keep], **kwargs_of(None, -100, "mean", smoothing))
        assert total == inf, f"mean over rows with a masked target: {total!r}"


@dtypes
@pytest.mark.parametrize("n", VECTOR_WIDTH_SIZES)
def test_sizes_around_vector_widths(isa, dtype, n):
    """tricky_rows (maximum in the tail, far-below entries, -inf masks, ties) at every width."""
    x = tricky_rows(n, dtype, seed=n)
    finite_first = int(np.nonzero(np.isfinite(x[3]))[0][0])
    target = np.array([n // 2, n - 1, 0, finite_first, n // 3], dtype=np.int16)
    w = class_weights(n, dtype, n + 1)
    check_cross_entropy(x, target, reduction="none", what=f"n={n}")
    check_cross_entropy(x, target, weight=w, reduction="none", what=f"n={n} weighted")
    check_cross_entropy(x, target, weight=w, reduction="mean", label_smoothing=0.1, what=f"n={n} smoothed mean")
    finite_rows = x[[0, 1, 2, 4]]
    y = probability_targets(finite_rows.shape, dtype, seed=n + 2)
    check_cross_entropy(finite_rows, y, reduction="none", what=f"n={n} probabilities")
    check_cross_entropy(finite_rows, y, weight=w, reduction="sum", label_smoothing=0.1, what=f"n={n} prob smoothed")


# float64 at 128256 costs seconds of mpmath for no new code path: 32000 covers it
VOCAB_CASES = [(np.float16, 32000), (np.float32, 32000), (np.float32, 128256), (np.float64, 32000)]


@pytest.mark.parametrize("dtype,n", VOCAB_CASES, ids=lambda v: dtype_id(v) if isinstance(v, type) else str(v))
def test_vocabulary_widths(isa, dtype, n):
    x = logits((2, n), dtype, seed=n, spread=3.0)
    target = np.array([7, n - 3], dtype=np.int32)
    w = class_weights(n, dtype, n)
    check_cross_entropy(x, target, reduction="none", what=f"vocab {n}")
    check_cross_entropy(x, target, weight=w, reduction="mean", label_smoothing=0.1, what=f"vocab {n} smoothed")


@dtypes
@pytest.mark.parametrize("n", [2048 + 40, 3 * 2048 + 7])
def test_max_anywhere_across_chunks(isa, dtype, n):
    """A row's max on either side of each chunk boundary (2048 classes), where the next chunk's
    max is taken inside the exp pass of the one before (test_logsumexp's rows): the target at the
    spike (a confident row), and elsewhere, plain and smoothed with weights."""
    x, positions = spikes_across_chunks(n, dtype, SPIKE[dtype])
    at_spike = np.array(positions)
    elsewhere = (at_spike + 1000) % n
    w = class_weights(n, dtype, n)
    for target in (at_spike, elsewhere):
        check_cross_entropy(x, target, reduction="none", what=f"spiked rows n={n}")
        check_cross_entropy(x, target, reduction="none", label_smoothing=0.1, what=f"spiked rows n={n} smoothed")
        _, grad, _ = check_cross_entropy(x, target, weight=w, reduction="none", label_smoothing=0.1,
                                         what=f"spiked rows n={n} smoothed, weighted")
        inplace = x.copy()
        logitloss.cross_entropy(inplace, target, weight=w, reduction="none", label_smoothing=0.1, grad_out=inplace)
        assert same_bits(inplace, grad), f"grad_out=input, n={n}"


@pytest.mark.parametrize("dtype", [np.float16, np.float32], ids=dtype_id)
def test_odd_k_dimensional_shape(isa, dtype):
    """(3, 257, 5, 7): the class axis has stride 35 in a C-ordered input."""
    shape = (3, 257, 5, 7)
    x = logits(shape, dtype, seed=257, spread=3.0)
    target = index_targets(shape, 258, ignore_index=4, dtype=np.int16)
    w = class_weights(257, dtype, 259)
    for reduction in REDUCTIONS:
        check_cross_entropy(x, target, weight=w, ignore_index=4, reduction=reduction, label_smoothing=0.1)
    y = probability_targets(shape, dtype, 260)
    check_cross_entropy(x, y, reduction="mean", what="K-dim probabilities")


@dtypes
def test_long_rows_with_masked_blocks(isa, dtype):
    x = masked_block_rows(20000, dtype, seed=20000)
    targets = []
    for row in x:
        finite = np.nonzero(np.isfinite(row))[0]
        targets.append(finite[len(finite) // 2])
    check_cross_entropy(x, np.array(targets), reduction="none", what="masked blocks")


# ---- targets, weights, reductions, shapes -----------------------------------------------------------


@pytest.mark.parametrize("tdtype", rce.TARGET_DTYPES, ids=dtype_id)
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
        exact = rce.cross_entropy(x, t, reduction="mean", **kw)
        exact_s = rce.cross_entropy(x, t, reduction="sum", **kw)
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
        rce.assert_no_flush_to_zero(grad, exact.grad + exact.grad_lo, dtype, f"weights * {scale}: gradient")


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


# ---- layouts ----------------------------------------------------------------------------------------


def layouts(base):
    """Named views of a 2-D (N, C) ``base`` with the same values in every layout."""
    wide = np.repeat(base, 2, axis=1)
    return {
        "contiguous": base,
        "fortran": np.asfortranarray(base),
        "column_step2": wide[:, ::2],
        "negative_strides": negative_stride_view(negative_stride_view(base).copy()),
        "row_step3": np.repeat(base, 3, axis=0)[::3],
        "offset_by_one": np.ascontiguousarray(np.concatenate([base[:, :1], base], axis=1))[:, 1:],
        "misaligned": misaligned_copy(base),
        "big_endian": big_endian_copy(base),
        "broadcast_rows": np.broadcast_to(base[:1], base.shape),
        "columns_reversed": base[:, ::-1].copy()[:, ::-1],
    }


@pytest.mark.parametrize("view", list(layouts(np.zeros((2, 2)))))
@pytest.mark.parametrize("dtype", [np.float16, np.float32], ids=dtype_id)
def test_input_layouts(isa, dtype, view):
    base = logits((6, 67), dtype, seed=67)
    x = layouts(base)[view]
    if view == "broadcast_rows":
        base = np.ascontiguousarray(x)
    t = np.array([0, 66, 5, 5, 31, 2])
    t_views = {
        "plain": t,
        "strided": np.repeat(t, 2)[::2],
        "reversed": t[::-1].copy()[::-1],
        "big_endian_int32": t.astype(">i4"),
        "misaligned_int32": misaligned_copy(t.astype(np.int32)),
    }
    w = class_weights(67, dtype, 68)
    w_strided = np.repeat(w, 3)[::3]
    y = probability_targets(base.shape, dtype, 69)
    before = snapshot(x, t, w, y)
    for name, tv in t_views.items():
        loss, grad, _ = check_cross_entropy(
            x, tv, weight=w_strided, reduction="none", label_smoothing=0.1, what=f"{view} {name}"
        )
        assert grad.dtype == np.dtype(dtype) and grad.dtype.isnative and loss.dtype.isnative
    check_cross_entropy(x, layouts(y)[view] if view != "broadcast_rows" else y, reduction="mean", what=f"{view} prob")
    assert_unchanged(before, (x, t, w, y), view)


def test_k_dimensional_layouts(isa):
    x = logits((3, 11, 4, 5), np.float32, seed=70)
    t = index_targets(x.shape, 71, dtype=np.int64)
    for name, view in {
        "channels_last_storage": np.ascontiguousarray(np.moveaxis(x, 1, -1)).transpose(0, 3, 1, 2),
        "fortran": np.asfortranarray(x),
        "negative": negative_stride_view(negative_stride_view(x).copy()),
    }.items():
        assert np.array_equal(view, x)
        for reduction in REDUCTIONS:
            check_cross_entropy(view, t, reduction=reduction, label_smoothing=0.1, what=f"{name} {reduction}")
        check_cross_entropy(view, t.T.copy().T, reduction="none", what=f"{name} F-order target")


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


# ---- 6. return_grad / grad_out -----------------------------------------------------------------------


@dtypes
@pytest.mark.parametrize("shape", [(5, 33), (2, 7, 3), (9,)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_grad_out(isa, dtype, shape, reduction):
    """grad_out= implies return_grad and returns that very object; grad_out=input works in place
    with the out-of-place values; the input is never modified otherwise."""
    x = logits(shape, dtype, seed=90)
    C = shape[0] if len(shape) == 1 else shape[1]
    t = make_targets("index", shape, dtype, 91)
    w = class_weights(C, dtype, 92)
    kwargs = kwargs_of(w, -100, reduction, 0.1)
    saved = x.copy()
    loss = logitloss.cross_entropy(x, t, **kwargs)
    assert not isinstance(loss, tuple), "return_grad defaults to False"
    loss_rg, grad = logitloss.cross_entropy(x, t, **kwargs, return_grad=True)
    assert same_bits(x, saved), "input modified by return_grad=True"
    out = np.full(shape, 7.0, dtype=dtype)
    result = logitloss.cross_entropy(x, t, **kwargs, grad_out=out)
    assert isinstance(result, tuple) and len(result) == 2, "grad_out= implies return_grad"
    assert result[1] is out, "grad_out= must return the same object"
    assert same_bits(out, grad) and same_bits(result[0], loss_rg)
    assert same_bits(x, saved), "input modified by grad_out=<other array>"
    result = logitloss.cross_entropy(x, t, **kwargs, return_grad=True, grad_out=out)
    assert result[1] is out and same_bits(out, grad)
    # in place
    inplace = x.copy()
    result = logitloss.cross_entropy(inplace, t, **kwargs, grad_out=inplace)
    assert result[1] is inplace
    assert same_bits(inplace, grad), "grad_out=input differs from the out-of-place gradient"
    assert same_bits(result[0], loss_rg), "the in-place call's loss differs"
    # in place on a view of a larger buffer (the buffer outside the view untouched)
    buffer = np.full((2,) + shape, 3.0, dtype=dtype)
    buffer[1] = x
    view = buffer[1]
    result = logitloss.cross_entropy(view, t, **kwargs, grad_out=view)
    assert result[1] is view and same_bits(view, grad) and (buffer[0] == 3.0).all()
    # backward never touches its input either
    g = np.ones(target_shape(shape), dtype=dtype) if reduction == "none" else dtype(1)
    logitloss.cross_entropy_backward(g, x, t, **kwargs)
    assert same_bits(x, saved), "input modified by cross_entropy_backward"


def test_grad_out_other_layouts(isa):
    """A non-contiguous grad_out of the right shape and dtype is filled correctly or rejected
    with an error naming grad_out (never silently left unwritten)."""
    x = logits((4, 9), np.float32, seed=93)
    t = np.array([1, 2, 3, 4])
    _, grad = logitloss.cross_entropy(x, t, return_grad=True)
    for out in (np.asfortranarray(np.zeros((4, 9), np.float32)), np.zeros((4, 18), np.float32)[:, ::2]):
        try:
            result = logitloss.cross_entropy(x, t, grad_out=out)
        except (ValueError, TypeError) as exc:
            assert "grad_out" in str(exc)
            continue
        assert result[1] is out and np.array_equal(out, grad)


@pytest.mark.parametrize("kind", KINDS)
def test_grad_out_in_place_probability_and_weights(isa, kind):
    x = logits((3, 4, 5), np.float64, seed=94)
    t = make_targets(kind, x.shape, np.float64, 95)
    w = class_weights(4, np.float64, 96)
    _, grad = logitloss.cross_entropy(x, t, weight=w, label_smoothing=0.2, return_grad=True)
    inplace = x.copy()
    logitloss.cross_entropy(inplace, t, weight=w, label_smoothing=0.2, grad_out=inplace)
    assert same_bits(inplace, grad)


# ---- 8. threads ----------------------------------------------------------------------------------------


def test_threads_bitwise_identical(isa, restore_threads):
    """Loss and gradient do not depend on the thread count (1 vs 2), for wide rows and for a
    K-dimensional input whose positions the threads split."""
    dtype = np.float32
    wide = logits((64, 50000), dtype, seed=64)
    t_wide = index_targets(wide.shape, 65, ignore_index=-100, dtype=np.int64)
    w_wide = class_weights(50000, dtype, 66)
    y_wide = probability_targets((8, 50000), dtype, 67)
    kdim = logits((4, 100, 60, 50), dtype, seed=68)
    t_kdim = index_targets(kdim.shape, 69, ignore_index=3, dtype=np.int32)
    calls = []
    for reduction in REDUCTIONS:
        calls += [
            lambda r=reduction: logitloss.cross_entropy(wide, t_wide, reduction=r, return_grad=True),
            lambda r=reduction: logitloss.cross_entropy(
                wide, t_wide, weight=w_wide, reduction=r, label_smoothing=0.1, return_grad=True
            ),
            lambda r=reduction: logitloss.cross_entropy(wide[:8], y_wide, reduction=r, return_grad=True),
            lambda r=reduction: logitloss.cross_entropy(
                kdim, t_kdim, ignore_index=3, reduction=r, label_smoothing=0.1, return_grad=True
            ),
        ]
    calls.append(lambda: (logitloss.cross_entropy_backward(dtype(0.5), wide, t_wide, weight=w_wide),))
    calls.append(
        lambda: (logitloss.cross_entropy_backward(upstream((64,), dtype, 70), wide, t_wide, reduction="none"),)
    )
    results = {}
    for threads in (1, 2):
        logitloss.set_num_threads(threads)
        assert logitloss.get_num_threads() == threads
        results[threads] = [call() for call in calls]
    for k, (one, two) in enumerate(zip(results[1], results[2])):
        for a, b in zip(one, two):
            assert same_bits(a, b), f"call {k} differs between 1 and 2 threads"


def test_isas_agree():
    """Every ISA within twice the tolerance of every other (they all meet the same bound)."""
    for dtype in FLOAT_DTYPES:
        x = tricky_rows(129, dtype, seed=129)
        t = np.array([0, 128, 0, int(np.nonzero(np.isfinite(x[3]))[0][0]), 5])
        exact = rce.cross_entropy(x, t, reduction="none", label_smoothing=0.1)
        tol_loss = loss_tolerance(exact)
        tol_grad = grad_tolerance(exact)
        results = {}
        for name in SUPPORTED_ISAS:
            with logitloss.use_isa(name):
                loss, grad = logitloss.cross_entropy(x, t, reduction="none", label_smoothing=0.1, return_grad=True)
                results[name] = (loss.astype(np.float64), grad.astype(np.float64))
        for a, b in itertools.combinations(SUPPORTED_ISAS, 2):
            with np.errstate(invalid="ignore"):
                same_loss = (results[a][0] == results[b][0]) | (np.abs(results[a][0] - results[b][0]) <= 2 * tol_loss)
            assert same_loss.all(), f"loss: {a} vs {b} ({dtype_id(dtype)})"
            assert np.all(np.abs(results[a][1] - results[b][1]) <= 2 * tol_grad), f"gradient: {a} vs {b}"
