"""logsumexp_backward, softmax_backward, log_softmax_backward: against the exact reference and
torch autograd, every ISA."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import logitloss
from logitloss.testing.inputs import (
    FLOAT_DTYPES,
    VECTOR_WIDTH_SIZES,
    logits,
    masked_block_rows,
    strided_views,
    tricky_rows,
)
from logitloss.testing.rows import rows_of
from logitloss.testing.softmax_family import logsumexp as exact_logsumexp
from logitloss.testing.tolerances import GRADIENT, tolerance

from .helpers.assertions import assert_close_to_exact, assert_close_to_library, same_bits
from .helpers.isas import SUPPORTED_ISAS
from .helpers.marks import dtype_id, dtypes
from .helpers.softmax_family_checks import (
    EXACT_BACKWARD,
    check_backward,
    check_lse_backward,
    exact_forward_output,
    per_row_to_elements,
)

inf = np.inf

KINDS = ("softmax", "log_softmax")
kinds = pytest.mark.parametrize("kind", KINDS)


def upstream(shape, dtype, seed):
    """A grad_output: normal, with a few exact zeros."""
    g = np.random.default_rng(seed).standard_normal(shape)
    if g.size > 3:
        g.flat[:: max(1, g.size // 3)] = 0.0
    return g.astype(dtype)


# ---- logsumexp_backward -------------------------------------------------------------------------


@dtypes
@pytest.mark.parametrize("n", VECTOR_WIDTH_SIZES)
def test_logsumexp_backward_sizes(isa, dtype, n):
    a = tricky_rows(n, dtype, seed=n)
    g = upstream(5, dtype, seed=n)
    check_lse_backward(g, a, axis=-1)
    check_lse_backward(g[:, None], a, axis=-1, keepdims=True)
    check_lse_backward(dtype(1.5), a, axis=None)


@dtypes
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2), (2, 1), (0, 1, 2)], ids=repr)
def test_logsumexp_backward_axes(isa, dtype, axis, keepdims):
    a = logits((3, 4, 5), dtype, seed=21)
    a[1, 2, :] = -inf
    a[1, 2, 0] = 0.5
    reduced = np.shape(logitloss.logsumexp(a, axis=axis, keepdims=keepdims))
    g = upstream(reduced, dtype, seed=22)
    check_lse_backward(g, a, axis=axis, keepdims=keepdims, what=f"axis={axis} keepdims={keepdims}")


@dtypes
def test_logsumexp_backward_with_b(isa, dtype):
    a = logits((4, 37), dtype, seed=31)
    rng = np.random.default_rng(31)
    g = upstream(4, dtype, seed=32)
    for b in (
        rng.uniform(0.1, 2.0, 37).astype(dtype),
        (rng.random((4, 37)) < 0.5).astype(dtype) + np.eye(4, 37, dtype=dtype),
        np.abs(rng.standard_normal((4, 37))).astype(dtype) - np.array(0.1, dtype=dtype),  # some negative
    ):
        assert (exact_logsumexp(a, axis=-1, b=b).sign > 0).all()  # positive totals: out is finite
        check_lse_backward(g, a, axis=-1, b=b)
    big_b = rng.uniform(0.5, 1.5, (2, 4, 37)).astype(dtype)  # b enlarges the result
    check_lse_backward(upstream((2, 4), dtype, seed=33), a, axis=-1, b=big_b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [-1, 0], ids=repr)
def test_logsumexp_backward_with_b_beyond_the_kernel_range(isa, dtype, axis, keepdims):
    """Weights above ~2^58 (float32) / ~2^506 (float64) overflowed the kernels' scaled sums and
    tiny ones lost precision; the gradient must not change when the driver rescales them."""
    a = logits((4, 37), dtype, seed=34)
    exponents = (64, 126, -70, -140) if dtype == np.float32 else (520, 1000, -600, -1060)
    for exponent in exponents:
        b = np.ldexp(np.random.default_rng(exponent + 2000).uniform(0.5, 2.0, a.shape), exponent).astype(dtype)
        reduced = np.shape(logitloss.logsumexp(a, axis=axis, b=b, keepdims=keepdims))
        g = upstream(reduced, dtype, seed=35)
        what = f"b ~ 2^{exponent} axis={axis} keepdims={keepdims}"
        check_lse_backward(g, a, axis=axis, b=b, keepdims=keepdims, what=what)
        result = logitloss.logsumexp(a, axis=axis, b=b, keepdims=keepdims)
        assert np.isfinite(result).all(), what
        check_lse_backward(g, a, axis=axis, b=b, keepdims=keepdims, result=result, what=what + " result=")
    # weights spanning the whole format in one row (rescaling would round the smallest)
    top, bottom, far = (127, -140, 300.0) if dtype == np.float32 else (1023, -1074, 2000.0)
    a = np.array([[0.0, far, 1.0], [0.0, -far, 1.0]], dtype=dtype)
    b = np.array([[2.0**top, 2.0**bottom, 3.0], [2.0**top, 2.0**bottom, 1.0]]).astype(dtype)
    g = upstream(2, dtype, seed=36)
    check_lse_backward(g, a, axis=-1, b=b, what="weights spanning the format")
    check_lse_backward(g, a, axis=-1, b=b, result=logitloss.logsumexp(a, axis=-1, b=b), what="spanning, result=")


@dtypes
def test_logsumexp_backward_uses_result(isa, dtype):
    a = logits((6, 45), dtype, seed=41)
    g = upstream(6, dtype, seed=42)
    result = logitloss.logsumexp(a, axis=-1)
    check_lse_backward(g, a, axis=-1, result=result, what="result= given")
    # the given result is used, not recomputed: result + 1 scales the gradient by about exp(-1)
    shifted = check_lse_backward(g, a, axis=-1, result=(result.astype(np.float64) + 1).astype(dtype), what="result + 1")
    plain = logitloss.logsumexp_backward(g, a, axis=-1)
    assert not np.allclose(shifted, plain)
    kept = logitloss.logsumexp(a, axis=-1, keepdims=True)
    check_lse_backward(g[:, None], a, axis=-1, keepdims=True, result=kept, what="result= with keepdims")


def test_logsumexp_backward_matches_return_grad(isa):
    a = logits((5, 77), np.float32, seed=51)
    g = np.ones(5, dtype=np.float32)
    _, grad = logitloss.logsumexp(a, axis=-1, return_grad=True)
    backward = logitloss.logsumexp_backward(g, a, axis=-1)
    exact = exact_logsumexp(a, axis=-1)
    tol = tolerance(np.float32, exact.grad, exact.grad_scale, GRADIENT)
    assert np.all(np.abs(grad.astype(np.float64) - backward) <= 2 * tol)


# ---- softmax_backward / log_softmax_backward ------------------------------------------------------


@kinds
@dtypes
@pytest.mark.parametrize("n", VECTOR_WIDTH_SIZES)
def test_backward_sizes(isa, dtype, n, kind):
    x = tricky_rows(n, dtype, seed=n)
    g = upstream(x.shape, dtype, seed=n + 1)
    out = exact_forward_output(kind, x, -1)
    check_backward(kind, g, out, axis=-1)
    out_all = exact_forward_output(kind, x, None)
    check_backward(kind, g, out_all, axis=None)


@kinds
@dtypes
@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2), (2, 0, 1)], ids=repr)
def test_backward_axes(isa, dtype, axis, kind):
    x = logits((3, 4, 5), dtype, seed=61)
    g = upstream(x.shape, dtype, seed=62)
    check_backward(kind, g, exact_forward_output(kind, x, axis), axis=axis, what=f"{kind} axis={axis}")


@kinds
@dtypes
@pytest.mark.parametrize("view", list(strided_views(np.zeros((2, 2)))))
def test_backward_strided_views(isa, dtype, view, kind):
    """grad_output and output in every layout (the formula holds for any output values)."""
    base = logits((6, 67), dtype, seed=67)
    output_base = exact_forward_output(kind, base, -1)
    g_base = upstream(base.shape, dtype, seed=68)
    output, axis = strided_views(output_base)[view]
    g, _ = strided_views(g_base)[view]
    before_g, before_output = g.copy(), output.copy()
    got = check_backward(kind, g, output, axis=axis, what=f"{kind} {view}")
    assert got.dtype == np.dtype(dtype)
    assert same_bits(g, before_g) and same_bits(output, before_output), "inputs modified"
    # mixed layouts: contiguous grad_output with a strided output
    contiguous_g = np.ascontiguousarray(g).astype(np.dtype(dtype))
    check_backward(kind, contiguous_g, output, axis=axis, what=f"{kind} {view} mixed")


# float64 at 128256 would cost seconds of mpmath per kind for no new code path: 32000 covers it
VOCAB_CASES = [(dtype, n) for dtype in FLOAT_DTYPES for n in (32000, 128256) if (dtype, n) != (np.float64, 128256)]


@kinds
@pytest.mark.parametrize("dtype,n", VOCAB_CASES, ids=lambda v: dtype_id(v) if isinstance(v, type) else str(v))
def test_backward_vocabulary_widths(isa, dtype, n, kind):
    x = logits((1, n), dtype, seed=n, spread=3.0)
    g = upstream(x.shape, dtype, seed=n + 1)
    check_backward(kind, g, exact_forward_output(kind, x, -1), axis=-1, what=f"{kind} vocab {n}")


@kinds
@dtypes
def test_backward_long_rows_with_masked_blocks(isa, dtype, kind):
    x = masked_block_rows(20000, dtype, seed=20000)
    g = upstream(x.shape, dtype, seed=20001)
    check_backward(kind, g, exact_forward_output(kind, x, -1), axis=-1, what=f"{kind} masked blocks")


@dtypes
def test_logsumexp_backward_long_rows_with_masked_blocks(isa, dtype):
    a = masked_block_rows(20000, dtype, seed=20000)
    check_lse_backward(upstream(4, dtype, seed=20002), a, axis=-1, what="masked blocks")


@kinds
@dtypes
def test_backward_special_rows(isa, dtype, kind):
    """Masked (-inf / zero) outputs and one-hot rows."""
    n = 33
    x = logits((3, n), dtype, seed=71)
    x[0, ::3] = -inf
    x[1, :] = -inf
    x[1, 5] = 2.0
    x[2, -1] = 80.0 if dtype != np.float16 else 20.0
    out = exact_forward_output(kind, x, -1)
    g = upstream(x.shape, dtype, seed=72)
    got = check_backward(kind, g, out, axis=-1)
    if kind == "softmax":
        assert (got[0, ::3] == 0).all(), "zero output must get zero gradient"
        assert (got[1] == 0).all(), "a one-hot softmax row has zero gradient"


# ---- against torch autograd -----------------------------------------------------------------------


@dtypes
@pytest.mark.parametrize("dim", [-1, 0, (0, 1)], ids=repr)
def test_logsumexp_backward_matches_torch(isa, dtype, dim, torch):
    a = logits((6, 333), dtype, seed=81)
    a[0, ::4] = -inf
    t = torch.from_numpy(a.copy()).requires_grad_(True)
    y = torch.logsumexp(t, dim=dim)
    g = upstream(tuple(y.shape), dtype, seed=82)
    y.backward(torch.from_numpy(np.asarray(g)))
    theirs = t.grad.numpy()
    ours = logitloss.logsumexp_backward(g, a, axis=dim)
    exact = exact_logsumexp(a, axis=dim, grad_output=g)
    # torch's gradient is g * exp(a - L) with L rounded to the dtype: |L| more eps, relative
    row_norm = np.max(np.abs(rows_of(a.shape, dim).to_rows(exact.grad)), axis=1, initial=0.0)
    extra = per_row_to_elements((1.0 + np.abs(exact.value).reshape(-1)) * row_norm, a.shape, dim)
    assert_close_to_library(
        ours, theirs, exact.grad, exact.grad_scale, dtype, library="torch", direction=GRADIENT, extra_scale=extra
    )
    assert_close_to_exact(ours, exact.grad, dtype, exact.grad_scale, lo=exact.grad_lo, direction=GRADIENT)


@kinds
@dtypes
@pytest.mark.parametrize("shape,dim", [((4, 1000), -1), ((2, 32000), -1), ((7, 33), 0), ((3, 5, 17), 1)], ids=str)
def test_backward_matches_torch(isa, dtype, shape, dim, kind, torch):
    x = logits(shape, dtype, seed=91 + shape[-1])
    t = torch.from_numpy(x.copy()).requires_grad_(True)
    y = getattr(torch, kind)(t, dim=dim)
    g = upstream(shape, dtype, seed=92)
    y.backward(torch.from_numpy(g))
    theirs = t.grad.numpy()
    output = y.detach().numpy()  # torch's own forward output, so both backward from the same data
    ours = getattr(logitloss, f"{kind}_backward")(g, output, axis=dim)
    exact = EXACT_BACKWARD[kind](g, output, axis=dim)
    assert_close_to_exact(ours, exact.value, dtype, exact.scale, lo=exact.lo, direction=GRADIENT, what=kind)
    assert_close_to_library(
        ours, theirs, exact.value, exact.scale, dtype, library="torch", direction=GRADIENT, extra_scale=exact.scale
    )


# ---- dtypes, threads, ISAs ---------------------------------------------------------------------


@dtypes
def test_result_dtypes(isa, dtype):
    x = logits((3, 10), dtype, seed=5)
    g = upstream((3, 10), dtype, seed=6)
    for kind in KINDS:
        got = getattr(logitloss, f"{kind}_backward")(g, exact_forward_output(kind, x, -1), axis=-1)
        assert got.dtype == dtype, f"{kind}_backward: {got.dtype}"
    got = logitloss.logsumexp_backward(g[:, 0], x, axis=-1)
    assert got.dtype == dtype
    got = logitloss.logsumexp_backward(1.0, np.arange(5, dtype=np.int32))
    assert got.dtype == np.float64 and got.shape == (5,)
    exact = exact_logsumexp(np.arange(5, dtype=np.int32), grad_output=1.0)
    assert_close_to_exact(got, exact.grad, np.float64, exact.grad_scale, lo=exact.grad_lo, direction=GRADIENT)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
def test_threads_bitwise_identical(isa, dtype, restore_threads):
    wide = logits((64, 50000), dtype, seed=64)
    g_wide = upstream(wide.shape, dtype, seed=65)
    long_row = logits(3_000_000, dtype, seed=3)
    g_long = upstream(long_row.shape, dtype, seed=4)
    p_wide = logitloss.softmax(wide, axis=-1)
    lp_wide = logitloss.log_softmax(wide, axis=-1)
    lp_long = logitloss.log_softmax(long_row)
    results = {}
    for threads in (1, 2):
        logitloss.set_num_threads(threads)
        results[threads] = [
            logitloss.softmax_backward(g_wide, p_wide, axis=-1),
            logitloss.log_softmax_backward(g_wide, lp_wide, axis=-1),
            logitloss.logsumexp_backward(g_wide[:, 0], wide, axis=-1),
            logitloss.log_softmax_backward(g_long, lp_long),
            logitloss.softmax_backward(g_long, np.exp(lp_long)),
            logitloss.logsumexp_backward(dtype(2.0), long_row),
        ]
    for k, (one, two) in enumerate(zip(results[1], results[2])):
        assert same_bits(one, two), f"backward result {k} differs between 1 and 2 threads"


def test_isas_agree():
    for dtype in FLOAT_DTYPES:
        x = tricky_rows(129, dtype, seed=129)
        g = upstream(x.shape, dtype, seed=130)
        for kind in KINDS:
            output = exact_forward_output(kind, x, -1)
            exact = EXACT_BACKWARD[kind](g, output, axis=-1)
            tol = tolerance(dtype, exact.value, exact.scale, GRADIENT)
            results = {}
            for name in SUPPORTED_ISAS:
                with logitloss.use_isa(name):
                    results[name] = getattr(logitloss, f"{kind}_backward")(g, output, axis=-1).astype(np.float64)
            for a, b in itertools.combinations(SUPPORTED_ISAS, 2):
                assert np.all(np.abs(results[a] - results[b]) <= 2 * tol), f"{kind}: {a} vs {b} ({dtype_id(dtype)})"


def test_inputs_not_modified(isa):
    x = logits((3, 33), np.float32, seed=2)
    g = upstream(x.shape, np.float32, seed=3)
    p = logitloss.softmax(x, axis=-1)
    lp = logitloss.log_softmax(x, axis=-1)
    saved = [v.copy() for v in (x, g, p, lp)]
    logitloss.softmax_backward(g, p, axis=-1)
    logitloss.log_softmax_backward(g, lp, axis=-1)
    logitloss.logsumexp_backward(g[:, 0], x, axis=-1)
    logitloss.logsumexp_backward(g[:, 0], x, axis=-1, b=np.abs(g), result=logitloss.logsumexp(x, axis=-1, b=np.abs(g)))
    for before, after in zip(saved, (x, g, p, lp)):
        assert same_bits(before, after), "an input was modified"
