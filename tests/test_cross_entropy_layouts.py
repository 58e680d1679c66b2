"""cross_entropy's memory: input layouts (strided, transposed, misaligned, big-endian, k-dimensional),
``return_grad`` / ``grad_out=`` (a buffer, the input itself, other layouts), and results that do not depend on
the thread count or the SIMD target.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import logitloss
from logitloss.testing.cross_entropy import REDUCTIONS, cross_entropy as exact_cross_entropy
from logitloss.testing.inputs import (
    FLOAT_DTYPES,
    big_endian_copy,
    class_weights,
    index_targets,
    logits,
    misaligned_copy,
    negative_stride_view,
    probability_targets,
    target_shape,
    tricky_rows,
    upstream,
)

from .helpers.assertions import assert_unchanged, same_bits, snapshot
from .helpers.cross_entropy_checks import (
    KINDS,
    check_cross_entropy,
    grad_tolerance,
    kwargs_of,
    loss_tolerance,
    make_targets,
)
from .helpers.isas import SUPPORTED_ISAS
from .helpers.marks import dtype_id, dtypes


# torch on one thread while this module runs (see conftest.torch_single_threaded)
pytestmark = pytest.mark.usefixtures("torch_single_threaded")


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
        exact = exact_cross_entropy(x, t, reduction="none", label_smoothing=0.1)
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
