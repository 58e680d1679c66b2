"""entropy_with_logits: the exact reference (mpmath for float64 results), torch float64 autograd and
scipy.stats.entropy, on every dtype, ISA, axis and layout, extreme and special values."""

from __future__ import annotations

import numpy as np
import pytest

import logitloss
from logitloss.testing.entropy import entropy as exact_entropy
from logitloss.testing.inputs import (
    VECTOR_WIDTH_SIZES,
    extreme_finite_rows,
    logits,
    masked_block_rows,
    strided_views,
    tricky_rows,
    whole_range_rows,
)
from logitloss.testing.tolerances import ENTROPY, EPS, FORWARD, GRADIENT

from .helpers.assertions import assert_close_to_exact, same_bits
from .helpers.libraries import require
from .helpers.marks import dtypes

inf = np.inf
nan = np.nan


def assert_within(actual, expected, tolerance, what):
    err = np.abs(np.asarray(actual, np.float64) - expected)
    tolerance = np.broadcast_to(tolerance, err.shape)
    assert (err <= tolerance).all(), f"{what}: error {err.max():.3g}, {(err / tolerance).max():.3g}x the tolerance"


def check_entropy(x, axis=-1, what="entropy"):
    """H and dH/dx within the table's bounds of the exact reference; H alone bitwise equal to H with the
    gradient; the input unchanged. Returns (H, grad)."""
    before = np.array(x, copy=True)
    value, grad = logitloss.entropy_with_logits(x, axis=axis, return_grad=True)
    alone = logitloss.entropy_with_logits(x, axis=axis)
    assert same_bits(np.asarray(alone), np.asarray(value)), f"{what}: H differs with and without return_grad"
    assert same_bits(np.asarray(x), before), f"{what}: input modified"
    dtype = np.asarray(value).dtype
    exact = exact_entropy(np.asarray(x), axis)
    assert_close_to_exact(value, exact.value, dtype, exact.value_scale, family=ENTROPY, direction=FORWARD, what=what)
    assert_close_to_exact(grad, exact.grad, dtype, exact.grad_scale, family=ENTROPY, direction=GRADIENT,
                          what=f"{what} gradient")
    return value, grad


# ---- sizes, axes and layouts ----------------------------------------------------------------------


@dtypes
@pytest.mark.parametrize("n", VECTOR_WIDTH_SIZES)
def test_vector_width_sizes(isa, dtype, n):
    x = tricky_rows(n, dtype, seed=n)
    check_entropy(x, axis=-1, what=f"rows n={n}")
    check_entropy(x.T, axis=0, what=f"columns n={n}")
    check_entropy(x, axis=None, what=f"all n={n}")


@dtypes
@pytest.mark.parametrize("n", [2048, 2049, 5000])
def test_long_rows_with_masked_blocks(isa, dtype, n):
    check_entropy(masked_block_rows(n, dtype, seed=n), what=f"masked blocks n={n}")


def test_vocabulary_width(isa):
    for dtype in (np.float32, np.float64):
        check_entropy(logits((2 if dtype == np.float32 else 1, 32000), dtype, seed=32000), what=f"vocab {dtype}")


@dtypes
@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1, (0, 2), (2, 0), (0, 1, 2)], ids=repr)
def test_axes(isa, dtype, axis):
    x = logits((3, 4, 5), dtype, seed=11)
    x[1, 2, :] = -inf
    x[0, :, 3] = -inf
    value, grad = check_entropy(x, axis=axis, what=f"axis={axis}")
    assert grad.shape == x.shape


@dtypes
@pytest.mark.parametrize("view", list(strided_views(np.zeros((2, 2)))))
def test_strided_views(isa, dtype, view):
    base = logits((6, 67), dtype, seed=67)
    base[2, ::5] = -inf
    x, axis = strided_views(base)[view]
    value, grad = check_entropy(x, axis=axis, what=view)
    assert grad.flags.writeable and grad.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(value, logitloss.entropy_with_logits(np.ascontiguousarray(x), axis=axis))


@dtypes
@pytest.mark.parametrize("axis", [-1, 0, None])
def test_grad_out(isa, dtype, axis):
    """grad_out: the same bits as the returned gradient, into a buffer, over x itself (in place) and into a
    strided view; float16 goes through a float32 temporary."""
    x = logits((9, 37), dtype, seed=37)
    x[2, ::3] = -inf
    value, grad = logitloss.entropy_with_logits(x, axis=axis, return_grad=True)
    buffer = np.full_like(x, np.nan)
    h, written = logitloss.entropy_with_logits(x, axis=axis, grad_out=buffer)
    assert written is buffer and same_bits(buffer, grad) and same_bits(np.asarray(h), np.asarray(value))
    in_place = x.copy()
    h, written = logitloss.entropy_with_logits(in_place, axis=axis, grad_out=in_place)
    assert written is in_place and same_bits(in_place, grad) and same_bits(np.asarray(h), np.asarray(value))
    wide = np.zeros((9, 74), dtype)
    view = wide[:, ::2]
    logitloss.entropy_with_logits(x, axis=axis, grad_out=view)
    assert same_bits(view, grad) and (wide[:, 1::2] == 0).all()


@dtypes
@pytest.mark.parametrize("shape", [(37, 50), (2100, 40), (5, 3, 33), (40000, 20)], ids=str)
def test_strided_axis_matches_the_contiguous_layout_bitwise(isa, dtype, shape, restore_threads):
    """A reduced axis that is not the contiguous one (rows packed 16 at a time, any remainder, across
    threads; rows of 40000 packed 13 at a time) gives the bits of the same rows laid out contiguously."""
    x = logits(shape, dtype, seed=sum(shape))
    x[..., 1, ::7] = -inf
    moved = np.ascontiguousarray(np.moveaxis(x, 0, -1))
    expected_value, expected_grad = logitloss.entropy_with_logits(moved, axis=-1, return_grad=True)
    for threads in (1, 2):
        logitloss.set_num_threads(threads)
        value, grad = logitloss.entropy_with_logits(x, axis=0, return_grad=True)
        assert same_bits(value, expected_value)
        assert same_bits(grad, np.moveaxis(expected_grad, -1, 0))


def test_default_axis_is_last_and_scalar_results(isa):
    x = logits((4, 6), np.float64, seed=6)
    np.testing.assert_array_equal(logitloss.entropy_with_logits(x), logitloss.entropy_with_logits(x, axis=1))
    h = logitloss.entropy_with_logits(x[0])
    assert isinstance(h, np.float64)
    h, grad = logitloss.entropy_with_logits(np.float32(3.0), return_grad=True)
    assert isinstance(h, np.float32) and h == 0 and grad.shape == () and grad == 0


def test_integer_input_computes_in_float64(isa):
    h = logitloss.entropy_with_logits(np.array([[1, 2, 3]], np.int32))
    assert h.dtype == np.float64
    np.testing.assert_array_equal(h, logitloss.entropy_with_logits(np.array([[1.0, 2.0, 3.0]])))


def test_threads_give_the_same_bits(isa, restore_threads):
    x = logits((257, 1031), np.float32, seed=3)
    results = []
    for threads in (1, 2, 4):
        logitloss.set_num_threads(threads)
        results.append(logitloss.entropy_with_logits(x, return_grad=True))
    for value, grad in results[1:]:
        assert same_bits(value, results[0][0]) and same_bits(grad, results[0][1])


def test_python_threads_at_once(isa):
    """Calls from several Python threads at once (the GIL released around the kernels) give the sequential bits."""
    import concurrent.futures

    inputs = [logits((64, 4099), np.float32, seed=s) for s in range(4)]
    sequential = [logitloss.entropy_with_logits(x, return_grad=True) for x in inputs]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda x: logitloss.entropy_with_logits(x, return_grad=True), inputs * 3))
    for i, (value, grad) in enumerate(parallel):
        assert same_bits(value, sequential[i % 4][0]) and same_bits(grad, sequential[i % 4][1])


# ---- accuracy where it is hard ---------------------------------------------------------------------


@dtypes
@pytest.mark.parametrize("n", [2, 9, 33, 3000])
def test_near_deterministic_rows_keep_relative_precision(isa, dtype, n):
    """One entry far above the rest: H is tiny (down to 1e-300 in float64) and must keep 8 eps relative."""
    gaps = {np.float16: [8.0, 10.0, 12.0], np.float32: [20.0, 40.0, 80.0, 100.0],
            np.float64: [20.0, 40.0, 100.0, 300.0, 690.0]}[dtype]
    rng = np.random.default_rng(n)
    rows = []
    for gap in gaps:
        row = -gap - rng.uniform(0.0, 3.0, n)
        row[n // 2] = 0.7
        rows.append(row)
    x = np.array(rows).astype(dtype)
    value, _ = check_entropy(x, what=f"near-deterministic n={n}")
    assert (value > 0).all(), value  # never flushed to 0


def test_tiny_entropy_examples(isa):
    # [0, -40]: log1p(e^-40) + 40 e^-40 / (1 + e^-40); -(p * log p).sum() in float32 gives 0
    h = logitloss.entropy_with_logits(np.array([0.0, -40.0], np.float32))
    assert abs(float(h) - 1.7418252446695514e-16) <= 4 * EPS[np.dtype(np.float32)] * 1.7418252446695514e-16
    h64 = logitloss.entropy_with_logits(np.array([0.1, -39.7]))
    exact = exact_entropy(np.array([0.1, -39.7])).value
    assert abs(float(h64) - float(exact)) <= 8 * EPS[np.dtype(np.float64)] * float(exact)


@dtypes
@pytest.mark.parametrize("n", [1, 16, 33, 129])
def test_extreme_finite_values(isa, dtype, n):
    x = extreme_finite_rows(dtype, n)
    value, grad = check_entropy(x, what="extreme rows")
    assert np.isfinite(value[[0, 1, 2, 3, 4, 5, 7]]).all() and np.isfinite(grad).all()
    check_entropy(x[:, ::-1], what="extreme rows reversed")


@dtypes
def test_whole_range_rows(isa, dtype):
    """Logits spread log-uniformly over the dtype's whole range, both signs, with -inf masks."""
    rng = np.random.default_rng(7)
    info = np.finfo(dtype)
    n = 37
    exponent = rng.uniform(np.log2(float(info.smallest_normal)), np.log2(float(info.max)) - 1, (24, n))
    x = (np.where(rng.random((24, n)) < 0.5, -1.0, 1.0) * np.exp2(exponent)).astype(dtype)
    x[::5, ::3] = -inf
    x[3] = x[3, 0]  # a row of ties
    check_entropy(x, what="whole range")


@dtypes
@pytest.mark.parametrize("n", [11, 37, 2100])
def test_exactness_sweep(isa, dtype, n):
    """The exactness sweep's row sets (tests/test_exactness_sweep.py): magnitudes from the smallest subnormal
    to the largest finite, -inf, ties, overflowing differences, a dominant entry (tiny H), differences at the
    underflow threshold, tiny entries. Every set is checked; failures are reported together."""
    failures = []
    for name, rows in whole_range_rows(dtype, seed=1900 + n, n=n).items():
        if n > 100:
            rows = np.ascontiguousarray(rows[:2])
        try:
            check_entropy(rows, what=f"{name}, n={n}")
        except AssertionError as error:
            failures.append(str(error).splitlines()[0])
    assert not failures, "\n".join(failures)


# ---- special values ----------------------------------------------------------------------------------


@dtypes
@pytest.mark.parametrize("n", [2, 17, 64])
def test_special_values(isa, dtype, n):
    def row(*tail):
        return np.array([-1.0] * (n - len(tail)) + list(tail), dtype=dtype)

    for bad in (np.full(n, -inf, dtype), row(inf), row(inf, 0.5), row(nan), row(-inf, nan), row(inf, -inf)):
        h, grad = logitloss.entropy_with_logits(bad, return_grad=True)
        assert np.isnan(h) and np.isnan(grad).all(), bad
    # a single finite entry among -inf: H exactly 0, gradient exactly 0 (no 0 * inf)
    x = np.full(n, -inf, dtype=dtype)
    x[n // 2] = 3.0
    h, grad = logitloss.entropy_with_logits(x, return_grad=True)
    assert h == 0 and (grad == 0).all()
    # rows of special values beside ordinary ones: only their own results are nan
    block = np.tile(logits((1, n), dtype, seed=n), (5, 1))
    block[1, 0], block[2, -1], block[3] = nan, inf, -inf
    h, grad = logitloss.entropy_with_logits(block, return_grad=True)
    assert np.isnan(h[1:4]).all() and np.isnan(grad[1:4]).all()
    ordinary = logitloss.entropy_with_logits(block[[0, 4]], return_grad=True)
    assert same_bits(h[[0, 4]], ordinary[0]) and same_bits(grad[[0, 4]], ordinary[1])


# ---- parity with torch (float64 autograd) and scipy.stats.entropy ---------------------------------------


@pytest.fixture(scope="module")
def scipy_stats():
    return require("scipy.stats")


def torch_entropy(torch, x, axis=-1):
    """-(softmax * log_softmax).sum(axis) in float64 with masked (p = 0) terms 0, and its autograd gradient."""
    t = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    p = torch.softmax(t, dim=axis)
    log_p = torch.where(p > 0, torch.log_softmax(t, dim=axis), torch.zeros_like(p))
    h = -(p * log_p).sum(dim=axis)
    h.sum().backward()
    return h.detach().numpy(), t.grad.numpy()


def torch_scale(x, axis=-1):
    """torch's own rounding in float64: each p log p term carries eps of |lse| + |log p|."""
    x = np.asarray(x, np.float64)
    top = np.max(x, axis=axis, keepdims=True)
    lse = top + np.log(np.sum(np.exp(x - top), axis=axis, keepdims=True))
    with np.errstate(invalid="ignore"):
        p = np.exp(x - lse)
        log_p = np.where(p > 0, x - lse, 0.0)
    return np.sum(p * (np.abs(log_p) + np.abs(lse) + 1.0), axis=axis), p * (np.abs(log_p) + np.abs(lse) + 1.0)


@dtypes
@pytest.mark.parametrize("shape, axis", [((7, 33), -1), ((5, 300), -1), ((4, 6, 5), 1), ((3, 129), 0)])
def test_matches_torch_float64_autograd(isa, dtype, shape, axis, torch):
    x = logits(shape, dtype, seed=sum(shape))
    x[0, :2] = -inf
    value, grad = logitloss.entropy_with_logits(x, axis=axis, return_grad=True)
    expected, expected_grad = torch_entropy(torch, x.astype(np.float64), axis=axis)
    value_scale, grad_scale = torch_scale(x, axis)
    eps = EPS[np.dtype(dtype)]
    assert_within(value, expected, 16 * eps * value_scale, "entropy vs torch")
    row_scale = np.max(grad_scale, axis=axis, keepdims=True)
    assert_within(grad, expected_grad, 16 * eps * row_scale, "gradient vs torch")


@dtypes
def test_matches_scipy_stats_entropy_of_softmax(isa, dtype, scipy_stats):
    stats, special = scipy_stats, require("scipy.special")
    x = logits((6, 50), dtype, seed=50)
    x[1, ::4] = -inf
    expected = stats.entropy(special.softmax(x.astype(np.float64), axis=-1), axis=-1)
    value = logitloss.entropy_with_logits(x)
    scale, _ = torch_scale(x)
    assert_within(value, expected, 16 * EPS[np.dtype(dtype)] * scale, "entropy vs scipy.stats.entropy")
    # and along axis 0, scipy.stats.entropy's default
    expected0 = stats.entropy(special.softmax(x.astype(np.float64), axis=0), axis=0)
    scale0, _ = torch_scale(x, 0)
    assert_within(logitloss.entropy_with_logits(x, axis=0), expected0, 16 * EPS[np.dtype(dtype)] * scale0, "axis 0")


def test_temperature_raises_entropy(isa):
    """The confidence knob: dividing the logits by T > 1 flattens softmax and raises its entropy."""
    z = logits((64, 1000), np.float64, seed=1)
    h = [logitloss.entropy_with_logits(z / T) for T in (0.5, 1.0, 2.0, 4.0)]
    assert all((a < b).all() for a, b in zip(h, h[1:]))
    assert (h[-1] <= np.log(1000)).all()
