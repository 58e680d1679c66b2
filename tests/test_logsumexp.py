"""logsumexp: SciPy's semantics, accuracy against the exact reference, every ISA."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import logitloss
from logitloss.testing.inputs import (
    CHUNK,
    FLOAT_DTYPES,
    SPIKE,
    VECTOR_WIDTH_SIZES,
    VOCAB_SIZES,
    extreme_finite_rows,
    logits,
    masked_block_rows,
    spikes_across_chunks,
    strided_views,
    tricky_rows,
)
from logitloss.testing.softmax_family import logsumexp as exact_logsumexp
from logitloss.testing.tolerances import GRADIENT, tolerance

from .helpers.assertions import (
    assert_close_to_exact,
    assert_close_to_library,
    assert_same_kind,
    same_bits,
    scipy_call,
)
from .helpers.isas import SUPPORTED_ISAS
from .helpers.marks import dtype_id, dtypes
from .helpers.softmax_family_checks import check_logsumexp, check_softmax

inf = np.inf
nan = np.nan



# ---- sizes and layouts ----------------------------------------------------------------------


@dtypes
@pytest.mark.parametrize("n", VECTOR_WIDTH_SIZES)
def test_vector_width_sizes(isa, dtype, n):
    a = tricky_rows(n, dtype, seed=n)
    check_logsumexp(a, axis=-1, what=f"rows n={n}")
    check_logsumexp(a, axis=None, what=f"all n={n}")
    check_logsumexp(a.T, axis=0, grad=False, what=f"columns n={n}")


@dtypes
@pytest.mark.parametrize("n", [1, 3, 10, 17, 33])
def test_short_rows_values_only(isa, dtype, n):
    # Values without a gradient take the batched path (row statistics, then their logs in vector
    # lanes, 64 rows at a time): rows of every kind side by side in one batch and across batches.
    kinds = np.concatenate([tricky_rows(n, dtype, seed=100 + n), np.full((1, n), -inf, dtype=dtype)])
    a = np.concatenate([np.tile(kinds, (25, 1)), np.tile(kinds[::-1], (7, 1))])
    check_logsumexp(a, axis=-1, grad=False, what=f"short rows n={n}")
    check_logsumexp(a, axis=-1, grad=False, return_sign=True, what=f"short rows n={n}, return_sign")
    check_logsumexp(a.reshape(-1, 6, n), axis=-1, grad=False, keepdims=True, what=f"short rows n={n}, 3-d")
    # nan and +inf rows in the same batches (the reference takes finite and -inf inputs only)
    b = a.copy()
    b[5::6, 0] = nan
    b[3::6, -1] = inf
    out = logitloss.logsumexp(b, axis=-1)
    assert np.isnan(out[5::6]).all()
    if n > 1:
        assert (out[3::6] == inf).all()
    kept = np.ones(len(b), dtype=bool)
    kept[5::6] = kept[3::6] = False
    np.testing.assert_array_equal(out[kept], logitloss.logsumexp(a[kept], axis=-1))


@dtypes
@pytest.mark.parametrize("n", [1, 2, 7, 10, 15, 16, 17])
def test_short_contiguous_rows_match_row_kernel(isa, dtype, n):
    """Contiguous rows of one vector go 16 at a time, a row per lane (gathered, AVX-512); strided
    rows (copied one by one) and rows of an unaligned array spaced by a byte count that is no
    multiple of the element take the row kernel: the same bits, for every kind of row, ties, nan,
    +inf and all -inf included, with row counts around the 16-row groups and 64-row batches."""
    # wide spreads: terms over ~100 binades, whose sum in double rounds (its order shows)
    spread = np.random.default_rng(n).uniform(-70.0, 0.0, size=(24, n)).astype(dtype)
    kinds = np.concatenate([tricky_rows(n, dtype, seed=300 + n), np.full((1, n), -inf, dtype=dtype), spread])
    for rows in (16, 37, 70):
        a = np.ascontiguousarray(np.resize(kinds, (rows, n)))
        a[rows // 3, 0] = nan
        a[rows // 2, -1] = inf
        a[rows // 4, :] = a[rows // 4, 0]  # all equal: count n
        expected = logitloss.logsumexp(a, axis=-1)
        strided = np.empty((rows, 2 * n), dtype=dtype)
        strided[:, ::2] = a
        assert same_bits(logitloss.logsumexp(strided[:, ::2], axis=-1), expected), f"strided rows, {rows} x {n}"
        itemsize = a.dtype.itemsize
        buffer = np.zeros(rows * (n * itemsize + 1) + 1, dtype=np.uint8)
        unaligned = np.ndarray((rows, n), dtype=dtype, buffer=buffer, offset=1, strides=(n * itemsize + 1, itemsize))
        unaligned[...] = a
        assert same_bits(logitloss.logsumexp(unaligned, axis=-1), expected), f"unaligned rows, {rows} x {n}"
        check_logsumexp(np.where(np.isnan(a) | np.isposinf(a), 0, a).astype(dtype), axis=-1, grad=False,
                        what=f"short contiguous rows {rows} x {n}")


@dtypes
@pytest.mark.parametrize("n", VOCAB_SIZES)
def test_vocabulary_widths(isa, dtype, n):
    rows = 1 if dtype == np.float64 else 2
    a = logits((rows, n), dtype, seed=n, spread=3.0)
    check_logsumexp(a, axis=-1, what=f"vocab {n}")


@dtypes
def test_columns_past_the_seeded_rows(isa, dtype):
    """The column kernel seeds each column's max with its first 128 rows, then takes a single
    comparison per vector as long as no lane reaches its column's max. Past row 128: ties with
    the max (the count that keeps SciPy's precision), raises, a nan, a tie with a seeded max."""
    rows, columns = 300, 40
    a = logits((rows, columns), dtype, seed=300) - 40  # every term near exp(-40) of the maxima below
    a[:, 0] = -inf
    a[[200, 250], 1] = 0.0  # two maxima past the seed: log(2) + ~300 e^-40
    a[[10, 280], 2] = 0.0  # a seeded max and its tie
    a[200, 3], a[260, 3] = 1.0, 5.0  # two raises
    a[[150, 151, 299], 4] = 0.0  # ties in one group and in the last row
    a[5, 5], a[260, 5] = 0.0, 0.0
    a[:, 6] = -inf
    a[131, 6] = 0.0  # the only finite entry, past the seed
    a[-1, 17:33] = 0.0  # a whole vector of maxima in the last row (AVX-512 float: lanes 17-32)
    for grad in (False, True):
        check_logsumexp(a, axis=0, grad=grad, what=f"columns past the seed, grad={grad}")
    poisoned = a.copy()
    poisoned[260, 7] = nan
    out = logitloss.logsumexp(poisoned, axis=0)
    assert np.isnan(out[7]) and not np.isnan(np.delete(out, 7)).any()


@dtypes
@pytest.mark.parametrize("n", [5000, 20000])
def test_long_rows_with_masked_blocks(isa, dtype, n):
    a = masked_block_rows(n, dtype, seed=n)
    check_logsumexp(a, axis=-1, what=f"masked blocks n={n}")
    check_logsumexp(a[0], axis=None, what="masked prefix, one row")


@dtypes
@pytest.mark.parametrize("n", [CHUNK + 40, 3 * CHUNK + 7])
def test_max_anywhere_across_chunks(isa, dtype, n):
    x, positions = spikes_across_chunks(n, dtype, SPIKE[dtype])
    check_logsumexp(x, axis=-1, grad=False, what=f"spiked rows n={n}")
    check_logsumexp(x, axis=-1, what=f"spiked rows n={n}, gradient")
    check_softmax(x, axis=-1, what=f"spiked rows n={n}, softmax")
    check_softmax(x, axis=-1, log=True, what=f"spiked rows n={n}, log_softmax")
    # in place: each chunk's max is taken before the chunk before it is overwritten
    for name in ("softmax", "log_softmax"):
        inplace = x.copy()
        getattr(logitloss, name)(inplace, axis=-1, out=inplace)
        assert same_bits(inplace, getattr(logitloss, name)(x, axis=-1)), f"{name} in place, n={n}"
    # a rising max: the spike on top of an earlier, lower one
    rising = x.copy()
    rising[:, 0] = SPIKE[dtype] / 2
    check_logsumexp(rising, axis=-1, grad=False, what=f"rising max n={n}")
    # a spike of weight 0 is no maximum (b == 0 masks it), however large
    b = np.ones_like(x)
    huge, _ = spikes_across_chunks(n, dtype, 1e4)
    b[huge == 1e4] = 0
    check_logsumexp(huge, axis=-1, b=b, grad=False, what=f"masked spikes n={n}")
    # a nan anywhere makes its row nan
    poisoned, _ = spikes_across_chunks(n, dtype, nan)
    assert np.isnan(logitloss.logsumexp(poisoned, axis=-1)).all()
    assert np.isnan(logitloss.softmax(poisoned, axis=-1)).all(axis=-1).all()


@dtypes
def test_odd_shape(isa, dtype):
    a = logits((3, 5, 423), dtype, seed=423)
    check_logsumexp(a, axis=-1)
    check_logsumexp(a, axis=1, keepdims=True)


AXES = [None, 0, 1, 2, -1, -3, (0,), (2, 0), (-1, 0), (0, 1), (1, 2), (0, 1, 2), ()]


@dtypes
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=repr)
def test_axes(isa, dtype, axis, keepdims, scipy_special):
    a = logits((3, 4, 5), dtype, seed=11)
    a[1, 2, :] = -inf
    a[0, :, 3] = -inf
    (out, grad), _ = check_logsumexp(a, axis=axis, keepdims=keepdims, what=f"axis={axis}")
    expected = scipy_call(scipy_special.logsumexp, a, axis=axis, keepdims=keepdims)
    assert_same_kind(out, expected, f"axis={axis} keepdims={keepdims}")


@dtypes
@pytest.mark.parametrize("view", list(strided_views(np.zeros((2, 2)))))
def test_strided_views(isa, dtype, view):
    base = logits((6, 67), dtype, seed=67)
    base[2, ::5] = -inf
    x, axis = strided_views(base)[view]
    copy = np.ascontiguousarray(x).astype(x.dtype.newbyteorder("="))
    before = x.copy()
    (out, grad), exact = check_logsumexp(x, axis=axis, what=view)
    (out_copy, _), _ = check_logsumexp(copy, axis=axis, what=f"{view} (contiguous copy)")
    assert out.dtype == np.dtype(dtype)  # native byte order out, whatever the input's
    assert same_bits(x, before), "input modified"
    check_logsumexp(x, axis=None, grad=False, what=f"{view} axis=None")


# ---- b ----------------------------------------------------------------------------------------


@dtypes
def test_b_broadcasting(isa, dtype):
    a = logits((4, 37), dtype, seed=5)
    rng = np.random.default_rng(5)
    cases = {
        "scalar": np.asarray(2.5, dtype=dtype),
        "row": rng.uniform(0.1, 3.0, 37).astype(dtype),
        "column": rng.uniform(0.1, 3.0, (4, 1)).astype(dtype),
        "full": rng.uniform(0.1, 3.0, (4, 37)).astype(dtype),
        "zeros_mask": (rng.random((4, 37)) < 0.6).astype(dtype),
        "bigger_than_a": rng.uniform(0.1, 3.0, (2, 4, 37)).astype(dtype),
    }
    for name, b in cases.items():
        b = b.copy()
        if name == "zeros_mask":
            b[:, 0] = 1
        for axis in (-1, 0, None):
            check_logsumexp(a, axis=axis, b=b, what=f"b={name} axis={axis}")


@dtypes
def test_b_masks_inf_and_nan(isa, dtype):
    # docs/semantics.md: where b == 0 the entry adds nothing, even if a there is inf or nan
    out = logitloss.logsumexp(np.array([1, inf, nan], dtype=dtype), b=np.array([1, 0, 0], dtype=dtype))
    assert out == 1.0 and out.dtype == dtype
    n = 41
    a = logits((3, n), dtype, seed=3)
    b = np.ones((3, n), dtype=dtype)
    a[0, 7], b[0, 7] = inf, 0
    a[1, -1], b[1, -1] = nan, 0  # in the masked tail
    a[2, 0], b[2, 0] = inf, 0
    a[2, 16], b[2, 16] = nan, 0
    b[2, 1] = 0
    clean = np.where(b == 0, -inf, a)
    exact = exact_logsumexp(clean, axis=-1)
    out, grad = logitloss.logsumexp(a, axis=-1, b=b, return_grad=True)
    assert_close_to_exact(out, exact.value, dtype, exact.scale)
    # a masked entry gets no gradient (in particular not 0 * inf = nan)
    assert np.isfinite(grad).all(), grad
    assert_close_to_exact(grad, exact.grad, dtype, exact.grad_scale, direction=GRADIENT, what="masked gradient")


@dtypes
def test_mask_above_the_maximum_does_not_shift(isa, dtype):
    """A b == 0 entry far above the others must not be used as the shift (its exp would underflow)."""
    a = np.array([1.0, 200.0 if dtype != np.float16 else 60000.0], dtype=dtype)
    out = logitloss.logsumexp(a, b=np.array([1, 0], dtype=dtype))
    assert out == 1.0
    a64 = np.array([1.0, 900.0], dtype=np.float64)
    assert logitloss.logsumexp(a64, b=np.array([1.0, 0.0])) == 1.0


@dtypes
def test_return_sign(isa, dtype):
    rng = np.random.default_rng(17)
    n = 23
    a = logits((6, n), dtype, seed=17, spread=2.0)
    b = rng.uniform(-1.0, 1.0, (6, n)).astype(dtype)
    b[0] = np.abs(b[0])  # positive total
    b[1] = -np.abs(b[1])  # negative total
    b[2, :] = 0  # nothing left: -inf, sign 0
    b[3, :] = 0
    a[3, :2] = 1.0
    b[3, :2] = [1.0, -1.0]  # exact cancellation: (-inf, 0)
    a[4, -1] = a[4].max() + 1  # tail maximum with a negative weight
    b[4, -1] = -2.0
    check_logsumexp(a, axis=-1, b=b, return_sign=True, what="return_sign")
    check_logsumexp(a, axis=-1, b=b, return_sign=False, what="negative total -> nan")
    out, sign = logitloss.logsumexp(a[3], b=b[3], return_sign=True)
    assert out == -inf and sign == 0.0
    check_logsumexp(a[0], b=b[0], return_sign=True, what="full reduction with sign")


# ---- weights beyond the kernels' range ---------------------------------------------------------
# The kernels hold weights scaled by 2^64 (float32) / 2^512 (float64): larger weights overflowed
# there (inf or nan where the exact value is finite), and weights near the bottom of the range made
# subnormal sums. The driver rescales such a row's weights by a power of two.

# Exponents E of the weights: above ~2^58 / ~2^506 overflowed, below ~2^-60 / ~2^-500 lost precision.
HUGE_EXPONENTS = {np.float32: (60, 64, 100, 126), np.float64: (507, 520, 800, 1022)}
TINY_EXPONENTS = {np.float32: (-70, -126, -140), np.float64: (-600, -1022, -1060)}
FLOAT32_64 = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)


def scaled_weights(shape, dtype, exponent, seed, *, negative=False):
    """Weights of magnitude in [0.5, 2) * 2^exponent (subnormal ones keep fewer bits), some
    negative if asked."""
    rng = np.random.default_rng(seed)
    b = np.ldexp(rng.uniform(0.5, 2.0, shape), exponent)
    if negative:
        b[..., 1::3] *= -0.25  # a positive total, with cancellation
    b = b.astype(dtype)
    assert np.isfinite(b).all() and (b != 0).all()
    return b


@FLOAT32_64
@pytest.mark.parametrize("side", ["huge", "tiny"])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [-1, 0, None], ids=repr)
def test_weights_beyond_the_kernel_range(isa, dtype, side, axis, keepdims):
    a = logits((5, 37), dtype, seed=61, spread=3.0)
    for exponent in (HUGE_EXPONENTS if side == "huge" else TINY_EXPONENTS)[dtype]:
        for negative in (False, True):
            b = scaled_weights(a.shape, dtype, exponent, seed=exponent + 2000, negative=negative)
            what = f"b ~ 2^{exponent} negative={negative} axis={axis} keepdims={keepdims}"
            check_logsumexp(a, axis=axis, b=b, keepdims=keepdims, what=what)
            check_logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=True, grad=False, what=what + " sign")
    # one weight per row (a column of b) and a scalar b broadcasting
    check_logsumexp(a, axis=-1, b=scaled_weights((5, 1), dtype, HUGE_EXPONENTS[dtype][-1], seed=3), what="column b")
    check_logsumexp(a, axis=None, b=dtype(np.ldexp(1.5, TINY_EXPONENTS[dtype][-1])), what="scalar b")


@FLOAT32_64
def test_subnormal_weight_at_the_largest_a(isa, dtype):
    """A subnormal weight on the largest a makes the total tiny: 1 / total overflowed the dtype and
    the gradient was inf / nan (float32 b = [1e-45, 1], a = [100, 0]: gradient [0.036, 0.964])."""
    tiny = float(np.finfo(dtype).smallest_subnormal) * 3
    far = 100.0 if dtype == np.float32 else 740.0
    a = np.array([[far, 0.0, -1.0, 2.0], [far, far - 1, 0.0, 1.0], [0.0, far, 1.0, -far]], dtype=dtype)
    b = np.array([[tiny, 1.0, 2.0, 0.5], [tiny, tiny * 4, 1.0, 1.0], [1.0, tiny, 0.0, 3.0]], dtype=dtype)
    check_logsumexp(a, axis=-1, b=b, what="subnormal weight at the max")
    check_logsumexp(a.T, axis=0, b=b.T, what="subnormal weight at the max, columns")
    check_logsumexp(a, axis=-1, b=b, return_sign=True, grad=False, what="subnormal weight at the max, sign")
    g = np.array([1.0, -2.0, 0.5], dtype=dtype)
    for result in (None, logitloss.logsumexp(a, axis=-1, b=b)):
        exact = exact_logsumexp(a, axis=-1, b=b, grad_output=g)
        got = logitloss.logsumexp_backward(g, a, axis=-1, b=b, result=result)
        assert_close_to_exact(got, exact.grad, dtype, exact.grad_scale, lo=exact.grad_lo, direction=GRADIENT,
                              what=f"logsumexp_backward result={result is not None}")


@FLOAT32_64
@pytest.mark.parametrize("n", [64, 4096, 5000])
def test_long_rows_of_weights_below_the_rescale_threshold(isa, dtype, n):
    """float64 lanes sum a whole chunk (2048 elements) before unscaling: 4096 weights of 2^500 once gave inf."""
    exponent = 56 if dtype == np.float32 else 500
    a = np.zeros((2, n), dtype=dtype)
    a[1, ::3] = -1.0
    for b in (np.full((2, n), 2.0**exponent, dtype), np.full((2, n), 2.0 ** (exponent - 20), dtype)):
        check_logsumexp(a, axis=-1, b=b, what=f"n={n} b={float(b[0, 0]):g}")


@FLOAT32_64
def test_weights_beyond_the_kernel_range_match_scipy(isa, dtype, scipy_special):
    """SciPy (in float64, or float128-free exact for float64 through the shift by log b) agrees."""
    a = logits((3, 19), dtype, seed=62)
    for exponent in HUGE_EXPONENTS[dtype] + TINY_EXPONENTS[dtype]:
        b = scaled_weights(a.shape, dtype, exponent, seed=7)
        # SciPy's own float64 sums overflow / go subnormal too: shift b to 1 and the result back.
        shift = float(exponent) * np.log(2.0)
        expected = scipy_special.logsumexp(a.astype(np.float64), axis=-1, b=np.ldexp(b.astype(np.float64), -exponent))
        got = logitloss.logsumexp(a, axis=-1, b=b)
        assert np.isfinite(got).all(), (exponent, got)
        np.testing.assert_allclose(got, expected + shift, rtol=8 * np.finfo(dtype).eps, atol=0, err_msg=str(exponent))


def test_float16_input_with_huge_float32_weights(isa):
    a = logits((4, 21), np.float16, seed=63)
    b = scaled_weights(a.shape, np.float32, 100, seed=8)
    out, grad = check_logsumexp(a, axis=-1, b=b, what="float16 a, float32 b ~ 2^100")[0]
    assert out.dtype == np.float32 and grad.dtype == np.float32


@FLOAT32_64
def test_weights_spanning_the_whole_format(isa, dtype):
    """Weights from the top to the bottom of the format in one row: rescaling the largest into
    range would round the smallest, which may still dominate (a far larger a)."""
    top, bottom, far = {np.float32: (127, -140, 300.0), np.float64: (1023, -1074, 2000.0)}[dtype]
    a = np.array([[0.0, far, 1.0], [0.0, -far, 1.0], [far, 0.0, far - 1]], dtype=dtype)
    b = np.array([[2.0**top, 2.0**bottom, 3.0], [2.0**top, 2.0**bottom, -1.0], [2.0**bottom, 2.0**top, -(2.0**bottom)]])
    b = b.astype(dtype)
    check_logsumexp(a, axis=-1, b=b, what="weights spanning the format")
    check_logsumexp(a, axis=-1, b=b, return_sign=True, grad=False, what="weights spanning the format, sign")
    check_logsumexp(a.T, axis=0, b=b.T, what="weights spanning the format, columns")


# ---- extreme and special values ----------------------------------------------------------------


@dtypes
@pytest.mark.parametrize("n", [1, 16, 33, 129])
def test_extreme_finite_values(isa, dtype, n):
    a = extreme_finite_rows(dtype, n)
    check_logsumexp(a, axis=-1, grad=True, what="extreme rows")
    check_logsumexp(a[:, ::-1], axis=-1, grad=False, what="extreme rows reversed")


@dtypes
@pytest.mark.parametrize("n", [1, 2, 17, 64])
def test_special_values(isa, dtype, n):
    def lse(row):
        return logitloss.logsumexp(np.array(row, dtype=dtype))

    pad = [-1.0] * (n - 1)
    assert lse([-inf] * n) == -inf
    out, sign = logitloss.logsumexp(np.full(n, -inf, dtype=dtype), return_sign=True)
    assert out == -inf and sign == 0.0
    assert lse(pad + [inf]) == inf
    assert lse([inf] + pad) == inf
    assert np.isnan(lse(pad + [nan]))
    assert np.isnan(lse([nan] + pad))
    assert np.isnan(lse([nan] + [-inf] * (n - 1)))
    if n > 1:
        assert np.isnan(lse(pad[:-1] + [inf, nan]))
        assert np.isnan(lse(pad[:-1] + [nan, inf]))
        assert lse([-inf] * (n - 1) + [inf]) == inf
        assert np.isnan(lse([inf] + [nan] * (n - 1)))
    # the all -inf row's gradient is nan (torch / JAX parity, docs/semantics.md)
    _, grad = logitloss.logsumexp(np.full((2, n), -inf, dtype=dtype), axis=-1, return_grad=True)
    assert np.isnan(grad).all()


SPECIAL = [-inf, -1.0, 0.0, 2.0, inf, nan]
WEIGHTS = [None, (1, 1), (0, 1), (1, 0), (-1, 1), (1, -1), (2, -1), (0, 0)]


@pytest.mark.parametrize("padded", [False, True], ids=["len2", "len19"])
def test_special_value_table_matches_scipy(isa, padded, scipy_special):
    """Every pair from {-inf, -1, 0, 2, inf, nan} x weights, value and sign, against SciPy.

    Expected values come from SciPy applied after the rule of docs/semantics.md "where b == 0 the entry adds
    nothing, even if a there is inf or nan" (SciPy 1.17 itself returns nan for e.g.
    ``logsumexp([inf, inf], b=[0, 1])``: the rule is what we match).  ``padded`` puts the pair
    into a 19-long row of -inf entries (which add nothing) so it goes through the SIMD body and tail.
    """
    failures = []
    for x, y in itertools.product(SPECIAL, SPECIAL):
        for weights in WEIGHTS:
            a = np.array([x, y])
            b = None if weights is None else np.array(weights, dtype=np.float64)
            a_rule = a if b is None else np.where(b == 0, 0.0, a)
            if padded:
                a = np.concatenate([np.full(9, -inf), a[:1], np.full(8, -inf), a[1:]])
                a_rule = np.concatenate([np.full(9, -inf), a_rule[:1], np.full(8, -inf), a_rule[1:]])
                if b is not None:
                    b = np.concatenate([np.ones(9), b[:1], np.ones(8), b[1:]])
            for return_sign in (False, True):
                expected = scipy_call(scipy_special.logsumexp, a_rule, b=b, return_sign=return_sign)
                got = logitloss.logsumexp(a, b=b, return_sign=return_sign)
                expected = expected if return_sign else (expected,)
                got = got if return_sign else (got,)
                for e, g, label in zip(expected, got, ("value", "sign")):
                    ok = (np.isnan(e) and np.isnan(g)) or (e == g) or (
                        np.isfinite(e) and abs(float(g) - float(e)) <= 8 * 2.0**-52 * (abs(float(e)) + 4)
                    )
                    if not ok:
                        failures.append(f"a={[x, y]} b={weights} return_sign={return_sign}: {label} {g!r}, SciPy {e!r}")
    assert not failures, f"{len(failures)} mismatches:\n" + "\n".join(failures[:40])


@dtypes
def test_scipy_documented_values(isa, dtype):
    # SciPy's own test: the max term is pulled out and the rest summed through log1p
    a = np.array([0, -40], dtype=dtype)
    out = logitloss.logsumexp(a)
    exact = exact_logsumexp(a)
    assert_close_to_exact(out, exact.value, dtype, exact.scale, lo=exact.lo)
    if dtype != np.float16:
        assert abs(float(out) - 4.248354255291589e-18) <= 4 * np.finfo(dtype).eps * 4.25e-18
    else:  # 4.2e-18 is below float16's range: the correctly rounded result is 0
        assert out == 0
    a = np.array([0, 0, -1], dtype=dtype)
    out = logitloss.logsumexp(a)
    exact = exact_logsumexp(a)
    assert_close_to_exact(out, exact.value, dtype, exact.scale, lo=exact.lo)
    assert abs(float(out) - 0.861995) < 5e-4
    # exact and negative results with b
    out, sign = logitloss.logsumexp(np.array([1, 2], dtype=dtype), b=np.array([-1, 0.5], dtype=dtype), return_sign=True)
    exact = exact_logsumexp(np.array([1, 2], dtype=dtype), b=np.array([-1, 0.5], dtype=dtype))
    assert_close_to_exact(out, exact.value, dtype, exact.scale)
    assert sign == 1.0
    assert np.isnan(logitloss.logsumexp(np.array([1, 2], dtype=dtype), b=np.array([1, -1], dtype=dtype)))
    # +inf with a negative weight: nan, or (inf, -1) with the sign
    assert np.isnan(logitloss.logsumexp(np.array([inf, 1], dtype=dtype), b=np.array([-1, 1], dtype=dtype)))
    out, sign = logitloss.logsumexp(np.array([inf, 1], dtype=dtype), b=np.array([-1, 1], dtype=dtype), return_sign=True)
    assert out == inf and sign == -1.0


@dtypes
def test_empty_reductions(isa, dtype, scipy_special):
    cases = [
        (np.zeros(0, dtype), None, False),
        (np.zeros((2, 0), dtype), 1, False),
        (np.zeros((2, 0), dtype), 1, True),
        (np.zeros((0, 3), dtype), 1, False),
        (np.zeros((0, 3), dtype), 0, False),
        (np.zeros((0, 3), dtype), 0, True),
        (np.zeros((2, 0, 3), dtype), (1, 2), False),
        (np.zeros((2, 0), dtype), None, False),
    ]
    for a, axis, keepdims in cases:
        label = f"shape={a.shape} axis={axis} keepdims={keepdims}"
        # -inf of the reduced shape, sign -1.0 (SciPy's; SciPy 1.17 itself raises IndexError for a
        # tuple axis or axis=None on an empty N-d array, so the expectation is spelled out here)
        shape = np.sum(a, axis=axis, keepdims=keepdims).shape
        if shape == ():
            expected, expected_sign = np.dtype(dtype).type(-inf), np.dtype(dtype).type(-1.0)
        else:
            expected, expected_sign = np.full(shape, -inf, dtype=dtype), np.full(shape, -1.0, dtype=dtype)
        if a.ndim == 1 or isinstance(axis, int):  # where SciPy works, it agrees
            theirs = scipy_call(scipy_special.logsumexp, a, axis=axis, keepdims=keepdims, return_sign=True)
            assert_same_kind(expected, theirs[0], label + " (SciPy)")
            np.testing.assert_array_equal(expected_sign, theirs[1])
        out, sign = logitloss.logsumexp(a, axis=axis, keepdims=keepdims, return_sign=True)
        assert_same_kind(out, expected, label)
        assert_same_kind(sign, expected_sign, label + " sign")
        np.testing.assert_array_equal(out, expected, err_msg=label)
        np.testing.assert_array_equal(sign, expected_sign, err_msg=label + " sign (-1.0 for empty, as SciPy)")
        out = logitloss.logsumexp(a, axis=axis, keepdims=keepdims)
        np.testing.assert_array_equal(out, expected, err_msg=label)


# ---- dtypes and return types ------------------------------------------------------------------

PROMOTIONS = [
    (np.float16, None),
    (np.float32, None),
    (np.float64, None),
    (np.int8, None),
    (np.int32, None),
    (np.int64, None),
    (np.uint8, None),
    (np.bool_, None),
    (np.float32, np.float64),
    (np.float32, np.int64),
    (np.float16, np.float32),
    (np.float32, np.float16),
    (np.int32, np.float32),
    (np.float16, np.int8),
    (np.bool_, np.float32),
]


@pytest.mark.parametrize("a_dtype,b_dtype", PROMOTIONS, ids=lambda d: "none" if d is None else np.dtype(d).name)
def test_result_dtype_and_type(isa, a_dtype, b_dtype, scipy_special):
    rng = np.random.default_rng(1)
    if np.dtype(a_dtype) == np.bool_:
        a = rng.random((3, 9)) < 0.5
    elif np.issubdtype(a_dtype, np.unsignedinteger):
        a = rng.integers(0, 5, (3, 9)).astype(a_dtype)
    elif np.issubdtype(a_dtype, np.integer):
        a = rng.integers(-3, 4, (3, 9)).astype(a_dtype)
    else:
        a = logits((3, 9), a_dtype, seed=1)
    b = None
    if b_dtype is not None:
        b = (rng.random(9) < 0.7) if np.dtype(b_dtype) == np.bool_ else rng.integers(1, 4, 9).astype(b_dtype)
    for axis, keepdims in [(None, False), (-1, False), (0, True), (None, True), ((0, 1), False)]:
        for return_sign in (False, True):
            expected = scipy_call(
                scipy_special.logsumexp, a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign
            )
            got = logitloss.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign)
            if return_sign:
                assert isinstance(got, tuple) and len(got) == 2
                assert_same_kind(got[0], expected[0], f"axis={axis} keepdims={keepdims} value")
                assert_same_kind(got[1], expected[1], f"axis={axis} keepdims={keepdims} sign")
            else:
                assert_same_kind(got, expected, f"axis={axis} keepdims={keepdims}")
        check_logsumexp(a, axis=axis, b=b, keepdims=keepdims, what=f"{a_dtype}/{b_dtype} axis={axis}")


def test_zero_d_and_python_inputs(isa, scipy_special):
    for value in (np.float32(3.0), np.float16(-2.0), np.float64(1.5), 3, 2.5, True, np.int64(4)):
        expected = scipy_call(scipy_special.logsumexp, value)
        got = logitloss.logsumexp(value)
        assert_same_kind(got, expected, f"0-d {value!r}")
        assert got == expected
        got, grad = logitloss.logsumexp(value, return_grad=True)
        assert np.shape(grad) == () and grad == 1.0
    for value in ([1.0, 2.0, 3.0], [[1, 2], [3, 4]], (0.5, -0.5)):
        expected = scipy_call(scipy_special.logsumexp, value)
        got = logitloss.logsumexp(value)
        assert_same_kind(got, expected, f"list {value!r}")
        assert_close_to_exact(got, exact_logsumexp(np.asarray(value)).value, np.float64)
    got = logitloss.logsumexp(np.float32(3.0), axis=())
    assert np.asarray(got).dtype == np.float32 and got == 3.0


# ---- gradient (return_grad) --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
@pytest.mark.parametrize("axis", [-1, 0, None, (0, 2)], ids=repr)
def test_return_grad_matches_finite_differences(isa, dtype, axis):
    """The gradient agrees with central differences of our own float64 forward.

    Central differences with step h have truncation error <= h**2/6 * max|d3 lse| <= h**2/60
    (|p (1 - p) (1 - 2p)| <= 0.1) and rounding error <= 2 * 4 eps * S / (2 h) in float64: the
    tolerance below is exactly that sum, plus the gradient's own table budget.
    """
    a = logits((3, 4, 5), dtype, seed=99, spread=1.5)
    b = np.random.default_rng(99).uniform(0.5, 2.0, a.shape)
    for weights in (None, b):
        _, grad = logitloss.logsumexp(a, axis=axis, b=weights, return_grad=True)
        a64 = a.astype(np.float64)
        h = 2.0**-17
        flat_eye = np.eye(a.size).reshape((a.size,) + a.shape)
        shifted_axis = (
            None if axis is None else tuple(x + 1 if x >= 0 else x for x in ((axis,) if np.isscalar(axis) else axis))
        )
        batch_axis = tuple(range(1, a.ndim + 1)) if axis is None else shifted_axis
        plus = logitloss.logsumexp(a64[None] + h * flat_eye, axis=batch_axis, b=weights, keepdims=True)
        minus = logitloss.logsumexp(a64[None] - h * flat_eye, axis=batch_axis, b=weights, keepdims=True)
        # element k of the batch perturbs a.flat[k]: its own reduction slot holds d out / d a.flat[k]
        difference = (plus - minus) / (2 * h)
        difference = np.broadcast_to(difference, (a.size,) + a.shape).reshape(a.size, a.size)
        fd = np.diagonal(difference).reshape(a.shape)
        exact = exact_logsumexp(a64, axis=axis, b=weights)
        scale_value = np.abs(exact.value).max() + np.abs(exact.scale).max()
        fd_error = h**2 / 60 + 8 * 2.0**-52 * scale_value / (2 * h)
        allowed = fd_error + tolerance(dtype, exact.grad, exact.grad_scale, GRADIENT)
        np.testing.assert_array_less(np.abs(grad.astype(np.float64) - fd), allowed)


@dtypes
def test_return_grad_with_sign_and_negative_b(isa, dtype):
    a = logits((5, 19), dtype, seed=4)
    b = np.random.default_rng(4).uniform(-1, 1, (5, 19)).astype(dtype)
    check_logsumexp(a, axis=-1, b=b, return_sign=True, grad=True, what="grad of log|s|")
    check_logsumexp(a, axis=-1, b=np.abs(b), return_sign=False, grad=True, what="grad with b")


# ---- threads, ISAs, references ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
def test_threads_bitwise_identical(isa, dtype, restore_threads):
    wide = logits((64, 50000), dtype, seed=64)
    long_row = logits(3_000_000, dtype, seed=3)
    results = {}
    for threads in (1, 2):
        logitloss.set_num_threads(threads)
        assert logitloss.get_num_threads() == threads
        results[threads] = (
            logitloss.logsumexp(wide, axis=-1, return_grad=True),
            logitloss.logsumexp(wide, axis=0),
            logitloss.logsumexp(long_row),
            logitloss.logsumexp(long_row, b=np.float64(0.5) if dtype == np.float64 else np.float32(0.5)),
        )
    for k, (one, two) in enumerate(zip(results[1], results[2])):
        one = one if isinstance(one, tuple) else (one,)
        two = two if isinstance(two, tuple) else (two,)
        for x, y in zip(one, two):
            assert same_bits(x, y), f"result {k} differs between 1 and 2 threads"


def test_isas_agree():
    """Every target within the table's budget of every other (each within its budget of exact)."""
    for dtype in FLOAT_DTYPES:
        vocab = logits((1 if dtype == np.float64 else 2, 50257), dtype, seed=50257)  # as test_vocabulary_widths
        for a in (tricky_rows(129, dtype, seed=129), vocab):
            exact = exact_logsumexp(a, axis=-1)
            tol = tolerance(dtype, exact.value, exact.scale)
            results = {}
            for name in SUPPORTED_ISAS:
                with logitloss.use_isa(name):
                    results[name] = logitloss.logsumexp(a, axis=-1).astype(np.float64)
            for x, y in itertools.combinations(SUPPORTED_ISAS, 2):
                diff = np.abs(results[x] - results[y])
                finite = np.isfinite(exact.value)
                assert np.all(diff[finite] <= 2 * tol[finite]), f"{x} vs {y} ({dtype}): {diff.max():.3e}"


def test_reference_paths_agree():
    """The float64-with-care reference and the mpmath one agree to ~1e-15 relative of the scale."""
    for n in (7, 129, 1000):
        a = tricky_rows(n, np.float32, seed=n)
        b = np.random.default_rng(n).uniform(-1, 2, a.shape).astype(np.float32)
        for weights in (None, b):
            fast = exact_logsumexp(a, axis=-1, b=weights)
            weights64 = None if weights is None else weights.astype(np.float64)
            exact = exact_logsumexp(a.astype(np.float64), axis=-1, b=weights64)
            finite = np.isfinite(exact.value)
            assert np.all(np.abs(fast.value - exact.value - exact.lo)[finite] <= 1e-14 * exact.scale[finite])
            ok = np.isfinite(exact.grad)
            assert np.all(np.abs(fast.grad - exact.grad)[ok] <= 1e-14 * exact.grad_scale[ok])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shape", [(4, 1000), (2, 32000), (7, 33)], ids=str)
def test_parity_with_torch(isa, dtype, shape, torch):
    a = logits(shape, dtype, seed=shape[1])
    a[0, : shape[1] // 3] = -inf
    exact = exact_logsumexp(a, axis=-1)
    theirs = torch.logsumexp(torch.from_numpy(a), dim=-1).numpy()
    ours = logitloss.logsumexp(a, axis=-1)
    assert_close_to_library(ours, theirs, exact.value, exact.scale, dtype, library="torch")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
def test_parity_with_scipy(isa, dtype, scipy_special):
    a = logits((5, 700), dtype, seed=8)
    b = np.random.default_rng(8).uniform(0, 2, a.shape).astype(dtype)
    for axis in (-1, 0, None):
        for weights in (None, b):
            exact = exact_logsumexp(a, axis=axis, b=weights)
            theirs = scipy_call(scipy_special.logsumexp, a, axis=axis, b=weights)
            ours = logitloss.logsumexp(a, axis=axis, b=weights)
            assert_same_kind(ours, theirs, f"axis={axis}")
            assert_close_to_library(ours, theirs, exact.value, exact.scale, dtype, library="scipy")


def test_inputs_not_modified(isa):
    a = logits((3, 33), np.float32, seed=2)
    a[0, 5] = inf
    b = np.random.default_rng(2).uniform(-1, 1, (3, 33)).astype(np.float32)
    b[0, 5] = 0
    a_before, b_before = a.copy(), b.copy()
    logitloss.logsumexp(a, axis=-1, b=b, return_sign=True, return_grad=True)
    logitloss.logsumexp(a, b=b, return_sign=True, return_grad=True)
    assert same_bits(a, a_before) and same_bits(b, b_before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
def test_column_max_moving_down_the_rows(isa, dtype, scipy_special):
    """axis=0 (the column kernel): columns whose max keeps rising past the first rows, rises once
    late, or is nan / +inf there, so the running max moves after the column's sums are already
    widened (the kernel's rescale path), for rows of 9..2100 columns (one and two tiles)."""
    rng = np.random.default_rng(7)
    for rows, columns in [(700, 40), (300, 2100), (1000, 9)]:
        x = rng.standard_normal((rows, columns)).astype(dtype)
        x[:, 0] = np.linspace(-30, 30, rows)  # rises in every row
        x[:, 1] = np.linspace(30, -30, rows)  # falls: the first rows hold the max
        x[rows - 3, 2] = 50.0  # one late rise
        x[:, 4] = -np.inf
        x[rows // 2 :, 4] = 1.0  # -inf, then finite from the middle down
        x[: rows // 2, 6] = -np.inf
        x[rows - 5, columns - 1] = 20.0  # in the last (partial) vector
        check_logsumexp(x, axis=0, what=f"columns {rows}x{columns}")
        for name in ("softmax", "log_softmax"):
            check_softmax(x, axis=0, log=name == "log_softmax", what=f"{name} columns {rows}x{columns}")
        # A late nan or +inf: nan and inf (SciPy), and no other column changes.
        before = logitloss.logsumexp(x, axis=0)
        x[rows - 2, 3] = np.nan
        x[rows - 1, 5] = np.inf
        got = logitloss.logsumexp(x, axis=0)
        expected = scipy_call(scipy_special.logsumexp, x, axis=0)
        assert np.isnan(got[3]) and np.isnan(expected[3]) and got[5] == expected[5] == np.inf
        others = np.ones(columns, bool)
        others[[3, 5]] = False
        assert same_bits(got[others], before[others])
