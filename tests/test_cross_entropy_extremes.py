"""cross_entropy on adversarial rows against the exact reference, every ISA: confident rows with tiny exact
losses, extreme finite logits, intermediate overflow, large offsets, special values, sizes around the vector widths,
vocabulary widths, the row's maximum anywhere across chunks, masked blocks.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import logitloss
from logitloss.testing.cross_entropy import REDUCTIONS, cross_entropy as exact_cross_entropy
from logitloss.testing.inputs import (
    SPIKE,
    VECTOR_WIDTH_SIZES,
    class_weights,
    extreme_finite_rows,
    index_targets,
    logits,
    masked_block_rows,
    probability_targets,
    spikes_across_chunks,
    tricky_rows,
)
from logitloss.testing.tolerances import COMPUTE_DTYPE, EPS, SMALLEST_NORMAL

from .helpers.assertions import check_special_values, same_bits
from .helpers.cross_entropy_checks import (
    LOSS_UNITS,
    assert_grad_close,
    assert_loss_close,
    check_cross_entropy,
    kwargs_of,
)
from .helpers.loss_checks import assert_relative
from .helpers.marks import dtype_id, dtypes
from .helpers.torch_calls import torch_cross_entropy

inf = np.inf
nan = np.nan

# torch on one thread while this module runs (see conftest.torch_single_threaded)
pytestmark = pytest.mark.usefixtures("torch_single_threaded")


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
    limit = -math.log(SMALLEST_NORMAL[COMPUTE_DTYPE[np.dtype(dtype)]])
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
    exact = exact_cross_entropy(x, target, weight=w, reduction="none")
    assert np.isfinite(exact.loss).all()  # 0.125 * 1.5 max, 0.25 * 1.5 max
    check_cross_entropy(x, target, weight=w, reduction="none", what="weighted overflowing rows")
    # 8 classes: the short-row kernel; 40 and 3000: the chunked one, whose target terms are taken in
    # its exp pass unless max - z_c could overflow (then in a pass of their own, redone in double)
    for width in (8, 40, 3000):
        x2 = np.zeros((1, width), dtype=dtype)
        x2[0, :3] = [huge, 0.0, -huge * 0.5]
        for w2 in (None, np.linspace(0.25, 1.0, width).astype(dtype)):
            exact = exact_cross_entropy(x2, np.array([0]), weight=w2, reduction="none", label_smoothing=0.01)
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
        exact = exact_cross_entropy(x3, np.array([0]), weight=w3, reduction="mean", label_smoothing=0.5)
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
        check_special_values(loss.astype(np.float64), theirs_loss.astype(np.float64), "special values vs torch")
        check_special_values(grad.astype(np.float64), theirs_grad.astype(np.float64), "special gradient vs torch")
        exact = exact_cross_entropy(x, target, **kwargs)
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
