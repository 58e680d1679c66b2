"""softmax and log_softmax: SciPy's semantics, accuracy against the exact reference, every ISA."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import logitloss
from logitloss.testing.inputs import (
    FLOAT_DTYPES,
    VECTOR_WIDTH_SIZES,
    VOCAB_SIZES,
    extreme_finite_rows,
    logits,
    masked_block_rows,
    strided_views,
    tricky_rows,
)
from logitloss.testing.softmax_family import softmax as exact_softmax
from logitloss.testing.tolerances import tolerance

from .helpers.assertions import (
    assert_close_to_exact,
    assert_close_to_library,
    assert_same_kind,
    same_bits,
    scipy_call,
)
from .helpers.isas import SUPPORTED_ISAS
from .helpers.marks import dtype_id, dtypes
from .helpers.softmax_family_checks import check_softmax

inf = np.inf
nan = np.nan

both = pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])


def name_of(log):
    return "log_softmax" if log else "softmax"


# ---- sizes and layouts ----------------------------------------------------------------------


@both
@dtypes
@pytest.mark.parametrize("n", VECTOR_WIDTH_SIZES)
def test_vector_width_sizes(isa, dtype, n, log):
    x = tricky_rows(n, dtype, seed=n)
    check_softmax(x, axis=-1, log=log, what=f"{name_of(log)} rows n={n}")
    check_softmax(x, axis=None, log=log, what=f"{name_of(log)} all n={n}")
    check_softmax(x.T, axis=0, log=log, what=f"{name_of(log)} columns n={n}")


@dtypes
@pytest.mark.parametrize("n", [1, 3, 10, 17, 33, 256, 257])
def test_short_rows_in_batches(isa, dtype, n, scipy_special):
    # log_softmax batches rows up to 256 long (statistics, then their logs in vector lanes, 64
    # rows at a time): rows of every kind side by side within a batch and across batches.
    kinds = tricky_rows(n, dtype, seed=200 + n)
    a = np.concatenate([np.tile(kinds, (27, 1)), np.tile(kinds[::-1], (5, 1))])
    for log in (False, True):
        check_softmax(a, axis=-1, log=log, what=f"short rows n={n}")
        check_softmax(a.T, axis=0, log=log, what=f"short columns n={n}")
    # nan, +inf and all -inf rows in the same batches: SciPy's rules, the other rows unchanged
    b = a.copy()
    b[5::7, 0] = nan
    b[3::7, -1] = inf
    b[6::7] = -inf
    out = logitloss.log_softmax(b, axis=-1)
    expected = scipy_call(scipy_special.log_softmax, b.astype(np.float64), axis=-1).astype(b.dtype)
    special = np.zeros(len(b), dtype=bool)
    special[5::7] = special[3::7] = special[6::7] = True
    np.testing.assert_array_equal(np.isnan(out[special]), np.isnan(expected[special]))
    np.testing.assert_array_equal(out[special][~np.isnan(out[special])], expected[special][~np.isnan(expected[special])])
    np.testing.assert_array_equal(out[~special], logitloss.log_softmax(a[~special], axis=-1))


@both
@dtypes
@pytest.mark.parametrize("n", VOCAB_SIZES)
def test_vocabulary_widths(isa, dtype, n, log):
    rows = 1 if dtype == np.float64 else 2
    x = logits((rows, n), dtype, seed=n, spread=3.0)  # the same inputs as test_logsumexp (cached reference)
    check_softmax(x, axis=-1, log=log, what=f"{name_of(log)} vocab {n}")


@both
@dtypes
@pytest.mark.parametrize("n", [5000, 20000])
def test_long_rows_with_masked_blocks(isa, dtype, n, log):
    x = masked_block_rows(n, dtype, seed=n)
    check_softmax(x, axis=-1, log=log, what=f"{name_of(log)} masked blocks n={n}")
    check_softmax(x[0], axis=None, log=log, what=f"{name_of(log)} masked prefix, one row")


@both
@dtypes
def test_odd_shape(isa, dtype, log):
    x = logits((3, 5, 423), dtype, seed=423)
    check_softmax(x, axis=-1, log=log)
    check_softmax(x, axis=1, log=log)


AXES = [None, 0, 1, 2, -1, -3, (0,), (2, 0), (-1, 0), (0, 1), (1, 2), (0, 1, 2)]


@both
@dtypes
@pytest.mark.parametrize("axis", AXES, ids=repr)
def test_axes(isa, dtype, axis, log, scipy_special):
    x = logits((3, 4, 5), dtype, seed=11)
    x[1, 2, :] = -inf
    x[0, :, 3] = -inf
    out, _ = check_softmax(x, axis=axis, log=log, what=f"{name_of(log)} axis={axis}")
    expected = scipy_call(getattr(scipy_special, name_of(log)), x, axis=axis)
    assert_same_kind(out, expected, f"{name_of(log)} axis={axis}")


def test_default_axis_is_all_elements(isa):
    x = logits((4, 6), np.float32, seed=6)
    np.testing.assert_array_equal(logitloss.softmax(x), logitloss.softmax(x, axis=None))
    np.testing.assert_array_equal(logitloss.log_softmax(x), logitloss.log_softmax(x, axis=None))
    assert abs(float(logitloss.softmax(x).astype(np.float64).sum()) - 1.0) < 1e-5


@both
@dtypes
@pytest.mark.parametrize("view", list(strided_views(np.zeros((2, 2)))))
def test_strided_views(isa, dtype, view, log):
    base = logits((6, 67), dtype, seed=67)
    base[2, ::5] = -inf
    x, axis = strided_views(base)[view]
    before = x.copy()
    out, _ = check_softmax(x, axis=axis, log=log, what=f"{name_of(log)} {view}")
    assert out.dtype == np.dtype(dtype)
    assert out.flags.writeable
    assert same_bits(x, before), "input modified"
    check_softmax(x, axis=None, log=log, what=f"{name_of(log)} {view} axis=None")


# ---- extreme and special values ----------------------------------------------------------------


@both
@dtypes
@pytest.mark.parametrize("n", [1, 16, 33, 129])
def test_extreme_finite_values(isa, dtype, n, log):
    x = extreme_finite_rows(dtype, n)
    check_softmax(x, axis=-1, log=log, what=f"{name_of(log)} extreme rows")
    check_softmax(x[:, ::-1], axis=-1, log=log, what=f"{name_of(log)} extreme rows reversed")


@dtypes
@pytest.mark.parametrize("n", [2, 17, 64])
def test_special_values(isa, dtype, n):
    def row(*tail):
        return np.array([-1.0] * (n - len(tail)) + list(tail), dtype=dtype)

    def softmax(v):
        return logitloss.softmax(np.asarray(v, dtype=dtype))

    def log_softmax(v):
        return logitloss.log_softmax(np.asarray(v, dtype=dtype))

    assert np.isnan(softmax(np.full(n, -inf))).all()
    assert np.isnan(log_softmax(np.full(n, -inf))).all()
    assert np.isnan(softmax(row(inf))).all()  # any +inf: all nan
    assert np.isnan(softmax(row(inf, 0.5))).all()
    assert np.isnan(softmax(row(nan))).all()
    assert np.isnan(log_softmax(row(nan))).all()
    # log_softmax([inf, 1]) == [nan, -inf]; [-inf, 0] == [-inf, 0]
    np.testing.assert_array_equal(log_softmax([inf, 1.0]), np.array([nan, -inf], dtype=dtype))
    np.testing.assert_array_equal(log_softmax([-inf, 0.0]), np.array([-inf, 0.0], dtype=dtype))
    np.testing.assert_array_equal(softmax([-inf, 0.0]), np.array([0.0, 1.0], dtype=dtype))
    out = log_softmax(row(inf))
    assert np.isnan(out[-1]) and (out[:-1] == -inf).all()
    # a single finite entry among -inf: softmax exactly one-hot, log_softmax exactly [.., 0, ..]
    x = np.full(n, -inf, dtype=dtype)
    x[n // 2] = 3.0
    np.testing.assert_array_equal(softmax(x), (np.arange(n) == n // 2).astype(dtype))
    np.testing.assert_array_equal(log_softmax(x), np.where(np.arange(n) == n // 2, 0.0, -inf).astype(dtype))


SPECIAL = [-inf, -1.0, 0.0, 2.0, inf, nan]


@both
@pytest.mark.parametrize("padded", [False, True], ids=["len2", "len19"])
def test_special_value_table_matches_scipy(isa, log, padded, scipy_special):
    """Every pair from {-inf, -1, 0, 2, inf, nan} against SciPy, alone or inside a 19-long row of
    -inf entries (softmax 0, log_softmax -inf there) so it goes through the SIMD body and tail."""
    func = getattr(scipy_special, name_of(log))
    failures = []
    for x, y in itertools.product(SPECIAL, SPECIAL):
        v = np.array([x, y])
        if padded:
            v = np.concatenate([np.full(9, -inf), v[:1], np.full(8, -inf), v[1:]])
        expected = scipy_call(func, v)
        got = getattr(logitloss, name_of(log))(v)
        same_nan = np.isnan(expected) == np.isnan(got)
        finite = np.isfinite(expected)
        with np.errstate(invalid="ignore"):  # inf - inf where both are infinite
            close = np.abs(got - expected) <= 8 * 2.0**-52 * (np.abs(expected) + 4)
        ok = same_nan & np.where(finite, close, (got == expected) | np.isnan(expected))
        if not ok.all():
            failures.append(f"x={[x, y]}: got {got[ok == 0]}, SciPy {expected[ok == 0]}")
    assert not failures, f"{len(failures)} mismatches:\n" + "\n".join(failures[:40])


@dtypes
def test_documented_values(isa, dtype):
    x = np.array([0, -40], dtype=dtype)
    out = logitloss.log_softmax(x)
    exact = exact_softmax(x)
    assert_close_to_exact(out, exact.log_softmax, dtype, exact.log_softmax_scale, lo=exact.log_softmax_lo)
    if dtype != np.float16:  # the exact value -4.2e-18 (SciPy's 0 is allowed only as less exact: docs/semantics.md)
        assert out[0] < 0
    p = logitloss.softmax(np.array([0, 0, -1], dtype=dtype))
    exact = exact_softmax(np.array([0, 0, -1], dtype=dtype))
    assert_close_to_exact(p, exact.softmax, dtype, exact.softmax_scale, lo=exact.softmax_lo)


@both
@dtypes
def test_empty_array_with_nonempty_axis(isa, dtype, log, scipy_special):
    for shape, axis in [((0, 5), 1), ((2, 0), 0), ((0, 3, 2), (1, 2))]:
        x = np.zeros(shape, dtype=dtype)
        expected = scipy_call(getattr(scipy_special, name_of(log)), x, axis=axis)
        got = getattr(logitloss, name_of(log))(x, axis=axis)
        assert_same_kind(got, expected, f"shape={shape} axis={axis}")


# ---- dtypes, return types, out= ------------------------------------------------------------------


@both
@pytest.mark.parametrize(
    "dtype", [np.float16, np.float32, np.float64, np.int8, np.int32, np.int64, np.uint8], ids=dtype_id
)
def test_result_dtype_and_type(isa, dtype, log, scipy_special):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 5, (3, 9)).astype(dtype) if np.issubdtype(dtype, np.integer) else logits((3, 9), dtype, seed=3)
    func = getattr(logitloss, name_of(log))
    reference_func = getattr(scipy_special, name_of(log))
    # docs/semantics.md: integers compute and return float64.  (SciPy 1.17 returns float16 for int8 /
    # uint8 and float32 for int16, an accident of numpy's exp on small integers: not matched.)
    as_float = x.astype(np.float64) if np.issubdtype(dtype, np.integer) else x
    for axis in (None, -1, 0, (0, 1)):
        expected = scipy_call(reference_func, as_float, axis=axis)
        got = func(x, axis=axis)
        assert_same_kind(got, expected, f"{dtype_id(dtype)} axis={axis}")
        check_softmax(x, axis=axis, log=log)
    for value in (dtype(2), x[0, 0]):
        expected = scipy_call(reference_func, as_float.dtype.type(value))
        got = func(value)
        assert_same_kind(got, expected, f"0-d {value!r}")
        assert got == expected  # softmax of one element: exactly 1 (log: 0)
    got = func([1.0, 2.0, 3.0])
    assert_same_kind(got, scipy_call(reference_func, [1.0, 2.0, 3.0]), "list input")


@both
@dtypes
def test_out_parameter(isa, dtype, log):
    func = getattr(logitloss, name_of(log))
    x = logits((5, 37), dtype, seed=37)
    expected = func(x, axis=-1)
    out = np.full_like(x, 7.0)
    result = func(x, axis=-1, out=out)
    assert result is out, "out= must be returned"
    assert same_bits(out, expected), "out= result differs from the allocating call"
    # axis=None and a tuple axis with out=
    out = np.empty_like(x)
    assert func(x, axis=None, out=out) is out
    assert same_bits(out, func(x, axis=None))
    # a non-contiguous out (a column slice): either written correctly, or refused naming out
    big = np.full((5, 74), 7.0, dtype=dtype)
    view = big[:, ::2]
    try:
        result = func(x, axis=-1, out=view)
    except ValueError as exc:
        assert "out" in str(exc)
    else:
        assert result is view
        assert same_bits(np.ascontiguousarray(view), expected)
        assert (big[:, 1::2] == 7.0).all(), "wrote outside the out= view"
    # integer input: the result (and out) is float64
    xi = np.arange(12, dtype=np.int32).reshape(3, 4)
    out = np.empty((3, 4), dtype=np.float64)
    assert func(xi, axis=-1, out=out) is out
    assert same_bits(out, func(xi, axis=-1))


# ---- threads, ISAs, references ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
def test_threads_bitwise_identical(isa, dtype, restore_threads):
    wide = logits((64, 50000), dtype, seed=64)
    long_row = logits(3_000_000, dtype, seed=3)
    results = {}
    for threads in (1, 2):
        logitloss.set_num_threads(threads)
        results[threads] = [
            logitloss.softmax(wide, axis=-1),
            logitloss.log_softmax(wide, axis=-1),
            logitloss.softmax(wide, axis=0),
            logitloss.softmax(long_row),
            logitloss.log_softmax(long_row, axis=None),
        ]
    for k, (one, two) in enumerate(zip(results[1], results[2])):
        assert same_bits(one, two), f"result {k} differs between 1 and 2 threads"


@both
def test_isas_agree(log):
    for dtype in FLOAT_DTYPES:
        vocab = logits((1 if dtype == np.float64 else 2, 50257), dtype, seed=50257)
        for x in (tricky_rows(129, dtype, seed=129), vocab):
            exact = exact_softmax(x, axis=-1)
            value, scale = (exact.log_softmax, exact.log_softmax_scale) if log else (exact.softmax, exact.softmax_scale)
            tol = tolerance(dtype, value, scale)
            results = {}
            for name in SUPPORTED_ISAS:
                with logitloss.use_isa(name):
                    results[name] = getattr(logitloss, name_of(log))(x, axis=-1).astype(np.float64)
            finite = np.isfinite(value)
            for a, b in itertools.combinations(SUPPORTED_ISAS, 2):
                with np.errstate(invalid="ignore"):  # -inf - -inf outside `finite`
                    diff = np.abs(results[a] - results[b])[finite]
                assert np.all(diff <= 2 * tol[finite]), f"{a} vs {b} ({dtype_id(dtype)}): {diff.max():.3e}"


@both
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shape", [(4, 1000), (2, 32000), (7, 33)], ids=str)
def test_parity_with_torch(isa, dtype, shape, log, torch):
    x = logits(shape, dtype, seed=shape[1])
    x[0, : shape[1] // 3] = -inf
    exact = exact_softmax(x, axis=-1)
    t = torch.from_numpy(x)
    if log:
        theirs = torch.log_softmax(t, dim=-1).numpy()
        value, scale, extra = exact.log_softmax, exact.log_softmax_scale, 1.0
    else:
        theirs = torch.softmax(t, dim=-1).numpy()
        value, scale, extra = exact.softmax, exact.softmax_scale, np.abs(exact.softmax)
    ours = getattr(logitloss, name_of(log))(x, axis=-1)
    assert_close_to_library(ours, theirs, value, scale, dtype, library="torch", extra_scale=extra)


@both
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
def test_parity_with_scipy(isa, dtype, log, scipy_special):
    x = logits((5, 700), dtype, seed=8)
    for axis in (-1, 0, None):
        exact = exact_softmax(x, axis=axis)
        theirs = scipy_call(getattr(scipy_special, name_of(log)), x, axis=axis)
        ours = getattr(logitloss, name_of(log))(x, axis=axis)
        assert_same_kind(ours, theirs, f"axis={axis}")
        if log:
            value, scale, extra = exact.log_softmax, exact.log_softmax_scale, 1.0
        else:
            value, scale, extra = exact.softmax, exact.softmax_scale, np.abs(exact.softmax)
        assert_close_to_library(ours, theirs, value, scale, dtype, library="scipy", extra_scale=extra)


def test_inputs_not_modified(isa):
    x = logits((3, 33), np.float32, seed=2)
    before = x.copy()
    logitloss.softmax(x, axis=-1)
    logitloss.log_softmax(x, axis=0)
    logitloss.softmax(x)
    assert same_bits(x, before)
