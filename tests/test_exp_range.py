"""The exp-family helpers at and beyond the ends of their ranges, on every runnable ISA target.

Contract (csrc/simd/math-inl.h): an argument at or below the underflow threshold -- however far,
down to -max and -inf -- gives exactly +0 from ``exp`` and ``exp_nonpositive``, never nan and never a
stale value; ``exp`` overflows to +inf; the sum term ``exp(x) 2**S`` is a normal number within 2 ULP
on [kSumTermLow, 0] (-131 float32, -1060 float64) and exactly +0 below it and at -inf; nan stays nan.
(Inside the ranges the ULP sweep of tests/test_math_helpers.py applies.)  AVX-512 is not runnable on
every machine: where it is not, its table-driven float path is covered only by the kernels' tests on a
machine that has it.

The kernels feed these helpers ``x - max`` formed error-free as ``hi + lo``; the second half of the file
checks the row the range defect was found on, whose differences (-1e37, -2e38 in float32) are far
below the range, through every kernel that takes an exp of them.
"""

from __future__ import annotations

import numpy as np
import pytest

import logitloss
from logitloss import _core
from logitloss.testing.tolerances import ulp_of

from .helpers.libraries import require
from .helpers.marks import dtypes
from .helpers.softmax_family_checks import check_backward

DTYPES = (np.float32, np.float64)
SUM_SCALE = {np.float32: 64, np.float64: 512}
SUM_TERM_LOW = {np.float32: -131.0, np.float64: -1060.0}


def dtype_name(dtype):
    return np.dtype(dtype).name


def evaluate(isa, func, values, dtype):
    out = _core._eval_math(isa, func, np.ascontiguousarray(values, dtype=dtype))
    assert out.dtype == dtype
    return out


def far_below(dtype):
    """Arguments below every threshold: each power of two from 2^8 to the largest, -max, -inf, and the
    differences x - max of the issue's row."""
    info = np.finfo(dtype)
    first = 8 if dtype == np.float32 else 11  # 2^8 > 131 and 2^11 > 1060: below every threshold
    powers = -np.ldexp(1.0, np.arange(first, info.maxexp)).astype(dtype)
    top = float(info.max)
    return np.concatenate([powers, np.array([-top, -np.inf, -0.01 * top, -0.59 * top, -top / 3], dtype=dtype)])


def underflow_start(dtype):
    """The largest argument whose exact exp rounds to 0 (below half the smallest subnormal)."""
    info = np.finfo(dtype)
    mp = require("mpmath")
    half = mp.mpf(float(info.smallest_subnormal)) / 2
    x = dtype(float(mp.log(half)))
    with mp.workdps(40):
        while mp.exp(mp.mpf(float(x))) >= half:
            x = np.nextafter(x, dtype(-np.inf))
    return x


@pytest.mark.parametrize("func", ("exp", "exp_nonpositive"))
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
def test_exp_is_plus_zero_at_and_below_the_underflow_threshold(isa, func, dtype):
    start = underflow_start(dtype)
    near = start - np.arange(0, 64, dtype=dtype) * dtype(0.25)  # the threshold and just below
    x = np.concatenate([near, far_below(dtype)]).astype(dtype)
    out = evaluate(isa, func, x, dtype)
    bits = out.view(np.uint32 if dtype == np.float32 else np.uint64)
    bad = bits != 0  # +0 exactly: no -0, no subnormal, no nan
    assert not bad.any(), f"{func} [{isa}]: not +0 at x={x[bad][:5]} -> {out[bad][:5]}"


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
def test_exp_overflow_and_nan(isa, dtype):
    info = np.finfo(dtype)
    x = np.array([np.log(float(info.max)) * 1.01, 1e4, float(info.max), np.inf], dtype=dtype)
    assert (evaluate(isa, "exp", x, dtype) == np.inf).all()
    for func in ("exp", "exp_nonpositive", "exp_sum_term"):
        assert np.isnan(evaluate(isa, func, [np.nan], dtype)).all(), func
        nans = payload_nans(dtype)
        out = evaluate(isa, func, nans, dtype)
        assert np.isnan(out).all(), f"{func} [{isa}]: {nans.view(bits_dtype(dtype))[~np.isnan(out)]} -> {out[~np.isnan(out)]}"


def bits_dtype(dtype):
    return np.uint32 if dtype == np.float32 else np.uint64


def payload_nans(dtype):
    """nans whose payload's low bits are set (R's NA_real_ is 0x7ff00000000007a2), quiet and
    signalling, both signs: a payload that leaks into an exponent field turns the nan finite."""
    if dtype == np.float32:
        bits = [0x7FC00001, 0x7FC000FF, 0x7FC0FFFF, 0xFFC00001, 0x7F800001, 0x7FFFFFFF]
    else:
        bits = [0x7FF00000000007A2, 0x7FF8000000000001, 0x7FF80000000007FF, 0xFFF8000000000001, 0x7FFFFFFFFFFFFFFF]
    return np.array(bits, dtype=bits_dtype(dtype)).view(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
def test_sum_term_is_normal_on_its_range_and_plus_zero_below(isa, dtype):
    info = np.finfo(dtype)
    low = dtype(SUM_TERM_LOW[dtype])
    inside = np.concatenate([np.linspace(low, low + 30, 2001), [low, np.nextafter(low, dtype(0))]]).astype(dtype)
    out = evaluate(isa, "exp_sum_term", inside, dtype).astype(np.float64)
    assert (out >= float(info.smallest_normal)).all(), f"[{isa}] a sum term left the normal range"
    if dtype == np.float32:  # float64 exp is exact for a float32 ULP measurement
        exact = np.ldexp(np.exp(inside.astype(np.float64)), SUM_SCALE[dtype])
        errors = np.abs(out - exact) / ulp_of(exact, np.float32)
        assert errors.max() <= 2.0, f"[{isa}] {errors.max():.2f} ULP at x={inside[np.argmax(errors)]!r}"
    else:  # x87 extended precision: 11 bits beyond float64, and exp(-1060) is a normal number in it
        if np.finfo(np.longdouble).nmant < 63:
            pytest.skip("no extended longdouble for the float64 reference here")
        exact = np.exp(inside.astype(np.longdouble)) * np.longdouble(2.0) ** SUM_SCALE[dtype]
        errors = np.asarray(np.abs(out.astype(np.longdouble) - exact) / ulp_of(exact, np.float64), dtype=np.float64)
        assert errors.max() <= 2.0, f"[{isa}] {errors.max():.2f} ULP at x={inside[np.argmax(errors)]!r}"
    below = np.concatenate([[np.nextafter(low, dtype(-np.inf))], low - np.arange(1, 40, dtype=dtype), far_below(dtype)])
    out = evaluate(isa, "exp_sum_term", below.astype(dtype), dtype)
    bits = out.view(np.uint32 if dtype == np.float32 else np.uint64)
    assert (bits == 0).all(), f"[{isa}] sum term not +0 at x={below[bits != 0][:5]} -> {out[bits != 0][:5]}"


# ---- the issue's row through every kernel that exps its differences ------------------------------


def issue_row(dtype):
    """[3e38, 2.9e38, 1e38] in float32; the same fractions of the largest finite in the other dtypes."""
    if dtype == np.float32:
        return np.array([3e38, 2.9e38, 1e38], dtype=dtype)
    return (np.array([0.88, 0.85, 0.29]) * float(np.finfo(dtype).max)).astype(dtype)


@dtypes
@pytest.mark.parametrize("length", (3, 5, 11, 40), ids=lambda n: f"n{n}")
def test_the_issue_row(isa, dtype, length):
    """Padded with entries further below (masked tails and whole vectors both), the softmax is exactly
    one-hot, the loss with the max as target exactly 0, its gradient exactly 0."""
    row = np.full(length, -np.finfo(dtype).max, dtype=dtype)
    row[:3] = issue_row(dtype)
    row = np.roll(row, length // 2)
    top = int(np.argmax(row))
    one_hot = (np.arange(length) == top).astype(dtype)
    with np.errstate(all="ignore"):
        assert logitloss.softmax(row).tolist() == one_hot.tolist()
        assert logitloss.softmax(row[None], axis=0).tolist() == [[1.0] * length]  # one-entry columns
        assert logitloss.log_softmax(row)[top] == 0
        assert logitloss.logsumexp(row) == row[top]
        _, grad = logitloss.logsumexp(row, return_grad=True)
        assert grad.tolist() == one_hot.tolist()
        loss, grad = logitloss.cross_entropy(row[None], np.array([top]), return_grad=True)
        assert loss == 0 and (grad == 0).all(), (loss, grad)
        loss, grad = logitloss.cross_entropy(row[None], one_hot[None], return_grad=True)
        assert loss == 0 and (grad == 0).all(), (loss, grad)
        columns = np.repeat(row[:, None], 5, axis=1)  # the reduced axis strided: the column kernels
        assert logitloss.softmax(columns, axis=0).tolist() == np.repeat(one_hot[:, None], 5, axis=1).tolist()


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("length", (3, 5, 11, 40), ids=lambda n: f"n{n}")
def test_rows_with_payload_nans_are_nan(isa, dtype, length):
    """A nan with any payload makes its row's results nan (the sum terms carry it), on every
    kernel that reduces exps: logsumexp, softmax, log_softmax, cross_entropy (loss and gradient)."""
    for nan in payload_nans(dtype):
        row = np.linspace(-3, 3, length).astype(dtype)
        row[length // 2] = nan
        assert np.isnan(logitloss.logsumexp(row)), nan.view(bits_dtype(dtype))
        assert np.isnan(logitloss.softmax(row)).all()
        assert np.isnan(logitloss.log_softmax(row)).all()
        loss, grad = logitloss.cross_entropy(row[None], np.array([0]), return_grad=True)
        assert np.isnan(loss) and np.isnan(grad).all()
        columns = np.repeat(row[:, None], 5, axis=1)  # the reduced axis strided: the column kernels
        assert np.isnan(logitloss.logsumexp(columns, axis=0)).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
def test_log_softmax_backward_with_a_sum_just_beyond_the_largest_finite(isa, dtype):
    """sum(g) = max + a little, whose fraction rounds up to 1 in the dtype: g - exp(y) sum(g) is
    still finite (-2 little for y = 0, exactly g for y = -inf) and within the gradient bound of the
    exact value."""
    info = np.finfo(dtype)
    little = dtype(2e31) if dtype == np.float32 else dtype(1e292)
    g = np.array([info.max, little, little], dtype=dtype)
    y = np.array([0.0, -np.inf, -np.inf], dtype=dtype)
    out = check_backward("log_softmax", g, y, axis=-1)
    assert np.isfinite(out).all() and out[1] == little and out[2] == little, out
